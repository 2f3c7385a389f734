"""The sorting experiment's pieces, on a synthetic task whose digit images encode their digit."""

import pytest
import torch

from ashlib.experiments.sorting import KeyNetwork, SortingConfig, evaluate, order_errors, sort_items, train
from grey_digits import GreyDigits


def test_order_errors_hand_worked():
    numbers = torch.tensor([[3, 1, 2, 2], [5, 6, 7, 8]])
    keys = torch.tensor([[9.0, 0.0, 2.0, 1.0], [0.0, 2.0, 1.0, 3.0]])  # row 0 right (tie swapped), row 1 wrong
    err, elem = order_errors(keys, numbers)
    assert err == 0.5 and elem == 2 / 8


def test_an_oracle_key_network_has_zero_error():
    class Oracle(torch.nn.Module):
        def forward(self, images):
            weights = torch.tensor([100.0, 10.0, 1.0])
            return (images[..., 0, 0] * 9).round() @ weights

    oracle = Oracle()
    oracle.dummy = torch.nn.Parameter(torch.zeros(1))  # a device to run on
    metrics = evaluate(oracle, SortingConfig(n=8, eval_instances=500), GreyDigits(8, seed=1))
    assert metrics == {"error": 0.0, "element_error": 0.0}


def test_key_network_shapes_and_bad_input():
    net = KeyNetwork(digits=3, width=0.25)
    assert net(torch.rand(2, 4, 3, 28, 28)).shape == (2, 4)
    with pytest.raises(ValueError, match="shape"):
        net(torch.rand(2, 4, 2, 28, 28))
    with pytest.raises(ValueError, match="intermediate"):
        SortingConfig(method="softsort", intermediate=True)


def test_mlp_key_network_shapes_and_bad_arch():
    net = KeyNetwork(digits=2, width=0.25, arch="mlp")
    assert net(torch.rand(3, 5, 2, 28, 28)).shape == (3, 5)
    assert sum(p.numel() for p in net.parameters()) == (784 * 64 + 64) + (64 * 64 + 64) + (64 * 8 + 8) + (16 * 256 + 256) + 257
    with pytest.raises(ValueError, match="arch"):
        KeyNetwork(arch="resnet")


@pytest.mark.parametrize("method", ["quicksort", "neuralsort", "softsort"])
def test_every_method_sorts_far_apart_keys(method):
    keys = torch.tensor([[30.0, -10.0, 20.0, 0.0]])
    items = torch.rand(1, 4, 3, 28, 28)
    out, _ = sort_items(SortingConfig(method=method, tau=0.01), keys, items)
    torch.testing.assert_close(out, items[:, [1, 3, 2, 0]], atol=1e-5, rtol=0)


@pytest.mark.parametrize("method,intermediate", [("quicksort", True), ("softsort", False)])
def test_training_runs_and_learns_on_easy_data(method, intermediate):
    # 80 batches: after 40 the error still jumps between 0.55 and 1.0 with float rounding alone
    # (summation order), after 80 it is below 0.4 either way.
    config = SortingConfig(n=4, method=method, intermediate=intermediate, iterations=80, eval_every=40,
                           eval_instances=300, width=0.25, lr=2e-3, batch_size=16)
    result = train(config, progress=False, data=(GreyDigits(4, seed=0), lambda: GreyDigits(4, seed=99)))
    assert len(result.losses) == 80 and result.eval_iterations == [40, 80]
    assert result.eval_error[-1] < 0.8  # chance for n = 4 is 1 - 1/24 = 0.96


def test_draws_average_independent_sorts():
    """draws = K gives the mean of K single-draw losses (same keys, K independent half-permutations)."""
    from ashlib.experiments.sorting import sorting_loss

    torch.manual_seed(0)
    keys = torch.randn(3, 8)
    items = torch.rand(3, 8, 5)
    target = items.gather(1, keys.argsort(1).unsqueeze(-1).expand_as(items))
    single = SortingConfig(n=8, samples=2)
    four = SortingConfig(n=8, samples=2, draws=4)
    g = torch.Generator().manual_seed(1)
    batched = sorting_loss(four, keys, items, target, generator=g)
    # the same draws, one at a time: the batched call sorts instance i of draw j at row j * b + i
    g = torch.Generator().manual_seed(1)
    from ashlib.sort import quicksort
    from torch.nn import functional as F

    out = quicksort(keys.repeat(4, 1), items.repeat(4, 1, 1), samples=2, generator=g).sorted
    per_draw = [F.binary_cross_entropy(out[j * 3:(j + 1) * 3].clamp(1e-6, 1 - 1e-6), target) for j in range(4)]
    torch.testing.assert_close(batched, torch.stack(per_draw).mean())
    assert sorting_loss(single, keys, items, target, generator=torch.Generator().manual_seed(1)).shape == ()
    with pytest.raises(ValueError, match="draws"):
        SortingConfig(method="neuralsort", draws=2)
    with pytest.raises(ValueError, match="draws"):
        SortingConfig(draws=0)


@pytest.mark.parametrize("method,schedule", [("quicksort", "cosine"), ("softsort", "constant")])
def test_resume_continues_a_run_exactly(tmp_path, method, schedule):
    config = SortingConfig(n=4, method=method, iterations=12, eval_every=4, eval_instances=50, width=0.25, lr=2e-3,
                           batch_size=8, lr_schedule=schedule)
    tasks = lambda: (GreyDigits(4, seed=0), lambda: GreyDigits(4, seed=99))
    whole = train(config, progress=False, data=tasks())
    path = tmp_path / "checkpoint.pt"
    train_task, test_task = tasks()
    original, calls = train_task.sample, {"n": 0}

    def interrupting(b):
        calls["n"] += 1
        if calls["n"] == 7:
            raise KeyboardInterrupt
        return original(b)

    train_task.sample = interrupting
    first = train(config, progress=False, data=(train_task, test_task), out=tmp_path)
    assert first.stopped_early and len(first.losses) == 6 and path.is_file()
    train_task.sample = original
    rest = train(config, progress=False, data=(train_task, test_task), out=tmp_path, resume=True)
    assert rest.losses == whole.losses and rest.eval_error == whole.eval_error
    for a, b in zip(rest.model.state_dict().values(), whole.model.state_dict().values()):
        assert torch.equal(a, b)


def test_resume_accepts_a_checkpoint_written_before_an_option_left(tmp_path):
    """A checkpoint whose config still has ``neighbours`` (a setting that moved to the studies) at
    its old default resumes; one that turned it on is refused."""
    from ashlib.experiments import loop

    config = SortingConfig(n=4, iterations=6, eval_every=6, eval_instances=20, width=0.25, batch_size=4)
    tasks = lambda: (GreyDigits(4, seed=0), lambda: GreyDigits(4, seed=99))  # noqa: E731
    path = tmp_path / "checkpoint.pt"

    class Stop(loop.Callback):
        def on_batch(self, state, loss):
            if state.step == 3:
                raise KeyboardInterrupt

    train(config, progress=False, data=tasks(), out=tmp_path, callbacks=[Stop()])
    state = loop.read_checkpoint(path)
    state["config"]["neighbours"] = False
    loop.write_checkpoint(path, state)
    rest = train(config, progress=False, data=tasks(), out=tmp_path, resume=True)
    assert len(rest.losses) == 6
    state["config"]["neighbours"] = True
    loop.write_checkpoint(path, state)
    with pytest.raises(ValueError, match="neighbours"):
        train(config, progress=False, data=tasks(), out=tmp_path, resume=True)


def test_cosine_schedule_sets_the_rate_of_every_batch(monkeypatch):
    """Batch t (0-based) of T trains at lr * (1 + cos(pi t / T)) / 2: 4 batches give 1, .854, .5, .146."""
    seen = []
    original = torch.optim.Adam.step

    def recording(self, *args, **kwargs):
        seen.append(self.param_groups[0]["lr"])
        return original(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, "step", recording)
    config = SortingConfig(n=4, method="softsort", iterations=4, eval_every=4, eval_instances=10, width=0.25, lr=1e-3,
                           batch_size=4, lr_schedule="cosine")
    train(config, progress=False, data=(GreyDigits(4, seed=0), lambda: GreyDigits(4, seed=99)))
    assert seen == pytest.approx([1e-3, 0.8535534e-3, 0.5e-3, 0.1464466e-3], rel=1e-6)
    with pytest.raises(ValueError, match="lr_schedule"):
        SortingConfig(lr_schedule="step")


def test_key_network_loads_state_dicts_written_before_the_rename():
    """Old files name the per-digit network ``convnet``; they load into ``digit_net`` unchanged, wrapped or not."""
    from ashlib.experiments.sorting import KeyNetwork

    torch.manual_seed(0)
    old = KeyNetwork(digits=2, width=0.125)
    images = torch.rand(2, 3, 2, 28, 28)
    renamed = {k.replace("digit_net.", "convnet."): v for k, v in old.state_dict().items()}
    assert any(k.startswith("convnet.") for k in renamed)
    new = KeyNetwork(digits=2, width=0.125)
    new.load_state_dict(renamed)  # strict: no missing or unexpected keys
    assert torch.equal(new(images), old(images))
    wrapped = torch.nn.Sequential(KeyNetwork(digits=2, width=0.125))
    wrapped.load_state_dict({"0." + k: v for k, v in renamed.items()})
    assert torch.equal(wrapped(images), old(images))


def test_errors_by_place_counts_misordered_neighbours_by_their_first_differing_digit():
    """Hand-worked: sorted, the first instance's neighbours are (105, 107) ones, (107, 130) tens,
    (130, 130) a tie (left out), (130, 512) hundreds; the second's (700, 701) ones, (701, 799) tens,
    (799, 800) hundreds, (800, 810) tens. Keys put 107 before 105 and 800 before 799."""
    from ashlib.experiments.sorting import errors_by_place

    numbers = torch.tensor([[130, 105, 512, 107, 130], [800, 700, 799, 701, 810]])
    keys = torch.tensor([[3.0, 2.0, 9.0, 1.0, 3.5], [5.0, 1.0, 6.0, 2.0, 8.0]])
    rows = errors_by_place(keys, numbers, digits=3, softness=0.5)
    assert [r["count"] for r in rows] == [2, 3, 2]
    assert [r["wrong"] for r in rows] == pytest.approx([0.5, 0.0, 0.5])
    # |key gaps| before dividing by 0.5: hundreds 5.5 (130->512) and 1 (799->800), tens 2, 4 and 3, ones 1 and 1;
    # torch's median of an even count is the lower middle value
    assert [r["median_gap"] for r in rows] == pytest.approx([2.0, 6.0, 2.0])


def test_losses_by_scale_is_equivariant_in_the_scale_of_the_keys():
    """Doubling a network's keys and halving the scales must give the same table: the same instances
    and the same half-permutations for every scale (a fresh generator per scale)."""
    from ashlib.experiments.sorting import build_model, losses_by_scale

    config = SortingConfig(n=4, source="offline", width=0.25)
    torch.manual_seed(0)
    net = build_model(config).eval()

    class Doubled(torch.nn.Module):
        def forward(self, x):
            return 2 * net(x)

    table, error, spread = losses_by_scale(net, config, 24, split="train", scales=(1.0, 2.0, 4.0))
    doubled, error2, spread2 = losses_by_scale(Doubled().eval(), config, 24, split="train", scales=(0.5, 1.0, 2.0))
    for name in ("quicksort", "neuralsort"):
        assert doubled[name] == pytest.approx(table[name], rel=1e-4, abs=1e-6)
    assert error2 == error and spread2 == pytest.approx(2 * spread, rel=1e-5)
    with pytest.raises(ValueError, match="split"):
        losses_by_scale(net, config, 24, split="valid")
