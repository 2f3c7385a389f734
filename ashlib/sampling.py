"""Algorithm 1 of the paper: from continuous index tuples to integer tuples and proportions.

Each Gaussian (a continuous index tuple with a standard deviation per dimension) proposes
``S = 2**r + a_local + a_global`` integer tuples of the weight tensor W:

* the ``2**r`` corners of the unit cell that contains its mean (floor and floor + 1 per dimension,
  shifted inwards at the last index),
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

from collections.abc import Sequence

import numpy as np
import torch

from .config import max_tensor_bytes
from .indexing import as_shape, check_fits_int64, flat_index, repeat_mask


SIGMA_FLOOR = 1e-6
"""Smallest standard deviation :func:`sample` uses (index units): below it every tuple but the
nearest gets a proportion of exactly 0 anyway, and far smaller sigmas overflow the squared
distances to inf (all-NaN proportions: float32 below ~1e-20, float16 at ~1e-3)."""




def _check_pool_memory(b: int, k: int, c: int, n_samples: int, r: int, item: int, chunk_size) -> None:
    """Refuse, with the fix, a pooled draw whose pairwise tensor would not fit comfortably:
    pooling c Gaussians compares each of the k with all c * S tuples of its pool, O(b k c S r).
    The limit is :func:`ashlib.config.max_tensor_bytes` (2 GiB, env ``ASHLIB_MAX_POOL_GIB``)."""
    limit = max_tensor_bytes()
    need = b * k * c * n_samples * r * max(item, 4)  # the (b, k/c, c, c*S, r) distances
    if need > limit:
        suggestion = max(1, int(c * limit / need))
        while k % suggestion:
            suggestion -= 1
        raise ValueError(
            f"pooling {c} Gaussians per chunk{' (chunk_size=None: the whole layer)' if chunk_size is None else ''} "
            f"for a batch of {b} needs about {need / 2**30:.1f} GiB for the proportions (memory grows as "
            f"batch x k x chunk_size x S); pass chunk_size={suggestion} or smaller (a divisor of k = {k}), "
            f"split the batch into pieces of at most {max(1, int(b * limit / need))} instances (e.g. for an "
            f"evaluation: torch.cat([layer(part) for part in x.split(size)])), or raise the limit with "
            f"ASHLIB_MAX_POOL_GIB")


def samples_per_gaussian(rank: int, a_local: int, a_global: int) -> int:
    """S = 2**r + a_local + a_global, the number of integer tuples one Gaussian proposes."""
    return 2**rank + a_local + a_global


def _as_region(region, shape: tuple[int, ...]) -> tuple[int, ...]:
    rank = len(shape)
    if isinstance(region, (int, np.integer)) and not isinstance(region, bool):
        # one int: every dimension larger than 1 gets it; a dimension of size 1 has only region 1
        region = tuple(int(region) if size > 1 else 1 for size in shape)
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
        if isinstance(a, bool) or not isinstance(a, int) or a < 0:
            raise ValueError(f"{name} must be a non-negative int, got {a!r}")
    c = k if chunk_size is None else chunk_size
    if isinstance(c, bool) or not isinstance(c, int) or c < 1 or k % c != 0:
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
        chunk_size: Gaussians per pool (must divide k); None pools the whole layer (our reading
            of the paper's section 2.1). Memory is O(b * k * chunk_size * S).
        generator: optional torch.Generator on the means' device, for reproducible draws. The
            draws do not depend on ``chunk_size``, so the same generator state gives the same
            tuples for every chunk size.

    Returns:
        indices: long (b, k/c, c*S, r), each chunk's pool of tuples, Gaussian by Gaussian.
        props: (b, k, c*S), each Gaussian's proportions over its chunk's pool: non-negative,
            summing to one, exactly zero for a tuple that repeats an earlier one in its pool.
    """
    pools, log_density = sample_log_density(means, sigmas, shape, a_local=a_local, a_global=a_global,
                                            region=region, chunk_size=chunk_size, generator=generator)
    b, k = means.shape[:2]
    props = torch.softmax(log_density, dim=-1).reshape(b, k, pools.shape[2]).to(means.dtype)
    return pools, props


def sample_log_density(means, sigmas, shape, *, a_local, a_global, region, chunk_size=1, generator=None):
    """:func:`sample` up to the normalisation: ``(indices (b, k/c, c*S, r), log_density (b, k/c, c, c*S))``.

    ``softmax(log_density, -1)`` are the proportions. The layers normalise and split the values
    in one step (:func:`ashlib.layers.split_log_density`), which saves passes over the pairs.
    The log density is float32 for half-precision means.
    """
    if generator is not None and not isinstance(generator, torch.Generator):
        raise ValueError(f"generator must be None or a torch.Generator, got {type(generator).__name__}: "
                         "pass torch.Generator().manual_seed(seed) for a seed")
    shape = as_shape(shape)
    check_fits_int64(shape)
    b, k, r, c = _check_inputs(means, sigmas, shape, a_local, a_global, chunk_size)
    region = _as_region(region, shape)
    n_samples = samples_per_gaussian(r, a_local, a_global)
    _check_pool_memory(b, k, c, n_samples, r, means.element_size(), chunk_size)

    with torch.no_grad():
        tuples = _propose(means.detach(), shape, region, a_local, a_global, generator)  # (b, k, S, r)
    pools = tuples.reshape(b, k // c, c * n_samples, r)
    repeats = repeat_mask(flat_index(pools, shape, validate=False))  # (b, k/c, c*S); in range by construction

    # log N(t | mu, diag(sigma^2)) up to terms that are constant over the pool (they cancel
    # in the normalisation); a softmax in log space cannot underflow to an all-zero row. Half
    # precision is computed in float32 and sigma held above SIGMA_FLOOR, so ((t - mu) / sigma)^2
    # cannot overflow to inf for every tuple (which would give an all-NaN row).
    if means.dtype in (torch.float16, torch.bfloat16):
        means, sigmas = means.float(), sigmas.float()
    sigmas = sigmas.clamp_min(SIGMA_FLOOR)
    log_density = pool_log_density(pools, means.view(b, k // c, c, r), sigmas.view(b, k // c, c, r), shape,
                                   exclude=repeats)  # (b, k/c, c, c*S), -inf at repeats
    return pools, log_density


def pool_log_density(pools: torch.Tensor, means: torch.Tensor, sigmas: torch.Tensor, shape,
                     exclude: torch.Tensor | None = None) -> torch.Tensor:
    """q = -1/2 sum_d ((t_d - mu_d) / sigma_d)**2 of every Gaussian at every tuple of its pool.

    pools: long (b, q, P, r); means, sigmas: (b, q, c, r) -> (b, q, c, P); ``exclude`` (b, q, P)
    marks tuples whose q is -inf for every Gaussian (the repeats).

    The log density is a sum of one term per dimension, and a tuple's coordinate in dimension d
    takes one of only ``shape[d]`` values. Where ``shape[d] <= P`` each Gaussian's term is
    tabulated once per value, (b, q, c, shape[d]), and gathered per tuple: one pass over the
    (b, q, c, P) pairs forward and one scatter back, exact, instead of several passes over a
    (b, q, c, P, r) tensor of differences. The first tabulated dimension also carries the
    exclusion, as one extra table entry of -inf that excluded tuples point to. Wider dimensions
    compute the difference directly.
    """
    b, q, pool, r = pools.shape
    c = means.shape[2]
    total = None
    for d in range(r):
        coordinate = pools[..., d].unsqueeze(2)  # (b, q, 1, P)
        mu, inv_sigma = means[..., d : d + 1], sigmas[..., d : d + 1].reciprocal()  # (b, q, c, 1)
        if shape[d] <= pool:
            values = torch.arange(shape[d], dtype=means.dtype, device=means.device)
            table = ((values - mu) * inv_sigma).square().mul(-0.5)  # (b, q, c, shape[d])
            if exclude is not None:  # entry shape[d] is -inf; excluded tuples read it
                table = torch.cat([table, table.new_full((b, q, c, 1), float("-inf"))], dim=-1)
                coordinate = coordinate.masked_fill(exclude.unsqueeze(2), shape[d])
                exclude = None
            term = table.gather(-1, coordinate.expand(b, q, c, pool))
        else:
            term = ((coordinate.to(means.dtype) - mu) * inv_sigma).square().mul(-0.5)
        total = term if total is None else total.add_(term)  # neither term is saved for backward
    if exclude is not None:
        total = total.masked_fill(exclude.unsqueeze(2), float("-inf"))
    return total


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
