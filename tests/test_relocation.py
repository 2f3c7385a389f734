"""Relocation (ashlib.relocation, SparseLayer/HyperLayer(relocate=True)), checked against
independent computations: autograd on a dense W, statistics by hand, worked examples."""

import math

import pytest
import torch

import ashlib
from ashlib import relocation as reloc


def test_cell_gradients_equal_autograd_on_a_dense_W():
    """dL/dW[o, i] per instance, from grad_y and x, against autograd through y = W x."""
    torch.manual_seed(0)
    b, n_out, n_in = 5, 3, 4
    x = torch.randn(b, n_in, dtype=torch.float64)
    target = torch.randn(b, n_out, dtype=torch.float64)
    cells = torch.tensor([[0, 0], [2, 3], [1, 2], [2, 0]])
    per_instance = []
    for j in range(b):  # one dense W per instance, so autograd gives that instance's gradient
        W = torch.randn(n_out, n_in, dtype=torch.float64, generator=torch.Generator().manual_seed(1), requires_grad=True)
        ((W @ x[j] - target[j]).pow(3).sum()).backward()
        per_instance.append(W.grad[cells[:, 0], cells[:, 1]])
    W = torch.randn(n_out, n_in, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    grad_y = 3 * (x @ W.T - target).pow(2)  # d/dy of (y - target)^3
    got = reloc.cell_gradients(grad_y, x, cells, out_rank=1)
    assert torch.allclose(got, torch.stack(per_instance))


def test_cell_gradients_sum_over_trailing_features():
    torch.manual_seed(1)
    grad_y, x = torch.randn(2, 3, 5), torch.randn(2, 4, 5)
    cells = torch.tensor([[1, 2], [0, 3]])
    got = reloc.cell_gradients(grad_y, x, cells, out_rank=1)
    expected = torch.stack([(grad_y[:, o] * x[:, i]).sum(-1) for o, i in cells.tolist()], dim=1)
    assert torch.allclose(got, expected)


def test_z_scores_by_hand():
    samples = torch.tensor([[1.0, 0.0], [2.0, 0.0], [3.0, 1.0], [6.0, -1.0]])
    col = [1.0, 2.0, 3.0, 6.0]
    mean = sum(col) / 4
    sd = math.sqrt(sum((v - mean) ** 2 for v in col) / 3)
    z = reloc.z_scores(samples)
    assert z[0].item() == pytest.approx(mean / (sd / 2))
    assert z[1].item() == pytest.approx(0.0)
    assert reloc.z_scores(samples[:1]).tolist() == [0.0, 0.0]  # one instance: no evidence


def test_plan_moves_pairs_the_most_harmful_with_the_most_wanted_cell_of_its_sign():
    values = torch.tensor([1.0, 1.0, -1.0, 1.0])
    harm = torch.tensor([5.0, 9.0, 7.0, 0.0])
    movable = torch.tensor([True, True, True, False])
    cells = torch.tensor([[0, 0], [1, 1], [2, 2], [3, 3]])
    want = torch.tensor([6.0, 12.0, -8.0, 3.0])  # cell 3 is below the bar of 4 noise cells (sqrt(2 ln 4) = 1.67 < 4)
    who, where = reloc.plan_moves(values, harm, movable, cells, want, margin=4.0)
    moves = dict(zip(who.tolist(), map(tuple, where.tolist())))
    assert moves == {1: (1, 1), 0: (0, 0), 2: (2, 2)}  # most harmful positive -> most wanted positive cell


def test_plan_moves_bar_rises_with_the_number_of_candidates():
    n = 100_000
    want = torch.full((n,), 4.5)  # above the margin, below sqrt(2 ln n) = 4.80
    who, _ = reloc.plan_moves(torch.ones(1), torch.ones(1), torch.ones(1, dtype=torch.bool),
                              torch.zeros(n, 2, dtype=torch.long), want, margin=4.0)
    assert who.numel() == 0


def test_raw_means_at_lands_on_the_cell():
    shape = (1, 7, 300)
    cells = torch.tensor([[0, 0, 0], [0, 6, 299], [0, 3, 150]])
    raw = reloc.raw_means_at(cells, shape, torch.empty(0))
    means, _ = ashlib.layers.index_space(raw, torch.zeros(3), shape)
    assert torch.equal(means.round().long(), cells)


def _permutation_run(n, perm, batches, relocate=True, init_means=None, settled=False, seed=0):
    torch.manual_seed(seed)
    layer = ashlib.SparseLayer(n, n, n, fix_values=True, relocate=relocate, init_means=init_means)
    if settled:  # start every Gaussian narrow, on its cell
        with torch.no_grad():
            layer.sigmas.fill_(reloc.raw_sigma_settled(layer.shape, 0.1, 0.1, ashlib.layers.SIGMA_OFFSET))
        assert bool((layer.gaussians()[1] < reloc.SETTLED).all())
    opt = torch.optim.Adam(layer.parameters(), lr=0.01)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(batches):
        x = torch.randn(64, n, generator=gen)
        loss = (layer(x) - x[:, perm]).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    P = torch.zeros(n, n)
    P[torch.arange(n), perm] = 1.0
    return layer, (layer.to_dense() == P).all(1).float().mean().item()


def test_relocation_finds_a_permutation_of_64_the_paper_mechanism_does_not():
    perm = torch.randperm(64, generator=torch.Generator().manual_seed(3))
    layer, right = _permutation_run(64, perm, 60)
    assert right == 1.0 and layer.moves >= 32  # studies/relocate: every row right by batch 10 on 5 of 5 seeds
    _, right_paper = _permutation_run(64, perm, 60, relocate=False)
    assert right_paper < 0.5


def test_settled_right_means_are_not_moved_by_noise():
    n = 32
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(4))
    cells = torch.stack([torch.arange(n), perm], dim=1).float()
    layer, right = _permutation_run(n, perm, 300, init_means=cells, settled=True)
    assert right == 1.0 and layer.moves == 0


def test_wide_means_may_trade_places_but_end_right():
    """A wide Gaussian is still searching: it may move to another wanted cell, and the rows end right."""
    n = 32
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(4))
    cells = torch.stack([torch.arange(n), perm], dim=1).float()
    _, right = _permutation_run(n, perm, 150, init_means=cells)
    assert right == 1.0


def test_one_misplaced_gaussian_moves_to_the_free_cell_and_no_other_moves():
    n = 16
    perm = torch.arange(n)
    cells = torch.stack([torch.arange(n), perm], dim=1).float()
    cells[5, 1] = 12.0  # row 5 points at column 12, (5, 5) is free
    layer, right = _permutation_run(n, perm, 50, init_means=cells, settled=True)
    assert right == 1.0 and layer.moves == 1


def test_relocation_changes_nothing_in_eval_or_without_grad():
    layer = ashlib.SparseLayer(16, 16, 16, fix_values=True, relocate=True)
    before = layer.means.detach().clone()
    with torch.no_grad():
        layer(torch.randn(8, 16))
    layer.eval()
    layer(torch.randn(8, 16)).sum()
    assert torch.equal(layer.means, before) and layer.moves == 0
