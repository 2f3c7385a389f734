"""The REINFORCE baseline: its gradient estimate is unbiased, checked against exact enumeration."""

import itertools

import pytest
import torch

from ashlib import ReinforceLayer
from ashlib.experiments.identity import IdentityConfig, evaluate

X = torch.tensor([1.0, -2.0], dtype=torch.float64)
TARGET = torch.tensor([0.5, 1.5], dtype=torch.float64)


def make_layer(baseline):
    torch.manual_seed(3)
    layer = ReinforceLayer(2, 2, 2, baseline=baseline).double()
    with torch.no_grad():
        layer.means.copy_(torch.tensor([[0.3, -0.4], [-0.2, 0.5]]))
        layer.sigmas.copy_(torch.tensor([-1.0, -0.5]))
        layer.values.copy_(torch.tensor([0.7, -1.3]))
    return layer


def exact_gradient(layer):
    """d E[L] / d (raw means, raw sigmas, values) by enumerating all 4**2 = 16 joint draws.

    A coordinate rounds to 0 when the continuous point is below 0.5 (clamped below), else to 1.
    """
    means, sigmas = layer.gaussians()
    p_zero = torch.distributions.Normal(means, sigmas).cdf(torch.tensor(0.5, dtype=torch.float64))
    p_cell = torch.stack([p_zero, 1 - p_zero], dim=-1)  # (k, r, 2): P(coordinate = 0 or 1)
    expected = 0.0
    cells = list(itertools.product(range(2), repeat=2))
    for combo in itertools.product(cells, repeat=2):  # one (row, column) per Gaussian
        prob = 1.0
        W = torch.zeros(2, 2, dtype=torch.float64)
        for g, (row, col) in enumerate(combo):
            prob = prob * p_cell[g, 0, row] * p_cell[g, 1, col]
            W = W.index_put((torch.tensor(row), torch.tensor(col)), layer.values[g], accumulate=True)
        expected = expected + prob * (W @ X - TARGET).pow(2).sum()
    return torch.autograd.grad(expected, [layer.means, layer.sigmas, layer.values])


def estimates(layer, n_batches=16, batch=25_000):
    gen = torch.Generator().manual_seed(11)
    out = []
    for _ in range(n_batches):
        y = layer(X.expand(batch, 2), generator=gen)
        losses = (y - TARGET).pow(2).sum(1)
        grads = torch.autograd.grad(layer.surrogate_loss(losses), [layer.means, layer.sigmas, layer.values])
        out.append(torch.cat([g.flatten() for g in grads]))
    return torch.stack(out)


@pytest.mark.parametrize("baseline", ["none", "leave_one_out", "moving_average"])
def test_estimator_is_unbiased(baseline):
    layer = make_layer(baseline)
    exact = torch.cat([g.flatten() for g in exact_gradient(layer)])
    if baseline == "moving_average":
        layer.average_loss.fill_(4.0)  # any value fixed before the draw keeps the estimate unbiased
    est = estimates(layer)
    mean, stderr = est.mean(0), est.std(0) / est.shape[0] ** 0.5
    # the test has power: the exact gradient is far from zero in units of the standard error
    assert (exact.abs() / stderr).max() > 20
    assert ((mean - exact).abs() <= 4.5 * stderr + 1e-6).all(), (mean, exact, stderr)


def test_a_biased_estimator_is_caught():
    """The same check rejects a wrong estimator: a baseline that uses the instance's own loss."""
    layer = make_layer("none")
    exact = torch.cat([g.flatten() for g in exact_gradient(layer)])
    gen = torch.Generator().manual_seed(11)
    est = []
    for _ in range(16):
        y = layer(X.expand(25_000, 2), generator=gen)
        losses = (y - TARGET).pow(2).sum(1)
        lp = layer.last_log_prob
        feedback = losses.detach() - 0.5 * losses.detach()  # depends on the draw itself: biased
        surrogate = losses.mean() + (feedback * lp).mean()
        grads = torch.autograd.grad(surrogate, [layer.means, layer.sigmas, layer.values])
        est.append(torch.cat([g.flatten() for g in grads]))
    est = torch.stack(est)
    mean, stderr = est.mean(0), est.std(0) / 4
    assert not ((mean - exact).abs() <= 4.5 * stderr + 1e-6).all()


def test_baselines_reduce_variance():
    spread = {}
    for baseline in ["none", "leave_one_out"]:
        layer = make_layer(baseline)
        spread[baseline] = estimates(layer, n_batches=12, batch=500)[:, :6].std(0).mean().item()
    assert spread["leave_one_out"] < 0.7 * spread["none"]


def test_forward_builds_the_rounded_w():
    layer = ReinforceLayer(3, 3, 2, fix_values=False).double()
    with torch.no_grad():
        layer.means.fill_(0.0)  # index space 1.0
        layer.sigmas.fill_(-30.0)  # sigma = min_sigma 0.1: the point rounds to (1, 1) almost surely
        layer.values.copy_(torch.tensor([2.0, 0.5]))
    x = torch.randn(5, 3, dtype=torch.float64)
    y = layer(x)
    W = torch.zeros(3, 3, dtype=torch.float64)
    W[1, 1] = 2.5  # both Gaussians land on the same cell: their values add
    torch.testing.assert_close(y, x @ W.T)


def test_identity_evaluation_applies(tmp_path):
    layer = ReinforceLayer(4, 4, 4, fix_values=True)
    with torch.no_grad():
        layer.means.copy_(torch.tensor([[-20.0, -20.0], [-0.5, -0.5], [0.5, 0.5], [20.0, 20.0]]))
    # index space sigmoid(raw) * 3 -> 0, 1.13, 1.87, 3: rounds onto the diagonal
    scores = evaluate(layer, IdentityConfig(n=4, method="reinforce", eval_samples=1000), torch.Generator().manual_seed(0))
    assert scores == {"eval_mse": 0.0, "diagonal": 1.0}


def test_bad_input():
    with pytest.raises(ValueError, match="baseline"):
        ReinforceLayer(4, 4, 4, baseline="median")
    layer = ReinforceLayer(4, 4, 4)
    with pytest.raises(RuntimeError, match="forward"):
        layer.surrogate_loss(torch.zeros(3))
    layer(torch.randn(3, 4))
    with pytest.raises(ValueError, match="one entry per instance"):
        layer.surrogate_loss(torch.zeros(2))
    with pytest.raises(ValueError, match="shape"):
        layer(torch.randn(3, 5))
