"""Bad input and faults (issue 13): a clear ValueError, or a documented correct result, never a
silent NaN or a crash deep inside. Each test states the expected behaviour independently."""

import math

import pytest
import torch

import ashlib
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
    with pytest.raises(ValueError, match="min_sigma > 0"):
        ashlib.SparseLayer(8, 8, 8, a_local=2, a_global=2, region=3, min_sigma=0)
    with pytest.raises(ValueError, match="min_sigma > 0"):
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
    from ashlib.attention import SparseGlimpse

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

    def no_network(*args, **kwargs):
        raise OSError("no network in this test")

    monkeypatch.setattr(data, "fetch_url", no_network)
    monkeypatch.setattr(data, "_download_failures", {})
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
