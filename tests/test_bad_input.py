"""Bad input and faults (issue 13): a clear ValueError, or a documented correct result, never a
silent NaN or a crash deep inside. Each test states the expected behaviour independently.

These tables replace the bad-input probe (scripts/probe_bad_input.py, 558 cases, retired in issue 28):
every case it judged clear or correct is here or in the module's own tests. A new entry point or a new
check adds its rows here."""

import json
import math
import re
import shutil
from pathlib import Path
import warnings

import numpy as np
import pytest
import torch

import ashlib
from ashlib import exercises, glimpse, glimpse_models, indexing, pretrained, sort_baselines
from ashlib import data as data_module
from ashlib.contract import to_dense
from ashlib.experiments.sorting import SortingConfig


@pytest.mark.parametrize("dtype,sigma", [(torch.float32, 1e-25), (torch.float32, 1e-8), (torch.float16, 1e-3),
                                         (torch.float64, 1e-300)])
def test_tiny_sigmas_give_the_nearest_tuple_all_the_weight(dtype, sigma):
    """A point mass: the nearest integer tuple gets proportion 1, the rest 0 (no NaN)."""
    means = torch.tensor([[[2.2, 5.7]]], dtype=dtype)
    sigmas = torch.full_like(means, sigma)
    tuples, props = ashlib.sample(means, sigmas, (8, 8), a_local=2, a_global=2, region=3,
                                  generator=torch.Generator().manual_seed(0))
    assert props.dtype == dtype and bool(torch.isfinite(props).all())
    nearest = (tuples[0, 0] == torch.tensor([2, 6])).all(-1)
    assert math.isclose(float(props[0, 0][nearest].sum()), 1.0, abs_tol=1e-3)


def test_min_sigma_must_be_positive():
    with pytest.raises(ValueError, match="min_sigma must be a finite number > 0"):
        ashlib.SparseLayer(8, 8, 8, a_local=2, a_global=2, region=3, min_sigma=0)
    with pytest.raises(ValueError, match="min_sigma must be a finite number > 0"):
        ashlib.SparseLayer(8, 8, 8, a_local=2, a_global=2, region=3, min_sigma=float("nan"))


@pytest.mark.parametrize("C", [0, 0.0, -1.0, float("nan"), float("inf"), True, "10"])
def test_quicksort_rejects_a_bad_sharpness(C):
    keys, items = torch.randn(2, 4), torch.rand(2, 4, 3)
    with pytest.raises(ValueError, match="C"):
        ashlib.quicksort(keys, items, C=C)
    if not isinstance(C, (bool, str)):
        with pytest.raises(ValueError, match="C must be"):
            SortingConfig(C=C)


def test_quicksort_names_the_items_when_they_are_integers():
    with pytest.raises(ValueError, match="items must be a floating-point tensor"):
        ashlib.quicksort(torch.randn(1, 4), torch.arange(4).view(1, 4))


def test_quicksort_keys_near_the_float_maximum_cannot_overflow_the_padding():
    keys = torch.tensor([[3e38, 1.0, -2.0]])  # n = 3 is padded to 4 with keys above the largest
    with pytest.raises(ValueError, match="no room for the padding keys"):
        ashlib.quicksort(keys, torch.rand(1, 3, 2))
    ok = ashlib.quicksort(torch.tensor([[3.0, 1.0, -2.0]]), torch.eye(3).unsqueeze(0), C=100.0)
    torch.testing.assert_close(ok.sorted[0], torch.eye(3)[[2, 1, 0]], atol=1e-4, rtol=0)


def test_quicksort_of_an_empty_batch_is_empty():
    result = ashlib.quicksort(torch.empty(0, 8), torch.empty(0, 8, 5))
    assert result.sorted.shape == (0, 8, 5)


def test_an_infinite_loss_does_not_poison_the_reinforce_baseline():
    layer = ashlib.ReinforceLayer(4, 4, k=4, fix_values=True, baseline="moving_average")
    x = torch.randn(8, 4)
    losses = (layer(x) - x).pow(2).mean(1)
    layer.surrogate_loss(losses).backward()
    before = layer.average_loss.clone()
    losses = (layer(x) - x).pow(2).mean(1).detach().clone()
    losses[3] = float("inf")
    with pytest.raises(ValueError, match="NaN or inf"):
        layer.surrogate_loss(losses)
    assert torch.equal(layer.average_loss, before) and math.isfinite(float(before))


def test_reinforce_layer_with_nan_parameters_says_so():
    layer = ashlib.ReinforceLayer(4, 4, k=4)
    with torch.no_grad():
        layer.means[1, 0] = float("nan")
    with pytest.raises(ValueError, match="parameters contain NaN"):
        layer(torch.randn(2, 4))


def _empty_batch_cases():
    from ashlib.glimpse import SparseGlimpse

    sparse = ashlib.SparseLayer(4, 3, 4, a_local=1, a_global=1, region=2)
    pooled = ashlib.SparseLayer(4, 3, 4, a_local=1, a_global=1, region=2, chunk_size=1)
    reinforce = ashlib.ReinforceLayer(4, 3, k=4)
    glimpse = SparseGlimpse((20, 20), glimpse_size=4)
    return {
        "contract": (lambda: ashlib.contract(torch.zeros(0, 3, 2, dtype=torch.long), torch.zeros(0, 3),
                                             torch.zeros(0, 4, requires_grad=True), (3,)), (0, 3)),
        "contract, features": (lambda: ashlib.contract(torch.zeros(0, 3, 2, dtype=torch.long), torch.zeros(0, 3),
                                                       torch.zeros(0, 4, 5, requires_grad=True), (3,), feature_dims=1),
                               (0, 3, 5)),
        "SparseLayer": (lambda: sparse(torch.zeros(0, 4)), (0, 3)),
        "SparseLayer, chunk_size=1": (lambda: pooled(torch.zeros(0, 4)), (0, 3)),
        "ReinforceLayer": (lambda: reinforce(torch.zeros(0, 4)), (0, 3)),
        "SparseGlimpse": (lambda: glimpse(torch.zeros(0, 1, 20, 20), torch.zeros(0, 1, 4, requires_grad=True)),
                          (0, 1, 1, 4, 4)),
    }


@pytest.mark.parametrize("name", list(_empty_batch_cases()))
def test_an_empty_batch_gives_an_empty_output(name):
    make, shape = _empty_batch_cases()[name]
    out = make()
    assert tuple(out.shape) == shape
    if out.requires_grad:
        out.sum().backward()  # and backpropagates (nothing to add)


@pytest.mark.parametrize("device,reason", [("bogus", "not a device torch knows"), ("cuda:99", "CUDA")])
def test_cli_refuses_an_unusable_device_before_training(device, reason, capsys):
    from ashlib.cli import main

    assert main(["sort", "--n", "4", "--iterations", "1", "--device", device]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and reason in err and "Traceback" not in err


def test_load_mnist_with_a_root_that_is_a_file(tmp_path, monkeypatch, capsys):
    from ashlib import data
    from ashlib.data import mnist

    def no_network(*args, **kwargs):
        raise OSError("no network in this test")

    monkeypatch.setattr(mnist, "fetch_url", no_network)
    monkeypatch.setattr(mnist, "_download_failures", {})
    root = tmp_path / "a_file"
    root.write_text("not a folder")
    digits = data.load_mnist("test", "auto", root=root)  # documented: falls back to the offline subset
    assert len(digits.labels) == 2_000 and "offline" in digits.source
    with pytest.raises(data.DownloadError, match="cannot store full MNIST"):
        data.load_mnist("test", "full", root=root)


def test_cluttered_mnist_index_and_size_checks(tmp_path):
    from ashlib.data import ClutteredMNIST

    ds = ClutteredMNIST("test", size=40, n_distractors=2, length=4, source="offline")
    with pytest.raises(TypeError, match="index must be an int"):
        ds[1.7]
    image, label = ds[torch.tensor(1)]
    assert image.shape == (1, 40, 40) and label == ds.labels[1]
    with pytest.raises(ValueError, match="n_distractors"):
        ClutteredMNIST("test", size=40, n_distractors=10**6, length=4, source="offline")
    foreign = tmp_path / "foreign.pt"
    torch.save({"something": torch.zeros(2)}, foreign)
    with pytest.raises(ValueError, match="not a cluttered-MNIST file"):
        ds.materialise(foreign, progress=False)
    (tmp_path / "text.pt").write_text("hello")
    with pytest.raises(ValueError, match="not a cluttered-MNIST file"):
        ds.materialise(tmp_path / "text.pt", progress=False)


def test_region_must_be_integers():
    for region in (2.5, (2, 1.5), "3", True):
        with pytest.raises(ValueError, match="region must be an int"):
            ashlib.sample(torch.ones(1, 1, 2), torch.ones(1, 1, 2), (4, 4), a_local=1, a_global=1, region=region)


def test_hyperlayer_source_must_return_three_tensors():
    source = lambda x: (torch.zeros(x.shape[0], 4, 2), torch.zeros(x.shape[0], 4))  # noqa: E731 (values missing)
    layer = ashlib.HyperLayer(4, 4, 4, source, a_local=1, a_global=1, region=2)
    with pytest.raises(ValueError, match="three tensors"):
        layer(torch.zeros(2, 4))


def test_contract_flat_indices_must_fit_int64_and_debug_mode_checks_bounds(monkeypatch):
    with pytest.raises(ValueError, match="int64"):
        ashlib.contract(torch.zeros(2, 1, 2, dtype=torch.long), torch.ones(2, 1), torch.ones(2, 4), (2**62,))
    past_end = torch.tensor([[[4, 0]], [[0, 0]]])  # row 4 of a 4-row W: would land in instance 1's row 0
    monkeypatch.setenv("ASHLIB_DEBUG", "1")
    with pytest.raises(ValueError, match="out of range"):
        ashlib.contract(past_end, torch.ones(2, 1), torch.ones(2, 4), (4,), validate=False)


def test_a_pool_too_large_for_memory_is_refused_with_the_fix(monkeypatch):
    """Pooling the whole layer needs b * k * k * S * r numbers; past the limit, say which chunk_size fits."""
    monkeypatch.setenv("ASHLIB_MAX_POOL_GIB", str(1 / 1024))  # 1 MiB, so the test stays small
    pooled = ashlib.SparseLayer(256, 256, 256, a_local=2, a_global=2, region=4, chunk_size=None)  # 4 * 256 * 256 * 8 * 2 * 4 B = 16 MiB
    with pytest.raises(ValueError, match=r"pass chunk_size=16 or smaller.*split the batch into pieces of at most 1 "):
        pooled(torch.zeros(4, 256))
    chunked = ashlib.SparseLayer(256, 256, 256, a_local=2, a_global=2, region=4, chunk_size=8)  # 0.5 MiB
    assert chunked(torch.zeros(4, 256)).shape == (4, 256)


def test_meta_tensors_are_refused_by_name():
    layer = ashlib.SparseLayer(4, 4, 4, a_local=1, a_global=1, region=2).to("meta")
    with pytest.raises(ValueError, match="meta tensor"):
        layer(torch.zeros(2, 4, device="meta"))
    with pytest.raises(ValueError, match="meta tensor"):
        ashlib.contract(torch.zeros(1, 1, 2, dtype=torch.long), torch.ones(1, 1), torch.ones(1, 4, device="meta"), (4,))
    with pytest.raises(ValueError, match="meta tensor"):
        ashlib.sample(torch.ones(1, 1, 2, device="meta"), torch.ones(1, 1, 2, device="meta"), (4, 4),
                      a_local=1, a_global=1, region=2)


def test_more_settings_checked_up_front():
    from ashlib.data import ClutteredMNIST
    from ashlib.experiments.identity import IdentityConfig

    for lr in (-1, 0, float("nan")):
        with pytest.raises(ValueError, match="lr must be"):
            IdentityConfig(n=8, lr=lr)
    ds = ClutteredMNIST("test", size=40, n_distractors=2, length=4, source="offline")
    with pytest.raises(TypeError, match="indices must be integers"):
        ds.batch([1.5])
    images, labels = ds.batch([3, 0])
    assert images.shape == (2, 1, 40, 40) and labels.tolist() == [int(ds.labels[3]), int(ds.labels[0])]


def test_sorting_config_checks_samples_before_training():
    with pytest.raises(ValueError, match="samples must be"):
        SortingConfig(samples=-1)
    assert SortingConfig(samples=0).samples == 0 and SortingConfig().samples is None


# ------------------------------------------------------------------ the bad-input probe's table (issue 13)
# Every case the probe found wrong and that was fixed outside the sampler, layers and contraction: the
# exception type, and a message that names the argument. New entry points join these tables.


def _glimpse(in_size=(20, 20), glimpse_size=4, **kw):
    args = dict(a_local=2, a_global=2, region=(5, 5))
    args.update(kw)
    return glimpse.SparseGlimpse(in_size, glimpse_size, **args)


def _source(**kw):
    return glimpse_models.SourceNetwork(1, 1, (16, 16), **{"hidden": 8, **kw})


def _reinforce_forward(**kw):
    layer = ashlib.ReinforceLayer(4, 4, 4)
    return layer(torch.randn(3, 4), **kw)


def _surrogate(losses):
    layer = ashlib.ReinforceLayer(4, 4, 4, fix_values=True)
    layer(torch.randn(3, 4))
    return layer.surrogate_loss(losses)


def _cluttered(**kw):
    args = dict(split="test", size=40, n_distractors=2, length=4, source="offline")
    args.update(kw)
    return data_module.ClutteredMNIST(**args)


def _sorting_task():
    return data_module.SortingTask(4, split="test", source="offline")


_KEYS = torch.tensor([[0.3, -2.0, 1.5, 0.9]])
_NAN_KEYS = torch.tensor([[0.3, float("nan"), 1.5, 0.9]])

BAD_INPUTS = {
    # shapes given as sizes (ashlib.indexing.as_shape, used by every entry point that takes a shape)
    "sample shape '8x8'": (lambda: ashlib.sample(torch.ones(1, 1, 2), torch.ones(1, 1, 2), "8x8", a_local=1,
                                                 a_global=1, region=2), ValueError, "shape must be"),
    "sample shape (True, 8)": (lambda: ashlib.sample(torch.zeros(1, 1, 2), torch.ones(1, 1, 2), (True, 8), a_local=1,
                                                     a_global=1, region=1), ValueError, "shape must contain"),
    "contract out_shape (True,)": (lambda: ashlib.contract(torch.zeros(1, 1, 2, dtype=torch.long), torch.ones(1, 1),
                                                           torch.ones(1, 4), (True,)), ValueError, "out_shape"),
    "SparseLayer in_shape True": (lambda: ashlib.SparseLayer(True, 3, 4, a_local=1, a_global=1, region=1),
                                  ValueError, "in_shape"),
    "SparseGlimpse in_size (True, 20)": (lambda: _glimpse(in_size=(True, 20), region=1), ValueError, "in_size"),
    # ashlib.indexing
    "flat_index float tuples": (lambda: indexing.flat_index(torch.tensor([[1.7, 2.0]]), (4, 5)), ValueError,
                                "tuples must be an integer tensor"),
    "flat_index tuples of 1 for 2 dims": (lambda: indexing.flat_index(torch.tensor([[1]]), (4, 5)), ValueError,
                                          r"tuples must have shape \(\.\.\., 2\)"),
    "flat_index shape (0, 5)": (lambda: indexing.flat_index(torch.tensor([[0, 1]]), (0, 5)), ValueError,
                                "shape .* size 0"),
    "flat_index tuples a list": (lambda: indexing.flat_index([[1, 2]], (4, 5)), ValueError, "tuples must be"),
    "flat_index shape (True, 5)": (lambda: indexing.flat_index(torch.tensor([[0, 1]]), (True, 5)), ValueError,
                                   "shape must be"),
    "repeat_mask complex keys": (lambda: indexing.repeat_mask(torch.ones(3, dtype=torch.complex64)), ValueError,
                                 "keys must be a real tensor"),
    "repeat_mask 0-d keys": (lambda: indexing.repeat_mask(torch.tensor(3)), ValueError, "keys must be"),
    "repeat_mask keys a list": (lambda: indexing.repeat_mask([1, 2, 1]), ValueError, "keys must be"),
    # ReinforceLayer
    "ReinforceLayer decay '0.9'": (lambda: ashlib.ReinforceLayer(4, 4, 4, decay="0.9"), ValueError, "decay"),
    "ReinforceLayer k=True": (lambda: ashlib.ReinforceLayer(4, 4, True), ValueError, r"\bk\b"),
    "ReinforceLayer on meta": (lambda: ashlib.ReinforceLayer(4, 4, 4).to("meta")(torch.zeros(3, 4, device="meta")),
                               ValueError, "meta tensor"),
    "ReinforceLayer NaN points": (lambda: _reinforce_forward(points=torch.full((3, 4, 2), float("nan"))), ValueError,
                                  "points contain NaN"),
    "ReinforceLayer int losses": (lambda: _surrogate(torch.ones(3, dtype=torch.long)), ValueError,
                                  "losses must be floating point"),
    # quicksort
    "quicksort generator=0": (lambda: ashlib.quicksort(_KEYS, torch.rand(1, 4, 2), generator=0), ValueError,
                              "generator must be"),
    "quicksort complex items": (lambda: ashlib.quicksort(_KEYS, torch.rand(1, 4, 2).to(torch.complex64)), ValueError,
                                "items must be a floating-point tensor"),
    "quicksort samples=True": (lambda: ashlib.quicksort(_KEYS, torch.rand(1, 4, 2), samples=True), ValueError,
                               "samples must be"),
    "quicksort meta keys": (lambda: ashlib.quicksort(_KEYS.to("meta"), torch.rand(1, 4, 2, device="meta")), ValueError,
                            "meta tensor"),
    # NeuralSort / SoftSort
    **{f"{name} tau {tau!r}": (lambda name=name, tau=tau: getattr(sort_baselines, name)(_KEYS, tau=tau), ValueError, "tau must be")
       for name in ("neuralsort", "softsort") for tau in (float("inf"), "1", True)},
    **{f"{name} NaN key": (lambda name=name: getattr(sort_baselines, name)(_NAN_KEYS), ValueError, "keys contain NaN")
       for name in ("neuralsort", "softsort")},
    **{f"{name} n = 10^5 refused before allocating": (lambda name=name: getattr(sort_baselines, name)(torch.zeros(4, 100_000)),
                                                      ValueError, "GiB")
       for name in ("neuralsort", "softsort")},
    "apply_permutation 5 items for P of 4": (lambda: sort_baselines.apply_permutation(torch.eye(4).expand(2, 4, 4),
                                                                                  torch.rand(2, 5, 3)),
                                             ValueError, "items must have shape"),
    "apply_permutation int items": (lambda: sort_baselines.apply_permutation(torch.eye(4).expand(2, 4, 4),
                                                                         torch.ones(2, 4, 3, dtype=torch.long)),
                                    ValueError, "items .* same dtype"),
    # attention
    "SparseGlimpse a_global=True": (lambda: _glimpse(a_global=True), ValueError, "a_global"),
    "SparseGlimpse init_sigma inf": (lambda: _glimpse(init_sigma=float("inf")), ValueError, "init_sigma"),
    "SparseGlimpse sigma_scale inf": (lambda: _glimpse(sigma_scale=float("inf")), ValueError, "sigma_scale"),
    "SparseGlimpse min_sigma '0.1'": (lambda: _glimpse(min_sigma="0.1"), ValueError, "min_sigma"),
    "SparseGlimpse scale_range (0.2,)": (lambda: _glimpse(box_param="centre_scale", scale_range=(0.2,)), ValueError,
                                         "scale_range"),
    "SparseGlimpse scale_range 'ab'": (lambda: _glimpse(box_param="centre_scale", scale_range="ab"), ValueError,
                                       "scale_range"),
    "SparseGlimpse on meta": (lambda: _glimpse().to("meta")(torch.rand(2, 1, 20, 20, device="meta"),
                                                            torch.zeros(2, 1, 4, device="meta")), ValueError, "meta"),
    "SparseGlimpse generator='seed'": (lambda: _glimpse()(torch.rand(2, 1, 20, 20), torch.zeros(2, 1, 4), "seed"),
                                       ValueError, "generator must be"),
    "SparseGlimpse glimpse_size 10^5 refused before allocating": (
        lambda: _glimpse(glimpse_size=100_000)(torch.rand(2, 1, 20, 20), torch.zeros(2, 1, 4)), ValueError,
        "glimpse_size.*GiB"),
    "SourceNetwork init_box 'centre'": (lambda: _source(init_box="centre"), ValueError, "init_box"),
    "SourceNetwork uint8 images": (lambda: _source()(torch.zeros(2, 1, 16, 16, dtype=torch.uint8)), ValueError,
                                   "images must be floating point"),
    "SourceNetwork NaN statistics": (lambda: _source().set_input_statistics(torch.full((2, 1, 16, 16), float("nan"))),
                                     ValueError, "images contain NaN"),
    "box_corners of a list": (lambda: glimpse.box_corners([[0.0] * 4], (20, 20)),
                              ValueError, "boxes must be"),
    "glimpse_means of (b, g, 3)": (lambda: glimpse.glimpse_means(torch.zeros(2, 1, 3), 4),
                                   ValueError, "corners must be"),
    # data
    "load_mnist root=123": (lambda: data_module.load_mnist("test", "offline", root=123), ValueError,
                            "root must be"),
    "ClutteredMNIST length '10'": (lambda: _cluttered(length="10"), ValueError, "length must be"),
    "ClutteredMNIST length 2.7": (lambda: _cluttered(length=2.7), ValueError, "length must be"),
    "ClutteredMNIST length True": (lambda: _cluttered(length=True), ValueError, "length must be"),
    "ClutteredMNIST length 10^9 refused before allocating": (lambda: _cluttered(length=10**9), ValueError,
                                                             "length = .*GiB"),
    "ClutteredMNIST batch('ab')": (lambda: _cluttered().batch("ab"), TypeError, "indices must be integers"),
    "ClutteredMNIST materialise(batch_size=0)": (lambda: _cluttered().materialise("unused.pt", batch_size=0),
                                                 ValueError, "batch_size"),
    "ClutteredMNIST materialise(batch_size=-1)": (lambda: _cluttered().materialise("unused.pt", batch_size=-1),
                                                  ValueError, "batch_size"),
    "SortingTask sample(True)": (lambda: _sorting_task().sample(True), ValueError, "batch_size"),
    "SortingTask sample(10^9) refused before allocating": (lambda: _sorting_task().sample(10**9), ValueError,
                                                           "batch_size.*GiB"),
    # pretrained, exercises
    "pretrained.load device 'gpu0'": (lambda: pretrained.load("sort-softsort-n4",
                                                                                               device="gpu0"),
                                      ValueError, "device 'gpu0'"),
    "exercise(42)": (lambda: exercises.exercise(42), ValueError, "@exercise decorates"),
    # sampling, layers, contraction (fixes proposed by the probe)
    "sample a_local=True": (lambda: ashlib.sample(torch.ones(1, 1, 2), torch.ones(1, 1, 2), (4, 4), a_local=True,
                                                 a_global=1, region=2), ValueError, "a_local"),
    "sample generator=0": (lambda: ashlib.sample(torch.ones(1, 1, 2), torch.ones(1, 1, 2), (4, 4), a_local=1,
                                                 a_global=1, region=2, generator=0), ValueError, "generator"),
    "SparseLayer chunk_size=True": (lambda: ashlib.SparseLayer(4, 4, 4, a_local=1, a_global=1, region=2,
                                                               chunk_size=True), ValueError, "chunk_size"),
    "SparseLayer k=True": (lambda: ashlib.SparseLayer(4, 4, True, a_local=1, a_global=1, region=2), ValueError, "k "),
    "SparseLayer sigma_scale '0.1'": (lambda: ashlib.SparseLayer(4, 4, 4, a_local=1, a_global=1, region=2,
                                                                 sigma_scale="0.1"), ValueError, "sigma_scale"),
    "SparseLayer min_sigma None": (lambda: ashlib.SparseLayer(4, 4, 4, a_local=1, a_global=1, region=2,
                                                              min_sigma=None), ValueError, "min_sigma"),
    "SparseLayer shared_draws 0": (lambda: ashlib.SparseLayer(4, 4, 4, a_local=1, a_global=1, region=2,
                                                              shared_draws=0), ValueError, "shared_draws"),
    "HyperLayer source=5": (lambda: ashlib.HyperLayer(4, 3, 4, source=5, a_local=1, a_global=1, region=2),
                            ValueError, "source must be"),
    "HyperLayer integer values": (lambda: ashlib.HyperLayer(
        4, 3, 4, source=lambda x: (torch.zeros(x.shape[0], 4, 2), torch.zeros(x.shape[0], 4),
                                   torch.ones(x.shape[0], 4, dtype=torch.long)),
        a_local=1, a_global=1, region=2)(torch.ones(2, 4)), ValueError, "values must be floating point"),
    "contract feature_dims=True": (lambda: ashlib.contract(torch.zeros(1, 1, 2, dtype=torch.long), torch.ones(1, 1),
                                                           torch.ones(1, 4, 3), (4,), feature_dims=True),
                                   ValueError, "feature_dims"),
    "to_dense float indices": (lambda: to_dense(torch.zeros(2, 2), torch.ones(2), (3, 3)),
                               ValueError, "indices must be an integer tensor"),
    "to_dense index out of range": (lambda: to_dense(
        torch.tensor([[0, 3]]), torch.ones(1), (3, 3)), ValueError, "out of range"),
    "to_dense weights of the wrong length": (lambda: to_dense(
        torch.zeros(2, 2, dtype=torch.long), torch.ones(3), (3, 3)), ValueError, "weights must have shape"),
    "to_dense huge shape": (lambda: to_dense(
        torch.zeros(1, 2, dtype=torch.long), torch.ones(1), (10**6, 10**6)), ValueError, "to_dense is for small"),
    "quicksort min_proportion 1": (lambda: ashlib.quicksort(torch.randn(1, 4), torch.randn(1, 4, 1),
                                                            min_proportion=1.0), ValueError, "min_proportion"),
}


@pytest.mark.parametrize("name", list(BAD_INPUTS))
def test_bad_input_is_refused_by_name(name):
    make, error, pattern = BAD_INPUTS[name]
    with pytest.raises(error, match=pattern):
        make()


BAD_SETTINGS = [
    ("IdentityConfig", dict(n=8, values_lr_scale="0.1"), "values_lr_scale"),
    ("IdentityConfig", dict(n=8, iterations="10"), "iterations"),
    ("IdentityConfig", dict(n=8, iterations=2.5), "iterations"),
    ("IdentityConfig", dict(n=8, batch_size=True), "batch_size"),
    ("IdentityConfig", dict(n=8, chunk_size="2"), "chunk_size"),
    ("IdentityConfig", dict(n=8, a_local=-1), "a_local"),
    ("IdentityConfig", dict(n=8, a_global=1.5), "a_global"),
    ("IdentityConfig", dict(n=8, region=0), "region"),
    ("IdentityConfig", dict(n=8, region=64), "region"),
    ("IdentityConfig", dict(n=8, eval_samples=0), "eval_samples"),
    ("IdentityConfig", dict(n=8, device="gpu0"), "device"),
    ("IdentityConfig", dict(n=8, seed="0"), "seed"),
    ("IdentityConfig", dict(n=8, seed=-1), "seed"),
    ("SortingConfig", dict(width=float("inf")), "width"),
    ("SortingConfig", dict(batch_size="64"), "batch_size"),
    ("SortingConfig", dict(batch_size=True), "batch_size"),
    ("SortingConfig", dict(iterations=2.5), "iterations"),
    ("SortingConfig", dict(digits=0), "digits"),
    ("SortingConfig", dict(digits=19), "digits"),
    ("SortingConfig", dict(source="web"), "source"),
    ("SortingConfig", dict(device="gpu0"), "device"),
    ("SortingConfig", dict(seed="0"), "seed"),
    ("AttentionConfig", dict(init_box=(0, 0, 1, 1)), "init_box"),
    ("AttentionConfig", dict(lr=True), "lr"),
    ("AttentionConfig", dict(warmup=True), "warmup"),
    ("AttentionConfig", dict(canvas=20), "canvas"),
    ("AttentionConfig", dict(n_distractors=-1), "n_distractors"),
    ("AttentionConfig", dict(n_distractors=10**6), "n_distractors"),
    ("AttentionConfig", dict(chunk_size=5), "chunk_size"),
    ("AttentionConfig", dict(source="web"), "source"),
    ("AttentionConfig", dict(device="gpu0"), "device"),
    ("AttentionConfig", dict(seed=-1), "seed"),
    # moved from the bad-input probe (issue 28)
    ("IdentityConfig", dict(n="8"), "n"),
    ("IdentityConfig", dict(n=8.0), "n"),
    ("IdentityConfig", dict(n=True), "n"),
    ("IdentityConfig", dict(n=8, baseline="median"), "baseline"),
    ("IdentityConfig", dict(n=8, values_init="zeros"), "values_init"),
    ("IdentityConfig", dict(n=8, values_lr_scale=0), "values_lr_scale"),
    ("IdentityConfig", dict(n=8, lr="0.01"), "lr"),
    ("IdentityConfig", dict(n=8, lr=True), "lr"),
    ("IdentityConfig", dict(n=8, iterations=0), "iterations"),
    ("IdentityConfig", dict(n=8, batch_size=0), "batch_size"),
    ("IdentityConfig", dict(n=8, chunk_size=3), "chunk_size"),
    ("IdentityConfig", dict(n=8, eval_every=-1), "eval_every"),
    ("SortingConfig", dict(n=1), "n"),
    ("SortingConfig", dict(n="4"), "n"),
    ("SortingConfig", dict(method="bubblesort"), "method"),
    ("SortingConfig", dict(tau=-1.0), "tau"),
    ("SortingConfig", dict(lr=float("nan")), "lr"),
    ("SortingConfig", dict(lr=True), "lr"),
    ("SortingConfig", dict(samples=True), "samples"),
    ("SortingConfig", dict(local=True), "local"),
    ("SortingConfig", dict(width=0.0), "width"),
    ("SortingConfig", dict(eval_instances=0), "eval_instances"),
    ("SortingConfig", dict(eval_every=0), "eval_every"),
    ("AttentionConfig", dict(box_param="centre"), "box_param"),
    ("AttentionConfig", dict(scale_range=(0.6, 0.2)), "scale_range"),
    ("AttentionConfig", dict(n_glimpses=0), "n_glimpses"),
    ("AttentionConfig", dict(canvas="100"), "canvas"),
    ("AttentionConfig", dict(batch_size=True), "batch_size"),
    ("AttentionConfig", dict(train_size=True), "train_size"),
    ("AttentionConfig", dict(lr=-1.0), "lr"),
    ("AttentionConfig", dict(source_lr="1e-3"), "source_lr"),
]


@pytest.mark.parametrize("config,settings,name", BAD_SETTINGS,
                         ids=[f"{c}-{n}={s[n]!r}" for c, s, n in BAD_SETTINGS])
def test_experiment_configs_refuse_bad_settings_up_front(config, settings, name):
    from ashlib.experiments import attention, identity, sorting

    cls = {"IdentityConfig": identity.IdentityConfig, "SortingConfig": sorting.SortingConfig,
           "AttentionConfig": attention.AttentionConfig}[config]
    with pytest.raises(ValueError, match=rf"\b{name}\b"):
        cls(**settings)


def _pretrained_copy(tmp_path, edit):
    for suffix in (".pt", ".json"):
        shutil.copy(pretrained.folder() / f"sort-softsort-n4{suffix}", tmp_path / f"m{suffix}")
    record = json.loads((tmp_path / "m.json").read_text())
    (tmp_path / "m.json").write_text(edit(record))
    return lambda: pretrained.load_file(tmp_path / "m")


@pytest.mark.parametrize("edit,pattern", [
    (lambda r: "{not json", r"m\.json is not valid JSON"),
    (lambda r: json.dumps({k: v for k, v in r.items() if k != "experiment"}), r"m\.json lacks experiment"),
    (lambda r: json.dumps({**r, "experiment": "chess"}), r"unknown experiment 'chess'"),
    (lambda r: json.dumps({**r, "config": {**r["config"], "colour": "red"}}),
     r"m\.json: its config does not fit"),
], ids=["not JSON", "no experiment", "experiment chess", "unknown config key"])
def test_pretrained_files_that_are_not_ashlibs_are_named(tmp_path, edit, pattern):
    with pytest.raises(ValueError, match=pattern):
        _pretrained_copy(tmp_path, edit)()


def test_files_and_folders_are_checked_before_work(tmp_path):
    (tmp_path / "mnist_offline.npz").write_text("not an npz")
    with pytest.raises(ValueError, match="is not the offline subset"):
        data_module.load_mnist("test", "offline", root=tmp_path)
    with pytest.raises(ValueError, match="is a folder"):
        _cluttered().materialise(tmp_path, progress=False)


def test_an_empty_batch_leaves_the_reinforce_baseline_alone():
    """surrogate_loss of b = 0 is 0 (not the NaN mean of nothing), and the moving average keeps its value."""
    layer = ashlib.ReinforceLayer(4, 4, 4, fix_values=True)
    x = torch.randn(3, 4)
    layer.surrogate_loss((layer(x) - x).pow(2).mean(1)).backward()
    before = layer.average_loss.clone()
    empty = torch.zeros(0, 4)
    loss = layer.surrogate_loss((layer(empty) - empty).pow(2).mean(1))
    assert float(loss.detach()) == 0.0 and torch.equal(layer.average_loss, before)
    loss.backward()  # connected to the graph, contributes nothing


def test_integer_points_are_rounded_like_float_points():
    layer = ashlib.ReinforceLayer(4, 4, 4)
    x = torch.randn(3, 4)
    points = torch.randint(0, 4, (3, 4, 2))
    torch.testing.assert_close(layer(x, points=points), layer(x, points=points.float()))


def test_cli_refuses_a_negative_checkpoint_interval_before_training(tmp_path, capsys):
    from ashlib.cli import main

    code = main(["sort", "--n", "4", "--iterations", "1", "--set", "source=offline", "--checkpoint-every", "-1",
                 "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and "checkpoint_every must be" in err and "Traceback" not in err


# ------------------------------------------------------------------ moved from the bad-input probe (issue 28)
# The probe's cases that no test covered (same class of input, same entry point, same outcome), one line each:
# (entry point, case, call, exception type, regex of the message). Cases the probe found "wrong" are issue 31's.

_GEN = torch.Generator


def _means(b=2, k=3, r=2, dtype=torch.float32):
    return (torch.rand(b, k, r, generator=_GEN().manual_seed(1), dtype=torch.float64) * 7).to(dtype)


def _sample(means=None, sigmas=None, shape=(8, 8), **kw):
    means = _means() if means is None else means
    sigmas = (torch.ones_like(means) if torch.is_tensor(means) else torch.ones(2, 3, 2)) if sigmas is None else sigmas
    args = dict(a_local=2, a_global=2, region=3, generator=_GEN().manual_seed(0))
    args.update(kw)
    return ashlib.sample(means, sigmas, shape, **args)


def _contract_args():
    g = _GEN().manual_seed(3)
    indices = torch.stack([torch.randint(0, 3, (2, 5), generator=g), torch.randint(0, 4, (2, 5), generator=g)], -1)
    return indices, torch.randn(2, 5, generator=g), torch.randn(2, 4, generator=g)


_I, _V, _X = _contract_args()


def _contract(indices=None, values=None, x=None, out_shape=(3,), **kw):
    return ashlib.contract(_I if indices is None else indices, _V if values is None else values,
                           _X if x is None else x, out_shape, **kw)


def _layer(**kw):
    args = dict(in_shape=4, out_shape=3, k=4, a_local=1, a_global=1, region=2)
    args.update(kw)
    return ashlib.SparseLayer(args.pop("in_shape"), args.pop("out_shape"), args.pop("k"), **args)


def _layer_with_nan(name):
    layer = _layer()
    with torch.no_grad():
        getattr(layer, name).view(-1)[0] = float("nan")
    return layer


def _hyper_source(means=None, sigmas=None, values=None):
    def source(x):
        b = x.shape[0]
        return (torch.zeros(b, 4, 2) if means is None else means(b), torch.zeros(b, 4) if sigmas is None else sigmas(b),
                torch.ones(b, 4) if values is None else values(b))
    return source


def _hyper(source, **kw):
    return ashlib.HyperLayer(4, 3, 4, source, a_local=1, a_global=1, region=2, **kw)


def _reinforce(**kw):
    return ashlib.ReinforceLayer(4, 4, kw.pop("k", 4), **kw)


def _surrogate_of(losses, baseline="moving_average", b=3):
    layer = _reinforce(fix_values=True, baseline=baseline)
    x = torch.randn(b, 4)
    y = layer(x)
    return layer.surrogate_loss(losses(y, x))


def _mse(y, x):
    return (y - x).pow(2).mean(1)


_SPACED = torch.tensor([[3.0, -1.0, 7.0, 0.0], [1.0, 5.0, -4.0, 2.0]])


def _qs(keys=_SPACED, items=None, **kw):
    items = torch.rand(keys.shape[0], keys.shape[1], 3) if items is None else items
    return ashlib.quicksort(keys, items, generator=_GEN().manual_seed(0), **kw)


_IMAGES = torch.rand(2, 1, 20, 20, generator=_GEN().manual_seed(1))
_BOXES = torch.randn(2, 1, 4, generator=_GEN().manual_seed(2))


def _classifier(**kw):
    args = dict(in_size=(20, 20), glimpse_size=4, source_hidden=8, hidden=8, a_local=2, a_global=2, region=(5, 5))
    args.update(kw)
    return glimpse_models.GlimpseClassifier(**args)


def _check(answer):
    return exercises.check(answer, quiet=True)


def _named(name, body):
    body.__name__ = name
    return body


def _user_digits(n, dtype=torch.uint8):
    return torch.zeros(n, 28, 28, dtype=dtype), torch.zeros(n, dtype=torch.long)


MOVED_REFUSALS = [
    # ashlib.sample
    ("sample", "means a list", lambda: _sample(_means().tolist()), ValueError, "means and sigmas must be torch tensors"),
    ("sample", "sigmas a numpy array", lambda: _sample(sigmas=torch.ones(2, 3, 2).numpy()), ValueError,
     "must be torch tensors"),
    ("sample", "means None", lambda: ashlib.sample(None, torch.ones(2, 3, 2), (8, 8), a_local=2,
                                                            a_global=2, region=3), ValueError, "must be torch tensors"),
    ("sample", "shape None", lambda: _sample(shape=None), ValueError, "shape must be a sequence"),
    ("sample", "shape ('8', '8')", lambda: _sample(shape=("8", "8")), ValueError, "shape must contain positive ints"),
    ("sample", "shape (0, 8)", lambda: _sample(shape=(0, 8)), ValueError, "shape must contain positive ints"),
    ("sample", "shape (-8, 8)", lambda: _sample(shape=(-8, 8)), ValueError, "shape must contain positive ints"),
    ("sample", "a_local 2.0", lambda: _sample(a_local=2.0), ValueError, "a_local must be a non-negative int"),
    ("sample", "a_local -1", lambda: _sample(a_local=-1), ValueError, "a_local must be a non-negative int"),
    ("sample", "a_global '2'", lambda: _sample(a_global="2"), ValueError, "a_global must be a non-negative int"),
    ("sample", "sigmas (b, k, 1)", lambda: _sample(sigmas=torch.ones(2, 3, 1)), ValueError, "sigmas must match means"),
    ("sample", "region with 3 sizes for a 2-d W", lambda: _sample(region=(2, 2, 2)), ValueError,
     "region must have one size per dimension"),
    *[("sample", f"means {dtype}", lambda dtype=dtype: _sample(torch.ones(2, 3, 2, dtype=dtype), torch.ones(2, 3, 2)),
       ValueError, "means and sigmas must be floating point") for dtype in (torch.int64, torch.bool, torch.complex64)],
    ("sample", "one pool of k = 4096 for b = 4 (4 GiB)", lambda: _sample(torch.rand(4, 4096, 2) * 7, torch.ones(4, 4096, 2),
                                                                         chunk_size=None), ValueError, "chunk_size"),
    # ashlib.contract
    ("contract", "indices a list", lambda: _contract(_I.tolist()), ValueError, "indices must be an integer tensor"),
    ("contract", "values a list", lambda: _contract(values=_V.tolist()), ValueError, "values must have shape"),
    ("contract", "x a numpy array", lambda: _contract(x=_X.numpy()), ValueError, r"\bx must be a floating point tensor"),
    *[("contract", f"x {dtype}", lambda dtype=dtype: _contract(values=_V.to(dtype), x=_X.to(dtype)), ValueError,
       r"\bx must be a floating point tensor") for dtype in (torch.int64, torch.complex64)],
    ("contract", "out_shape None", lambda: _contract(out_shape=None), ValueError, "out_shape must be a sequence"),
    ("contract", "out_shape '3'", lambda: _contract(out_shape="3"), ValueError, "out_shape must be a sequence"),
    ("contract", "out_shape (0,)", lambda: _contract(out_shape=(0,)), ValueError, "out_shape must contain positive ints"),
    ("contract", "out_shape ()", lambda: _contract(out_shape=()), ValueError, "out_shape must have at least one dimension"),
    *[("contract", f"feature_dims {v!r}", lambda v=v: _contract(feature_dims=v), ValueError,
       "feature_dims must be a non-negative int") for v in (1.0, "0", -1)],
    ("contract.to_dense", "tuples of 3 for a 2-d shape", lambda: to_dense(torch.zeros(3, 3, dtype=torch.long), torch.ones(3),
                                                                           (3, 2)), ValueError, r"indices must be .* \(m, 2\)"),
    # SparseLayer
    ("SparseLayer", "in_shape 0", lambda: _layer(in_shape=0), ValueError, "in_shape must contain positive ints"),
    ("SparseLayer", "in_shape 4.5", lambda: _layer(in_shape=4.5), ValueError, "in_shape must be a sequence"),
    ("SparseLayer", "in_shape '4'", lambda: _layer(in_shape="4"), ValueError, "in_shape must be a sequence"),
    ("SparseLayer", "out_shape -3", lambda: _layer(out_shape=-3), ValueError, "out_shape must contain positive ints"),
    ("SparseLayer", "k 4.0", lambda: _layer(k=4.0), ValueError, r"^k \(the number of Gaussians\) must be an int"),
    ("SparseLayer", "k '4'", lambda: _layer(k="4"), ValueError, r"^k \(the number of Gaussians\) must be an int"),
    ("SparseLayer", "a_local=True", lambda: _layer(a_local=True), ValueError, "a_local must be a non-negative int"),
    ("SparseLayer", "a_global -1", lambda: _layer(a_global=-1), ValueError, "a_global must be a non-negative int"),
    ("SparseLayer", "region 2.5", lambda: _layer(region=2.5), ValueError, "region must be an int"),
    ("SparseLayer", "input a list", lambda: _layer()(_X.tolist()), ValueError, "input must have shape"),
    ("SparseLayer", "input 1-d", lambda: _layer()(torch.randn(4)), ValueError, "input must have shape"),
    *[("SparseLayer", f"input {dtype}", lambda dtype=dtype: _layer()(torch.ones(2, 4, dtype=dtype)), ValueError,
       r"\bx must be a floating point tensor") for dtype in (torch.int64, torch.bool, torch.complex64)],
    ("SparseLayer", "a NaN value parameter", lambda: _layer_with_nan("values")(_X), ValueError, "values contain NaN or inf"),
    ("SparseLayer", "generator=42", lambda: _layer()(_X, generator=42), ValueError, "generator must be None or a torch"),
    ("HyperLayer", "source values (b, k, 1)", lambda: _hyper(_hyper_source(values=lambda b: torch.ones(b, 4, 1)))(_X),
     ValueError, r"values must have shape \(2, 4\)"),
    ("HyperLayer", "source gives inf values",
     lambda: _hyper(_hyper_source(values=lambda b: torch.full((b, 4), float("inf"))))(_X), ValueError,
     "values contain NaN or inf"),
    # ReinforceLayer
    ("ReinforceLayer", "k 0", lambda: _reinforce(k=0), ValueError, r"^k \(the number of Gaussians\) must be an int >= 1"),
    ("ReinforceLayer", "min_sigma 0", lambda: _reinforce(min_sigma=0), ValueError, "min_sigma must be a finite number > 0"),
    ("ReinforceLayer", "decay 1.0", lambda: _reinforce(decay=1.0), ValueError, r"decay must be a number in \[0, 1\)"),
    ("ReinforceLayer", "decay NaN", lambda: _reinforce(decay=float("nan")), ValueError, r"decay must be a number in \[0, 1\)"),
    ("ReinforceLayer", "input int64", lambda: _reinforce()(torch.ones(3, 4, dtype=torch.long)), ValueError,
     r"\bx must be a floating point tensor"),
    ("ReinforceLayer", "points (b, k, r + 1)", lambda: _reinforce()(torch.randn(3, 4), points=torch.zeros(3, 4, 3)),
     ValueError, r"points must have shape \(3, 4, 2\)"),
    ("ReinforceLayer", "losses a list", lambda: _surrogate_of(lambda y, x: _mse(y, x).tolist()), ValueError,
     "losses must have one entry per instance"),
    ("ReinforceLayer", "leave_one_out with b = 1", lambda: _surrogate_of(_mse, "leave_one_out", b=1), ValueError,
     "leave-one-out baseline needs a batch of at least 2"),
    # quicksort
    ("quicksort", "n = 1", lambda: _qs(_SPACED[:, :1]), ValueError, "need at least 2 items to sort, got 1"),
    ("quicksort", "n = 0", lambda: _qs(torch.zeros(2, 0)), ValueError, "need at least 2 items to sort, got 0"),
    *[("quicksort", f"samples {v!r}", lambda v=v: _qs(samples=v), ValueError, "samples must be a non-negative int")
      for v in (-1, "4", 2.5)],
    ("quicksort", "local=True", lambda: _qs(local=True), ValueError, "local must be a non-negative int"),
    # SparseGlimpse, BilinearGlimpse, the attention models and helpers
    ("SparseGlimpse", "in_size '20'", lambda: _glimpse(in_size="20"), ValueError, "in_size must be a sequence"),
    ("SparseGlimpse", "in_size (0, 20)", lambda: _glimpse(in_size=(0, 20)), ValueError, "in_size must contain positive ints"),
    ("SparseGlimpse", "in_size (20.5, 20)", lambda: _glimpse(in_size=(20.5, 20)), ValueError,
     "in_size must contain positive ints"),
    ("SparseGlimpse", "glimpse_size 2.5", lambda: _glimpse(glimpse_size=2.5), ValueError, "glimpse_size must be an int >= 1"),
    ("SparseGlimpse", "glimpse_size True", lambda: _glimpse(glimpse_size=True), ValueError,
     "glimpse_size must be an int >= 1"),
    ("SparseGlimpse", "region (2.5, 2)", lambda: _glimpse(region=(2.5, 2)), ValueError, "region must be an int"),
    ("SparseGlimpse", "box_param 'centre'", lambda: _glimpse(box_param="centre"), ValueError, "box_param must be one of"),
    ("SparseGlimpse", "scale_range (0.6, 0.2)", lambda: _glimpse(box_param="centre_scale", scale_range=(0.6, 0.2)),
     ValueError, r"scale_range must be \(min, max\)"),
    ("SparseGlimpse", "images a list", lambda: _glimpse()(_IMAGES.tolist(), _BOXES), ValueError, "images must have shape"),
    ("SourceNetwork", "hidden 0", lambda: _source(hidden=0), ValueError, "hidden must be an int >= 1"),
    ("SourceNetwork", "init 'xavier'", lambda: _source(init="xavier"), ValueError, "init must be one of"),
    ("SourceNetwork", "set_input_statistics on constant images",
     lambda: _source().set_input_statistics(torch.ones(4, 1, 16, 16)), ValueError, "zero variance"),
    ("ConvNetBaseline", "n_classes 0", lambda: glimpse_models.ConvNetBaseline(in_size=(16, 16), hidden=8, n_classes=0),
     ValueError, "n_classes must be an int >= 1"),
    ("ConvNetBaseline", "in_channels=True", lambda: glimpse_models.ConvNetBaseline(in_size=(16, 16), hidden=8, in_channels=True),
     ValueError, "in_channels must be an int >= 1"),
    ("GlimpseClassifier", "head 'rnn'", lambda: _classifier(head="rnn"), ValueError, "head must be one of"),
    ("GlimpseClassifier", "head 'conv' with glimpse_size 2", lambda: _classifier(head="conv", glimpse_size=2), ValueError,
     "glimpse_size must be at least"),
    ("GlimpseClassifier", "init_box with a custom source",
     lambda: _classifier(source=torch.nn.Identity(), init_box=(0.2, 0.2, 0.8, 0.8)), ValueError,
     "init_box applies to the default source network"),
    ("SpatialTransformerClassifier", "box_param 'corner'", lambda: glimpse_models.SpatialTransformerClassifier(
        in_size=(20, 20), glimpse_size=4, source_hidden=8, hidden=8, box_param="corner"), ValueError,
     "box_param must be one of"),
    ("glimpse_means", "s = 0", lambda: glimpse.glimpse_means(torch.zeros(2, 1, 4), 0), ValueError,
     "glimpse_size must be an int >= 1"),
    ("box_spread", "one image", lambda: glimpse.box_spread(torch.zeros(1, 1, 4)), ValueError,
     r"corners must have shape \(batch >= 2"),
    ("check_collapse", "corners (b, 3)", lambda: glimpse.check_collapse(torch.zeros(2, 3)), ValueError,
     r"corners must be a non-empty tensor \(\.\.\., 4\)"),
    ("raw_start_box", "a fraction 1.2", lambda: glimpse.raw_start_box((0.1, 0.1, 1.2, 0.9)), ValueError,
     "init_box must be 4 fractions"),
    # data
    ("load_mnist", "split None", lambda: data_module.load_mnist(None, "offline"), ValueError,
     "split must be 'train' or 'test', not None"),
    ("ClutteredMNIST", "size '100'", lambda: _cluttered(size="100"), ValueError, "size must be an int"),
    ("ClutteredMNIST", "n_distractors=True", lambda: _cluttered(n_distractors=True), ValueError, "n_distractors must be an int"),
    ("ClutteredMNIST", "seed '0'", lambda: _cluttered(seed="0"), ValueError, "seed must be an int"),
    ("ClutteredMNIST", "source 'web'", lambda: _cluttered(source="web"), ValueError, "source must be one of"),
    ("ClutteredMNIST", "user digits float32", lambda: _cluttered(mnist=_user_digits(5, torch.float32)), ValueError,
     "digit images must be uint8"),
    ("ClutteredMNIST", "one user digit with distractors", lambda: _cluttered(mnist=_user_digits(1)), ValueError,
     "need at least 2 source digits"),
    *[("ClutteredMNIST", f"ds[{i!r}]", lambda i=i: _cluttered()[i], TypeError, "index must be an int")
      for i in ("1", True, torch.tensor(1.0))],
    ("ClutteredMNIST", "ds[4] of 4 items", lambda: _cluttered()[4], IndexError, "index 4 out of range for 4 items"),
    ("ClutteredMNIST", "batch([100])", lambda: _cluttered().batch([100]), IndexError, r"indices must lie in \[0, 4\)"),
    ("ClutteredMNIST", "render([0.5])", lambda: _cluttered().render([0.5]), TypeError, "indices must be integers"),
    ("ClutteredMNIST", "layout(2.5)", lambda: _cluttered().layout(2.5), TypeError, "index must be an int"),
    ("SortingTask", "n '4'", lambda: data_module.SortingTask("4", split="test", source="offline"), ValueError,
     r"^n must be an int"),
    ("SortingTask", "n=True", lambda: data_module.SortingTask(True, split="test", source="offline"), ValueError,
     r"^n must be an int"),
    ("SortingTask", "split 'val'", lambda: data_module.SortingTask(4, split="val", source="offline"), ValueError,
     "split must be 'train' or 'test'"),
    *[("SortingTask", f"sample({v!r})", lambda v=v: _sorting_task().sample(v), ValueError, "batch_size must be a positive int")
      for v in (0, -1, 2.5, "4")],
    # pretrained, exercises
    ("pretrained.load", "name None", lambda: pretrained.load(None), ValueError, "no pretrained model None; available"),
    ("pretrained.load", "device 'cuda:99'", lambda: pretrained.load("sort-softsort-n4", device="cuda:99"), ValueError,
     "device 'cuda:99'"),
    ("pretrained.save", "experiment 'chess'", lambda: pretrained.save(torch.nn.Linear(1, 1), "unused", "chess", None, {}, ""),
     ValueError, "unknown experiment 'chess'"),
    ("exercises.check", "None", lambda: _check(None), ValueError, "check.. takes an exercise function"),
    ("exercises.check", "a name, not the function", lambda: _check("corner_tuples"), ValueError,
     "check.. takes an exercise function"),
    ("exercises.check", "an unknown function", lambda: _check(_named("my_answer", lambda *a: 1)), ValueError,
     "check.. takes an exercise function"),
]


@pytest.mark.parametrize("entry,case,call,error,pattern", MOVED_REFUSALS, ids=[f"{e}: {c}" for e, c, *_ in MOVED_REFUSALS])
def test_more_bad_input_is_refused_by_name(entry, case, call, error, pattern):
    with pytest.raises(error, match=pattern):
        call()


def _is(shape, dtype=None, finite=True):
    """A tensor of this shape (and dtype), with no silent NaN."""
    def check(y):
        assert tuple(y.shape) == tuple(shape) and (dtype is None or y.dtype == dtype)
        assert not finite or bool(torch.isfinite(y).all())
    return check


def _propagates(shape):
    """NaN / inf in the input comes out in the output, as in any torch layer (documented)."""
    def check(y):
        assert tuple(y.shape) == tuple(shape) and not bool(torch.isfinite(y).all())
    return check


def _equals(expected, atol=1e-4):
    def check(y):
        torch.testing.assert_close(y.double(), expected.double(), atol=atol, rtol=atol, equal_nan=True)
    return check


def _contract_by_loop(indices, values, x, out_shape):
    """y[b, o] = sum_j values[b, j] x[b, i] over (o, i) = indices[b, j], by a Python loop."""
    y = torch.zeros(x.shape[0], *out_shape, dtype=torch.float64)
    for b in range(x.shape[0]):
        for j in range(indices.shape[1]):
            o, i = (int(v) for v in indices[b, j])
            y[b, o] += float(values[b, j]) * float(x[b, i])
    return y


def _sample_ok(b, k, shape=(8, 8), a_local=2, a_global=2, dtype=torch.float32, per_chunk=1):
    """Tuples inside W, proportions of the right dtype that sum to 1 per Gaussian."""
    def check(result):
        tuples, props = result
        S = 2 ** len(shape) + a_local + a_global
        assert tuple(tuples.shape) == (b, k // per_chunk, per_chunk * S, len(shape))
        assert tuple(props.shape) == (b, k, per_chunk * S) and props.dtype == dtype
        if props.numel():
            torch.testing.assert_close(props.double().sum(-1), torch.ones(b, k, dtype=torch.float64), atol=1e-2, rtol=0)
            assert bool((tuples >= 0).all()) and bool((tuples < torch.tensor(shape)).all())
    return check


def _same_draw_as_float32(dtype, atol):
    """The layer's output for x in another precision is its float32 output (same draw), in that precision."""
    def run():
        torch.manual_seed(0)
        layer = _layer()
        return layer(_X.to(dtype), generator=_GEN().manual_seed(9)), layer(_X, generator=_GEN().manual_seed(9))

    def check(pair):
        assert pair[0].dtype == dtype
        _equals(pair[1], atol)(pair[0])
    return run, check


def _permutation_rows(keys):
    """A relaxed sorting matrix: rows are distributions whose argmax is the sorting permutation."""
    def check(P):
        assert tuple(P.shape) == (keys.shape[0], keys.shape[1], keys.shape[1])
        if P.numel():
            torch.testing.assert_close(P.double().sum(-1), torch.ones(P.shape[:2], dtype=torch.float64), atol=1e-2, rtol=0)
            assert torch.equal(P.argmax(-1), keys.float().argsort(1))
    return check


def _hyper_against_float32(**parts):
    x = torch.randn(2, 4)
    return lambda: (_hyper(_hyper_source(**parts))(x, generator=_GEN().manual_seed(5)),
                    _hyper(_hyper_source())(x, generator=_GEN().manual_seed(5)))


def _clamped_points():
    x = torch.randn(3, 4)
    expected = torch.zeros(3, 4)
    expected[:, 3] = 4 * x[:, 3]  # every point rounds past the end, onto W[3, 3]: four unit values there
    return _reinforce(fix_values=True)(x, points=torch.full((3, 4, 2), 100.0)), expected


_NAN_V = _V.index_fill(1, torch.tensor([0]), float("nan"))
_EQUAL_KEYS_ITEMS = torch.rand(2, 4, 3, generator=_GEN().manual_seed(1))
_BIG_KEYS = torch.randn(2, 1024, generator=_GEN().manual_seed(2)).sort(1).values.flip(1) * 1e3  # spaced, descending
_KEYS2 = torch.tensor([[0.3, -2.0, 1.5, 0.9], [4.0, 1.0, 2.0, 3.0]])
_REPEATS = (torch.tensor([[3, 1, 3, 3, 2, 1]]), torch.tensor([[False, False, True, True, False, True]]))

MOVED_RESULTS = [
    # ashlib.sample: other precisions, extreme sigmas, empty batch, edge sizes
    ("sample", "means and sigmas bfloat16", lambda: _sample(_means(dtype=torch.bfloat16)), _sample_ok(2, 3, dtype=torch.bfloat16)),
    ("sample", "float32 means, float64 sigmas", lambda: _sample(_means(), torch.ones(2, 3, 2, dtype=torch.float64)),
     _sample_ok(2, 3)),
    ("sample", "sigma 1e6 (very wide)", lambda: _sample(sigmas=torch.full((2, 3, 2), 1e6)), _sample_ok(2, 3)),
    ("sample", "b = 0", lambda: _sample(torch.zeros(0, 3, 2)), _sample_ok(0, 3)),
    ("sample", "a_local = a_global = 0", lambda: _sample(a_local=0, a_global=0), _sample_ok(2, 3, a_local=0, a_global=0)),
    ("sample", "W with a dimension of size 1", lambda: _sample(torch.zeros(2, 3, 2), shape=(1, 8), region=1),
     _sample_ok(2, 3, shape=(1, 8))),
    ("sample", "W of 2^31 x 2^31 (global draws reach every index)", lambda: _sample(shape=(2**31, 2**31)),
     _sample_ok(2, 3, shape=(2**31, 2**31))),
    # ashlib.contract against a loop; NaN / inf propagate as in torch
    ("contract", "indices int32", lambda: _contract(_I.int()), _equals(_contract_by_loop(_I, _V, _X, (3,)))),
    ("contract", "values and x float16", lambda: _contract(values=_V.half(), x=_X.half()),
     _equals(_contract_by_loop(_I, _V.half(), _X.half(), (3,)), 1e-2)),
    ("contract", "values and x bfloat16", lambda: _contract(values=_V.bfloat16(), x=_X.bfloat16()),
     _equals(_contract_by_loop(_I, _V.bfloat16(), _X.bfloat16(), (3,)), 5e-2)),
    ("contract", "a NaN value (propagates)", lambda: _contract(values=_NAN_V), _equals(_contract_by_loop(_I, _NAN_V, _X, (3,)))),
    ("contract", "an inf in x (propagates)", lambda: _contract(x=_X.index_fill(1, torch.tensor([2]), float("inf"))),
     _propagates((2, 3))),
    ("contract", "m = 0 tuples", lambda: _contract(torch.zeros(2, 0, 2, dtype=torch.long), torch.zeros(2, 0)),
     _equals(torch.zeros(2, 3))),
    ("contract.to_dense", "repeated tuples add up", lambda: to_dense(torch.tensor([[0, 1], [2, 0], [0, 1]]),
                                                                      torch.tensor([1.0, 2.0, 3.0]), (3, 2)),
     _equals(torch.tensor([[0.0, 4.0], [0.0, 0.0], [2.0, 0.0]]))),
    ("contract.to_dense", "no tuples", lambda: to_dense(torch.zeros(0, 2, dtype=torch.long), torch.zeros(0), (3, 2)),
     _equals(torch.zeros(3, 2))),
    # ashlib.indexing
    ("flat_index", "two tuples into (4, 5)", lambda: indexing.flat_index(torch.tensor([[1, 2], [3, 0]]), (4, 5)),
     _equals(torch.tensor([7.0, 15.0]))),
    ("flat_index", "no tuples", lambda: indexing.flat_index(torch.zeros(0, 2, dtype=torch.long), (4, 5)), _is((0,))),
    ("repeat_mask", "int keys with repeats", lambda: indexing.repeat_mask(_REPEATS[0]), _equals(_REPEATS[1])),
    ("repeat_mask", "float keys", lambda: indexing.repeat_mask(_REPEATS[0].double()), _equals(_REPEATS[1])),
    ("repeat_mask", "bool keys", lambda: indexing.repeat_mask(torch.tensor([True, False, True, True])),
     _equals(torch.tensor([False, False, True, True]))),
    ("repeat_mask", "no keys", lambda: indexing.repeat_mask(torch.zeros(0, dtype=torch.long)), _is((0,))),
    ("repeat_mask", "rows of no keys (3, 0)", lambda: indexing.repeat_mask(torch.zeros(3, 0, dtype=torch.long)), _is((3, 0))),
    ("repeat_mask", "NaN keys are never repeats (NaN != NaN)",
     lambda: indexing.repeat_mask(torch.tensor([float("nan"), 1.0, float("nan")])), _equals(torch.zeros(3, dtype=torch.bool))),
    # layers
    ("SparseLayer", "input float64 (same draw as float32)", *_same_draw_as_float32(torch.float64, 1e-5)),
    ("SparseLayer", "input float16 (same draw as float32)", *_same_draw_as_float32(torch.float16, 2e-2)),
    ("SparseLayer", "NaN in the input (propagates)", lambda: _layer()(torch.full((2, 4), float("nan"))), _propagates((2, 3))),
    ("SparseLayer", "rank-2 input and output", lambda: _layer(in_shape=(2, 3), out_shape=(2, 2))(torch.randn(2, 2, 3)),
     _is((2, 2, 2))),
    ("HyperLayer", "a source giving (b, k, r) sigmas",
     lambda: _hyper(_hyper_source(sigmas=lambda b: torch.zeros(b, 4, 2)))(torch.randn(2, 4)), _is((2, 3))),
    ("HyperLayer", "source means float64, values float32 (the float32 output)",
     _hyper_against_float32(means=lambda b: torch.zeros(b, 4, 2, dtype=torch.float64)), lambda r: _equals(r[1])(r[0])),
    ("HyperLayer", "b = 0", lambda: _hyper(_hyper_source())(torch.zeros(0, 4)), _is((0, 3))),
    ("ReinforceLayer", "input float64", lambda: _reinforce()(torch.randn(3, 4, dtype=torch.float64)),
     _is((3, 4), torch.float64)),
    ("ReinforceLayer", "points outside W are clamped into it (documented)", _clamped_points, lambda r: _equals(r[1])(r[0])),
    # sorting
    ("quicksort", "all keys equal: items mix, their sum is kept", lambda: _qs(torch.zeros(2, 4), _EQUAL_KEYS_ITEMS),
     lambda r: _equals(_EQUAL_KEYS_ITEMS.sum(1), 1e-3)(r.sorted.sum(1))),
    ("quicksort", "items (b, n) without features", lambda: _qs(_SPACED, _SPACED * 2, C=100.0),
     lambda r: _equals((_SPACED * 2).sort(1).values, 1e-3)(r.sorted)),
    ("quicksort", "n = 1024, samples = n (repeat check O(b a n))", lambda: _qs(_BIG_KEYS, _BIG_KEYS.unsqueeze(-1), C=10.0),
     lambda r: _is((2, 1024, 1))(r.sorted) or float((r.sorted[:, 1:, 0] >= r.sorted[:, :-1, 0] - 1e-3).float().mean()) > 0.99),
    *[(name, f"{dtype} keys", lambda name=name, dtype=dtype: getattr(sort_baselines, name)(_KEYS2.to(dtype), tau=0.1),
       _permutation_rows(_KEYS2)) for name in ("neuralsort", "softsort") for dtype in (torch.float64, torch.float16)],
    *[(name, "b = 0", lambda name=name: getattr(sort_baselines, name)(torch.zeros(0, 4)), _permutation_rows(torch.zeros(0, 4)))
      for name in ("neuralsort", "softsort")],
    # glimpses and the attention models
    ("SparseGlimpse", "NaN in the images (propagates)",
     lambda: _glimpse(region=(20, 20), a_local=60)(torch.full((2, 1, 20, 20), float("nan")), _BOXES),
     _propagates((2, 1, 1, 4, 4))),
    ("SparseGlimpse", "images and boxes float64", lambda: _glimpse()(_IMAGES.double(), _BOXES.double()),
     _is((2, 1, 1, 4, 4), torch.float64)),
    ("BilinearGlimpse", "b = 0", lambda: glimpse.BilinearGlimpse((20, 20), 4)(_IMAGES[:0], _BOXES[:0]), _is((0, 1, 1, 4, 4))),
    ("SourceNetwork", "b = 0", lambda: _source()(torch.rand(0, 1, 16, 16)), _is((0, 1, 4))),
    ("ConvNetBaseline", "b = 0", lambda: glimpse_models.ConvNetBaseline(in_size=(16, 16), hidden=8)(torch.rand(0, 1, 16, 16)),
     _is((0, 10))),
    ("GlimpseClassifier", "b = 0", lambda: _classifier()(_IMAGES[:0]), _is((0, 10))),
    ("SpatialTransformerClassifier", "b = 0", lambda: glimpse_models.SpatialTransformerClassifier(
        in_size=(20, 20), glimpse_size=4, source_hidden=8, hidden=8)(_IMAGES[:0]), _is((0, 10))),
    # data
    ("ClutteredMNIST", "ds[-1] is the last item", lambda: (_cluttered()[-1], _cluttered()[3]),
     lambda r: _equals(r[1][0])(r[0][0]) or r[0][1] == r[1][1]),
    ("ClutteredMNIST", "ds[np.int64(2)] is ds[2]", lambda: (_cluttered()[np.int64(2)], _cluttered()[2]),
     lambda r: _equals(r[1][0])(r[0][0])),
    ("ClutteredMNIST", "batch([])", lambda: _cluttered().batch([]),
     lambda r: _is((0, 1, 40, 40))(r[0]) or _is((0,))(r[1])),
    ("SortingConfig", "n = 5 (not a power of two: padded)", lambda: SortingConfig(n=5), lambda c: c.n == 5),
    # exercises: a stub that is not yet right is "not yet", not an error
    ("exercises.check", "a stub that raises", lambda: _check(_named("dense_matrix", lambda *a: 1 / 0)),
     lambda ok: ok is False),
    ("exercises.check", "a wrong shape", lambda: _check(_named("proportions", lambda tuples, mean, sigma: torch.zeros(1))),
     lambda ok: ok is False),
]


@pytest.mark.parametrize("entry,case,call,check", MOVED_RESULTS, ids=[f"{e}: {c}" for e, c, *_ in MOVED_RESULTS])
def test_edge_input_gives_the_documented_result(entry, case, call, check, monkeypatch):
    monkeypatch.delenv("ASHLIB_SOLUTIONS", raising=False)  # a student's session: a wrong answer is "not yet"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = call()
    assert check(result) is not False


def test_offline_mnist_from_a_root_without_the_subset_uses_the_shipped_one(tmp_path):
    images, labels, source = data_module.load_mnist("test", "offline", root=tmp_path / "empty")
    assert images.shape == (2_000, 28, 28) and images.dtype == torch.uint8 and len(labels) == 2_000
    assert "offline" in source


_TINY_CLI = {"identity": ["--size", "4", "--iterations", "1", "--eval-every", "1"],
             "sort": ["--iterations", "1", "--batch-size", "2", "--set", "eval_instances=2", "--eval-every", "1",
                      "--set", "source=offline"],
             "attention": ["--set", "canvas=40", "--set", "glimpse_size=4", "--set", "train_size=4", "--set",
                           "test_size=4", "--epochs", "1", "--batch-size", "2", "--set", "n_distractors=0", "--set",
                           "source_hidden=8", "--set", "source=offline"]}

# (arguments, regex of the one-line error): each refused before any training, exit 2, no traceback. The run-level
# faults (--out, --resume, checkpoints, interrupts) are the training loop's contract, tested with the loop.
CLI_REFUSALS = [
    (["bogus"], "invalid choice: 'bogus'"),
    ([], "usage"),
    (["identity", "--size", "abc"], "argument --size: invalid int value"),
    (["identity", "--size", "1"], "n must be an int >= 2"),
    (["identity", *_TINY_CLI["identity"], "--lr", "-1"], "lr must be a finite number > 0"),
    (["identity", *_TINY_CLI["identity"], "--lr", "nan"], "lr must be a finite number > 0"),
    (["identity", "--size", "4", "--iterations", "0"], "iterations must be an int >= 1"),
    (["identity", *_TINY_CLI["identity"], "--set", "a_local=-1"], "a_local must be an int >= 0"),
    (["identity", "--size", "4", "--iterations", "1", "--eval-every", "0"], "eval_every must be an int >= 1"),
    (["identity", *_TINY_CLI["identity"], "--device", "bogus"], "not a device torch knows"),
    (["attention", *_TINY_CLI["attention"], "--device", "bogus"], "not a device torch knows"),
    (["identity", *_TINY_CLI["identity"], "--device", "cuda:99"], "device 'cuda:99'"),
    (["sort", "--method", "bubble"], "argument --method: invalid choice"),
    (["sort", "--n", "abc"], "argument --n: invalid int value"),
    *[(["sort", "--n", n, *_TINY_CLI["sort"]], "n must be an int >= 2") for n in ("1", "-3")],
    *[(["sort", "--set", f"C={c}", *_TINY_CLI["sort"]], "C must be a finite number > 0") for c in ("0", "-1")],
    (["sort", "--lr", "-1", *_TINY_CLI["sort"]], "lr must be a finite number > 0"),
    (["sort", "--method", "neuralsort", "--set", "tau=0", *_TINY_CLI["sort"]], "tau must be a finite number > 0"),
    (["sort", "--set", "samples=-1", *_TINY_CLI["sort"]], "samples must be None"),
    (["sort", *_TINY_CLI["sort"], "--batch-size", "0"], "batch_size must be an int >= 1"),
    (["sort", "--set", "draws=0", *_TINY_CLI["sort"]], "draws must be an int >= 1"),
    (["sort", *_TINY_CLI["sort"], "--set", "width=0"], "width must be a finite number > 0"),
    (["attention", *_TINY_CLI["attention"], "--glimpses", "0"], "n_glimpses must be an int >= 1"),
    (["attention", *_TINY_CLI["attention"], "--set", "canvas=20"], "canvas must be at least 28"),
    (["attention", *_TINY_CLI["attention"], "--set", "canvas=100", "--set", "glimpse_size=200"],
     "glimpse_size 200 is larger than the canvas 100"),
    (["attention", *_TINY_CLI["attention"], "--lr", "-1"], "lr must be a finite number > 0"),
    (["attention", *_TINY_CLI["attention"], "--set", "warmup=-1"], "warmup must be an int >= 0"),
    (["attention", *_TINY_CLI["attention"], "--set", "n_distractors=-1"], "n_distractors must be an int >= 0"),
    (["attention", *_TINY_CLI["attention"], "--set", "box_param=centre_scale", "--set", "scale_range=0.6,0.2"],
     r"scale_range must be \(min, max\)"),
    (["data", "--source", "web"], "argument --source: invalid choice: 'web'"),
    (["sort", *_TINY_CLI["sort"], "--set", "neighbours=true"], "no such setting"),  # moved to the studies
    (["sort", *_TINY_CLI["sort"], "--set", "width"], "FIELD=VALUE"),
    (["sort", *_TINY_CLI["sort"], "--set", "draws=two"], "not a value of type int"),
    (["sort", "--recipe", "no-such-model"], "no recipe 'no-such-model'"),
    (["sort", "--recipe", "attention-sparse"], "recipe for the attention experiment"),
    (["identity", *_TINY_CLI["identity"], "--resume"], "resume needs out"),
]


def _cli_id(argv):
    """The arguments without the tiny-run ones."""
    tiny = _TINY_CLI.get(argv[0], []) if argv else []
    starts = [i for i in range(len(argv)) if argv[i:i + len(tiny)] == tiny]
    return " ".join(argv[:starts[0]] + argv[starts[0] + len(tiny):] if starts else argv) or "(none)"


@pytest.mark.parametrize("argv,pattern", CLI_REFUSALS, ids=[_cli_id(a) for a, _ in CLI_REFUSALS])
def test_cli_refuses_bad_settings_before_training(argv, pattern, capsys):
    from ashlib import cli

    try:
        code = cli.main(argv)
    except SystemExit as exit_:  # argparse's own errors
        code = exit_.code
    out, err = capsys.readouterr()
    assert code == 2 and "Traceback" not in err
    assert any(re.search(pattern, line) for line in (out + err).splitlines()), err


# ------------------------------------------------------------------ bad input, round three (issue 31)
# Seven classes the third probe found: (class, entry point, case, call, exception type, regex of the message).
# 1 an unguarded allocation, 2 the exercise checker (tested apart: check returns False and says why),
# 3 quicksort figures for n not a power of two (tested apart: they now draw), 4 model files edited by hand or
# damaged past the hash, 5 figures and widgets on empty or out-of-range input, 6 data odds and ends,
# 7 out-of-range tuples for flat_index and contract.

def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _with_cap(gib, call):
    """``call()`` with ASHLIB_MAX_POOL_GIB set to ``gib`` (so a memory check is reached with small sizes)."""
    from unittest import mock

    with mock.patch.dict("os.environ", {"ASHLIB_MAX_POOL_GIB": str(gib)}):
        return call()


def _identity_result(snapshots=True):
    from ashlib.experiments.identity import IdentityConfig, IdentityResult

    means = torch.tensor([[0.2, 0.1], [1.0, 1.4], [2.6, 1.2], [3.0, 3.0]])
    extra = {"snapshots": [(1, means, torch.full((4, 2), 0.3))]} if snapshots else {}
    return IdentityResult(config=IdentityConfig(n=4, iterations=10), losses=[1.0, 0.5],
                          evaluations=[{"step": 2, "eval_mse": 0.0, "diagonal": 0.75}], extra=extra)


def _widget(name, *args, **kw):
    _plt()
    from ashlib import widgets

    return getattr(widgets, name)(*args, **kw)


def _plot(name, *args, **kw):
    _plt()
    from ashlib import plot

    return getattr(plot, name)(*args, **kw)


def _labelled_digits(bad_label):
    labels = torch.arange(20) % 10
    labels[3] = bad_label
    return torch.zeros(20, 28, 28, dtype=torch.uint8), labels


def _under_a_file(tmp_path, name):
    """A path whose folder is a file: no folder can be made there (the unwritable place root cannot write either)."""
    (tmp_path / "a_file").write_text("not a folder")
    return tmp_path / "a_file" / name


_PAST_END = torch.tensor([[[4, 0]], [[0, 0]]])  # row 4 of a 4-row W: with validate=False it lands in instance 1

ROUND_THREE = [
    # 1: canvas size, and materialise's memory, under the same cap as length and n_distractors
    (1, "ClutteredMNIST", "size 100,000 (40 GB a canvas) refused in the constructor",
     lambda: _cluttered(size=100_000, length=2), ValueError, r"size = 100,000 .* GiB each to render"),
    (1, "ClutteredMNIST", "size 20,000 under a 1 GiB cap", lambda: _with_cap(1, lambda: _cluttered(size=20_000)),
     ValueError, r"size = 20,000 .*ASHLIB_MAX_POOL_GIB"),
    (1, "ClutteredMNIST.materialise", "all canvases past the cap, before rendering",
     lambda: (lambda ds: _with_cap(1 / 2**20, lambda: ds.materialise("unused.pt", progress=False)))(_cluttered()),
     ValueError, r"materialise\(\) keeps all 4 canvases of 40 x 40 in memory"),
    # 4: model files (the editing helpers are below the table)
    (4, "pretrained.load_file", "path 123", lambda: pretrained.load_file(123), TypeError,
     r"path must be a str or os\.PathLike .* got 123 \(int\)"),
    (4, "pretrained.load_file", "path None", lambda: pretrained.load_file(None), TypeError,
     r"path must be a str or os\.PathLike"),
    # 5: figures and widgets on empty or out-of-range input
    (5, "plot_matrix", "a (0, 0) matrix", lambda: _plot("plot_matrix", np.zeros((0, 0))), ValueError,
     r"W must be a 2-D matrix with at least one row and one column, got shape \(0, 0\)"),
    (5, "plot_matrix", "a vector", lambda: _plot("plot_matrix", torch.ones(4)), ValueError,
     r"W must be a 2-D matrix .* got shape \(4,\)"),
    (5, "plot_item_rows", "no rows", lambda: _plot("plot_item_rows", []), ValueError,
     r"rows must be a non-empty list of \(n, H, W\) image tensors"),
    (5, "plot_item_rows", "a row of no items", lambda: _plot("plot_item_rows", [torch.zeros(0, 4, 4)]), ValueError,
     r"rows must be \(n, H, W\) image tensors with at least one item each"),
    (5, "plot_item_rows", "rows of different widths", lambda: _plot("plot_item_rows", [torch.zeros(3, 4, 4),
                                                                                     torch.zeros(2, 4, 4)]),
     ValueError, r"every row must be equally wide"),
    (5, "plot_glimpses", "an empty batch", lambda: _plot("plot_glimpses", _classifier(), _IMAGES[:0]), ValueError,
     r"images must be a tensor \(b, 1, H, W\) holding at least one canvas"),
    (5, "plot_glimpses", "columns=0", lambda: _plot("plot_glimpses", _classifier(), _IMAGES, columns=0), ValueError,
     r"columns must be an int >= 1, got 0"),
    (5, "draw_identity_snapshot", "index 99 of 1 snapshot", lambda: _widget("draw_identity_snapshot", _identity_result(), 99),
     ValueError, r"index must be an int in \[0, 1\): the run kept 1 snapshot .* got 99"),
    (5, "draw_identity_snapshot", "index 0.5", lambda: _widget("draw_identity_snapshot", _identity_result(), 0.5),
     ValueError, r"index must be an int .* got 0\.5"),
    (5, "draw_identity_snapshot", "a result without snapshots",
     lambda: _widget("draw_identity_snapshot", _identity_result(snapshots=False), 0), ValueError,
     "result has no snapshots to draw"),
    (5, "identity_snapshot_slider", "a result without snapshots",
     lambda: _widget("identity_snapshot_slider", _identity_result(snapshots=False)), ValueError,
     "result has no snapshots to draw"),
    (5, "glimpse_browser", "no images", lambda: _widget("glimpse_browser", _classifier(), _IMAGES[:0], torch.zeros(0)),
     ValueError, r"images must be a tensor \(b, 1, H, W\) of at least one image to browse, got \(0, 1, 20, 20\)"),
    (5, "glimpse_browser", "2 images, 3 labels", lambda: _widget("glimpse_browser", _classifier(), _IMAGES,
                                                                  torch.tensor([1, 2, 3])),
     ValueError, "labels must have one entry per image: 2 images, 3 labels"),
    (5, "sampling_explorer", "size 1", lambda: _widget("sampling_explorer", size=1), ValueError,
     r"size must be an int >= 2 .* got 1"),
    (5, "sampling_explorer", "size 4.5", lambda: _widget("sampling_explorer", size=4.5), ValueError,
     r"size must be an int >= 2 .* got 4\.5"),
    (5, "draw_quicksort", "n 1", lambda: _widget("draw_quicksort", n=1), ValueError, r"n must be an int >= 2 .* got 1"),
    (5, "quicksort_explorer", "n 6.0", lambda: _widget("quicksort_explorer", n=6.0), ValueError,
     r"n must be an int >= 2 .* got 6\.0"),
    # 6: data odds and ends
    (6, "SortingTask", "user digits with a label of -1", lambda: data_module.SortingTask(
        4, split="test", mnist=_labelled_digits(-1)), ValueError,
     "the digits must cover the classes 0-9 and no others; got a label of -1"),
    (6, "SortingTask", "user digits with a label of 12", lambda: data_module.SortingTask(
        4, split="test", mnist=_labelled_digits(12)), ValueError,
     r"the digits must cover the classes 0-9 and no others; counts per class: \[.*\]"),
    (6, "half_permutation_rows", "a meta tensor", lambda: __import__("ashlib.sort").sort.half_permutation_rows(
        torch.tensor([[0, 1, 1, 0]], device="meta"), 1), ValueError, "meta tensor"),
    # 7: out-of-range tuples
    (7, "flat_index", "(1, 7) in a (4, 5) tensor", lambda: indexing.flat_index(torch.tensor([[0, 1], [1, 7]]), (4, 5)),
     ValueError, r"tuples out of range for shape \(4, 5\): \(1, 7\) lies outside it"),
    (7, "flat_index", "(-1, 0) in a (4, 5) tensor", lambda: indexing.flat_index(torch.tensor([[-1, 0]]), (4, 5)),
     ValueError, r"tuples out of range for shape \(4, 5\): \(-1, 0\)"),
    (7, "contract", "row 4 of 4 with the default validate=True",
     lambda: ashlib.contract(_PAST_END, torch.ones(2, 1), torch.ones(2, 4), (4,)), ValueError,
     r"indices out of range for W of shape \(4, 4\)"),
]


@pytest.mark.parametrize("cls,entry,case,call,error,pattern", ROUND_THREE,
                         ids=[f"{c}. {e}: {case}" for c, e, case, *_ in ROUND_THREE])
def test_round_three_bad_input_is_refused_by_name(cls, entry, case, call, error, pattern):
    with pytest.raises(error, match=pattern):
        call()
    _plt().close("all")


def test_out_of_range_without_validation_is_documented_as_undefined():
    """contract(validate=False) and flat_index(validate=False) are the documented opt-outs: no device sync,
    and an index outside gives an undefined result (the docstrings say so; validate=True is the default)."""
    import inspect

    for function in (ashlib.contract, indexing.flat_index):
        doc = " ".join(function.__doc__.split())
        assert "validate=False" in doc and "undefined result" in doc, function.__name__
        assert inspect.signature(function).parameters["validate"].default is True


# 2: the exercise checker. (exercise, answer returning the wrong kind of thing, what the message must say)
WRONG_RETURNS = [
    ("corner_tuples", lambda mean: "abc", r"your function returned the str 'abc'; expected the 2 nearest tuples"),
    ("proportions", lambda tuples, mean, sigma: {"p": 1.0}, r"returned a dict with keys \['p'\]; expected a tensor "
                                                            r"of shape \(12,\)"),
    ("tuples_per_instance", lambda n, k, a_local, a_global: 64, r"returned the int 64; expected a pair \(tuples, "
                                                                r"fraction\)"),
    ("tuples_per_instance", lambda n, k, a_local, a_global: torch.tensor(64.0), r"returned a float32 tensor of shape "
                                                                               r"\(\); expected a pair"),
    ("sample_weight", lambda o, soft_o: torch.ones(3), r"returned a float32 tensor of shape \(3,\); expected one number"),
    ("diagonal_fraction", lambda means: torch.ones(3), r"returned a float32 tensor of shape \(3,\); expected one number"),
    ("leave_one_out", lambda losses: 1.0, r"returned the float 1\.0; expected a tensor of shape \(3,\)"),
    ("dense_matrix", lambda indices, values, shape: torch.zeros(shape, device="meta"),
     r"returned a meta tensor of shape \(4, 4\) \(a shape without values\); expected a tensor of shape \(4, 4\)"),
    ("mean_gradient", lambda tuples, mean, sigma, costs: torch.zeros(1, device="meta"), r"returned a meta tensor"),
    ("box_around", lambda top, left, canvas: 0.5, r"returned the float 0\.5; expected 4 raw numbers"),
    ("half_permutation", lambda o, d: "rows", r"returned the str 'rows'; expected a tensor of 2 row indices"),
    ("sparse_parameter_count", lambda *args: "12", r"returned the str '12'; expected one number"),
    ("pixel_counts", lambda means, height, width: [None], r"returned a list of 1 entry, which is not numbers"),
]


@pytest.mark.parametrize("name,answer,pattern", WRONG_RETURNS, ids=[f"{n}: {p[:30]}" for n, _, p in WRONG_RETURNS])
def test_exercise_check_says_what_a_wrong_answer_returned(name, answer, pattern, monkeypatch, capsys):
    """A function that returned normally is not blamed for raising: the message says what it returned and what
    the check expected."""
    monkeypatch.delenv("ASHLIB_SOLUTIONS", raising=False)
    assert exercises.check(_named(name, answer), quiet=True) is False
    exercises.check(_named(name, answer))
    out = capsys.readouterr().out
    assert out.startswith("\u274c") and "not yet" in out and "raised" not in out
    assert re.search(pattern, out), out


def test_exercise_check_still_says_when_the_function_itself_raised(monkeypatch, capsys):
    monkeypatch.delenv("ASHLIB_SOLUTIONS", raising=False)
    assert exercises.check(_named("dense_matrix", lambda indices, values, shape: torch.zeros(2)[shape]), quiet=True) is False
    exercises.check(_named("dense_matrix", lambda indices, values, shape: torch.zeros(2)[shape]))
    out = capsys.readouterr().out
    assert "your function raised" in out and "returned" not in out


def test_exercise_check_reports_an_unusable_return_value_it_did_not_foresee(monkeypatch, capsys):
    """The safety net: if a check trips over what came back, the message names the value, not an exception of
    the student's."""
    monkeypatch.delenv("ASHLIB_SOLUTIONS", raising=False)

    def fussy(f):
        return f(1) + 1  # the check itself fails on a str

    monkeypatch.setitem(exercises.EXERCISES, "leave_one_out", ("03.2 a leave-one-out baseline", fussy))
    assert exercises.check(_named("leave_one_out", lambda losses: "x"), quiet=True) is False
    exercises.check(_named("leave_one_out", lambda losses: "x"))
    out = capsys.readouterr().out
    assert "Your function returned the str 'x'" in out and "it expects a tensor with one baseline per loss" in out
    assert "your function raised" not in out
    assert set(exercises.RETURNS) == set(exercises.EXERCISES)


# 3: quicksort's figures for n that is not a power of two draw the padded rounds
@pytest.mark.parametrize("n", [3, 5, 6, 8])
def test_draw_quicksort_draws_every_round_for_any_n(n):
    """n real keys are drawn as bars in every round, the padding (up to the next power of two) as grey bands;
    the round matrices are size x size; keys far apart come out sorted."""
    plt = _plt()
    from matplotlib.colors import to_rgba

    from ashlib.widgets import draw_quicksort, quicksort_explorer

    size = 1 << (n - 1).bit_length()
    rounds = size.bit_length() - 1
    fig, result, keys = draw_quicksort(n, C=10.0, spread=2.0, shuffle=1)
    axes = fig.axes
    assert len(axes) == 2 * (rounds + 1)
    top, bottom = axes[:rounds + 1], axes[rounds + 1:]
    assert len(top[0].patches) == n  # the keys in
    for d in range(1, rounds + 1):
        assert top[d].images[0].get_array().shape == (size, size)
        bars = [p for p in bottom[d].patches if p.get_facecolor() == to_rgba("tab:orange")]
        bands = [p for p in bottom[d].patches if p.get_facecolor() == to_rgba("0.85")]
        assert (len(bars), len(bands), len(bottom[d].patches)) == (n, size - n, size), d
    last = sorted(bars, key=lambda p: p.get_x())
    assert [round(p.get_height(), 6) for p in last] == sorted(round(v, 6) for v in keys[0].tolist())
    torch.testing.assert_close(result.sorted[0, :, 0], keys[0].sort().values)
    widget = quicksort_explorer(n)
    assert {"C", "key spread", "samples", "shuffle"} <= {c.description for c in widget.children
                                                          if hasattr(c, "description")}
    plt.close("all")


# 4: model files edited by hand or damaged past the hash (the record's SHA-256 rewritten to match)
def _model_copy(tmp_path, edit_record=None, weights=None):
    """sort-softsort-n4 copied to tmp_path/m, its record edited, its weights replaced by ``weights`` (bytes)
    with the SHA-256 recorded to match, as a hand edit would leave it."""
    import hashlib

    for suffix in (".pt", ".json"):
        shutil.copy(pretrained.folder() / f"sort-softsort-n4{suffix}", tmp_path / f"m{suffix}")
    record = json.loads((tmp_path / "m.json").read_text())
    if weights is not None:
        (tmp_path / "m.pt").write_bytes(weights)
        record["sha256"] = hashlib.sha256(weights).hexdigest()
    (tmp_path / "m.json").write_text(json.dumps(edit_record(record) if edit_record else record))
    return tmp_path / "m"


def _without(record, key):
    return {k: v for k, v in record.items() if k != key}


def _config(**changes):
    return lambda record: {**record, "config": {**record["config"], **changes}}


MODEL_FILE_FAULTS = [
    ("record without summary", dict(edit_record=lambda r: _without(r, "summary")),
     r"m\.json lacks summary: it was not written by ashlib\.pretrained\.save\(\), or was edited by hand"),
    ("summary a list", dict(edit_record=lambda r: {**r, "summary": [1, 2]}),
     r"m\.json: summary must be a JSON object .* got \[1, 2\]"),
    ("config a string", dict(edit_record=lambda r: {**r, "config": "n=4"}), r"m\.json: config must be a JSON object"),
    ("a 0-byte .pt whose recorded hash matches", dict(weights=b""), r"m\.pt is empty \(0 bytes\), and m\.json records "
                                                                    r"the SHA-256 of an empty file"),
    ("text for weights, hash matching", dict(weights=b"not a torch file"),
     r"m\.pt is not a state dict this torch can read \(\w+Error.*\): the file is damaged"),
    ("a tensor, not a state dict", dict(weights="tensor"), r"m\.pt holds Tensor, not a state dict"),
    ("another model's weights (attention-sparse)", dict(weights="attention-sparse"),
     r"m\.pt does not fit the sorting model that m\.json describes \(Missing key\(s\).*The weights belong to "
     r"another model"),
    ("config width edited (0.25 -> 0.5)", dict(edit_record=_config(width=0.5)),
     r"m\.pt does not fit the sorting model that m\.json describes \(size mismatch for digit_net\.0\.weight.*e\.g\. "
     r"width\) was edited"),
]


@pytest.mark.parametrize("case,change,pattern", MODEL_FILE_FAULTS, ids=[c for c, *_ in MODEL_FILE_FAULTS])
def test_model_files_edited_or_damaged_past_the_hash_are_named(tmp_path, case, change, pattern):
    change = dict(change)
    if change.get("weights") == "tensor":
        import io

        buffer = io.BytesIO()
        torch.save(torch.zeros(3), buffer)
        change["weights"] = buffer.getvalue()
    elif isinstance(change.get("weights"), str):
        change["weights"] = (pretrained.folder() / f"{change['weights']}.pt").read_bytes()
    path = _model_copy(tmp_path, **change)
    with pytest.raises(ValueError, match=pattern):
        pretrained.load_file(path)


def test_saving_a_model_into_an_unwritable_place_is_refused_before_writing(tmp_path):
    config = SortingConfig(n=4)
    target = _under_a_file(tmp_path, "m")
    with pytest.raises(ValueError, match=r"cannot save the model at .*a_file/m: the folder .*a_file exists and is "
                                         r"not a folder"):
        pretrained.save(torch.nn.Linear(1, 1), target, "sorting", config, {}, "")
    with pytest.raises(ValueError, match=r"cannot save the model at .*: its record is not JSON"):
        pretrained.save(torch.nn.Linear(1, 1), tmp_path / "m", "sorting", config, {"when": object()}, "")
    assert not list(tmp_path.glob("m.*")), "nothing is written when the record cannot be"


def test_a_read_only_folder_is_named_before_saving_or_materialising(tmp_path, monkeypatch):
    """A folder that refuses writes (EACCES, as a read-only folder does to a normal user; root writes
    anywhere, so the refusal is simulated at the probe write) is named before anything is written."""
    from ashlib import model_files

    folder = tmp_path / "read_only"
    folder.mkdir()
    real_open = open

    def refusing_open(file, *args, **kwargs):
        if Path(file).parent == folder:
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(model_files, "open", refusing_open, raising=False)
    with pytest.raises(ValueError, match=r"cannot save the model at .*read_only/m: the folder .* is not writable "
                                         r"\(Permission denied\)"):
        pretrained.save(torch.nn.Linear(1, 1), folder / "m", "sorting", SortingConfig(n=4), {}, "")
    with pytest.raises(ValueError, match=r"materialise\(.*read_only/c\.pt'\): the folder .* is not writable"):
        _cluttered().materialise(folder / "c.pt", progress=False)
    assert list(folder.iterdir()) == []


# 6: materialise into a place that cannot be written is named up front, before rendering
def test_materialise_into_an_unwritable_place_names_the_path_before_rendering(tmp_path, monkeypatch):
    ds = _cluttered()
    rendered = []
    monkeypatch.setattr(ds, "render", lambda idx: rendered.append(idx) or torch.zeros(len(idx), 40, 40, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"materialise\('.*a_file/c\.pt'\): the folder .*a_file exists and is not "
                                         r"a folder"):
        ds.materialise(_under_a_file(tmp_path, "c.pt"), progress=False)
    assert rendered == [] and ds._images is None
