import pytest
import torch

from ashlib.experiments.identity import IdentityConfig, evaluate, evaluate_matrix, rounded_matrix, train
from ashlib import SparseLayer


def test_evaluate_exact_identity_is_zero():
    mse, diag = evaluate_matrix(torch.eye(10), 2000, torch.Generator().manual_seed(0))
    assert mse == 0.0 and diag == 1.0


def test_evaluate_known_errors():
    g = torch.Generator().manual_seed(0)
    # zero matrix: E[(0 - x)^2] = 1; a cyclic shift: E[(x_{i+1} - x_i)^2] = 2; no diagonal.
    mse0, diag0 = evaluate_matrix(torch.zeros(8, 8), 10_000, g)
    mse_shift, diag_shift = evaluate_matrix(torch.eye(8).roll(1, dims=1), 10_000, g)
    assert abs(mse0 - 1.0) < 0.03 and diag0 == 0.0
    assert abs(mse_shift - 2.0) < 0.06 and diag_shift == 0.0
    # half the diagonal replaced by zeros: MSE 0.5, half the diagonal recovered
    W = torch.diag(torch.tensor([1.0, 0.0] * 4))
    mse_half, diag_half = evaluate_matrix(W, 10_000, g)
    assert abs(mse_half - 0.5) < 0.03 and diag_half == 0.5


def test_rounded_matrix_uses_rounded_means_and_values():
    layer = SparseLayer(4, 4, 2, a_local=1, a_global=1, region=2)
    with torch.no_grad():
        # index space = sigmoid(raw) * 3: raw 0 -> 1.5 rounds to 2; raw large -> 3
        layer.means.copy_(torch.tensor([[0.0, 20.0], [20.0, 20.0]]))
        layer.values.copy_(torch.tensor([2.0, -1.0]))
    W = rounded_matrix(layer)
    expected = torch.zeros(4, 4)
    expected[2, 3], expected[3, 3] = 2.0, -1.0
    assert torch.equal(W, expected)
    assert evaluate(layer, IdentityConfig(n=4, eval_samples=100), torch.Generator().manual_seed(0))["diagonal"] == 0.25


def test_config_takes_the_papers_settings(monkeypatch):
    monkeypatch.setenv("ASHLIB_QUICK", "0")
    c = IdentityConfig(n=32)
    assert (c.a_local, c.a_global, c.region, c.lr, c.iterations) == (2, 8, 5, 0.005, 40_000)
    assert IdentityConfig(n=64).lr == 0.001
    with pytest.raises(ValueError):
        IdentityConfig(n=1)
    with pytest.raises(ValueError, match="method"):
        IdentityConfig(n=8, method="gumbel")
    monkeypatch.setenv("ASHLIB_QUICK", "1")
    assert IdentityConfig(n=32).iterations == 6_000 and IdentityConfig(n=32, iterations=7).iterations == 7


def test_train_n8_converges_quickly():
    result = train(IdentityConfig(n=8, iterations=1500, eval_every=250, eval_samples=2000), progress=False)
    assert result.converged_at is not None and result.converged_at <= 1500
    assert result.eval_mse[-1] < 0.01 and result.eval_diagonal[-1] == 1.0
    assert len(result.losses) == 1500 and result.snapshots[0][0] == 1


def test_reinforce_signal_fades_with_n_while_the_sparse_layer_keeps_it():
    from ashlib.experiments.identity import gradient_signal_to_noise

    sparse = {n: gradient_signal_to_noise(n, "sparse", samples=2000) for n in (4, 16)}
    reinforce = {n: gradient_signal_to_noise(n, "reinforce", samples=10_000) for n in (4, 64)}  # SE ~0.01
    assert min(sparse.values()) > 0.5  # one instance mostly points the misplaced entry home
    assert reinforce[64] < 0.6 * reinforce[4] and reinforce[4] < 0.3
    with pytest.raises(ValueError):
        gradient_signal_to_noise(4, "gumbel")
