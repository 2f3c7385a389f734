import math

import pytest
import torch

from ashlib import sample
from dense_reference import corners, gaussian_density

SHAPE = (9, 7)


def make_gaussians(b, k, shape, seed, sigma=(0.3, 2.0), dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    upper = torch.tensor(shape, dtype=dtype) - 1
    means = torch.rand(b, k, len(shape), generator=g, dtype=dtype) * upper
    sigmas = sigma[0] + torch.rand(b, k, len(shape), generator=g, dtype=dtype) * (sigma[1] - sigma[0])
    return means, sigmas


def run(means, sigmas, shape=SHAPE, seed=0, chunk_size=1, a_local=3, a_global=2, region=3):
    g = torch.Generator().manual_seed(seed)
    return sample(means, sigmas, shape, a_local=a_local, a_global=a_global, region=region,
                  chunk_size=chunk_size, generator=g)


def brute_force_props(pools, means, sigmas, chunk):
    """Algorithm 1 with loops: density of every pool tuple, repeats zeroed, then normalised."""
    b, n_pools, pool_size, r = pools.shape
    k = means.shape[1]
    out = torch.zeros(b, k, pool_size, dtype=torch.float64)
    for i in range(b):
        for q in range(n_pools):
            tuples = [tuple(t) for t in pools[i, q].tolist()]
            for g in range(q * chunk, (q + 1) * chunk):
                mu, sd = means[i, g].tolist(), sigmas[i, g].tolist()
                dens = [0.0 if t in tuples[:j] else gaussian_density(t, mu, sd) for j, t in enumerate(tuples)]
                total = sum(dens)
                out[i, g] = torch.tensor([d / total for d in dens], dtype=torch.float64)
    return out


def test_shapes_bounds_and_normalisation():
    means, sigmas = make_gaussians(3, 8, SHAPE, seed=0)
    S = 4 + 3 + 2
    for chunk, n_pools in ((1, 8), (4, 2), (None, 1)):
        idx, props = run(means, sigmas, chunk_size=chunk)
        c = 8 // n_pools
        assert idx.shape == (3, n_pools, c * S, 2) and idx.dtype == torch.long
        assert props.shape == (3, 8, c * S)
        assert (idx >= 0).all() and (idx < torch.tensor(SHAPE)).all()
        assert (props >= 0).all()
        torch.testing.assert_close(props.sum(-1), torch.ones(3, 8, dtype=torch.float64))


def test_repeats_get_zero_and_first_copies_do_not():
    # A 3x3 W with 17 tuples per Gaussian must repeat; every first copy has positive proportion.
    means, sigmas = make_gaussians(2, 4, (3, 3), seed=1, sigma=(1.0, 2.0))
    idx, props = run(means, sigmas, shape=(3, 3), chunk_size=2, a_local=5, a_global=8, region=2)
    n_repeats = 0
    for i in range(2):
        for q in range(2):
            tuples = [tuple(t) for t in idx[i, q].tolist()]
            for j, t in enumerate(tuples):
                first = t not in tuples[:j]
                n_repeats += not first
                for g in (2 * q, 2 * q + 1):
                    assert (props[i, g, j] > 0) == first, (i, q, j, g)
    assert n_repeats > 0


def test_nearest_tuples_come_first():
    means, sigmas = make_gaussians(2, 5, SHAPE, seed=2)
    means[0, 0] = torch.tensor([8.0, 6.0], dtype=torch.float64)  # the last cell: capped corner
    idx, _ = run(means, sigmas)
    for i in range(2):
        for g in range(5):
            first4 = {tuple(t) for t in idx[i, g, :4].tolist()}
            assert corners(means[i, g].tolist(), SHAPE) <= first4
            assert len(first4) == 4  # four distinct neighbours even on the last cell
            for t in first4:
                assert all(abs(v - m) < 2 for v, m in zip(t, means[i, g].tolist()))


@pytest.mark.parametrize("mean, lo", [((0.2, 0.0), (0, 0)), ((8.0, 6.0), (5, 2)), ((4.4, 3.6), (2, 2))])
def test_local_region_is_aligned_to_the_bounds(mean, lo):
    # region (4, 5): the box starts at round(mean) - (2, 2), shifted to fit inside (9, 7).
    means = torch.tensor([[mean]], dtype=torch.float64)
    sigmas = torch.ones_like(means)
    idx, _ = run(means, sigmas, a_local=400, a_global=0, region=(4, 5))
    local = idx[0, 0, 4:]
    assert local.shape == (400, 2)
    lows = local.min(0).values.tolist()
    highs = local.max(0).values.tolist()
    assert lows == list(lo)
    assert highs == [lo[0] + 3, lo[1] + 4]  # every cell of the box is reachable


def test_global_tuples_cover_the_tensor():
    means = torch.full((1, 1, 2), 4.0, dtype=torch.float64)
    idx, _ = run(means, torch.ones_like(means), a_local=0, a_global=2000)
    glob = idx[0, 0, 4:]
    assert set(map(tuple, glob.tolist())) == {(i, j) for i in range(9) for j in range(7)}


@pytest.mark.parametrize("chunk", [1, 4, None])
def test_proportions_match_brute_force(chunk):
    means, sigmas = make_gaussians(2, 8, SHAPE, seed=3)
    idx, props = run(means, sigmas, chunk_size=chunk)
    c = 8 if chunk is None else chunk
    torch.testing.assert_close(props, brute_force_props(idx, means, sigmas, c), rtol=1e-9, atol=1e-12)


def test_draws_do_not_depend_on_chunk_size():
    means, sigmas = make_gaussians(2, 8, SHAPE, seed=4)
    idx1, _ = run(means, sigmas, chunk_size=1, seed=7)
    for chunk in (4, None):
        idx_c, _ = run(means, sigmas, chunk_size=chunk, seed=7)
        torch.testing.assert_close(idx_c.reshape(idx1.shape), idx1)


def test_generator_makes_draws_reproducible():
    means, sigmas = make_gaussians(2, 6, SHAPE, seed=5)
    a = run(means, sigmas, seed=11)
    b = run(means, sigmas, seed=11)
    c = run(means, sigmas, seed=12)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])


def test_no_underflow_at_small_sigma():
    # Mean at the centre of a 3-D cell: every tuple is at least sqrt(0.75) away. With sigma
    # 0.05 the plain density exp(-150) is 0 in float32; the log-space softmax still splits the
    # value evenly over the 8 corners.
    means = torch.full((1, 1, 3), 3.5)
    sigmas = torch.full((1, 1, 3), 0.05, requires_grad=True)
    assert torch.exp(torch.tensor(-150.0)) == 0
    idx, props = sample(means, sigmas, (8, 8, 8), a_local=2, a_global=2, region=2,
                        generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(props).all()
    torch.testing.assert_close(props[0, 0, :8], torch.full((8,), 1 / 8))
    props[0, 0, 0].backward()
    assert torch.isfinite(sigmas.grad).all()


def test_gradcheck_props_wrt_means_and_sigmas():
    means, sigmas = make_gaussians(1, 4, (6, 5), seed=6, sigma=(0.4, 1.5))
    # keep means away from the integer and half-integer points where the tuples change
    means = means.floor() + 0.2 + 0.1 * torch.rand(means.shape, dtype=torch.float64)
    means.requires_grad_(True)
    sigmas.requires_grad_(True)

    def props(m, s):
        return sample(m, s, (6, 5), a_local=2, a_global=2, region=3, chunk_size=2,
                      generator=torch.Generator().manual_seed(0))[1]

    assert torch.autograd.gradcheck(props, (means, sigmas))


def test_bad_input_raises_value_error():
    means, sigmas = make_gaussians(1, 4, SHAPE, seed=0)
    kw = dict(a_local=1, a_global=1, region=3)
    with pytest.raises(ValueError, match="rank|dimensions"):
        sample(means, sigmas, (9, 7, 2), **kw)
    with pytest.raises(ValueError, match="shape"):
        sample(means[0], sigmas[0], SHAPE, **kw)
    with pytest.raises(ValueError, match="NaN"):
        sample(means * math.nan, sigmas, SHAPE, **kw)
    with pytest.raises(ValueError, match="positive"):
        sample(means, -sigmas, SHAPE, **kw)
    with pytest.raises(ValueError, match="index space"):
        sample(means + 10, sigmas, SHAPE, **kw)
    with pytest.raises(ValueError, match="divisor"):
        sample(means, sigmas, SHAPE, chunk_size=3, **kw)
    with pytest.raises(ValueError, match=r"region\[1\]"):
        sample(means, sigmas, SHAPE, a_local=1, a_global=1, region=(3, 8))
    with pytest.raises(ValueError, match="k >= 1"):
        sample(means[:, :0], sigmas[:, :0], SHAPE, **kw)
    with pytest.raises(ValueError, match="int64"):
        sample(means.new_zeros(1, 1, 3), sigmas.new_ones(1, 1, 3), (2**40, 2**40, 2**40), **kw)
