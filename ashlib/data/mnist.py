"""MNIST digits: the full set (downloaded once, SHA-256 verified) or the committed offline subset.

:func:`load_mnist` gives the full MNIST (cached under ``data/cache/``) when the machine is
online, else a committed subset of 10,000 real MNIST digits (``data/mnist_offline.npz``); the
result always says which one it is. Both are checked against known hashes on every load.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import os
import sys
import tempfile
import urllib.request
from pathlib import Path
from typing import BinaryIO, Callable, NamedTuple

import numpy as np
import torch

from ..config import show_progress
from .paths import _CHECKOUT_DATA, OFFLINE_FILE, _packaged_data, cache_dir, data_root

# Mirrors tried in order. ossci-datasets is torchvision's mirror, cvdf-datasets TensorFlow
# Datasets' one, yann.lecun.com the original site. Integrity comes from the SHA-256, not the host.
MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)

# file -> (bytes, SHA-256). Source: tensorflow/datasets, tensorflow_datasets/url_checksums/mnist.txt
# (commit 31f1255e57e519a6c004f0b097a2f5cfcf0dde7d), which lists size and SHA-256 of each file
# on the cvdf-datasets mirror; the same four hashes appear in several independent public
# download scripts (e.g. the mirror list / sha256 tables of Ruby torch.rb's MNIST dataset).
MNIST_FILES = {
    "train-images-idx3-ubyte.gz": (9_912_422, "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"),
    "train-labels-idx1-ubyte.gz": (28_881, "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"),
    "t10k-images-idx3-ubyte.gz": (1_648_877, "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"),
    "t10k-labels-idx1-ubyte.gz": (4_542, "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"),
}
_SPLIT_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}

# The committed offline subset: SHA-256 of (images bytes + labels as uint8 bytes) per split,
# printed by data/make_offline_mnist.py. Checked on every load, like the downloaded files.
OFFLINE_SHA256 = {
    "train": "48bcf622923d2461e4d8350251db5af44a5e5361300bc228cc5423aee1315369",
    "test": "b619ff0568beeede45745a5764e0caeb1d2cb4c8727f86a25a4f52d1d9351d9e",
}

_SOURCES = ("auto", "full", "offline")


class DownloadError(ValueError):
    """Full MNIST could not be downloaded or failed verification (the message says what to do)."""


class MNIST(NamedTuple):
    """Digits of one split: uint8 images (N, 28, 28), int64 labels (N,), and where they came from."""

    images: torch.Tensor
    labels: torch.Tensor
    source: str


def fetch_url(url: str, out: BinaryIO, *, progress: bool = True, timeout: float = 30.0) -> None:
    """Write the body of ``url`` to ``out`` (the default fetch of :func:`download_mnist`)."""
    from tqdm.auto import tqdm

    request = urllib.request.Request(url, headers={"User-Agent": "ashlib (python urllib)"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        total = response.headers.get("Content-Length")
        with tqdm(total=int(total) if total else None, unit="B", unit_scale=True, disable=not show_progress(progress),
                  desc=url.rsplit("/", 1)[-1], leave=False) as bar:
            while chunk := response.read(1 << 16):
                out.write(chunk)
                bar.update(len(chunk))


def _file_problem(path: Path, size: int, sha256: str) -> str | None:
    """None if ``path`` has the expected size and SHA-256, else what is wrong with it."""
    actual_size = path.stat().st_size
    if actual_size != size:
        return f"size {actual_size:,} bytes, expected {size:,} (truncated or wrong file)"
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    if digest.hexdigest() != sha256:
        return f"SHA-256 {digest.hexdigest()} does not match the expected {sha256}"
    return None


def _mnist_dir(root) -> Path:
    return cache_dir(root) / "mnist"


def full_mnist_cached(root: str | os.PathLike | None = None) -> bool:
    """True if all four IDX files are in the cache and pass their size and SHA-256 checks."""
    folder = _mnist_dir(root)
    return all((folder / name).is_file() and _file_problem(folder / name, *expected) is None
               for name, expected in MNIST_FILES.items())


def download_mnist(root: str | os.PathLike | None = None, *, fetch: Callable | None = None,
                   mirrors=MIRRORS, progress: bool = True) -> Path:
    """Download the four MNIST IDX files into ``<root>/cache/mnist`` (once) and verify them.

    Each file goes to a temporary file in the same folder, is checked (size, SHA-256) and only
    then renamed into place, so an interrupted or corrupt download never leaves a file that a
    later call trusts; a cached file that fails the check is removed and fetched again.
    ``fetch(url, out, progress=...)`` writes a URL's body to an open binary file (default
    :func:`fetch_url`, looked up at call time so ``ashlib.data.mnist.fetch_url`` can be replaced for
    :func:`load_mnist` too; pass your own for a proxy or for tests). Raises :class:`DownloadError`
    listing what every mirror did. Returns the folder.
    """
    fetch = fetch or fetch_url
    folder = _mnist_dir(root)
    folder.mkdir(parents=True, exist_ok=True)
    for name, (size, sha256) in MNIST_FILES.items():
        target = folder / name
        if target.is_file():
            if _file_problem(target, size, sha256) is None:
                continue
            target.unlink()  # never trusted again; fetch a good copy below
        errors = []
        for mirror in mirrors:
            url = mirror + name
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".part")
            try:
                with os.fdopen(fd, "wb") as out:
                    fetch(url, out, progress=progress)
                    out.flush()
                    os.fsync(out.fileno())
                problem = _file_problem(Path(tmp), size, sha256)
                if problem is None:
                    os.replace(tmp, target)
                    break
                errors.append(f"{url}: {problem}")
            except Exception as error:  # network errors, HTTP errors, a failing custom fetch
                errors.append(f"{url}: {type(error).__name__}: {error}")
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
        else:
            raise DownloadError(
                f"could not get a verified copy of {name}; " + "; ".join(errors)
                + ". Check the network (or pass fetch= for a proxy), or use source='offline' "
                  "for the committed subset of real MNIST digits.")
    return folder


def _read_idx(path: Path, ndim: int) -> np.ndarray:
    """A gzipped IDX file of unsigned bytes with ``ndim`` dimensions, as a numpy array."""
    with gzip.open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 + 4 * ndim or raw[:2] != b"\x00\x00" or raw[2] != 0x08 or raw[3] != ndim:
        raise DownloadError(f"{path} is not an IDX file of {ndim}-d unsigned bytes; delete it and download again")
    dims = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    body = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != math.prod(dims):
        raise DownloadError(f"{path}: header says {dims}, body has {body.size} bytes; delete it and download again")
    return body.reshape(dims).copy()


def _load_full(split: str, root) -> MNIST:
    folder = _mnist_dir(root)
    for name in _SPLIT_FILES[split]:
        problem = _file_problem(folder / name, *MNIST_FILES[name]) if (folder / name).is_file() else "missing"
        if problem:
            raise DownloadError(f"{folder / name}: {problem}; call download_mnist() or "
                                "`python -m ashlib data --source full`")
    images = _read_idx(folder / _SPLIT_FILES[split][0], 3)
    labels = _read_idx(folder / _SPLIT_FILES[split][1], 1)
    if len(images) != len(labels) or images.shape[1:] != (28, 28):
        raise DownloadError(f"{folder}: {images.shape} images but {labels.shape} labels; "
                            "delete the folder and download again")
    return MNIST(torch.from_numpy(images), torch.from_numpy(labels).long(), f"full MNIST, {len(labels):,} digits")


def offline_file(root: str | os.PathLike | None = None) -> Path:
    """Path of the committed offline subset: ``<root>/mnist_offline.npz``, else the checkout's."""
    for folder in (data_root(root), _CHECKOUT_DATA, _packaged_data()):
        if (folder / OFFLINE_FILE).is_file():
            return folder / OFFLINE_FILE
    raise FileNotFoundError(
        f"no {OFFLINE_FILE} in {data_root(root)} or {_CHECKOUT_DATA}: the offline subset ships with the git "
        f"checkout of ashlib (data/{OFFLINE_FILE}); copy it there or pass root= to the folder holding it")


def _load_offline(split: str, root) -> MNIST:
    path = offline_file(root)
    try:
        with np.load(path, allow_pickle=False) as z:
            images, labels = z[f"{split}_images"], z[f"{split}_labels"]
    except (OSError, ValueError, KeyError, EOFError) as error:  # not an npz, truncated, or without this split
        raise ValueError(f"{path} is not the offline subset ({type(error).__name__}: {error}); restore it with "
                         f"`git checkout data/{OFFLINE_FILE}` or pass root= to the folder holding it") from None
    digest = hashlib.sha256(images.astype(np.uint8).tobytes() + labels.astype(np.uint8).tobytes()).hexdigest()
    if digest != OFFLINE_SHA256[split]:
        raise ValueError(f"{path} ({split}) does not match the committed offline subset (content SHA-256 "
                         f"{digest}); restore it with `git checkout data/{OFFLINE_FILE}` or rebuild it "
                         "with data/make_offline_mnist.py")
    return MNIST(torch.from_numpy(images.copy()), torch.from_numpy(labels.astype(np.int64)),
                 f"offline subset, {len(labels):,} digits")


_download_failures: dict[str, str] = {}  # cache folder -> why auto could not download (once per process)
_notified: set[str] = set()


def load_mnist(split: str = "train", source: str = "auto", root: str | os.PathLike | None = None) -> MNIST:
    """MNIST digits of one split as ``(images, labels, source)``; full data when it can be had.

    ``source="full"``: the standard 60,000 / 10,000 digits, downloaded once (SHA-256 verified).
    ``"offline"``: the committed subset of real MNIST (8,000 train / 2,000 test digits, see
    data/README.md). ``"auto"``: full if cached or downloadable, else offline with a one-line
    notice. ``source`` of the result says which, with the number of digits.
    """
    if split not in _SPLIT_FILES:
        raise ValueError(f"split must be 'train' or 'test', not {split!r}")
    if source not in _SOURCES:
        raise ValueError(f"source must be one of {', '.join(_SOURCES)}, not {source!r}")
    if source == "offline":
        return _load_offline(split, root)
    if source == "full":
        try:
            download_mnist(root)
        except DownloadError:
            raise
        except OSError as error:  # root is a file, or not writable: say so instead of a mkdir trace
            raise DownloadError(f"cannot store full MNIST under {_mnist_dir(root)}: {error}. Pass root= to a "
                                "writable folder, or use source='offline'") from None
        return _load_full(split, root)
    key = str(_mnist_dir(root).resolve())
    if full_mnist_cached(root):
        return _load_full(split, root)
    if key not in _download_failures:
        try:
            download_mnist(root)
            return _load_full(split, root)
        except (DownloadError, OSError) as error:  # OSError: a root that is a file or not writable
            _download_failures[key] = str(error)
    data = _load_offline(split, root)
    if key not in _notified:
        _notified.add(key)
        other = "test" if split == "train" else "train"
        n_other = len(_load_offline(other, root).labels)
        print(f"ashlib.data: full MNIST is not cached and could not be downloaded; using the offline subset of "
              f"real MNIST ({split} {len(data.labels):,} / {other} {n_other:,} digits). Online, run "
              "`python -m ashlib data --source full` once.", file=sys.stderr)
    return data


def _digits_from(mnist, split: str, source: str, root) -> MNIST:
    """Digits given by the user (an MNIST tuple or (images, labels)), or loaded; checked."""
    if split not in _SPLIT_FILES:
        raise ValueError(f"split must be 'train' or 'test', not {split!r}")
    if mnist is None:
        return load_mnist(split, source, root)
    images, labels = mnist[0], mnist[1]
    name = mnist[2] if len(mnist) > 2 else f"user digits, {len(labels):,} digits"
    images, labels = torch.as_tensor(images), torch.as_tensor(labels)
    if images.dtype != torch.uint8 or images.dim() != 3 or images.shape[1:] != (28, 28):
        raise ValueError(f"digit images must be uint8 (N, 28, 28), got {tuple(images.shape)} {images.dtype}")
    if labels.shape != (len(images),):
        raise ValueError(f"labels must have shape ({len(images)},), got {tuple(labels.shape)}")
    return MNIST(images, labels.long(), name)


def _subseed(*keys) -> int:
    """A 63-bit seed derived from ``keys``, the same on every platform and Python run."""
    return int.from_bytes(hashlib.sha256(repr(keys).encode()).digest()[:8], "little") >> 1
