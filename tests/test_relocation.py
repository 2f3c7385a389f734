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


# --- HyperLayer: evidence per context ------------------------------------------------------------

def test_context_keys_equal_exactly_for_equal_inputs_wherever_they_sit_in_the_batch():
    rows = torch.randn(6, 3, 2)
    batch = rows[[0, 1, 0, 2, 5, 1]]
    keys = reloc.context_keys(batch)
    same = (keys.unsqueeze(0) == keys.unsqueeze(1))
    expected = torch.tensor([[i == j for j in [0, 1, 0, 2, 5, 1]] for i in [0, 1, 0, 2, 5, 1]])
    assert torch.equal(same, expected)
    # the same rows in another batch, alone, or in float64 / as integers
    assert torch.equal(reloc.context_keys(rows[[5, 0]]), keys[[4, 0]])
    one_hot = torch.eye(8)
    assert reloc.context_keys(one_hot).unique().numel() == 8
    assert reloc.context_keys(torch.tensor([[3], [4], [3]])).tolist()[0] == reloc.context_keys(torch.tensor([[3]])).item()
    nearly = rows[:1].clone()
    nearly[0, 0, 0] = torch.nextafter(nearly[0, 0, 0], torch.tensor(math.inf))
    assert reloc.context_keys(nearly).item() != keys[0].item()


def test_context_evidence_z_equals_statistics_by_hand():
    """Running count, mean and variance per id over three batches, against numpy-style sums by hand."""
    gen = torch.Generator().manual_seed(0)
    memory, seen = reloc.ContextEvidence(), {}
    for _ in range(3):
        ids = torch.randint(0, 5, (40,), generator=gen) * 1000 - 2000
        grads = torch.randn(40, generator=gen, dtype=torch.float64) + (ids == 0)
        memory.add(ids, grads)
        for i, g in zip(ids.tolist(), grads.tolist()):
            seen.setdefault(i, []).append(g)
    query = torch.tensor(sorted(seen) + [12345])
    got = memory.z(query)
    for i, z in zip(query.tolist(), got.tolist()):
        if i not in seen:
            assert z == 0
            continue
        v = torch.tensor(seen[i], dtype=torch.float64)
        expected = v.mean() / (v.std() / math.sqrt(len(v))) if len(v) >= reloc.MIN_COUNT else 0.0
        assert z == pytest.approx(float(expected), rel=1e-9)


def test_context_evidence_forgets_the_least_recently_seen(monkeypatch):
    monkeypatch.setattr(reloc, "MEMORY_BUDGET", 3)
    memory = reloc.ContextEvidence()
    memory.add(torch.tensor([1, 2]), torch.ones(2))
    memory.add(torch.tensor([3]), torch.ones(1))
    memory.add(torch.tensor([4, 3]), torch.ones(2))
    assert memory.ids.tolist() in ([2, 3, 4], [1, 3, 4])  # 3 and 4 seen last; one of the first pair goes
    assert memory.count[memory.ids == 3].item() == 2


def test_targets_are_set_replaced_and_looked_up():
    memory = reloc.ContextEvidence()
    memory.set_targets(torch.tensor([7, -3]), torch.tensor([5, 9]))
    memory.set_targets(torch.tensor([7, 11]), torch.tensor([6, 0]))
    assert memory.target(torch.tensor([[7, -3], [11, 4]])).tolist() == [[6, 9], [0, -1]]


def test_ranks_within_groups_by_brute_force():
    gen = torch.Generator().manual_seed(2)
    groups = torch.randint(0, 4, (30,), generator=gen)
    scores = torch.randn(30, generator=gen)
    ranks = reloc.ranks_within(groups, scores)
    for i in range(30):
        above = [(scores[j] > scores[i]).item() for j in range(30) if groups[j] == groups[i]]
        assert ranks[i].item() == sum(above)


def test_instance_cell_gradients_equal_autograd_per_instance():
    torch.manual_seed(3)
    b, n_out, n_in, f = 4, 2, 5, 3
    x = torch.randn(b, n_in, f, dtype=torch.float64)
    W = torch.randn(b, n_out, n_in, dtype=torch.float64, requires_grad=True)
    y = torch.einsum("boi,bif->bof", W, x)
    (y.sin().sum()).backward()
    cells = torch.cat([torch.randint(0, n_out, (b, 6, 1)), torch.randint(0, n_in, (b, 6, 1))], -1)
    got = reloc.instance_cell_gradients(y.detach().cos(), x, cells, out_rank=1)
    expected = torch.stack([W.grad[i, cells[i, :, 0], cells[i, :, 1]] for i in range(b)])
    assert torch.allclose(got, expected)


class _CueSource(torch.nn.Module):
    """cue (one-hot) -> one Gaussian per instance: a free raw mean, sigma and value per cue."""

    def __init__(self, n):
        super().__init__()
        self.mean = torch.nn.Parameter(torch.zeros(n, 2))
        self.sigma = torch.nn.Parameter(torch.zeros(n))
        self.value = torch.nn.Parameter(torch.ones(n))

    def forward(self, cue):
        return (cue @ self.mean).unsqueeze(1), (cue @ self.sigma).unsqueeze(1), (cue @ self.value).unsqueeze(1)


def _pointer(n, batches, relocate, seed=0, weight=1.0):
    torch.manual_seed(seed)
    layer = ashlib.HyperLayer(n, 1, 1, _CueSource(n), a_local=2, a_global=8, region=(1, 4), relocate=relocate,
                              relocate_weight=weight)
    opt = torch.optim.Adam(layer.parameters(), lr=0.01)
    gen, eye = torch.Generator().manual_seed(seed), torch.eye(n)
    for _ in range(batches):
        x = torch.randn(64, n, generator=gen)
        cue = torch.randint(n, (64,), generator=gen)
        loss = (layer(x, eye[cue]).squeeze(1) - x[torch.arange(64), cue]).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return layer


def test_hyperlayer_relocation_finds_each_cue_its_column():
    """A pointer over 48 columns: each cue's target is exactly its own column (a wrong sign or a
    mixed-up context would send them elsewhere), and the rounded means follow; without relocation
    the means, which start in the middle, mostly do not arrive in the same number of batches."""
    n = 48  # seeds 0-2 at 600 batches: 47-48 targets right, 41-44 means on them; the paper's mechanism 1-3
    layer = _pointer(n, 600, relocate=True)
    eye = torch.eye(n)
    targets = layer._evidence.target(reloc.pair_ids(reloc.context_keys(eye).unsqueeze(1), torch.arange(1)))
    assert (targets.squeeze(1) == torch.arange(n)).sum() >= n - 2
    on = (layer.to_dense(torch.zeros(n, n), eye).squeeze(1).argmax(-1) == torch.arange(n)).sum()
    assert on >= 3 * n // 4
    paper = _pointer(n, 600, relocate=False)
    assert (paper.to_dense(torch.zeros(n, n), eye).squeeze(1).argmax(-1) == torch.arange(n)).sum() < n // 4


def test_hyperlayer_relocation_pull_is_the_huber_gradient_toward_the_target():
    """With the loss's own gradient zero, the means' gradient is exactly the pull: weight / b times
    clamp(mean - target, -1, 1) in cell units, by autograd through the index-space map."""
    n, b, weight = 16, 4, 0.7
    layer = ashlib.HyperLayer(n, 1, 1, _CueSource(n), relocate=True, relocate_weight=weight)
    cue = torch.eye(n)[[1, 2, 1, 3]]
    keys = reloc.context_keys(cue)
    layer._evidence.set_targets(reloc.pair_ids(keys[[0, 1]], torch.zeros(2, dtype=torch.long)), torch.tensor([12, 2]))
    with torch.no_grad():
        layer.source.mean[1] = torch.tensor([0.0, 0.3])
        layer.source.mean[2] = torch.tensor([0.0, -2.0])
    (layer(torch.randn(b, n), cue) * 0).sum().backward()
    raw = layer.source.mean.detach().clone().requires_grad_(True)
    means, _ = layer.index_space((cue @ raw).unsqueeze(1), torch.zeros(b, 1))
    t, has = torch.tensor([12.0, 2.0, 12.0, 0.0]), torch.tensor([1.0, 1.0, 1.0, 0.0])
    d = means[:, 0, 1] - t
    pull = has * d.clamp(-1, 1).detach() * d  # its gradient is clamp(d, -1, 1)
    (weight / b * pull).sum().backward()
    assert torch.allclose(layer.source.mean.grad, raw.grad, atol=1e-7)
    assert layer.source.mean.grad[3].abs().sum() == 0  # cue 3 has no target


def test_hyperlayer_relocation_moves_nothing_where_contexts_never_repeat():
    torch.manual_seed(4)
    n = 16
    source = torch.nn.Sequential(torch.nn.Linear(n, 4), torch.nn.Unflatten(1, (1, 4)))
    layer = ashlib.HyperLayer(n, 1, 1, lambda c: (source(c)[..., :2], source(c)[..., 2], source(c)[..., 3]),
                              relocate=True)
    for _ in range(30):
        x = torch.randn(32, n)
        (layer(x, torch.randn(32, n)).pow(2).mean()).backward()
    assert layer.moves == 0 and layer._evidence.target_ids is None


@pytest.mark.parametrize("kwargs", [dict(relocate=1), dict(relocate=True, relocate_weight=0),
                                    dict(relocate=True, relocate_weight=float("nan")),
                                    dict(relocate=True, relocate_margin=-1)])
def test_hyperlayer_relocation_settings_refused(kwargs):
    with pytest.raises(ValueError, match="relocate"):
        ashlib.HyperLayer(8, 1, 1, lambda c: None, **kwargs)


def test_tuples_of_inverts_flat_index_by_enumeration():
    from ashlib.indexing import flat_index, tuples_of

    shape = (3, 1, 4)
    every = torch.cartesian_prod(*[torch.arange(n) for n in shape])  # row-major order: flat index = position
    assert torch.equal(tuples_of(torch.arange(every.shape[0]), shape), every)
    assert torch.equal(flat_index(tuples_of(torch.tensor([[5, 11], [0, 7]]), shape), shape), torch.tensor([[5, 11], [0, 7]]))
