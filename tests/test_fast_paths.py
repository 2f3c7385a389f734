"""Every fast path against the plain computation it replaces (values and gradients, float64).

The fast paths (issue 14) reorganise arithmetic, never the mathematics: the tabulated log
density, the fused softmax-and-split, one W shared by a batch, and quicksort's mixed
permutation. Each is compared here with a direct, independent formula.
"""

import itertools

import pytest
import torch

from ashlib import SparseLayer, quicksort
from ashlib.contract import contract, to_dense
from ashlib.layers import split_log_density, split_values
from ashlib.sampling import pool_log_density
import ashlib.sort as sort_module
from ashlib.sort import half_permutation_step


@pytest.mark.parametrize("shape,c,pool", [((5, 7), 3, 40), ((6, 50), 2, 12), ((4, 3, 9), 1, 8)])
def test_pool_log_density_matches_the_direct_formula(shape, c, pool):
    """Tabulated dimensions (size <= pool) and direct ones (size > pool), with exclusions."""
    torch.manual_seed(0)
    b, q, r = 3, 2, len(shape)
    pools = torch.stack([torch.randint(0, s, (b, q, pool)) for s in shape], dim=-1)
    sizes = torch.tensor(shape, dtype=torch.float64) - 1
    means = (torch.rand(b, q, c, r, dtype=torch.float64) * sizes).requires_grad_()
    sigmas = (torch.rand(b, q, c, r, dtype=torch.float64) * 3 + 0.2).requires_grad_()
    exclude = torch.rand(b, q, pool) < 0.2
    fast = pool_log_density(pools, means, sigmas, shape, exclude=exclude)
    z = (pools.unsqueeze(2).double() - means.unsqueeze(3)) / sigmas.unsqueeze(3)  # (b, q, c, P, r)
    direct = (-0.5 * z.pow(2).sum(-1)).masked_fill(exclude.unsqueeze(2), float("-inf"))
    assert torch.equal(torch.isinf(fast), torch.isinf(direct))
    torch.testing.assert_close(fast, direct)
    weights = torch.randn_like(direct).masked_fill(exclude.unsqueeze(2), 0)
    grads_fast = torch.autograd.grad((fast.nan_to_num(neginf=0) * weights).sum(), (means, sigmas))
    grads_direct = torch.autograd.grad((direct.nan_to_num(neginf=0) * weights).sum(), (means, sigmas))
    for a, b_ in zip(grads_fast, grads_direct):
        torch.testing.assert_close(a, b_)


def test_split_log_density_matches_softmax_then_split():
    torch.manual_seed(1)
    log_density = torch.randn(3, 2, 4, 9, dtype=torch.float64)
    log_density[0, 1, :, 2] = float("-inf")  # a repeated tuple
    values = torch.randn(3, 2, 4, dtype=torch.float64)
    a = (log_density.clone().requires_grad_(), values.clone().requires_grad_())
    b = (log_density.clone().requires_grad_(), values.clone().requires_grad_())
    fused = split_log_density(*a)
    plain = split_values(torch.softmax(b[0], -1).reshape(3, 8, 9), b[1].reshape(3, 8), 4).view(3, 2, 9)
    torch.testing.assert_close(fused, plain)
    g = torch.randn_like(fused)
    for x, y in zip(torch.autograd.grad((fused * g).sum(), a), torch.autograd.grad((plain * g).sum(), b)):
        torch.testing.assert_close(x, y)
    assert torch.autograd.gradcheck(split_log_density, (torch.randn(2, 1, 3, 5, dtype=torch.float64, requires_grad=True),
                                                        torch.randn(2, 1, 3, dtype=torch.float64, requires_grad=True)))


@pytest.mark.parametrize("shared,n", list(itertools.product([1, 3], [4, 16])))
def test_shared_draws_use_draw_i_mod_g(shared, n):
    """Instance i of the batch is multiplied by draw i % G; n = 4 takes the dense-W route, n = 16 the tuples."""
    torch.manual_seed(2)
    layer = SparseLayer(n, n, n, a_local=2, a_global=2, region=2, shared_draws=shared).double()
    x = torch.randn(7, n, dtype=torch.float64)
    y = layer(x, generator=torch.Generator().manual_seed(5))
    idx, w = layer.sample_weights(*layer.batch_parameters(shared), generator=torch.Generator().manual_seed(5))
    reference = torch.stack([to_dense(idx[i % shared], w[i % shared], (n, n)) @ x[i] for i in range(7)])
    torch.testing.assert_close(y, reference)
    for p in (layer.means, layer.sigmas, layer.values):
        torch.testing.assert_close(torch.autograd.grad(y.sum(), p, retain_graph=True)[0],
                                   torch.autograd.grad(reference.sum(), p, retain_graph=True)[0])


def test_shared_draws_is_checked():
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="shared_draws"):
            SparseLayer(4, 4, 4, a_local=1, a_global=1, region=2, shared_draws=bad)


@pytest.mark.parametrize("path", ["per-slot", "dense-mix"])
@pytest.mark.parametrize("n,f,spread,min_proportion", [(8, 3, 0.05, 0.0), (16, 1, 1.0, 0.0), (32, 5, 0.01, 0.0),
                                                       (8, 2, 0.0, 0.0), (16, 4, 0.05, 1e-3)])
def test_mixed_permutation_matches_the_dense_mixture(n, f, spread, min_proportion, path, monkeypatch):
    """A round's P x against the dense sum_s p_s P_s built from the sampled o's, one matrix
    entry at a time; with min_proportion the samples at or below it are left out of the dense
    sum as well. Both of apply()'s paths: per kept sample slot, and the (b, n, n) mixture."""
    monkeypatch.setattr(sort_module, "DENSE_MIX_MAX_N", 0 if path == "per-slot" else 10**6)
    torch.manual_seed(3)
    keys = (torch.randn(4, n, dtype=torch.float64) * spread).requires_grad_()
    x = torch.randn(4, n, f, dtype=torch.float64, requires_grad=True)
    step = half_permutation_step(keys, 1, samples=6, local=2, generator=torch.Generator().manual_seed(1),
                                 min_proportion=min_proportion)
    fast = step.apply(x)
    b, s = step.proportions.shape
    rows = step.indices[..., 0].view(b, s, n)
    kept = step.proportions * (step.proportions > min_proportion)
    dense = torch.zeros(b, n, n, dtype=torch.float64)
    for i in range(b):
        for j in range(s):
            permutation = torch.zeros(n, n, dtype=torch.float64)
            permutation[rows[i, j], torch.arange(n)] = 1
            dense[i] = dense[i] + kept[i, j] * permutation
    reference = dense @ x
    torch.testing.assert_close(fast, reference)
    g = torch.randn_like(fast)
    for a, b_ in zip(torch.autograd.grad((fast * g).sum(), (x, keys), retain_graph=True),
                     torch.autograd.grad((reference * g).sum(), (x, keys), retain_graph=True)):
        torch.testing.assert_close(a, b_)
    # P^T x (the intermediate loss's push-back) uses every sample, whatever min_proportion is
    every = torch.zeros(b, n, n, dtype=torch.float64)
    for i in range(b):
        for j in range(s):
            every[i, rows[i, j], torch.arange(n)] += step.proportions[i, j]
    torch.testing.assert_close(step.apply(x, transpose=True), every.transpose(1, 2) @ x)


def test_quicksort_min_proportion_is_checked_and_exact_at_zero():
    torch.manual_seed(4)
    keys, items = torch.randn(2, 16), torch.randn(2, 16, 3)
    for bad in (-0.1, 1.0, float("nan"), True):
        with pytest.raises(ValueError, match="min_proportion"):
            quicksort(keys, items, min_proportion=bad)
    exact = quicksort(keys, items, generator=torch.Generator().manual_seed(0))
    layers = exact.layers
    out = items
    for step in layers:  # the same rounds through the generic contraction
        out = contract(step.indices, step.weights, out, (16,), validate=False, feature_dims=1)
    torch.testing.assert_close(exact.sorted, out)
