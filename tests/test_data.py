"""ashlib.data: MNIST (offline subset, verified download), cluttered MNIST, sorting tasks.

No network: downloads are served from a local HTTP server on 127.0.0.1 or by an injected fetch.
Expected values come from independent computations (a plain-loop renderer, published class
counts, image-by-image lookups), not from the code under test.
"""

import functools
import gzip
import hashlib
import http.server
import threading

import numpy as np
import pytest
import torch

from ashlib.data import mnist
from ashlib.cli import main
from ashlib.data import OFFLINE_FILE, ClutteredMNIST, DownloadError, SortingTask, cache_dir, load_mnist

# Class counts of the first 10,000 images of the MNIST training set, as published independently
# of this project; the npm package holds exactly these 10,000 digits (see data/README.md).
FIRST_10K_TRAIN_COUNTS = [1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978]


@pytest.fixture(scope="module")
def offline():
    return {split: load_mnist(split, source="offline") for split in ("train", "test")}


def _keys(images):
    return [img.numpy().tobytes() for img in images]


# ---------------------------------------------------------------- offline subset

def test_offline_shapes_dtypes_and_source(offline):
    for split, n in (("train", 8000), ("test", 2000)):
        d = offline[split]
        assert d.images.shape == (n, 28, 28) and d.images.dtype == torch.uint8
        assert d.labels.shape == (n,) and d.labels.dtype == torch.int64
        assert d.source == f"offline subset, {n:,} digits"
        assert int(d.images.max()) == 255 and int(d.images.min()) == 0
        assert 20 < d.images.float().mean() < 50  # MNIST's mean intensity is about 33/255


def test_offline_labels_balanced_and_complete(offline):
    test_counts = torch.bincount(offline["test"].labels, minlength=10).tolist()
    train_counts = torch.bincount(offline["train"].labels, minlength=10).tolist()
    assert test_counts == [200] * 10
    assert [a + b for a, b in zip(train_counts, test_counts)] == FIRST_10K_TRAIN_COUNTS
    # shuffled: the first 100 digits of a split already hold every class
    assert set(offline["train"].labels[:100].tolist()) == set(range(10))


def test_offline_splits_are_disjoint(offline):
    train, test = set(_keys(offline["train"].images)), set(_keys(offline["test"].images))
    assert len(train) == 8000 and len(test) == 2000  # no duplicates inside a split either
    assert not train & test
    with np.load(mnist.offline_file(), allow_pickle=False) as z:
        origins = z["train_origin"].tolist(), z["test_origin"].tolist()
    assert not set(origins[0]) & set(origins[1])
    assert sorted(origins[0] + origins[1]) == list(range(10_000))


def test_offline_is_deterministic(offline):
    again = load_mnist("test", source="offline")
    assert torch.equal(again.images, offline["test"].images) and torch.equal(again.labels, offline["test"].labels)


def test_modified_offline_file_is_rejected(tmp_path):
    with np.load(mnist.offline_file(), allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["train_images"] = arrays["train_images"].copy()
    arrays["train_images"][0, 14, 14] ^= 1
    np.savez_compressed(tmp_path / OFFLINE_FILE, **arrays)
    with pytest.raises(ValueError, match="does not match the committed offline subset"):
        load_mnist("train", source="offline", root=tmp_path)
    assert load_mnist("test", source="offline", root=tmp_path).source == "offline subset, 2,000 digits"


@pytest.mark.parametrize("kwargs, message", [({"split": "val"}, "split must be"),
                                             ({"source": "internet"}, "source must be")])
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        load_mnist(**kwargs)


# ---------------------------------------------------------------- full MNIST download

def _idx(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return gzip.compress(header + array.astype(np.uint8).tobytes(), mtime=0)


@pytest.fixture
def fake_mnist(monkeypatch):
    """Small valid IDX files, with MNIST_FILES pointing at their sizes and hashes."""
    rng = np.random.default_rng(0)
    arrays = {"train": (rng.integers(0, 256, (30, 28, 28)), rng.integers(0, 10, 30)),
              "test": (rng.integers(0, 256, (12, 28, 28)), rng.integers(0, 10, 12))}
    files = {}
    for split, (images, labels) in arrays.items():
        files[mnist._SPLIT_FILES[split][0]] = _idx(images)
        files[mnist._SPLIT_FILES[split][1]] = _idx(labels)
    expected = {name: (len(b), hashlib.sha256(b).hexdigest()) for name, b in files.items()}
    monkeypatch.setattr(mnist, "MNIST_FILES", expected)
    monkeypatch.setattr(mnist, "_download_failures", {})
    monkeypatch.setattr(mnist, "_notified", set())
    return arrays, files


def _serve(files):
    """fetch(url, out) that serves ``files`` by name, recording the URLs asked for."""
    asked = []

    def fetch(url, out, progress=True):
        asked.append(url)
        name = url.rsplit("/", 1)[-1]
        if name not in files:
            raise OSError(f"404 {url}")
        out.write(files[name])

    return fetch, asked


def _leftovers(root):
    folder = cache_dir(root) / "mnist"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


@pytest.fixture
def local_server(tmp_path, monkeypatch):
    """An HTTP server on 127.0.0.1 serving tmp_path/served."""
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    served = tmp_path / "served"
    served.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(served)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield served, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def test_truncated_download_from_local_server_is_rejected(tmp_path, local_server):
    served, url = local_server
    name = "train-images-idx3-ubyte.gz"
    size, _ = mnist.MNIST_FILES[name]
    (served / name).write_bytes(b"\x1f\x8b" + bytes(998))  # a truncated gzip, served with the real fetch
    root = tmp_path / "root"
    with pytest.raises(DownloadError, match=r"train-images-idx3-ubyte\.gz.*size 1,000 bytes, expected 9,912,422"):
        mnist.download_mnist(root, mirrors=[url], progress=False)
    assert _leftovers(root) == []  # no partial file, no trusted file
    assert not mnist.full_mnist_cached(root)


def test_download_from_local_server_with_the_real_fetch(tmp_path, local_server, fake_mnist):
    served, url = local_server
    arrays, files = fake_mnist
    for name, content in files.items():
        (served / name).write_bytes(content)
    mnist.download_mnist(tmp_path, mirrors=["http://127.0.0.1:9/nothing/", url], progress=False)
    assert _leftovers(tmp_path) == sorted(files)
    d = load_mnist("test", source="full", root=tmp_path)
    assert np.array_equal(d.images.numpy(), arrays["test"][0]) and np.array_equal(d.labels.numpy(), arrays["test"][1])


def test_corrupt_download_of_the_right_size_is_rejected(tmp_path, fake_mnist):
    arrays, files = fake_mnist
    name = "train-labels-idx1-ubyte.gz"
    bad = dict(files)
    bad[name] = files[name][:-1] + bytes([files[name][-1] ^ 0xFF])
    fetch, _ = _serve(bad)
    with pytest.raises(DownloadError, match="SHA-256 .* does not match"):
        mnist.download_mnist(tmp_path, fetch=fetch, mirrors=["https://a/"], progress=False)
    # the file before it was good and stays; the corrupt one left nothing behind
    assert _leftovers(tmp_path) == ["train-images-idx3-ubyte.gz"]
    with pytest.raises(DownloadError, match="missing"):
        mnist._load_full("train", tmp_path)


def test_interrupted_download_leaves_nothing(tmp_path, fake_mnist):
    def fetch(url, out, progress=True):
        out.write(b"\x1f\x8b partial")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        mnist.download_mnist(tmp_path, fetch=fetch, mirrors=["https://a/"], progress=False)
    assert _leftovers(tmp_path) == []


def test_verified_download_loads_and_replaces_a_corrupt_cached_file(tmp_path, fake_mnist):
    arrays, files = fake_mnist
    folder = cache_dir(tmp_path) / "mnist"
    folder.mkdir(parents=True)
    (folder / "t10k-images-idx3-ubyte.gz").write_bytes(b"garbage from an old run")
    serve, asked = _serve(files)

    def fetch(url, out, progress=True):  # the first mirror is down: every file comes from the second
        if url.startswith("https://down/"):
            raise OSError("unreachable")
        serve(url, out)

    mnist.download_mnist(tmp_path, fetch=fetch, mirrors=["https://down/", "https://ok/"], progress=False)
    assert _leftovers(tmp_path) == sorted(files)
    for name, content in files.items():
        assert (folder / name).read_bytes() == content
    for split, (images, labels) in arrays.items():
        d = mnist._load_full(split, tmp_path)
        assert d.images.dtype == torch.uint8 and d.labels.dtype == torch.int64
        assert np.array_equal(d.images.numpy(), images) and np.array_equal(d.labels.numpy(), labels)
        assert d.source == f"full MNIST, {len(labels):,} digits"
    assert len(asked) == 4 and all(url.startswith("https://ok/") for url in asked)
    # cached and verified now: auto and full take it without fetching anything
    assert load_mnist("test", source="auto", root=tmp_path).source == "full MNIST, 12 digits"
    assert load_mnist("train", source="full", root=tmp_path).source == "full MNIST, 30 digits"
    assert len(asked) == 4


def test_auto_falls_back_to_offline_with_one_notice(tmp_path, fake_mnist, monkeypatch, capsys):
    calls = []

    def no_network(url, out, progress=True):
        calls.append(url)
        raise OSError("Name or service not known")

    monkeypatch.setattr(mnist, "fetch_url", no_network)
    first = load_mnist("train", source="auto", root=tmp_path)
    assert first.source == "offline subset, 8,000 digits"
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "offline subset" in err and "8,000" in err and "2,000" in err
    tried = len(calls)
    assert tried == len(mnist.MIRRORS)  # the first file on every mirror, then it gave up
    second = load_mnist("test", source="auto", root=tmp_path)
    assert second.source == "offline subset, 2,000 digits"
    assert capsys.readouterr().err == "" and len(calls) == tried  # no second notice, no second attempt
    assert _leftovers(tmp_path) == []
    with pytest.raises(DownloadError, match="source='offline'"):
        load_mnist("train", source="full", root=tmp_path)


# ---------------------------------------------------------------- cluttered MNIST

def _reference_canvas(ds, i, images):
    """Item i drawn with plain loops from its layout, in the recipe's order (numpy, float64)."""
    lay = ds.layout(i)
    canvas = np.zeros((ds.size, ds.size))
    s = ds.distractor_size
    for src, (cy, cx), (ty, tx) in zip(lay.distractor_index, lay.crop_yx, lay.distractor_yx):
        canvas[ty:ty + s, tx:tx + s] += images[src, cy:cy + s, cx:cx + s] / 255.0
    canvas = np.minimum(canvas, 1.0)
    y, x = lay.digit_yx
    canvas[y:y + 28, x:x + 28] += images[lay.digit_index] / 255.0
    return np.clip(canvas, 0.0, 1.0)


@pytest.fixture(scope="module")
def cluttered(offline):
    return ClutteredMNIST("test", length=3000, seed=3, mnist=offline["test"])


def test_digit_alone_is_placed_intact(offline):
    ds = ClutteredMNIST("test", size=60, n_distractors=0, length=40, seed=1, mnist=offline["test"])
    source = offline["test"]
    for i in range(40):
        image, label = ds[i]
        assert image.shape == (1, 60, 60) and image.dtype == torch.float32
        lay = ds.layout(i)
        y, x = lay.digit_yx
        assert 0 <= y <= 32 and 0 <= x <= 32
        assert label == lay.label == int(source.labels[lay.digit_index])
        expected = torch.zeros(60, 60)
        expected[y:y + 28, x:x + 28] = source.images[lay.digit_index].float() / 255
        assert torch.equal(image[0], expected)


def test_cluttered_matches_a_loop_reference(cluttered, offline):
    images = offline["test"].images.numpy().astype(np.float64)
    batch, labels = cluttered.batch(range(0, 3000, 150))
    for k, i in enumerate(range(0, 3000, 150)):
        reference = _reference_canvas(cluttered, i, images)
        np.testing.assert_allclose(batch[k, 0].numpy(), reference, atol=1e-6, rtol=0)
        assert labels[k] == offline["test"].labels[cluttered.layout(i).digit_index]


def test_cluttered_target_intact_and_values_in_range(cluttered, offline):
    images, _ = cluttered.batch(range(200))
    assert images.min() >= 0 and images.max() <= 1
    assert torch.allclose(images * 255, (images * 255).round(), atol=1e-3)  # multiples of 1/255, as MNIST
    s = cluttered.distractor_size
    untouched_pixels = 0
    for i in range(200):
        lay = cluttered.layout(i)
        y, x = lay.digit_yx
        digit = offline["test"].images[lay.digit_index].float() / 255
        region = images[i, 0, y:y + 28, x:x + 28]
        assert (region >= digit - 1e-7).all()  # clutter only adds
        covered = torch.zeros(cluttered.size, cluttered.size, dtype=torch.bool)
        for ty, tx in lay.distractor_yx:
            covered[ty:ty + s, tx:tx + s] = True
        free = ~covered[y:y + 28, x:x + 28]
        assert torch.equal(region[free], digit[free])  # exactly the digit wherever no crop landed
        untouched_pixels += int(free.sum())
    assert untouched_pixels > 0.8 * 200 * 784


def test_right_number_of_distractors_from_other_digits(cluttered):
    n = len(cluttered.digits.labels)
    assert cluttered.distractor_index.shape == (3000, 8)
    assert (cluttered.distractor_index != cluttered.digit_index[:, None]).all()
    assert cluttered.distractor_index.min() >= 0 and cluttered.distractor_index.max() < n
    assert cluttered.crop_yx.min() >= 0 and cluttered.crop_yx.max() == 28 - 8
    assert cluttered.distractor_yx.min() == 0 and cluttered.distractor_yx.max() == 100 - 8
    assert cluttered.digit_yx.min() == 0 and cluttered.digit_yx.max() == 100 - 28
    # mass count on flat digits (every pixel 1/255, so nothing clips): digit + 8 crops of 64 pixels
    flat = (torch.ones(50, 28, 28, dtype=torch.uint8), torch.arange(50) % 10)
    for nd in (0, 1, 5, 8):
        ds = ClutteredMNIST("train", n_distractors=nd, length=20, mnist=flat)
        images, _ = ds.batch(range(20))
        assert ((images * 255).round().sum(dim=(1, 2, 3)) == 784 + 64 * nd).all()


def test_cluttered_is_reproducible_and_prefix_stable(cluttered, offline):
    same = ClutteredMNIST("test", length=1500, seed=3, mnist=offline["test"])
    other = ClutteredMNIST("test", length=1500, seed=4, mnist=offline["test"])
    idx = [0, 7, 1023, 1024, 1499]
    a, b, c = cluttered.batch(idx)[0], same.batch(idx)[0], other.batch(idx)[0]
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert torch.equal(cluttered[1024][0], same[1024][0])


def test_each_digit_once_per_pass(offline):
    ds = ClutteredMNIST("test", length=4000, mnist=offline["test"], n_distractors=1)
    assert sorted(ds.digit_index[:2000].tolist()) == list(range(2000))
    assert sorted(ds.digit_index[2000:].tolist()) == list(range(2000))
    assert not torch.equal(ds.digit_index[:2000], ds.digit_index[2000:])


def test_materialise_writes_a_cache_file_and_reloads(tmp_path, offline):
    ds = ClutteredMNIST("test", size=40, length=70, seed=2, root=tmp_path, mnist=offline["test"])
    on_the_fly = ds.batch(range(70))[0]
    path = ds.materialise(batch_size=32, progress=False)
    assert path.parent == tmp_path / "cache" / "cluttered" and path.is_file()
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp file left
    assert torch.equal(ds.batch(range(70))[0], on_the_fly)
    fresh = ClutteredMNIST("test", size=40, length=70, seed=2, root=tmp_path, mnist=offline["test"])
    assert fresh.materialise(progress=False) == path
    assert torch.equal(fresh[69][0], on_the_fly[69])
    different = ClutteredMNIST("test", size=40, length=70, seed=5, root=tmp_path, mnist=offline["test"])
    with pytest.raises(ValueError, match="different cluttered set"):
        different.materialise(path, progress=False)


def test_cluttered_works_with_a_dataloader_and_says_its_source(cluttered):
    loader = torch.utils.data.DataLoader(cluttered, batch_size=16)
    images, labels = next(iter(loader))
    assert images.shape == (16, 1, 100, 100) and labels.dtype == torch.int64
    assert "offline subset, 2,000 digits" in cluttered.source and "3,000 images" in cluttered.source


@pytest.mark.parametrize("kwargs, message", [
    ({"size": 20}, "size must be at least 28"), ({"n_distractors": -1}, "n_distractors"),
    ({"distractor_size": 29}, "distractor_size"), ({"length": 0}, "length"),
    ({"size": 50.0}, "size must be an int"), ({"split": "val"}, "split must be"),
])
def test_cluttered_bad_arguments(kwargs, message, offline):
    with pytest.raises(ValueError, match=message):
        ClutteredMNIST(**{"split": "test", "mnist": offline["test"], **kwargs})


# ---------------------------------------------------------------- sorting task

def test_sorting_permutations_sort_the_numbers(offline):
    task = SortingTask(16, digits=3, split="test", seed=0, mnist=offline["test"])
    images, numbers, perm = task.sample(256)
    assert images.shape == (256, 16, 3, 28, 28) and images.dtype == torch.float32
    assert numbers.dtype == perm.dtype == torch.int64 and numbers.shape == perm.shape == (256, 16)
    assert numbers.min() >= 0 and numbers.max() < 1000
    for row_numbers, row_perm in zip(numbers.tolist(), perm.tolist()):
        assert sorted(row_perm) == list(range(16))
        assert [row_numbers[j] for j in row_perm] == sorted(row_numbers)
        # ties keep their input order (stable), so perm is unique
        for a, b in zip(row_perm, row_perm[1:]):
            assert row_numbers[a] < row_numbers[b] or a < b
    assert any(len(set(r)) < 16 for r in numbers.tolist())  # ties do occur at this size


def test_sorting_images_are_real_digits_of_the_right_class(offline):
    source = offline["test"]
    label_of = dict(zip(_keys(source.images), source.labels.tolist()))
    task = SortingTask(4, digits=3, split="test", seed=1, mnist=source)
    images, numbers, _ = task.sample(32)
    as_uint8 = (images * 255).round().to(torch.uint8)
    for b in range(32):
        for j in range(4):
            written = f"{int(numbers[b, j]):03d}"
            for k in range(3):
                assert label_of[as_uint8[b, j, k].numpy().tobytes()] == int(written[k])


def test_sorting_draws_uniformly_within_each_class():
    # 300 digits whose pixels encode their own index; 30 per class
    index = torch.arange(300)
    images = torch.zeros(300, 28, 28, dtype=torch.uint8)
    images[:, 0, 0], images[:, 0, 1] = (index % 256).to(torch.uint8), (index // 256).to(torch.uint8)
    task = SortingTask(8, digits=2, seed=0, mnist=(images, index % 10))
    batch, numbers, _ = task.sample(1000)
    raw = (batch[..., 0, :2] * 255).round().long()
    used = raw[..., 0] + 256 * raw[..., 1]  # (b, n, digits)
    written = torch.stack([numbers // 10, numbers % 10], dim=-1)
    assert torch.equal(used % 10, written)  # the right class
    counts = torch.bincount(used.reshape(-1), minlength=300).float()
    per_class = torch.bincount(written.reshape(-1), minlength=10).float()
    expected = per_class[index % 10] / 30
    assert counts.min() > 0  # every image of a class gets used ...
    assert ((counts - expected).abs() < 5 * expected.sqrt()).all()  # ... about equally often


def test_sorting_is_deterministic_and_distinct_option(offline):
    a = SortingTask(8, seed=5, split="test", mnist=offline["test"]).sample(4)
    b = SortingTask(8, seed=5, split="test", mnist=offline["test"]).sample(4)
    c = SortingTask(8, seed=6, split="test", mnist=offline["test"]).sample(4)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not torch.equal(a[1], c[1])
    _, numbers, perm = SortingTask(8, digits=1, seed=0, distinct=True, mnist=offline["test"]).sample(64)
    assert all(len(set(r)) == 8 for r in numbers.tolist())
    assert all([r[j] for j in p] == sorted(r) for r, p in zip(numbers.tolist(), perm.tolist()))
    with pytest.raises(ValueError, match="distinct"):  # 16 distinct one-digit numbers do not exist
        SortingTask(16, digits=1, distinct=True, mnist=offline["test"])


@pytest.mark.parametrize("kwargs, message", [({"n": 0}, "n "), ({"digits": 0}, "digits"), ({"digits": 19}, "digits")])
def test_sorting_bad_arguments(kwargs, message, offline):
    args = {"n": 4, **kwargs}
    with pytest.raises(ValueError, match=message):
        SortingTask(mnist=offline["test"], **args)


# ---------------------------------------------------------------- command line

def test_data_command_offline(capsys):
    assert main(["data", "--source", "offline"]) == 0
    out = capsys.readouterr().out
    assert "offline subset, 8,000 digits" in out and "offline subset, 2,000 digits" in out
    assert "share 0 identical images (disjoint)" in out
    assert "200 200 200 200 200 200 200 200 200 200" in out
