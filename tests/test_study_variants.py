"""The sorting variants that left the library for studies/sorting/variants.py (issue 28): each one
still does what the old setting did, through the loop's hooks, and runs a couple of batches."""

from dataclasses import replace

import pytest
import torch
from torch.nn import functional as F

from ashlib.experiments.sorting import KeyNetwork, SortingConfig, sort_items
from studies.sorting import variants
from studies.sorting.variants import variant_sorting_loss
from grey_digits import GreyDigits


def test_straight_through_forwards_the_hard_sort_and_backpropagates_the_mixture():
    """Loss value: BCE of the items sorted by argsort(keys) (clamped into the BCE's range).
    Gradient: the BCE's derivative at that hard output, pushed through the soft mixture."""
    torch.manual_seed(0)
    keys = torch.tensor([[0.30, 0.10, 0.25, 0.05], [0.0, 0.9, 0.5, 0.45]], requires_grad=True)
    items = torch.rand(2, 4, 3, dtype=torch.float32)
    target = torch.rand(2, 4, 3)
    config = SortingConfig(n=4, method="quicksort", local=2)
    loss = variant_sorting_loss(config, keys, items, target, torch.Generator().manual_seed(5), straight_through=True)
    hard = torch.stack([items[i, keys[i].detach().argsort()] for i in range(2)]).clamp(1e-4, 1 - 1e-4)
    torch.testing.assert_close(loss, F.binary_cross_entropy(hard, target))
    (grad,) = torch.autograd.grad(loss, keys)
    soft, _ = sort_items(SortingConfig(n=4, method="quicksort", local=2), keys, items, torch.Generator().manual_seed(5))
    dloss_dout = (hard - target) / (hard * (1 - hard)) / target.numel()  # d BCE / d prediction, averaged
    (expected,) = torch.autograd.grad(soft, keys, grad_outputs=dloss_dout)
    torch.testing.assert_close(grad, expected)
    assert grad.abs().sum() > 0


def test_sharpness_rises_geometrically_from_C_to_C_final():
    from studies.sorting.variants import sharpness

    # five batches: 10 * 16 ** (i / 4) = 10, 20, 40, 80, 160; evaluation uses the end value
    assert [sharpness(10.0, 160.0, i, 5) for i in range(1, 6)] == pytest.approx([10.0, 20.0, 40.0, 80.0, 160.0])
    assert sharpness(10.0, 160.0, None, 5) == 160.0
    assert sharpness(7.0, None, 3, 5) == 7.0  # no C_final: constant


def test_standardised_keys_make_the_sort_ignore_the_keys_scale():
    """With standardise_keys the loss is the same for keys and 50 * keys + 3 (the key network
    cannot change the sharpness by rescaling); without it, rescaling changes the loss."""
    torch.manual_seed(0)
    keys = torch.randn(3, 8) * 0.05
    items = torch.rand(3, 8, 5)
    target = items.gather(1, keys.argsort(1).unsqueeze(-1).expand_as(items))

    config = SortingConfig(n=8, local=2)

    def loss(k, std):
        return variant_sorting_loss(config, k, items, target, generator=torch.Generator().manual_seed(2),
                                    standardise_keys=std)

    torch.testing.assert_close(loss(keys, True), loss(50 * keys + 3, True))
    assert abs(loss(keys, False).item() - loss(50 * keys + 3, False).item()) > 1e-3
    # standardised keys have mean 0 and (population) std 1 in every instance, in the same order
    from studies.sorting.variants import standardised

    z = standardised(keys)
    torch.testing.assert_close(z.mean(1), torch.zeros(3), atol=1e-6, rtol=0)
    torch.testing.assert_close(z.square().mean(1), torch.ones(3))
    assert torch.equal(z.argsort(1), keys.argsort(1))


def test_start_from_continues_a_saved_key_network_at_another_n(tmp_path):
    from ashlib import pretrained

    config = SortingConfig(n=4, width=0.125, iterations=1)
    torch.manual_seed(3)
    saved = KeyNetwork(3, 0.125)
    pretrained.save(saved, tmp_path / "n4", "sorting", config, {}, "test")
    started = variants.load_start(tmp_path / "n4", replace(config, n=8))  # the key network does not depend on n
    for key, value in saved.state_dict().items():
        assert torch.equal(started.state_dict()[key], value.half().to(value.dtype))  # float16 on disk
    # the shipped n = 4 network, continued at n = 8 with a rate too small to change it: far below chance
    run = variants.train(SortingConfig(n=8, iterations=1, eval_every=1, eval_instances=50, width=0.25, batch_size=4,
                                       lr=1e-12, source="offline"), start_from="sort-quicksort-n4", progress=False)
    assert run.eval_error[-1] < 0.8  # a fresh network gets nearly every n = 8 instance wrong


def test_start_from_refuses_another_architecture(tmp_path):
    from ashlib import pretrained

    config = SortingConfig(n=4, width=0.25, iterations=1)
    pretrained.save(KeyNetwork(3, 0.25), tmp_path / "m", "sorting", config, {}, "test")
    with pytest.raises(ValueError, match="width"):
        variants.train(replace(config, width=0.5), start_from=str(tmp_path / "m"), progress=False,
                       data=(GreyDigits(4), lambda: GreyDigits(4, seed=9)))
    with pytest.raises(ValueError, match="mlp key network"):
        variants.train(config, start_from=str(tmp_path / "m"), key_network="mlp", progress=False,
                       data=(GreyDigits(4), lambda: GreyDigits(4, seed=9)))
    with pytest.raises(ValueError, match="no pretrained model"):
        variants.train(config, start_from=str(tmp_path / "absent"), progress=False,
                       data=(GreyDigits(4), lambda: GreyDigits(4, seed=9)))


@pytest.mark.parametrize("knobs", [dict(neighbours=True), dict(C_final=40.0), dict(standardise_keys=True),
                                   dict(straight_through=True), dict(key_network="mlp"),
                                   dict(start_from="sort-quicksort-n4")])
def test_each_variant_runs_a_couple_of_batches(knobs):
    digits, width = (3, 0.25) if "start_from" in knobs else (1, 0.125)
    config = SortingConfig(n=4, digits=digits, width=width, iterations=2, eval_every=2, eval_instances=8,
                           batch_size=4, local=2)
    run = variants.train(config, progress=False, data=(GreyDigits(4, digits), lambda: GreyDigits(4, digits, 9)),
                         **knobs)
    assert len(run.losses) == 2 and run.steps == [2] and all(l == l for l in run.losses)


def test_variants_are_quicksort_only():
    with pytest.raises(ValueError, match="quicksort"):
        variants.train(SortingConfig(method="neuralsort", iterations=1), neighbours=True, progress=False,
                       data=(GreyDigits(4), lambda: GreyDigits(4, seed=9)))
    with pytest.raises(ValueError, match="key_network"):
        variants.train(SortingConfig(iterations=1), key_network="resnet")
