"""Algorithm 1 of the paper: from continuous index tuples to integer tuples and proportions.

Each Gaussian (a continuous index tuple with a standard deviation per dimension) proposes
``S = 2**r + a_local + a_global`` integer tuples of the weight tensor W:

* the ``2**r`` corners of the unit cell that contains its mean (floor or ceil per dimension),
* ``a_local`` tuples drawn uniformly from a ``region``-sized box around its rounded mean,
  the box shifted to stay inside W,
* ``a_global`` tuples drawn uniformly from all of W.

The Gaussians form consecutive *chunks* of ``chunk_size``; every Gaussian of a chunk spreads
its value over the tuples proposed by the whole chunk (its *pool*), in proportion to its
density at each tuple. A tuple that repeats an earlier tuple of the same pool gets proportion
zero, so sampling with replacement never hands a tuple a double share. The tuples are
constants; the proportions are differentiable in the means and standard deviations, which is
how gradients reach the structure of W.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch

from .indexing import as_shape, check_fits_int64, flat_index, repeat_mask


SIGMA_FLOOR = 1e-6
"""Smallest standard deviation :func:`sample` uses (index units): below it every tuple but the
nearest gets a proportion of exactly 0 anyway, and far smaller sigmas overflow the squared
distances to inf (all-NaN proportions: float32 below ~1e-20, float16 at ~1e-3)."""


MAX_POOL_BYTES = 2 * 2**30
"""Largest (b, k, c, c*S, r) tensor :func:`sample` builds (2 GiB; env ``ASHLIB_MAX_POOL_GIB``)."""


def _check_pool_memory(b: int, k: int, c: int, n_samples: int, r: int, item: int, chunk_size) -> None:
    """Refuse, with the fix, a pooled draw whose pairwise tensor would not fit comfortably:
    pooling c Gaussians compares each of the k with all c * S tuples of its pool, O(b k c S r)."""
    limit = float(os.environ.get("ASHLIB_MAX_POOL_GIB", MAX_POOL_BYTES / 2**30)) * 2**30
    need = b * k * c * n_samples * r * max(item, 4)  # the (b, k/c, c, c*S, r) distances
    if need > limit:
        suggestion = max(1, int(c * limit / need))
        while k % suggestion:
            suggestion -= 1
        raise ValueError(
            f"pooling {c} Gaussians per chunk{' (chunk_size=None: the whole layer)' if chunk_size is None else ''} "
            f"for a batch of {b} needs about {need / 2**30:.1f} GiB for the proportions (memory grows as "
            f"batch x k x chunk_size x S); pass chunk_size={suggestion} or smaller (a divisor of k = {k}), "
            f"or raise the limit with ASHLIB_MAX_POOL_GIB")


def samples_per_gaussian(rank: int, a_local: int, a_global: int) -> int:
    """S = 2**r + a_local + a_global, the number of integer tuples one Gaussian proposes."""
    return 2**rank + a_local + a_global


def _as_region(region, shape: tuple[int, ...]) -> tuple[int, ...]:
    rank = len(shape)
    if isinstance(region, (int, np.integer)) and not isinstance(region, bool):
        region = (int(region),) * rank
    if not isinstance(region, (tuple, list)) or not all(
            isinstance(x, (int, np.integer)) and not isinstance(x, bool) for x in region):
        raise ValueError(f"region must be an int or one int per dimension of W ({rank}), got {region!r}")
    region = tuple(int(x) for x in region)
    if len(region) != rank:
        raise ValueError(f"region must have one size per dimension of W ({rank}), got {region}")
    for d, (l, h) in enumerate(zip(region, shape)):
        if not 1 <= l <= h:
            raise ValueError(
                f"region[{d}] = {l} must lie in [1, {h}] (the size of W's dimension {d}); "
                "shrink the region or enlarge the tensor"
            )
    return region


def check_settings(k: int, a_local: int, a_global: int, chunk_size: int | None) -> int:
    """Validate the sampling settings for k Gaussians; return the chunk size c (k if None)."""
    for name, a in (("a_local", a_local), ("a_global", a_global)):
        if not isinstance(a, int) or a < 0:
            raise ValueError(f"{name} must be a non-negative int, got {a!r}")
    c = k if chunk_size is None else chunk_size
    if not isinstance(c, int) or c < 1 or k % c != 0:
        raise ValueError(f"chunk_size must be None or a positive divisor of k = {k}, got {chunk_size!r}")
    return c


def _check_inputs(means, sigmas, shape, a_local, a_global, chunk_size):
    if not (torch.is_tensor(means) and torch.is_tensor(sigmas)):
        raise ValueError("means and sigmas must be torch tensors")
    if means.is_meta or sigmas.is_meta:
        raise ValueError("sample needs real tensors, got a meta tensor (no data): move the module and its input to "
                         "'cpu' or 'cuda' first")
    if not means.is_floating_point() or not sigmas.is_floating_point():
        raise ValueError(f"means and sigmas must be floating point, got {means.dtype}, {sigmas.dtype}")
    if means.dim() != 3:
        raise ValueError(f"means must have shape (batch, k, rank), got {tuple(means.shape)}")
    b, k, r = means.shape
    if r != len(shape):
        raise ValueError(f"means have {r} coordinates per tuple but W has {len(shape)} dimensions {shape}")
    if k < 1:
        raise ValueError("need at least one Gaussian (k >= 1)")
    if sigmas.shape != means.shape:
        raise ValueError(
            f"sigmas must match means {tuple(means.shape)} (one std per dimension), got {tuple(sigmas.shape)}"
        )
    c = check_settings(k, a_local, a_global, chunk_size)
    if not bool(torch.isfinite(means).all()) or not bool(torch.isfinite(sigmas).all()):
        raise ValueError("means and sigmas contain NaN or inf; check the parameters that produced them")
    upper = torch.tensor(shape, dtype=means.dtype, device=means.device) - 1
    if bool((means < 0).any()) or bool((means > upper).any()):
        raise ValueError(
            f"means must lie in index space, within [0, shape[d] - 1] for W of shape {shape}; "
            "map raw parameters with sigmoid and scaling first (as SparseLayer does)"
        )
    if not bool((sigmas > 0).all()):
        raise ValueError("sigmas must be positive standard deviations")
    return b, k, r, c


def sample(
    means: torch.Tensor,
    sigmas: torch.Tensor,
    shape: Sequence[int],
    *,
    a_local: int,
    a_global: int,
    region,
    chunk_size: int | None = 1,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample integer index tuples for each Gaussian and compute their proportions.

    Args:
        means: float (b, k, r), continuous index tuples already in index space.
        sigmas: float (b, k, r), positive standard deviations in index units.
        shape: the r sizes of W.
        a_local, a_global: how many local and global tuples each Gaussian draws.
        region: size of the local box, an int or one int per dimension (1 <= l_d <= shape[d]).
        chunk_size: Gaussians per pool (must divide k); None pools the whole layer, as in
            Algorithm 1 of the paper. Memory is O(b * k * chunk_size * S).
        generator: optional torch.Generator on the means' device, for reproducible draws. The
            draws do not depend on ``chunk_size``, so the same generator state gives the same
            tuples for every chunk size.

    Returns:
        indices: long (b, k/c, c*S, r), each chunk's pool of tuples, Gaussian by Gaussian.
        props: (b, k, c*S), each Gaussian's proportions over its chunk's pool: non-negative,
            summing to one, exactly zero for a tuple that repeats an earlier one in its pool.
    """
    shape = as_shape(shape)
    check_fits_int64(shape)
    b, k, r, c = _check_inputs(means, sigmas, shape, a_local, a_global, chunk_size)
    region = _as_region(region, shape)
    n_samples = samples_per_gaussian(r, a_local, a_global)
    _check_pool_memory(b, k, c, n_samples, r, means.element_size(), chunk_size)

    with torch.no_grad():
        tuples = _propose(means.detach(), shape, region, a_local, a_global, generator)  # (b, k, S, r)
    pools = tuples.reshape(b, k // c, c * n_samples, r)
    repeats = repeat_mask(flat_index(pools, shape))  # (b, k/c, c*S)

    # log N(t | mu, diag(sigma^2)) up to terms that are constant over the pool (they cancel
    # in the normalisation); a softmax in log space cannot underflow to an all-zero row. Half
    # precision is computed in float32 and sigma held above SIGMA_FLOOR, so ((t - mu) / sigma)^2
    # cannot overflow to inf for every tuple (which would give an all-NaN row).
    out_dtype = means.dtype
    if means.dtype in (torch.float16, torch.bfloat16):
        means, sigmas = means.float(), sigmas.float()
    sigmas = sigmas.clamp_min(SIGMA_FLOOR)
    shape5 = (b, k // c, c, 1, r)
    log_density = _LogDensity.apply(pools.to(means.dtype).unsqueeze(2), means.view(shape5), sigmas.view(shape5))
    log_density = log_density.masked_fill(repeats.unsqueeze(2), float("-inf"))  # (b, k/c, c, c*S)
    props = torch.softmax(log_density, dim=-1).reshape(b, k, c * n_samples).to(out_dtype)
    return pools, props


class _LogDensity(torch.autograd.Function):
    """q = -1/2 sum_d ((t_d - mu_d) / sigma_d)**2 for every (Gaussian, tuple) pair.

    Shapes broadcast as tuples (b, q, 1, P, r), means and sigmas (b, q, c, 1, r) -> (b, q, c, P).
    A hand-written backward keeps one (b, q, c, P, r) tensor, z = (t - mu) / sigma, and needs two
    passes over it: dq/dmu = z / sigma and dq/dsigma = z**2 / sigma, summed over the P tuples.
    Autograd's generic chain would keep and traverse several tensors of that size.
    """

    @staticmethod
    def forward(ctx, tuples, means, sigmas):
        z = (tuples - means) * sigmas.reciprocal()
        ctx.save_for_backward(z, sigmas)
        return (z * z).sum(-1).mul_(-0.5)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        z, sigmas = ctx.saved_tensors
        gz = grad.unsqueeze(-1) * z
        grad_means = gz.sum(3, keepdim=True).div_(sigmas) if ctx.needs_input_grad[1] else None
        grad_sigmas = (gz.mul_(z)).sum(3, keepdim=True).div_(sigmas) if ctx.needs_input_grad[2] else None
        return None, grad_means, grad_sigmas


def _propose(means, shape, region, a_local, a_global, generator):
    """The S integer tuples of every Gaussian, (b, k, S, r): nearest, local, global.

    Written into one preallocated tensor with a single random draw for the local and global
    tuples: at large k the sampler is bound by passes over this (b, k, S, r) tensor.
    """
    b, k, r = means.shape
    device = means.device
    n_near, n_drawn = 2**r, a_local + a_global
    sizes = torch.tensor(shape, dtype=torch.long, device=device)
    box = torch.tensor(region, dtype=torch.long, device=device)
    out = torch.empty(b, k, n_near + n_drawn, r, dtype=torch.long, device=device)

    # The 2**r corners of the unit cell holding the mean. The cell's lower corner is capped at
    # size - 2 so a mean sitting exactly on the last index still gets two distinct neighbours
    # (a dimension of size 1 has only index 0).
    lower = torch.minimum(means.floor().long(), (sizes - 2).clamp(min=0))
    corner_bits = torch.arange(2**r, device=device).unsqueeze(1) >> torch.arange(r - 1, -1, -1, device=device)
    out[:, :, :n_near] = lower.unsqueeze(2) + (corner_bits & 1) * (sizes > 1)

    if n_drawn > 0:
        # Uniform draws scaled to the local box (first a_local) or to all of W (the rest).
        # float32 (24 random bits) is plenty up to 2**16 cells per dimension and cheaper to
        # make; larger dimensions draw float64 so every index stays reachable.
        draw = torch.float32 if max(shape) <= 2**16 else torch.float64
        span = torch.cat([box.expand(a_local, r), sizes.expand(a_global, r)]).to(draw)
        u = torch.rand(b, k, n_drawn, r, generator=generator, device=device, dtype=draw)
        u = torch.minimum(u.mul_(span), span - 1)  # guard against rounding up to the span
        out[:, :, n_near:] = u  # truncation = floor, as u >= 0
        if a_local > 0:
            start = (means.round().long() - box // 2).clamp(min=0)
            out[:, :, n_near : n_near + a_local] += torch.minimum(start, sizes - box).unsqueeze(2)
    return out
