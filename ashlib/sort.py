"""Differentiable quicksort from sparse half-permutations (paper section 3.3, Algorithm 2, A.2).

Quicksort with median pivots sorts n = 2**m items in m rounds: round d splits every chunk of
size c = n / 2**(d-1) into the elements below the chunk's median (to the chunk's first half)
and the rest (to its second half), keeping their order. Each round is a permutation matrix, a
*half-permutation* P^d(o), fixed by a binary vector o with c/2 ones per chunk.

To make a round differentiable in the keys, o is relaxed to o' = sigmoid(C (key - median)),
and the round becomes a sparse layer: a few valid o's are sampled (random balanced ones plus
the hard o the keys imply), each is given the proportion prod_i (o'_i if o_i else 1 - o'_i),
repeated o's get nothing, and the proportions are normalised so every column of the mixed
matrix sums to 1. Besides the paper's random o's a round can hold proposals one swap away from the
hard o (``local``, drawn) or all of them (``neighbours``, listed; with ``samples=0`` the round is
then deterministic). Items and keys are both multiplied by that mixture. Above ``DENSE_MIX_MAX_N``
items the samples are applied one permutation at a time (the transposed round goes through
:func:`ashlib.contract`), so memory and time stay O(n) per sample; up to it, the samples are
summed into one small (n, n) matrix first, O(n^2) but faster at those sizes.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch
from torch.nn import functional as F

from .config import is_finite_positive
from .contract import contract
from .indexing import repeat_rows_mask


def _check_power_of_two(n: int, what: str = "n") -> int:
    if n < 2 or n & (n - 1):
        raise ValueError(f"{what} must be a power of two >= 2, got {n}")
    return n.bit_length() - 1


def half_permutation_rows(o: torch.Tensor, d: int) -> torch.Tensor:
    """Algorithm 2: the row of the nonzero in each column of the half-permutation P^d(o).

    Args:
        o: (b, n) binary (long or bool), n a power of two, with as many 0s as 1s in every chunk
            of size c = n / 2**(d-1).
        d: the order, 1 .. log2(n).

    Returns:
        r (b, n) long: ``y = P x`` puts ``x[i]`` at position ``r[i]``. Within each chunk the
        elements with o = 0 go, in order, to the chunk's first c/2 positions and those with
        o = 1 to its last c/2 positions.
    """
    if not torch.is_tensor(o) or o.dim() != 2 or o.is_floating_point() or o.is_complex():
        raise ValueError("o must be a (batch, n) long or bool tensor of 0s and 1s")
    if o.is_meta:
        raise ValueError("half_permutation_rows needs a real tensor o, got a meta tensor (no data): move it to "
                         "'cpu' or 'cuda' first")
    b, n = o.shape
    m = _check_power_of_two(n)
    if not isinstance(d, int) or not 1 <= d <= m:
        raise ValueError(f"order d must be an int in [1, log2 n = {m}], got {d!r}")
    o = o.long()
    if bool(((o != 0) & (o != 1)).any()):
        raise ValueError("o must contain only 0s and 1s")
    c = n >> (d - 1)
    chunks = o.view(b, n // c, c)
    ones = chunks.cumsum(-1)
    if bool((ones[..., -1] != c // 2).any()):
        raise ValueError(f"every chunk of {c} elements of o must hold {c // 2} ones and {c // 2} zeros "
                         f"for a half-permutation of order {d}")
    zeros = (1 - chunks).cumsum(-1)
    local = torch.where(chunks.bool(), c // 2 + ones - 1, zeros - 1)
    start = torch.arange(0, n, c, device=o.device).view(1, -1, 1)
    return (local + start).view(b, n)


def _soft_buckets(keys: torch.Tensor, c: int, C: float):
    """Per chunk of size c: log o', log (1 - o') (each (b, n)) and the hard o (b, n) bool."""
    b, n = keys.shape
    chunks = keys.view(b, n // c, c)
    middle = chunks.sort(dim=-1).values[..., c // 2 - 1: c // 2 + 1]
    median = middle.mean(dim=-1, keepdim=True)  # halfway between the two middle keys
    z = ((chunks - median) * C).view(b, n)
    # hard o: the upper c/2 ranks of each chunk (ties broken by position, so it is always valid)
    ranks = chunks.argsort(dim=-1, stable=True).argsort(dim=-1)
    hard = (ranks >= c // 2).view(b, n)
    return F.logsigmoid(z), F.logsigmoid(-z), hard


def _random_buckets(b: int, samples: int, n: int, c: int, device, generator) -> torch.Tensor:
    """(b, samples, n) bool: uniformly random balanced o's (c/2 ones in every chunk)."""
    noise = torch.rand((b, samples, n // c, c), generator=generator,
                       device=device if generator is None else generator.device).to(device)
    return (noise.argsort(dim=-1) >= c // 2).view(b, samples, n)


def _local_buckets(hard: torch.Tensor, log_up: torch.Tensor, log_down: torch.Tensor, local: int, c: int,
                   generator) -> torch.Tensor:
    """(b, local, n) bool: the hard o with one element swapped across the median in some chunks.

    The sorting analogue of Algorithm 1's local samples: proposals near round(o'). In each chunk
    (every chunk when there is one, else each with probability 1/2) one element of the lower half
    moves up and one of the upper half moves down; which ones is drawn with the Gumbel-max trick
    in proportion to o' (resp. 1 - o'), so the elements nearest the median are proposed most.
    The choice only proposes: every proposal's proportion is the same product of o' terms as any
    other sample's, so a proposal the keys make unlikely gets (almost) no weight.
    """
    b, n = hard.shape
    k = n // c
    device = generator.device if generator is not None else hard.device

    def gumbel(shape):
        u = torch.rand(shape, generator=generator, device=device).to(hard.device)
        return -torch.log(-torch.log(u.clamp(1e-12, 1 - 1e-7)))

    h = hard.view(b, 1, k, c)
    up, down = log_up.detach().view(b, 1, k, c), log_down.detach().view(b, 1, k, c)
    shape = (b, local, k, c)
    rise = torch.where(h, float("-inf"), up + gumbel(shape)).argmax(-1)  # (b, local, k): a low element goes up
    fall = torch.where(h, down + gumbel(shape), float("-inf")).argmax(-1)  # a high element goes down
    if k > 1:
        swap = torch.rand((b, local, k), generator=generator, device=device).to(hard.device) < 0.5
    else:
        swap = torch.ones((b, local, k), dtype=torch.bool, device=hard.device)
    flip = (F.one_hot(rise, c) + F.one_hot(fall, c)).bool() & swap.unsqueeze(-1)
    return (h ^ flip).view(b, local, n)


def _swap_neighbours(hard: torch.Tensor, c: int) -> torch.Tensor:
    """(b, k (c/2)**2, n) bool: every o one swap away from the hard o, one chunk at a time.

    Each proposal moves one element of one chunk's lower half up and one of its upper half down,
    and leaves every other chunk as the hard o has it. Unlike ``_local_buckets`` (random swaps,
    several chunks at once), every close pair that straddles a median gets its own proposal in
    every batch, so its gradient does not depend on a lucky draw, and a proposal's proportion is
    not shrunk by unrelated swaps in other chunks. There are k (c/2)**2 of them for k = n / c
    chunks: n**2 / 4 in the first round, so this is for small n (it is exact enumeration, not
    sampling).
    """
    b, n = hard.shape
    k, half = n // c, c // 2
    order = hard.view(b, k, c).long().argsort(dim=-1, stable=True)  # per chunk: the o = 0 positions, then the o = 1 ones
    low, high = order[..., :half], order[..., half:]  # (b, k, half) each, positions within the chunk
    # proposal (j, u, v): chunk j, its u-th low element goes up, its v-th high element goes down
    rise = low.view(b, k, half, 1).expand(b, k, half, half)
    fall = high.view(b, k, 1, half).expand(b, k, half, half)
    start = torch.arange(0, n, c, device=hard.device).view(1, k, 1, 1)
    flip = torch.zeros(b, k, half, half, n, dtype=torch.bool, device=hard.device)
    flip.scatter_(-1, (rise + start).unsqueeze(-1), True)
    flip.scatter_(-1, (fall + start).unsqueeze(-1), True)
    return hard.view(b, 1, n) ^ flip.view(b, k * half * half, n)


def _repeats(o: torch.Tensor) -> torch.Tensor:
    """(b, s) bool: True where o[:, j] equals an earlier o[:, i < j] (the same permutation).

    Exact, with memory linear in o's size (:func:`ashlib.indexing.repeat_rows_mask`); comparing
    every pair of samples would take a (b, s, s, n) tensor, 4.3 GB at n = s = 1024, b = 4.
    """
    return repeat_rows_mask(o)


NEIGHBOURS_MAX_N = 64  # neighbours=True lists n**2/4 half-permutations in the first round: small n only
DENSE_MIX_MAX_N = 128  # up to this n a round's mixture is summed into a dense (b, n, n) matrix first


def _dense_mixture(x: torch.Tensor, rows: torch.Tensor, props: torch.Tensor, min_proportion: float = 0.0,
                   transpose: bool = False):
    """The same y[b] = sum_s p[b, s] P_s x[b] as :class:`_MixedPermutation`, for small n.

    The kept samples' weights are scattered into one (b, n, n) matrix M, then y = M x is a single
    batched product. For small n that is b n^2 numbers, fewer than the s n rows the per-slot path
    moves, and one matmul over the features instead of s gathers (benchmarks/bench_quicksort_paths.py).
    Autograd differentiates the scatter and the product: dL/dp_s sums dL/dM over P_s's cells.
    ``transpose=True`` gives M^T x (the intermediate loss pushes targets back through it).
    """
    b, s, n = rows.shape
    weights = props * (props > min_proportion)
    columns = torch.arange(n, device=rows.device)
    cells = (rows * n + columns).view(b, s * n)  # M[row, column] in the flattened (n, n) matrix
    mix = x.new_zeros(b, n * n).scatter_add(1, cells, weights.unsqueeze(-1).expand(b, s, n).reshape(b, s * n))
    mix = mix.view(b, n, n)
    y = torch.bmm(mix.transpose(1, 2) if transpose else mix, x.reshape(b, n, -1))
    return y.view(x.shape)


class _MixedPermutation(torch.autograd.Function):
    """y[b] = sum_s p[b, s] P_s x[b], where P_s puts x[b, i] at row ``rows[b, s, i]``.

    A round of quicksort mixes a few permutations; only the sample slots that carry weight in
    some instance are applied (a repeat has p = 0, and so has, after float underflow, every
    sample the keys make very unlikely; ``min_proportion`` drops more). Skipping p = 0 is exact:
    such a sample adds nothing, and its gradient through the softmax that made p is p (...) = 0.
    Per kept slot, for the whole batch at once: forward gathers x by the inverse permutation and
    adds it, weighted (one gather, one fused multiply-add); backward gathers the output gradient
    by the permutation, G = P_s^T dL/dy, and uses it twice: dL/dx += p_s G, dL/dp_s = <G, x>.
    No per-tuple dot products, no copy of a row per tuple.
    """

    @staticmethod
    def forward(ctx, x, rows, props, min_proportion=0.0):
        b, s, n = rows.shape
        flat_x = x.reshape(b * n, -1)
        f = flat_x.shape[1]
        keep = props > min_proportion  # (b, s)
        weights = props * keep
        slots = keep.any(0).nonzero().flatten().tolist()
        offsets = (torch.arange(b, device=x.device) * n).view(b, 1)
        positions = torch.arange(n, device=x.device).expand(b, n)
        # Gathers write into preallocated tensors: a fresh tensor per slot the size of the items
        # would cost more in page faults than the copy itself on a CPU.
        y = flat_x.new_empty(b * n, f)
        moved = flat_x.new_empty(b * n, f) if len(slots) > 1 else None
        for number, slot in enumerate(slots):  # a few slots per round, each vectorised over batch, items, features
            inverse = torch.empty_like(positions).scatter_(1, rows[:, slot], positions)  # y[j] = x[inverse[j]]
            source = (inverse + offsets).view(-1)
            weight = weights[:, slot].view(b, 1, 1)
            if number == 0:
                torch.index_select(flat_x, 0, source, out=y)
                y.view(b, n, f).mul_(weight)
            else:
                torch.index_select(flat_x, 0, source, out=moved)
                y.view(b, n, f).addcmul_(moved.view(b, n, f), weight)
        if not slots:
            y.zero_()
        ctx.save_for_backward(flat_x, rows, weights, keep)
        ctx.slots = slots
        return y.view(x.shape)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        flat_x, rows, weights, keep = ctx.saved_tensors
        b, s, n = rows.shape
        f = flat_x.shape[1]
        flat_grad = grad.reshape(b * n, f)
        offsets = (torch.arange(b, device=grad.device) * n).view(b, 1)
        grad_x = flat_x.new_zeros(b * n, f) if ctx.needs_input_grad[0] and not ctx.slots else None
        grad_props = weights.new_zeros(b, s) if ctx.needs_input_grad[2] else None
        pulled = None
        for number, slot in enumerate(ctx.slots):
            target = (rows[:, slot] + offsets).view(-1)
            weight = weights[:, slot].view(b, 1, 1)
            if number == 0 and ctx.needs_input_grad[0]:  # the first slot's P_s^T dL/dy becomes dL/dx in place
                grad_x = torch.index_select(flat_grad, 0, target)
                current = grad_x
            else:
                pulled = flat_grad.new_empty(b * n, f) if pulled is None else pulled
                current = torch.index_select(flat_grad, 0, target, out=pulled)
            if grad_props is not None:
                grad_props[:, slot] = torch.bmm(current.view(b, 1, n * f), flat_x.view(b, n * f, 1)).view(b)
            if number == 0 and ctx.needs_input_grad[0]:
                grad_x.view(b, n, f).mul_(weight)
            elif ctx.needs_input_grad[0]:
                grad_x.view(b, n, f).addcmul_(current.view(b, n, f), weight)
        if grad_props is not None:
            grad_props = grad_props * keep  # a dropped sample gets no gradient
        return (grad_x.view(grad.shape) if grad_x is not None else None), None, grad_props, None


@dataclass
class HalfPermutationStep:
    """One round as a sparse layer: ``indices`` (b, s*n, 2) (row, column) and ``weights`` (b, s*n).

    Sample j's n tuples are ``indices[:, j*n:(j+1)*n]``; ``proportions`` (b, s) are their
    normalised weights (0 for repeats; sample 0 is the hard o the keys imply); ``o`` (b, s, n).
    """

    d: int
    indices: torch.Tensor
    weights: torch.Tensor
    proportions: torch.Tensor
    o: torch.Tensor
    soft_o: torch.Tensor  # o' (b, n)
    min_proportion: float = 0.0  # apply() skips samples with a proportion at or below this

    def apply(self, x: torch.Tensor, transpose: bool = False) -> torch.Tensor:
        """P x (or P^T x) for x (b, n, *features).

        Up to ``n = DENSE_MIX_MAX_N`` the kept samples are summed into one (b, n, n) matrix and
        applied by a batched product (:func:`_dense_mixture`, 7-30x faster at n = 8-128 on a
        CPU). Above it, ``P x`` moves whole rows, one kept permutation at a time
        (:class:`_MixedPermutation`), and ``P^T x`` (for the intermediate loss's targets) goes
        through :func:`ashlib.contract`: memory stays linear in n.
        """
        n = x.shape[1]
        b, s = self.proportions.shape
        rows = self.indices[..., 0].view(b, s, n)
        props = self.proportions.to(x.dtype)
        if n <= DENSE_MIX_MAX_N:  # P^T uses every sample, as the contraction below
            return _dense_mixture(x, rows, props, 0.0 if transpose else self.min_proportion, transpose=transpose)
        if not transpose:
            return _MixedPermutation.apply(x, rows, props, self.min_proportion)
        indices = self.indices.flip(-1)
        return contract(indices, self.weights.to(x.dtype), x, (n,), validate=False, feature_dims=x.dim() - 2)

    def apply_to_keys_and_items(self, keys: torch.Tensor, items: torch.Tensor):
        """The round applied to keys (b, n) and items (b, n, *f): (P keys, P items).

        On the dense path (n up to ``DENSE_MIX_MAX_N``) keys of the items' dtype ride along as one
        more feature, so the mixing matrix is built and applied once; otherwise each is applied
        on its own (on the per-permutation path a joined copy would only add memory).
        """
        b, n = keys.shape
        if n <= DENSE_MIX_MAX_N and items.dtype == keys.dtype:
            both = self.apply(torch.cat([keys.unsqueeze(-1), items.reshape(b, n, -1)], dim=-1))
            return both[..., 0], both[..., 1:].reshape(items.shape)
        return self.apply(keys.unsqueeze(-1)).squeeze(-1), self.apply(items)


def half_permutation_step(keys: torch.Tensor, d: int, *, samples: int, C: float = 10.0,
                          generator: torch.Generator | None = None, local: int = 0,
                          min_proportion: float = 0.0, neighbours: bool = False) -> HalfPermutationStep:
    """The sparse layer approximating P^d(o') for keys (b, n): the hard o, ``samples`` uniformly
    random o's, ``local`` o's one swap away from the hard one (see ``_local_buckets``) and, with
    ``neighbours``, every o one swap away in a single chunk (see ``_swap_neighbours``)."""
    b, n = keys.shape
    c = n >> (d - 1)
    log_up, log_down, hard = _soft_buckets(keys, c, C)
    parts = [hard.unsqueeze(1), _random_buckets(b, samples, n, c, keys.device, generator)]
    if local:
        parts.append(_local_buckets(hard, log_up, log_down, local, c, generator))
    if neighbours:
        parts.append(_swap_neighbours(hard, c))
    o = torch.cat(parts, dim=1)
    log_p = torch.where(o, log_up.unsqueeze(1), log_down.unsqueeze(1)).sum(dim=-1)  # (b, s+1)
    log_p = log_p.masked_fill(_repeats(o), float("-inf"))
    proportions = torch.softmax(log_p, dim=1)  # every column of the mixed matrix sums to 1
    s = o.shape[1]
    rows = half_permutation_rows(o.view(b * s, n), d).view(b, s, n)
    columns = torch.arange(n, device=keys.device).expand(b, s, n)
    indices = torch.stack([rows, columns], dim=-1).view(b, s * n, 2)
    weights = proportions.unsqueeze(-1).expand(b, s, n).reshape(b, s * n)
    return HalfPermutationStep(d, indices, weights, proportions, o, log_up.exp(), min_proportion)


@dataclass
class QuicksortResult:
    """What :func:`quicksort` computed.

    ``sorted`` (b, n, *f): the items in ascending key order (softly); ``steps``: the items after
    each round (``steps[-1]`` is ``sorted`` before unpadding); ``keys``: the keys after each
    round; ``layers``: the :class:`HalfPermutationStep` of each round (for the intermediate loss
    and for plots); ``n``: the number of real items (the rest were padding).
    """

    sorted: torch.Tensor
    steps: list[torch.Tensor] = field(default_factory=list)
    keys: list[torch.Tensor] = field(default_factory=list)
    layers: list[HalfPermutationStep] = field(default_factory=list)
    n: int = 0


def quicksort(keys: torch.Tensor, items: torch.Tensor, *, samples: int | None = None, C: float = 10.0,
              generator: torch.Generator | None = None, pad: bool = True, local: int = 0,
              min_proportion: float = 0.0, neighbours: bool = False) -> QuicksortResult:
    """Softly sort ``items`` (b, n, *f) by ``keys`` (b, n), ascending, differentiably in the keys.

    Args:
        samples: random half-permutations per round besides the hard one (paper: n; default n).
        C: sharpness of the soft buckets o' = sigmoid(C (key - median)) (paper: 10).
        local: extra proposals per round one swap away from the hard o (elements near the
            median proposed most; 0, the paper's sampler, by default).
        neighbours: also add, every round, each o that differs from the hard o by one swap
            within one chunk (n**2/4 of them in the first round; for small n). Every close pair
            across a median then gets a gradient in every batch. Not the paper's sampler
            (False, the default, is).
        generator: for reproducible samples.
        pad: if n is not a power of two, append keys that sort last (and zero items), sort, and
            drop them; with ``pad=False`` such n raises a ValueError.
        min_proportion: sampled half-permutations whose proportion is at or below this are left
            out of the round's product with the items. 0 (default) is exact: only repeats and
            proportions that underflowed to 0 are skipped, and they add nothing either way. A
            small positive value (1e-6) skips samples the keys make negligible, which is most of
            them at large n: each output element moves by at most ``samples * min_proportion *
            max|item|`` per round, and those samples' gradients (each scaled by its proportion,
            so at most min_proportion) are dropped.

    Keys far apart (relative to 1/C) give an exact hard sort; keys that are close mix their items.
    Each round is applied by :meth:`HalfPermutationStep.apply`: for n up to
    ``DENSE_MIX_MAX_N`` as one (b, n, n) mixing matrix, above it one kept sample at a time, so
    memory stays O(n f log n) for the rounds' outputs plus O(a n) per round for the tuples.
    """
    if not torch.is_tensor(keys) or keys.dim() != 2 or not keys.is_floating_point():
        raise ValueError("keys must be a float tensor of shape (batch, n)")
    if keys.is_meta or (torch.is_tensor(items) and items.is_meta):
        raise ValueError("quicksort needs real tensors, got a meta tensor (no data) for keys or items: move them to "
                         "'cpu' or 'cuda' first")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise ValueError(f"generator must be None or a torch.Generator, got {type(generator).__name__}: "
                         "pass torch.Generator().manual_seed(seed) for a seed")
    if isinstance(samples, bool):
        raise ValueError(f"samples must be None (n per round) or a non-negative int, got {samples!r}")
    if not is_finite_positive(C):
        raise ValueError(f"C (the sharpness of o' = sigmoid(C (key - median))) must be a finite number > 0, got {C!r}: "
                         "C = 0 gives the keys no gradient and C < 0 sorts the buckets the wrong way round")
    if torch.is_tensor(items) and not items.is_floating_point():
        raise ValueError(f"items must be a floating-point tensor, real (they are mixed by the sort's proportions), "
                         f"got {items.dtype}: convert them with items.float()"
                         + (", or sort the real and imaginary parts as two features" if items.is_complex() else ""))
    if not torch.is_tensor(items) or items.dim() < 2 or tuple(items.shape[:2]) != tuple(keys.shape):
        raise ValueError(f"items must have shape (batch, n, *features) matching keys {tuple(keys.shape)}, "
                         f"got {tuple(items.shape) if torch.is_tensor(items) else type(items).__name__}")
    if not bool(torch.isfinite(keys).all()):
        raise ValueError("keys contain NaN or inf")
    b, n = keys.shape
    if n < 2:
        raise ValueError(f"need at least 2 items to sort, got {n}")
    if b == 0:  # an empty batch: nothing to sort
        return QuicksortResult(sorted=items, n=n)
    size = 1 << (n - 1).bit_length()
    if size != n:
        if not pad:
            raise ValueError(f"n = {n} is not a power of two: pass pad=True to pad with keys that sort last")
        top = keys.detach().max(dim=1, keepdim=True).values
        spread = (keys.detach().max() - keys.detach().min()).clamp_min(1.0)
        # far above every real key, increasing, so they stay behind the real items in every round
        extra = top + spread * 10 + torch.arange(1, size - n + 1, device=keys.device, dtype=keys.dtype) * 100 / C
        if not bool(torch.isfinite(extra).all()):
            raise ValueError(f"keys up to {float(keys.detach().abs().max()):.3g} leave no room for the padding keys "
                             f"of n = {n} (not a power of two) in {keys.dtype}: rescale the keys, or pad yourself")
        keys = torch.cat([keys, extra], dim=1)
        items = torch.cat([items, items.new_zeros(b, size - n, *items.shape[2:])], dim=1)
    rounds = _check_power_of_two(size)
    samples = size if samples is None else samples
    if not isinstance(samples, int) or samples < 0:
        raise ValueError(f"samples must be a non-negative int, got {samples!r}")
    if not isinstance(local, int) or isinstance(local, bool) or local < 0:
        raise ValueError(f"local must be a non-negative int, got {local!r}")
    if not isinstance(neighbours, bool):
        raise ValueError(f"neighbours must be True or False, got {neighbours!r}")
    if neighbours and size > NEIGHBOURS_MAX_N:
        raise ValueError(f"neighbours=True lists every one-swap half-permutation: n**2/4 = {size * size // 4:,} in the "
                         f"first round for n = {size}; it is meant for n <= {NEIGHBOURS_MAX_N}. Use local=... "
                         "(drawn proposals) for larger n")
    if isinstance(min_proportion, bool) or not isinstance(min_proportion, (int, float)) \
            or not 0 <= min_proportion < 1:
        raise ValueError(f"min_proportion must be a number in [0, 1), got {min_proportion!r}")
    result = QuicksortResult(sorted=items, n=n)
    for d in range(1, rounds + 1):
        step = half_permutation_step(keys, d, samples=samples, C=C, generator=generator, local=local,
                                     min_proportion=float(min_proportion), neighbours=neighbours)
        keys, items = step.apply_to_keys_and_items(keys, items)
        result.layers.append(step)
        result.keys.append(keys)
        result.steps.append(items)
    result.sorted = items[:, :n]
    return result


def push_back_targets(result: QuicksortResult, target: torch.Tensor, detach: bool = True) -> list[torch.Tensor]:
    """Targets for every round: the sorted target fed back through the transposed rounds.

    ``target`` (b, n, *f) is the correctly sorted items; returns ``[t_1, ..., t_m]`` aligned
    with ``result.steps`` (t_m = target). With ``detach`` the permutations only shape the
    targets; gradients flow through the outputs alone.
    """
    size = result.steps[-1].shape[1]
    if target.shape[1] != size:
        target = torch.cat([target, target.new_zeros(target.shape[0], size - target.shape[1], *target.shape[2:])], 1)
    targets = [target]
    for step in reversed(result.layers[1:]):
        layer = replace(step, weights=step.weights.detach()) if detach else step
        targets.append(layer.apply(targets[-1], transpose=True))
    return targets[::-1]


def intermediate_loss(result: QuicksortResult, target: torch.Tensor, *, detach: bool = True) -> torch.Tensor:
    """The paper's "intermediate loss": binary cross-entropy between every round's output and the
    sorted target pushed back to that round, summed over rounds (averaged over items and batch).

    Items and target must lie in [0, 1] (outputs are clamped to (0, 1), as in the paper).
    """
    if tuple(target.shape) != (result.steps[-1].shape[0], result.n, *result.steps[-1].shape[2:]):
        raise ValueError(f"target must have the items' shape {(result.steps[-1].shape[0], result.n)} + features, "
                         f"got {tuple(target.shape)}")
    eps = 1e-6
    total = 0.0
    for output, t in zip(result.steps, push_back_targets(result, target, detach)):
        total = total + F.binary_cross_entropy(output.clamp(eps, 1 - eps), t.clamp(0, 1))
    return total
