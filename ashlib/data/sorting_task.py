"""The paper's sorting task: batches of n random numbers written with real MNIST digit images."""

from __future__ import annotations

import numpy as np
import torch

from ..config import max_tensor_bytes
from .mnist import _digits_from, _subseed

class SortingTask:
    """Instances of the paper's sorting experiment: n random numbers written in MNIST digits.

    :meth:`sample` gives ``images`` float (b, n, digits, 28, 28) in [0, 1] - number j of
    instance i written most significant digit first, zero-padded (7 -> "007"), every digit a
    real MNIST image of that class drawn uniformly from the split - together with ``numbers``
    long (b, n), uniform in [0, 10**digits), and ``perm`` long (b, n) with
    ``numbers.gather(1, perm)`` sorted ascending.

    Ties: numbers are drawn independently (as in the paper), so equal numbers happen (3-digit
    numbers, n = 16: about 11% of instances). ``perm`` is then the *stable* sorting permutation:
    equal numbers keep their input order, so ``perm`` is unique. A model can only learn that
    order by luck; score it tie-insensitively (compare ``numbers.gather(1, predicted)`` with the
    sorted numbers), or pass ``distinct=True`` to draw distinct numbers within an instance.
    Deterministic for a seed: successive calls continue one seeded random stream.
    """

    def __init__(self, n: int, digits: int = 3, split: str = "train", seed: int = 0, *, distinct: bool = False,
                 source: str = "auto", root=None, mnist=None):
        for name, value in (("n", n), ("digits", digits), ("seed", seed)):
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
                raise ValueError(f"{name} must be an int, got {value!r}")
        if n < 1:
            raise ValueError(f"n (numbers per instance) must be >= 1, got {n}")
        if not 1 <= digits <= 18:
            raise ValueError(f"digits must be between 1 and 18 (numbers must fit in int64), got {digits}")
        if distinct and 10 ** digits > 100_000:
            raise ValueError(f"distinct=True draws from all 10**digits numbers; use digits <= 5, got {digits}")
        if distinct and n > 10 ** digits:
            raise ValueError(f"cannot draw {n} distinct {digits}-digit numbers; lower n or raise digits")
        self.n, self.digits, self.split, self.seed, self.distinct = int(n), int(digits), split, int(seed), distinct
        data = _digits_from(mnist, split, source, root)
        self.images, self.labels, self.digit_source = data
        if len(self.labels) and int(self.labels.min()) < 0:  # bincount cannot count them
            raise ValueError("the digits must cover the classes 0-9 and no others; "
                             f"got a label of {int(self.labels.min())}")
        counts = torch.bincount(self.labels, minlength=10)
        if len(counts) > 10 or (counts[:10] == 0).any():
            raise ValueError("the digits must cover the classes 0-9 and no others; "
                             f"counts per class: {counts.tolist()}")
        # class c's images are by_class[c, :counts[c]] (indices into self.images)
        order = torch.argsort(self.labels, stable=True)
        starts = torch.cumsum(counts, 0) - counts
        self._counts, self._starts, self._order = counts, starts, order
        self.generator = torch.Generator().manual_seed(_subseed("sorting", self.seed, self.split, n, digits))

    @property
    def source(self) -> str:
        return (f"sorting {self.n} numbers of {self.digits} digit{'s' if self.digits != 1 else ''} ({self.split}), "
                f"digit images from {self.digit_source}")

    def __repr__(self) -> str:
        return f"SortingTask({self.source})"

    def sample(self, batch_size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """A batch ``(images, numbers, perm)`` (shapes in the class docstring)."""
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        need = 4 * int(batch_size) * self.n * self.digits * 28 * 28  # the float images of the batch
        if need > max_tensor_bytes():
            raise ValueError(f"batch_size = {batch_size:,} instances of {self.n} numbers need about {need / 2**30:.1f} "
                             "GiB of digit images; use a smaller batch_size (or raise ASHLIB_MAX_POOL_GIB)")
        g, b, n, d = self.generator, int(batch_size), self.n, self.digits
        if self.distinct:
            numbers = torch.multinomial(torch.ones(b, 10 ** d), n, replacement=False, generator=g)
        else:
            numbers = torch.randint(0, 10 ** d, (b, n), generator=g)
        powers = 10 ** torch.arange(d - 1, -1, -1)
        classes = numbers[..., None] // powers % 10  # (b, n, d), most significant first
        pick = (torch.rand(b, n, d, generator=g, dtype=torch.float64) * self._counts[classes]).long()
        pick = torch.minimum(pick, self._counts[classes] - 1)
        chosen = self._order[self._starts[classes] + pick]
        images = self.images[chosen].float() / 255
        perm = torch.argsort(numbers, dim=1, stable=True)
        return images, numbers, perm
