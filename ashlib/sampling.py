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

from collections.abc import Sequence

import torch

from .indexing import as_shape, check_fits_int64, flat_index, repeat_mask


def samples_per_gaussian(rank: int, a_local: int, a_global: int) -> int:
    """S = 2**r + a_local + a_global, the number of integer tuples one Gaussian proposes."""
    return 2**rank + a_local + a_global


def _as_region(region, shape: tuple[int, ...]) -> tuple[int, ...]:
    rank = len(shape)
    if isinstance(region, int):
        region = (region,) * rank
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

    with torch.no_grad():
        tuples = _propose(means.detach(), shape, region, a_local, a_global, generator)  # (b, k, S, r)
    pools = tuples.reshape(b, k // c, c * n_samples, r)
    repeats = repeat_mask(flat_index(pools, shape))  # (b, k/c, c*S)

    # log N(t | mu, diag(sigma^2)) up to terms that are constant over the pool (they cancel
    # in the normalisation); a softmax in log space cannot underflow to an all-zero row.
    # (multiplying by a precomputed 1/sigma is much cheaper than dividing the big tensor)
    scaled = (pools.unsqueeze(2).to(means.dtype) - means.view(b, k // c, c, 1, r)) * sigmas.reciprocal().view(b, k // c, c, 1, r)
    log_density = (scaled * scaled).sum(-1).mul(-0.5)  # (b, k/c, c, c*S)
    log_density = log_density.masked_fill(repeats.unsqueeze(2), float("-inf"))
    props = torch.softmax(log_density, dim=-1).reshape(b, k, c * n_samples)
    return pools, props


def _propose(means, shape, region, a_local, a_global, generator):
    """The S integer tuples of every Gaussian, (b, k, S, r): nearest, local, global."""
    b, k, r = means.shape
    device = means.device
    sizes = torch.tensor(shape, dtype=torch.long, device=device)
    box = torch.tensor(region, dtype=torch.long, device=device)
    # float32 draws (24 random bits) are plenty up to 2**16 cells per dimension and about twice
    # as fast to make; larger dimensions draw float64 so every index stays reachable.
    draw = torch.float32 if max(shape) <= 2**16 else torch.float64

    # The 2**r corners of the unit cell holding the mean. The cell's lower corner is capped at
    # size - 2 so a mean sitting exactly on the last index still gets two distinct neighbours.
    lower = torch.minimum(means.floor().long(), (sizes - 2).clamp(min=0))
    corner_bits = torch.arange(2**r, device=device).unsqueeze(1) >> torch.arange(r - 1, -1, -1, device=device)
    nearest = (lower.unsqueeze(2) + (corner_bits & 1)).clamp(max=sizes - 1)

    parts = [nearest]
    if a_local > 0:
        start = (means.round().long() - box // 2).clamp(min=0)
        start = torch.minimum(start, sizes - box)
        parts.append(start.unsqueeze(2) + _uniform_ints(box, (b, k, a_local, r), generator, draw))
    if a_global > 0:
        parts.append(_uniform_ints(sizes, (b, k, a_global, r), generator, draw))
    return torch.cat(parts, dim=2)


def _uniform_ints(upper: torch.Tensor, size, generator, dtype) -> torch.Tensor:
    """Uniform integers in [0, upper[d]) for each position d of the last dimension."""
    u = torch.rand(size, generator=generator, device=upper.device, dtype=dtype)
    return torch.minimum((u * upper).long(), upper - 1)
