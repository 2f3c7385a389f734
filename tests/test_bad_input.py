"""Bad input and faults (issue 13): a clear ValueError, or a documented correct result, never a
silent NaN or a crash deep inside. Each test states the expected behaviour independently."""

import json
import math
import shutil

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
    pooled = ashlib.SparseLayer(256, 256, 256, a_local=2, a_global=2, region=4)  # 4 * 256 * 256 * 8 * 2 * 4 B = 16 MiB
    with pytest.raises(ValueError, match=r"pass chunk_size=16 or smaller"):
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


# ------------------------------------------------------------------ the probe's table (scripts/probe_bad_input.py)
# Every case the probe found wrong and that was fixed outside the sampler, layers and contraction: the
# exception type, and a message that names the argument. New entry points join these tables.


def _glimpse(in_size=(20, 20), glimpse_size=4, **kw):
    args = dict(a_local=2, a_global=2, region=(5, 5))
    args.update(kw)
    return glimpse.SparseGlimpse(in_size, glimpse_size, **args)


def _source(**kw):
    return glimpse_models.SourceNetwork(1, 1, (16, 16), hidden=8, **kw)


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
    ("SortingConfig", dict(key_network="resnet"), "key_network"),
    ("SortingConfig", dict(straight_through=1), "straight_through"),
    ("SortingConfig", dict(method="neuralsort", straight_through=True), "straight_through"),
    ("SortingConfig", dict(neighbours="yes"), "neighbours"),
    ("SortingConfig", dict(method="softsort", neighbours=True), "neighbours"),
    ("SortingConfig", dict(C_final=0.0), "C_final"),
    ("SortingConfig", dict(method="neuralsort", C_final=100.0), "C_final"),
    ("SortingConfig", dict(method="neuralsort", standardise_keys=True), "standardise_keys"),
    ("SortingConfig", dict(standardise_keys=1), "standardise_keys"),
    ("SortingConfig", dict(start_from=3), "start_from"),
    ("SortingConfig", dict(start_from=""), "start_from"),
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
    (lambda r: json.dumps({**r, "config": {**r["config"], "colour": "red"}}),
     r"m\.json: its config does not fit"),
], ids=["not JSON", "no experiment", "unknown config key"])
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

    code = main(["sort", "--n", "4", "--iterations", "1", "--source", "offline", "--checkpoint-every", "-1",
                 "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and "checkpoint_every must be" in err and "Traceback" not in err
