"""Cluttered MNIST, the input of the paper's attention experiment, deterministic for a seed.

The public mnist-cluttered recipe: one digit at a uniform position in a ``size x size`` canvas
plus ``n_distractors`` random crops of other digits, rendered on the fly or materialised to a
cached file.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..config import max_tensor_bytes, show_progress
from ..model_files import check_writable
from .mnist import _digits_from, _subseed
from .paths import cache_dir

PAPER_LENGTH = {"train": 60_000, "test": 10_000}


@dataclass(frozen=True)
class ClutterLayout:
    """Where item i's digit and distractors went (all coordinates: top-left corner, row then column)."""

    digit_index: int  # index of the target digit in the source split
    label: int
    digit_yx: tuple[int, int]  # the 28 x 28 digit covers [y, y + 28) x [x, x + 28)
    distractor_index: list[int]  # source digits the distractors were cut from
    crop_yx: list[tuple[int, int]]  # top-left of each crop inside its source digit
    distractor_yx: list[tuple[int, int]]  # top-left of each crop on the canvas


def _as_indices(indices) -> torch.Tensor:
    """Integer indices as a flat long tensor; floats are refused (1.5 must not become item 1)."""
    try:
        idx = torch.as_tensor(indices)
    except (TypeError, ValueError, RuntimeError) as error:
        raise TypeError(f"indices must be integers (a list, array or tensor), got {indices!r}: {error}") from None
    if idx.numel() == 0:
        return torch.zeros(0, dtype=torch.long)
    if idx.is_floating_point() or idx.is_complex() or idx.dtype == torch.bool:
        raise TypeError(f"indices must be integers, got {idx.dtype}")
    return idx.long().reshape(-1)


MAX_DISTRACTORS = 1_000
"""A canvas of side 100 is covered many times over by 1,000 crops of 8 x 8; more is a typo."""


class ClutteredMNIST(torch.utils.data.Dataset):
    """Cluttered MNIST (the mnist-cluttered recipe of the paper's attention experiment), seeded.

    Item i is ``(image, label)``: a float image (1, size, size) in [0, 1] holding one MNIST
    digit at a uniform position fully inside the canvas plus ``n_distractors`` crops of
    ``distractor_size`` x ``distractor_size`` pixels, each cut at a uniform position from another
    uniformly chosen digit of the same split and added at a uniform position; sums are clipped
    to 1, as in the recipe. Target digits run through seeded permutations of the split (each
    digit once per pass, as the recipe does), so with full MNIST the paper's 60,000 / 10,000 use
    every digit once; the offline subset repeats its digits with fresh positions and clutter.

    Everything is drawn from the seed in blocks of 1,024 items, so item i is the same whatever
    ``length``; items are rendered on the fly (vectorised over a batch, see :meth:`batch`) or
    all at once by :meth:`materialise`, which caches them. :meth:`layout` says where things went.
    """

    BLOCK = 1024

    def __init__(self, split: str = "train", size: int = 100, n_distractors: int = 8, distractor_size: int = 8,
                 seed: int = 0, *, length: int | None = None, source: str = "auto", root=None, mnist=None):
        for name, value in (("size", size), ("n_distractors", n_distractors), ("distractor_size", distractor_size),
                            ("seed", seed)):
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
                raise ValueError(f"{name} must be an int, got {value!r}")
        if split not in PAPER_LENGTH:
            raise ValueError(f"split must be 'train' or 'test', not {split!r}")
        if size < 28:
            raise ValueError(f"size must be at least 28 (an MNIST digit is 28 x 28), got {size}")
        if n_distractors < 0:
            raise ValueError(f"n_distractors must be >= 0, got {n_distractors}")
        if n_distractors > MAX_DISTRACTORS:
            raise ValueError(f"n_distractors = {n_distractors:,} is more than {MAX_DISTRACTORS:,}: the layout of every "
                             "canvas is planned up front (about 32 bytes per distractor and canvas)")
        if not 1 <= distractor_size <= 28:
            raise ValueError(f"distractor_size must be between 1 and 28 (crops come from 28 x 28 digits), "
                             f"got {distractor_size}")
        canvas = 2 * 4 * int(size) ** 2  # rendering one item: an int32 canvas of sums, then its float image
        if canvas > max_tensor_bytes():
            raise ValueError(f"size = {size:,} gives canvases of {size:,} x {size:,} pixels that need about "
                             f"{canvas / 2**30:.1f} GiB each to render; use a smaller size (the paper's is 100), "
                             "or raise ASHLIB_MAX_POOL_GIB")
        self.split, self.size, self.seed = split, int(size), int(seed)
        self.n_distractors, self.distractor_size = int(n_distractors), int(distractor_size)
        if length is not None and (isinstance(length, bool) or not isinstance(length, (int, np.integer))):
            raise ValueError(f"length must be None (the paper's 60,000 / 10,000) or an int >= 1, got {length!r}")
        self.length = PAPER_LENGTH.get(split, 0) if length is None else int(length)
        if self.length < 1:
            raise ValueError(f"length must be >= 1, got {length}")
        plan = self.length * 8 * (5 + 5 * self.n_distractors)  # int64 positions and sources, planned up front
        if plan > max_tensor_bytes():
            raise ValueError(f"length = {self.length:,} canvases with {self.n_distractors} distractors need about "
                             f"{plan / 2**30:.1f} GiB for their layout alone (planned up front); use a smaller length, "
                             "or raise ASHLIB_MAX_POOL_GIB")
        self.digits = _digits_from(mnist, split, source, root)
        self._root = root
        n = len(self.digits.labels)
        if n < 1 or (n < 2 and self.n_distractors):
            raise ValueError(f"need at least 2 source digits for distractors from other digits, got {n}")
        self._plan()
        self._images = None  # uint8 (length, size, size) once materialised

    @property
    def source(self) -> str:
        """One line: the set and the digits it was made from."""
        return (f"cluttered MNIST {self.split}, {self.length:,} images {self.size}x{self.size}, "
                f"{self.n_distractors} distractors of {self.distractor_size}x{self.distractor_size}, seed {self.seed}, "
                f"from {self.digits.source}")

    def __repr__(self) -> str:
        return f"ClutteredMNIST({self.source})"

    def __len__(self) -> int:
        return self.length

    def _plan(self) -> None:
        """Draw every random choice for ``length`` items (block by block, so prefixes agree)."""
        n, s, nd, ds = len(self.digits.labels), self.size, self.n_distractors, self.distractor_size
        blocks = -(-self.length // self.BLOCK)
        passes = -(-blocks * self.BLOCK // n)
        order = torch.cat([torch.randperm(n, generator=torch.Generator().manual_seed(
            _subseed("cluttered-digits", self.seed, self.split, p))) for p in range(passes)])
        pos, src, crop, dpos = [], [], [], []
        for b in range(blocks):
            g = torch.Generator().manual_seed(_subseed("cluttered", self.seed, self.split, s, nd, ds, b))
            pos.append(torch.randint(0, s - 28 + 1, (self.BLOCK, 2), generator=g))
            src.append(torch.randint(0, max(n - 1, 1), (self.BLOCK, nd), generator=g))
            crop.append(torch.randint(0, 28 - ds + 1, (self.BLOCK, nd, 2), generator=g))
            dpos.append(torch.randint(0, s - ds + 1, (self.BLOCK, nd, 2), generator=g))
        L = self.length
        self.digit_index = order[:L]
        self.digit_yx = torch.cat(pos)[:L]
        src = torch.cat(src)[:L]
        # uniform over the other n - 1 digits: skip the target's own index
        self.distractor_index = src + (src >= self.digit_index[:, None]).long()
        self.crop_yx = torch.cat(crop)[:L]
        self.distractor_yx = torch.cat(dpos)[:L]
        self.labels = self.digits.labels[self.digit_index]

    def layout(self, i: int) -> ClutterLayout:
        """Where item ``i``'s digit and distractors were placed (for tests, figures, glimpse checks)."""
        i = self._check_index(i)
        return ClutterLayout(
            int(self.digit_index[i]), int(self.labels[i]), tuple(self.digit_yx[i].tolist()),
            self.distractor_index[i].tolist(), [tuple(c) for c in self.crop_yx[i].tolist()],
            [tuple(c) for c in self.distractor_yx[i].tolist()])

    def _check_index(self, i) -> int:
        if torch.is_tensor(i) and i.numel() == 1 and not i.is_floating_point():
            i = int(i)
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)):  # ds[1.7] must not give item 1
            raise TypeError(f"index must be an int, got {i!r} ({type(i).__name__})")
        i = int(i)
        if not -self.length <= i < self.length:
            raise IndexError(f"index {i} out of range for {self.length} items")
        return i % self.length

    def render(self, indices) -> torch.Tensor:
        """uint8 canvases (B, size, size) for the given item indices, vectorised over the batch."""
        idx = _as_indices(indices)
        if idx.numel() and (idx.min() < 0 or idx.max() >= self.length):
            raise IndexError(f"indices must lie in [0, {self.length})")
        b, s, ds, source = len(idx), self.size, self.distractor_size, self.digits.images
        canvas = torch.zeros(b, s, s, dtype=torch.int32)
        r28 = torch.arange(28)
        y, x = self.digit_yx[idx].unbind(-1)
        rows = (y[:, None] + r28)[:, :, None]
        cols = (x[:, None] + r28)[:, None, :]
        canvas[torch.arange(b)[:, None, None], rows, cols] = source[self.digit_index[idx]].to(torch.int32)
        if self.n_distractors:
            rd = torch.arange(ds)
            cy, cx = self.crop_yx[idx].unbind(-1)  # (b, nd)
            crops = source[self.distractor_index[idx][:, :, None, None],
                           (cy[..., None] + rd)[..., :, None], (cx[..., None] + rd)[..., None, :]]
            ty, tx = self.distractor_yx[idx].unbind(-1)
            target = (torch.arange(b)[:, None, None, None], (ty[..., None] + rd)[..., :, None],
                      (tx[..., None] + rd)[..., None, :])
            shape = crops.shape
            canvas.index_put_(tuple(t.expand(shape) for t in target), crops.to(torch.int32), accumulate=True)
        return canvas.clamp_(0, 255).to(torch.uint8)

    def batch(self, indices) -> tuple[torch.Tensor, torch.Tensor]:
        """Images float (B, 1, size, size) in [0, 1] and labels (B,) for a batch of item indices."""
        idx = _as_indices(indices)
        if self._images is not None:
            if idx.numel() and (idx.min() < 0 or idx.max() >= self.length):
                raise IndexError(f"indices must lie in [0, {self.length})")
            images = self._images[idx]
        else:
            images = self.render(idx)
        return images[:, None].float() / 255, self.labels[idx]

    def __getitem__(self, i):
        i = self._check_index(i)
        images, labels = self.batch([i])
        return images[0], int(labels[0])

    def cache_path(self) -> Path:
        """The file :meth:`materialise` writes (named by every setting and the source digits)."""
        fingerprint = hashlib.sha256(self.digits.images.numpy().tobytes()
                                     + self.digits.labels.numpy().tobytes()).hexdigest()[:12]
        name = (f"cluttered_{self.split}_{self.size}px_{self.n_distractors}x{self.distractor_size}_"
                f"seed{self.seed}_n{self.length}_{len(self.digits.labels)}digits-{fingerprint}.pt")
        return cache_dir(self._root) / "cluttered" / name

    def materialise(self, path: str | os.PathLike | None = None, *, batch_size: int = 1000,
                    progress: bool = True) -> Path:
        """Render all items once (or load them if already cached) and keep them in memory.

        The file (uint8 images, labels, the layout and the settings) is written to a temporary
        name and renamed, so an interrupted run leaves nothing that a later call loads.
        60,000 images of 100 x 100 take 600 MB. Returns the path.
        """
        from tqdm.auto import tqdm

        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size must be an int >= 1 (canvases rendered at a time), got {batch_size!r}")
        path = Path(path) if path is not None else self.cache_path()
        if path.is_dir():
            raise ValueError(f"path {path} is a folder: pass a file name (e.g. {path / self.cache_path().name})")
        need = self.length * self.size ** 2  # every canvas as uint8, kept in memory
        if need > max_tensor_bytes():
            raise ValueError(f"materialise() keeps all {self.length:,} canvases of {self.size} x {self.size} in memory: "
                             f"about {need / 2**30:.1f} GiB; use a smaller length or size, render batches on the fly "
                             "with batch(), or raise ASHLIB_MAX_POOL_GIB")
        meta = {"split": self.split, "size": self.size, "n_distractors": self.n_distractors,
                "distractor_size": self.distractor_size, "seed": self.seed, "length": self.length,
                "source": self.digits.source}
        if path.is_file():
            try:
                saved = torch.load(path, weights_only=True)
            except Exception as error:  # not a torch file at all
                raise ValueError(f"{path} is not a cluttered-MNIST file written by materialise() ({error}); "
                                 "delete it or pass another path") from None
            if not isinstance(saved, dict) or not {"meta", "images", "digit_index", "distractor_yx"} <= set(saved):
                raise ValueError(f"{path} is not a cluttered-MNIST file written by materialise(); delete it or "
                                 "pass another path")
            if saved.get("meta") != meta or not torch.equal(saved["digit_index"], self.digit_index) \
                    or not torch.equal(saved["distractor_yx"], self.distractor_yx):
                raise ValueError(f"{path} holds a different cluttered set ({saved.get('meta')}); delete it "
                                 "or pass another path")
            self._images = saved["images"]
            return path
        check_writable(path.parent, f"materialise({str(path)!r}): the folder")  # before minutes of rendering
        images = torch.empty(self.length, self.size, self.size, dtype=torch.uint8)
        for start in tqdm(range(0, self.length, batch_size), disable=not show_progress(progress),
                          desc=f"cluttered MNIST {self.split}", unit="batch"):
            stop = min(start + batch_size, self.length)
            images[start:stop] = self.render(torch.arange(start, stop))
        tmp = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
            os.close(fd)
            torch.save({"meta": meta, "images": images, "labels": self.labels, "digit_index": self.digit_index,
                        "digit_yx": self.digit_yx, "distractor_index": self.distractor_index,
                        "crop_yx": self.crop_yx, "distractor_yx": self.distractor_yx}, tmp)
            os.replace(tmp, path)
        except (OSError, RuntimeError) as error:  # the folder went away or read-only, or the disk filled up
            reason = getattr(error, "strerror", None) or error
            raise ValueError(f"materialise({str(path)!r}): cannot write {path} ({reason})") from None
        finally:
            if tmp is not None and os.path.exists(tmp):
                os.unlink(tmp)
        self._images = images
        return path
