import math

import pytest
import torch
from torch import nn

from ashlib import HyperLayer, SparseLayer, split_values
from dense_reference import apply_dense, dense_from_tuples


def logit(p):
    return math.log(p / (1 - p))


def diagonal_layer(n, dtype=torch.float32):
    """A SparseLayer whose means sit exactly on the diagonal with the smallest sigma."""
    layer = SparseLayer(n, n, n, a_local=2, a_global=2, region=3, fix_values=True).to(dtype)
    with torch.no_grad():
        eps = 1e-6  # sigmoid(logit(i/(n-1))) * (n-1) must round to i: keep off 0 and 1 exactly
        raw = torch.tensor([logit(min(max(i / (n - 1), eps), 1 - eps)) for i in range(n)], dtype=dtype)
        layer.means.copy_(raw.unsqueeze(1).expand(n, 2))
        layer.sigmas.fill_(-30.0)  # softplus(-28) ~ 0, so sigma = min_sigma = 0.1
    return layer


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_means_on_the_diagonal_give_the_identity(dtype):
    layer = diagonal_layer(12, dtype)
    x = torch.randn(16, 12, dtype=dtype)
    y = layer(x)
    assert y.dtype == dtype
    torch.testing.assert_close(y, x, rtol=1e-5, atol=1e-5)


def test_forward_equals_the_dense_W_it_sampled():
    torch.manual_seed(0)
    layer = SparseLayer((3, 4), (2, 5), 6, a_local=2, a_global=3, region=2, chunk_size=3).double()
    x = torch.randn(5, 3, 4, dtype=torch.float64)
    idx, w = layer.sample_weights(*layer.batch_parameters(x.shape[0]), generator=torch.Generator().manual_seed(3))
    W = dense_from_tuples(idx, w.detach(), (2, 5, 3, 4))
    y = layer(x, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(y.detach(), apply_dense(W, x, 2))


def test_split_values_matches_a_loop():
    g = torch.Generator().manual_seed(0)
    props = torch.rand(2, 6, 9, generator=g, dtype=torch.float64)
    values = torch.randn(2, 6, generator=g, dtype=torch.float64)
    out = split_values(props, values, chunk_size=3)
    for i in range(2):
        for q in range(2):
            for j in range(9):
                expected = sum(props[i, g_, j] * values[i, g_] for g_ in range(3 * q, 3 * q + 3))
                assert abs(out[i, q, j] - expected) < 1e-12


def test_gradients_reach_means_sigmas_and_values():
    torch.manual_seed(1)
    layer = SparseLayer(6, 6, 6, a_local=1, a_global=2, region=2)
    x = torch.randn(8, 6)
    (layer(x) - x).pow(2).mean().backward()
    for p in (layer.means, layer.sigmas, layer.values):
        assert p.grad is not None and p.grad.abs().sum() > 0


def test_learns_the_8x8_identity():
    # The paper's setting for n = 8 (section 3.1 and appendix A.1), fixed values.
    torch.manual_seed(0)
    layer = SparseLayer(8, 8, 8, a_local=1, a_global=2, region=3, fix_values=True)
    opt = torch.optim.Adam(layer.parameters(), lr=0.005)
    for _ in range(1500):
        x = torch.randn(64, 8)
        loss = (layer(x) - x).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    means, _ = layer.gaussians()
    cells = means.detach().round().long()
    W = torch.zeros(8, 8)
    W[cells[:, 0], cells[:, 1]] += 1
    assert torch.equal(W, torch.eye(8))


class PermutationSource(nn.Module):
    """Source network test double: instance i asks for W = the permutation perms[i]."""

    def __init__(self, perms, in_shape):
        super().__init__()
        self.perms = perms
        self.in_shape = in_shape

    def forward(self, x):
        b, n = self.perms.shape
        eps = 1e-6
        rows = torch.arange(n, dtype=x.dtype).expand(b, n)
        target = torch.stack([rows, self.perms.to(x.dtype)], dim=-1) / (n - 1)
        means = torch.logit(target.clamp(eps, 1 - eps))
        return means, torch.full((b, n), -1000.0, dtype=x.dtype), torch.ones(b, n, dtype=x.dtype)  # sigma at its floor


def test_hyperlayer_gives_each_instance_its_own_W():
    n, b = 7, 4
    g = torch.Generator().manual_seed(0)
    perms = torch.stack([torch.randperm(n, generator=g) for _ in range(b)])
    layer = HyperLayer(n, n, n, PermutationSource(perms, n), a_local=1, a_global=1, region=2)
    x = torch.randn(b, n, generator=g)
    torch.testing.assert_close(layer(x), x.gather(1, perms), rtol=1e-5, atol=1e-5)


class MatrixToTensorSource(nn.Module):
    """A small learnable source: rank-2 input (3, 4) -> parameters for a rank-3 output (2, 2, 2)."""

    def __init__(self, k, r):
        super().__init__()
        self.k, self.r = k, r
        self.net = nn.Linear(12, k * (r + 2))

    def forward(self, x):
        h = self.net(x.flatten(1)).view(-1, self.k, self.r + 2)
        return h[..., : self.r], h[..., self.r], h[..., self.r + 1]


def test_hyperlayer_any_rank_and_gradients_reach_the_source():
    torch.manual_seed(2)
    layer = HyperLayer((3, 4), (2, 2, 2), 5, MatrixToTensorSource(5, 5), a_local=2, a_global=2, region=2)
    x = torch.randn(6, 3, 4)
    y = layer(x)
    assert y.shape == (6, 2, 2, 2)
    y.pow(2).sum().backward()
    assert layer.source.net.weight.grad.abs().sum() > 0


class CueToPointer(nn.Module):
    """A pointer's source: a one-hot cue (b, n) -> one entry at (0, argmax cue), sigma at its floor, value 2."""

    def forward(self, cue):
        b, n = cue.shape
        column = cue.argmax(dim=1).to(cue.dtype)
        target = torch.stack([torch.zeros_like(column), column], dim=-1).unsqueeze(1) / max(n - 1, 1)
        eps = 1e-6
        means = torch.logit(target.clamp(eps, 1 - eps)) if n > 1 else torch.zeros(b, 1, 2, dtype=cue.dtype)
        # raw sigma -1000: times the default sigma_rate (0.03) still far below the softplus's knee
        return means, torch.full((b, 1), -1000.0, dtype=cue.dtype), torch.full((b, 1), 2.0, dtype=cue.dtype)


def test_hyperlayer_context_makes_W_and_x_alone_is_contracted():
    """y = 2 x[p] for a cue p given as context: the hand-worked W has one 2 at (0, p). A source fed
    x instead of the cue would point elsewhere, and a contraction of the cue would not give x[p]."""
    n, b = 9, 5
    g = torch.Generator().manual_seed(3)
    x = torch.randn(b, n, generator=g, dtype=torch.float64)
    p = torch.tensor([0, 4, 8, 2, 4])
    cue = torch.nn.functional.one_hot(p, n).to(torch.float64)
    layer = HyperLayer(n, 1, 1, CueToPointer(), a_local=1, a_global=1, region=(1, 2))
    y = layer(x, cue)
    W = torch.zeros(b, 1, n, dtype=torch.float64)
    W[torch.arange(b), 0, p] = 2.0
    torch.testing.assert_close(y, (W @ x.unsqueeze(-1)).squeeze(-1))
    torch.testing.assert_close(layer(x, context=cue), y)


def test_hyperlayer_context_reaches_the_source_and_gradients_flow_back():
    seen = []

    class Recorder(MatrixToTensorSource):
        def forward(self, x):
            seen.append(x)
            return super().forward(x)

    torch.manual_seed(4)
    layer = HyperLayer(5, (2, 2, 2), 5, Recorder(5, 4), a_local=2, a_global=2, region=2)
    x, context = torch.randn(6, 5), torch.randn(6, 3, 4, requires_grad=True)
    y = layer(x, context)
    assert seen[-1] is context and y.shape == (6, 2, 2, 2)
    y.pow(2).sum().backward()
    assert context.grad is not None and layer.source.net.weight.grad.abs().sum() > 0
    plain = HyperLayer((3, 4), (2, 2, 2), 5, Recorder(5, 5), a_local=2, a_global=2, region=2)
    x34 = torch.randn(6, 3, 4)
    plain(x34)
    assert seen[-1] is x34  # without a context the source gets x itself


def test_hyperlayer_context_is_checked():
    layer = HyperLayer(9, 1, 1, CueToPointer(), a_local=1, a_global=1, region=(1, 2))
    x = torch.randn(4, 9)
    with pytest.raises(ValueError, match="one row per instance"):
        layer(x, torch.zeros(3, 9))
    with pytest.raises(TypeError, match="generator="):
        layer(x, torch.Generator())
    with pytest.raises(TypeError, match="context must be a tensor"):
        layer(x, [0, 1, 2, 3])
    with pytest.raises(ValueError, match="device"):
        layer(x, torch.zeros(4, 9, device="meta"))


def test_hyperlayer_subclass_can_override_hyper():
    class Constant(HyperLayer):
        def hyper(self, x):
            b = x.shape[0]
            return torch.zeros(b, 2, 2), torch.zeros(b, 2), torch.ones(b, 2)

    y = Constant(5, 5, 2, a_local=1, a_global=1, region=2)(torch.randn(3, 5))
    assert y.shape == (3, 5)


def test_bad_input_raises_value_error_with_advice():
    kw = dict(a_local=1, a_global=1, region=2)
    with pytest.raises(ValueError, match="k"):
        SparseLayer(4, 4, 0, **kw)
    with pytest.raises(ValueError, match="divisor"):
        SparseLayer(4, 4, 6, chunk_size=4, **kw)
    with pytest.raises(ValueError, match="region"):
        SparseLayer(4, 4, 4, a_local=1, a_global=1, region=5)
    layer = SparseLayer(4, 4, 4, **kw)
    with pytest.raises(ValueError, match=r"input must have shape \(batch, \*\(4,\)\)"):
        layer(torch.randn(2, 5))
    assert layer(torch.randn(2, 4, 1)).shape == (2, 4, 1)  # a trailing feature dimension is carried along
    with torch.no_grad():
        layer.means[0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        layer(torch.randn(2, 4))
    with pytest.raises(NotImplementedError, match="source"):
        HyperLayer(4, 4, 2, **kw)(torch.randn(2, 4))
    bad_source = lambda x: (torch.zeros(2, 3, 2), torch.zeros(2, 3), torch.ones(2, 3))  # noqa: E731
    with pytest.raises(ValueError, match=r"means must have shape \(batch, k, r\) = \(2, 2, 2\)"):
        HyperLayer(4, 4, 2, bad_source, **kw)(torch.randn(2, 4))


def test_hyperlayer_fresh_source_starts_wide_and_sigma_moves_slower():
    """The default sigma_rate: raw sigma 0 starts at a fifth of the row; the same raw step moves
    sigma far less than with sigma_rate = 1, and sigma_rate = 1 is SparseLayer's mapping."""
    n = 32
    slow = HyperLayer(n, 1, 1, CueToPointer(), a_local=2, a_global=16, region=(1, 8))
    plain = HyperLayer(n, 1, 1, CueToPointer(), a_local=2, a_global=16, region=(1, 8), sigma_rate=1)
    assert slow.sigma_rate == 0.03 and "sigma_rate=0.03" in repr(slow)
    means = torch.zeros(1, 1, 2)
    s0 = slow.index_space(means, torch.zeros(1, 1))[1][0, 0, 1].item()
    assert s0 > n / 5  # covers the row from the middle: softplus(2) * 32 * 0.1 + 0.1 = 6.9
    assert s0 == pytest.approx(plain.index_space(means, torch.zeros(1, 1))[1][0, 0, 1].item())
    step = torch.full((1, 1), -1.0)
    assert slow.index_space(means, step)[1][0, 0, 1] > 0.95 * s0
    assert plain.index_space(means, step)[1][0, 0, 1] < 0.75 * s0
    sparse = SparseLayer(n, 1, 1, a_local=2, a_global=16, region=(1, 8))
    torch.testing.assert_close(plain.index_space(means, step)[1], sparse.index_space(means, step)[1])


@pytest.mark.parametrize("bad", [0, -0.1, float("nan"), float("inf"), "0.1", None])
def test_hyperlayer_sigma_rate_is_checked(bad):
    with pytest.raises(ValueError, match="sigma_rate"):
        HyperLayer(4, 1, 1, CueToPointer(), a_local=1, a_global=1, region=(1, 2), sigma_rate=bad)
