"""Data for the attention and sorting experiments: MNIST, cluttered MNIST, sorting tasks.

* :func:`load_mnist` - the full MNIST (downloaded once, SHA-256 verified, cached under
  ``data/cache/``) when the machine is online, else a committed subset of 10,000 real MNIST
  digits (``data/mnist_offline.npz``). The result always says which one it is.
* :class:`ClutteredMNIST` - the public mnist-cluttered recipe (one digit at a uniform position
  in a ``size x size`` canvas plus ``n_distractors`` random crops of other digits), deterministic
  for a seed, rendered on the fly or materialised to a cached file.
* :class:`SortingTask` - batches of ``n`` random numbers, each written with real MNIST digit
  images, plus the permutation that sorts them.

Where files live: ``root`` (default: the checkout's ``data/`` directory, or ``~/.cache/ashlib``
for an installed package) holds ``mnist_offline.npz``; downloads and generated sets go to
``root/cache/`` (git-ignored).
"""

from __future__ import annotations

import gzip
import hashlib
import math
import os
import sys
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable, NamedTuple

import numpy as np
import torch

from .config import max_tensor_bytes, show_progress

# --------------------------------------------------------------------------------------------
# where files live

_PACKAGE_DIR = Path(__file__).resolve().parent
_CHECKOUT_DATA = _PACKAGE_DIR.parent / "data"
OFFLINE_FILE = "mnist_offline.npz"


def _packaged_data() -> Path:
    """The repository's data/ as a wheel installs it: ``ashlib/resources`` (package ``ashlib.resources``)."""
    return _PACKAGE_DIR / "resources"


def shipped_data() -> Path:
    """Where the shipped files (offline digits, pretrained models) are: the checkout's data/ or the wheel's copy."""
    if (_CHECKOUT_DATA / OFFLINE_FILE).is_file():
        return _CHECKOUT_DATA
    packaged = _packaged_data()
    if packaged.is_dir():
        return packaged
    raise FileNotFoundError("ashlib's shipped data is missing: neither the checkout's data/ nor the installed "
                            "ashlib.resources exists; reinstall ashlib")


def data_root(root: str | os.PathLike | None = None) -> Path:
    """The data directory: ``root`` if given, else the checkout's ``data/``, else ~/.cache/ashlib."""
    if root is not None:
        if not isinstance(root, (str, os.PathLike)):
            raise ValueError(f"root must be a folder (a str or a path), got {root!r} ({type(root).__name__})")
        return Path(root).expanduser()
    if _CHECKOUT_DATA.is_dir() and (_CHECKOUT_DATA.parent / "pyproject.toml").is_file():
        return _CHECKOUT_DATA
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "ashlib"


def cache_dir(root: str | os.PathLike | None = None) -> Path:
    """Downloads and generated sets: ``<data_root>/cache`` (git-ignored in the checkout)."""
    return data_root(root) / "cache"


# --------------------------------------------------------------------------------------------
# full MNIST: the four IDX files

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
    :func:`fetch_url`, looked up at call time so ``ashlib.data.fetch_url`` can be replaced for
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


# --------------------------------------------------------------------------------------------
# cluttered MNIST

PAPER_LENGTH = {"train": 60_000, "test": 10_000}


@dataclass(frozen=True)
class ClutterLayout:
    """Where item i's digit and distractors went (all coordinates: top-left corner, row then column)."""

    digit_index: int  # index of the target digit in the source split
    label: int
    digit_yx: tuple[int, int]  # the 28 x 28 digit covers [y, y + 28) x [x, x + 28)
    distractor_index: list[int]  # source digits the distractors were cut from
    crop_yx: list[tuple[int, int]]  # top-left of each crop inside its source digit
    distractor_yx: list[tuple[int, int]]  # top-left of each crop on the canvas


def _as_indices(indices) -> torch.Tensor:
    """Integer indices as a flat long tensor; floats are refused (1.5 must not become item 1)."""
    try:
        idx = torch.as_tensor(indices)
    except (TypeError, ValueError, RuntimeError) as error:
        raise TypeError(f"indices must be integers (a list, array or tensor), got {indices!r}: {error}") from None
    if idx.numel() == 0:
        return torch.zeros(0, dtype=torch.long)
    if idx.is_floating_point() or idx.is_complex() or idx.dtype == torch.bool:
        raise TypeError(f"indices must be integers, got {idx.dtype}")
    return idx.long().reshape(-1)


MAX_DISTRACTORS = 1_000
"""A canvas of side 100 is covered many times over by 1,000 crops of 8 x 8; more is a typo."""


class ClutteredMNIST(torch.utils.data.Dataset):
    """Cluttered MNIST (the mnist-cluttered recipe of the paper's attention experiment), seeded.

    Item i is ``(image, label)``: a float image (1, size, size) in [0, 1] holding one MNIST
    digit at a uniform position fully inside the canvas plus ``n_distractors`` crops of
    ``distractor_size`` x ``distractor_size`` pixels, each cut at a uniform position from another
    uniformly chosen digit of the same split and added at a uniform position; sums are clipped
    to 1, as in the recipe. Target digits run through seeded permutations of the split (each
    digit once per pass, as the recipe does), so with full MNIST the paper's 60,000 / 10,000 use
    every digit once; the offline subset repeats its digits with fresh positions and clutter.

    Everything is drawn from the seed in blocks of 1,024 items, so item i is the same whatever
    ``length``; items are rendered on the fly (vectorised over a batch, see :meth:`batch`) or
    all at once by :meth:`materialise`, which caches them. :meth:`layout` says where things went.
    """

    BLOCK = 1024

    def __init__(self, split: str = "train", size: int = 100, n_distractors: int = 8, distractor_size: int = 8,
                 seed: int = 0, *, length: int | None = None, source: str = "auto", root=None, mnist=None):
        for name, value in (("size", size), ("n_distractors", n_distractors), ("distractor_size", distractor_size),
                            ("seed", seed)):
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
                raise ValueError(f"{name} must be an int, got {value!r}")
        if split not in PAPER_LENGTH:
            raise ValueError(f"split must be 'train' or 'test', not {split!r}")
        if size < 28:
            raise ValueError(f"size must be at least 28 (an MNIST digit is 28 x 28), got {size}")
        if n_distractors < 0:
            raise ValueError(f"n_distractors must be >= 0, got {n_distractors}")
        if n_distractors > MAX_DISTRACTORS:
            raise ValueError(f"n_distractors = {n_distractors:,} is more than {MAX_DISTRACTORS:,}: the layout of every "
                             "canvas is planned up front (about 32 bytes per distractor and canvas)")
        if not 1 <= distractor_size <= 28:
            raise ValueError(f"distractor_size must be between 1 and 28 (crops come from 28 x 28 digits), "
                             f"got {distractor_size}")
        self.split, self.size, self.seed = split, int(size), int(seed)
        self.n_distractors, self.distractor_size = int(n_distractors), int(distractor_size)
        if length is not None and (isinstance(length, bool) or not isinstance(length, (int, np.integer))):
            raise ValueError(f"length must be None (the paper's 60,000 / 10,000) or an int >= 1, got {length!r}")
        self.length = PAPER_LENGTH.get(split, 0) if length is None else int(length)
        if self.length < 1:
            raise ValueError(f"length must be >= 1, got {length}")
        plan = self.length * 8 * (5 + 5 * self.n_distractors)  # int64 positions and sources, planned up front
        if plan > max_tensor_bytes():
            raise ValueError(f"length = {self.length:,} canvases with {self.n_distractors} distractors need about "
                             f"{plan / 2**30:.1f} GiB for their layout alone (planned up front); use a smaller length, "
                             "or raise ASHLIB_MAX_POOL_GIB")
        self.digits = _digits_from(mnist, split, source, root)
        self._root = root
        n = len(self.digits.labels)
        if n < 1 or (n < 2 and self.n_distractors):
            raise ValueError(f"need at least 2 source digits for distractors from other digits, got {n}")
        self._plan()
        self._images = None  # uint8 (length, size, size) once materialised

    @property
    def source(self) -> str:
        """One line: the set and the digits it was made from."""
        return (f"cluttered MNIST {self.split}, {self.length:,} images {self.size}x{self.size}, "
                f"{self.n_distractors} distractors of {self.distractor_size}x{self.distractor_size}, seed {self.seed}, "
                f"from {self.digits.source}")

    def __repr__(self) -> str:
        return f"ClutteredMNIST({self.source})"

    def __len__(self) -> int:
        return self.length

    def _plan(self) -> None:
        """Draw every random choice for ``length`` items (block by block, so prefixes agree)."""
        n, s, nd, ds = len(self.digits.labels), self.size, self.n_distractors, self.distractor_size
        blocks = -(-self.length // self.BLOCK)
        passes = -(-blocks * self.BLOCK // n)
        order = torch.cat([torch.randperm(n, generator=torch.Generator().manual_seed(
            _subseed("cluttered-digits", self.seed, self.split, p))) for p in range(passes)])
        pos, src, crop, dpos = [], [], [], []
        for b in range(blocks):
            g = torch.Generator().manual_seed(_subseed("cluttered", self.seed, self.split, s, nd, ds, b))
            pos.append(torch.randint(0, s - 28 + 1, (self.BLOCK, 2), generator=g))
            src.append(torch.randint(0, max(n - 1, 1), (self.BLOCK, nd), generator=g))
            crop.append(torch.randint(0, 28 - ds + 1, (self.BLOCK, nd, 2), generator=g))
            dpos.append(torch.randint(0, s - ds + 1, (self.BLOCK, nd, 2), generator=g))
        L = self.length
        self.digit_index = order[:L]
        self.digit_yx = torch.cat(pos)[:L]
        src = torch.cat(src)[:L]
        # uniform over the other n - 1 digits: skip the target's own index
        self.distractor_index = src + (src >= self.digit_index[:, None]).long()
        self.crop_yx = torch.cat(crop)[:L]
        self.distractor_yx = torch.cat(dpos)[:L]
        self.labels = self.digits.labels[self.digit_index]

    def layout(self, i: int) -> ClutterLayout:
        """Where item ``i``'s digit and distractors were placed (for tests, figures, glimpse checks)."""
        i = self._check_index(i)
        return ClutterLayout(
            int(self.digit_index[i]), int(self.labels[i]), tuple(self.digit_yx[i].tolist()),
            self.distractor_index[i].tolist(), [tuple(c) for c in self.crop_yx[i].tolist()],
            [tuple(c) for c in self.distractor_yx[i].tolist()])

    def _check_index(self, i) -> int:
        if torch.is_tensor(i) and i.numel() == 1 and not i.is_floating_point():
            i = int(i)
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)):  # ds[1.7] must not give item 1
            raise TypeError(f"index must be an int, got {i!r} ({type(i).__name__})")
        i = int(i)
        if not -self.length <= i < self.length:
            raise IndexError(f"index {i} out of range for {self.length} items")
        return i % self.length

    def render(self, indices) -> torch.Tensor:
        """uint8 canvases (B, size, size) for the given item indices, vectorised over the batch."""
        idx = _as_indices(indices)
        if idx.numel() and (idx.min() < 0 or idx.max() >= self.length):
            raise IndexError(f"indices must lie in [0, {self.length})")
        b, s, ds, source = len(idx), self.size, self.distractor_size, self.digits.images
        canvas = torch.zeros(b, s, s, dtype=torch.int32)
        r28 = torch.arange(28)
        y, x = self.digit_yx[idx].unbind(-1)
        rows = (y[:, None] + r28)[:, :, None]
        cols = (x[:, None] + r28)[:, None, :]
        canvas[torch.arange(b)[:, None, None], rows, cols] = source[self.digit_index[idx]].to(torch.int32)
        if self.n_distractors:
            rd = torch.arange(ds)
            cy, cx = self.crop_yx[idx].unbind(-1)  # (b, nd)
            crops = source[self.distractor_index[idx][:, :, None, None],
                           (cy[..., None] + rd)[..., :, None], (cx[..., None] + rd)[..., None, :]]
            ty, tx = self.distractor_yx[idx].unbind(-1)
            target = (torch.arange(b)[:, None, None, None], (ty[..., None] + rd)[..., :, None],
                      (tx[..., None] + rd)[..., None, :])
            shape = crops.shape
            canvas.index_put_(tuple(t.expand(shape) for t in target), crops.to(torch.int32), accumulate=True)
        return canvas.clamp_(0, 255).to(torch.uint8)

    def batch(self, indices) -> tuple[torch.Tensor, torch.Tensor]:
        """Images float (B, 1, size, size) in [0, 1] and labels (B,) for a batch of item indices."""
        idx = _as_indices(indices)
        if self._images is not None:
            if idx.numel() and (idx.min() < 0 or idx.max() >= self.length):
                raise IndexError(f"indices must lie in [0, {self.length})")
            images = self._images[idx]
        else:
            images = self.render(idx)
        return images[:, None].float() / 255, self.labels[idx]

    def __getitem__(self, i):
        i = self._check_index(i)
        images, labels = self.batch([i])
        return images[0], int(labels[0])

    def cache_path(self) -> Path:
        """The file :meth:`materialise` writes (named by every setting and the source digits)."""
        fingerprint = hashlib.sha256(self.digits.images.numpy().tobytes()
                                     + self.digits.labels.numpy().tobytes()).hexdigest()[:12]
        name = (f"cluttered_{self.split}_{self.size}px_{self.n_distractors}x{self.distractor_size}_"
                f"seed{self.seed}_n{self.length}_{len(self.digits.labels)}digits-{fingerprint}.pt")
        return cache_dir(self._root) / "cluttered" / name

    def materialise(self, path: str | os.PathLike | None = None, *, batch_size: int = 1000,
                    progress: bool = True) -> Path:
        """Render all items once (or load them if already cached) and keep them in memory.

        The file (uint8 images, labels, the layout and the settings) is written to a temporary
        name and renamed, so an interrupted run leaves nothing that a later call loads.
        60,000 images of 100 x 100 take 600 MB. Returns the path.
        """
        from tqdm.auto import tqdm

        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size must be an int >= 1 (canvases rendered at a time), got {batch_size!r}")
        path = Path(path) if path is not None else self.cache_path()
        if path.is_dir():
            raise ValueError(f"path {path} is a folder: pass a file name (e.g. {path / self.cache_path().name})")
        meta = {"split": self.split, "size": self.size, "n_distractors": self.n_distractors,
                "distractor_size": self.distractor_size, "seed": self.seed, "length": self.length,
                "source": self.digits.source}
        if path.is_file():
            try:
                saved = torch.load(path, weights_only=True)
            except Exception as error:  # not a torch file at all
                raise ValueError(f"{path} is not a cluttered-MNIST file written by materialise() ({error}); "
                                 "delete it or pass another path") from None
            if not isinstance(saved, dict) or not {"meta", "images", "digit_index", "distractor_yx"} <= set(saved):
                raise ValueError(f"{path} is not a cluttered-MNIST file written by materialise(); delete it or "
                                 "pass another path")
            if saved.get("meta") != meta or not torch.equal(saved["digit_index"], self.digit_index) \
                    or not torch.equal(saved["distractor_yx"], self.distractor_yx):
                raise ValueError(f"{path} holds a different cluttered set ({saved.get('meta')}); delete it "
                                 "or pass another path")
            self._images = saved["images"]
            return path
        images = torch.empty(self.length, self.size, self.size, dtype=torch.uint8)
        for start in tqdm(range(0, self.length, batch_size), disable=not show_progress(progress),
                          desc=f"cluttered MNIST {self.split}", unit="batch"):
            stop = min(start + batch_size, self.length)
            images[start:stop] = self.render(torch.arange(start, stop))
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
        os.close(fd)
        try:
            torch.save({"meta": meta, "images": images, "labels": self.labels, "digit_index": self.digit_index,
                        "digit_yx": self.digit_yx, "distractor_index": self.distractor_index,
                        "crop_yx": self.crop_yx, "distractor_yx": self.distractor_yx}, tmp)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        self._images = images
        return path


# --------------------------------------------------------------------------------------------
# sorting task

class SortingTask:
    """Instances of the paper's sorting experiment: n random numbers written in MNIST digits.

    :meth:`sample` gives ``images`` float (b, n, digits, 28, 28) in [0, 1] - number j of
    instance i written most significant digit first, zero-padded (7 -> "007"), every digit a
    real MNIST image of that class drawn uniformly from the split - together with ``numbers``
    long (b, n), uniform in [0, 10**digits), and ``perm`` long (b, n) with
    ``numbers.gather(1, perm)`` sorted ascending.

    Ties: numbers are drawn independently (as in the paper), so equal numbers happen (3-digit
    numbers, n = 16: about 11% of instances). ``perm`` is then the *stable* sorting permutation:
    equal numbers keep their input order, so ``perm`` is unique. A model can only learn that
    order by luck; score it tie-insensitively (compare ``numbers.gather(1, predicted)`` with the
    sorted numbers), or pass ``distinct=True`` to draw distinct numbers within an instance.
    Deterministic for a seed: successive calls continue one seeded random stream.
    """

    def __init__(self, n: int, digits: int = 3, split: str = "train", seed: int = 0, *, distinct: bool = False,
                 source: str = "auto", root=None, mnist=None):
        for name, value in (("n", n), ("digits", digits), ("seed", seed)):
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
                raise ValueError(f"{name} must be an int, got {value!r}")
        if n < 1:
            raise ValueError(f"n (numbers per instance) must be >= 1, got {n}")
        if not 1 <= digits <= 18:
            raise ValueError(f"digits must be between 1 and 18 (numbers must fit in int64), got {digits}")
        if distinct and 10 ** digits > 100_000:
            raise ValueError(f"distinct=True draws from all 10**digits numbers; use digits <= 5, got {digits}")
        if distinct and n > 10 ** digits:
            raise ValueError(f"cannot draw {n} distinct {digits}-digit numbers; lower n or raise digits")
        self.n, self.digits, self.split, self.seed, self.distinct = int(n), int(digits), split, int(seed), distinct
        data = _digits_from(mnist, split, source, root)
        self.images, self.labels, self.digit_source = data
        counts = torch.bincount(self.labels, minlength=10)
        if len(counts) > 10 or (counts[:10] == 0).any():
            raise ValueError("the digits must cover the classes 0-9 and no others; "
                             f"counts per class: {counts.tolist()}")
        # class c's images are by_class[c, :counts[c]] (indices into self.images)
        order = torch.argsort(self.labels, stable=True)
        starts = torch.cumsum(counts, 0) - counts
        self._counts, self._starts, self._order = counts, starts, order
        self.generator = torch.Generator().manual_seed(_subseed("sorting", self.seed, self.split, n, digits))

    @property
    def source(self) -> str:
        return (f"sorting {self.n} numbers of {self.digits} digit{'s' if self.digits != 1 else ''} ({self.split}), "
                f"digit images from {self.digit_source}")

    def __repr__(self) -> str:
        return f"SortingTask({self.source})"

    def sample(self, batch_size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """A batch ``(images, numbers, perm)`` (shapes in the class docstring)."""
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        need = 4 * int(batch_size) * self.n * self.digits * 28 * 28  # the float images of the batch
        if need > max_tensor_bytes():
            raise ValueError(f"batch_size = {batch_size:,} instances of {self.n} numbers need about {need / 2**30:.1f} "
                             "GiB of digit images; use a smaller batch_size (or raise ASHLIB_MAX_POOL_GIB)")
        g, b, n, d = self.generator, int(batch_size), self.n, self.digits
        if self.distinct:
            numbers = torch.multinomial(torch.ones(b, 10 ** d), n, replacement=False, generator=g)
        else:
            numbers = torch.randint(0, 10 ** d, (b, n), generator=g)
        powers = 10 ** torch.arange(d - 1, -1, -1)
        classes = numbers[..., None] // powers % 10  # (b, n, d), most significant first
        pick = (torch.rand(b, n, d, generator=g, dtype=torch.float64) * self._counts[classes]).long()
        pick = torch.minimum(pick, self._counts[classes] - 1)
        chosen = self._order[self._starts[classes] + pick]
        images = self.images[chosen].float() / 255
        perm = torch.argsort(numbers, dim=1, stable=True)
        return images, numbers, perm


# --------------------------------------------------------------------------------------------
# the command line: python -m ashlib data

def data_command(source: str = "auto", root=None, cluttered: bool = False, progress: bool = True) -> int:
    """Prepare and check the data, print a summary (``python -m ashlib data``)."""
    if source not in _SOURCES:
        raise ValueError(f"source must be one of {', '.join(_SOURCES)}, not {source!r}")
    if source == "full":
        folder = download_mnist(root, progress=progress)
        print(f"full MNIST: {folder} (4 IDX files, size and SHA-256 verified)")
    elif source == "offline":
        print(f"offline subset: {offline_file(root)} (content SHA-256 verified; provenance in data/README.md)")
    splits = {split: load_mnist(split, source, root) for split in ("train", "test")}
    for split, d in splits.items():
        counts = torch.bincount(d.labels, minlength=10).tolist()
        print(f"  {split:5s}: {d.source} | images {tuple(d.images.shape)} {str(d.images.dtype)[6:]} | "
              f"labels {str(d.labels.dtype)[6:]}, per class 0-9: {' '.join(map(str, counts))}")
    keys = {split: {img.numpy().tobytes() for img in d.images} for split, d in splits.items()}
    shared = len(keys["train"] & keys["test"])
    print(f"  train and test share {shared} identical images" + (" (disjoint)" if shared == 0 else ""))
    if splits["train"].source.startswith("full"):
        try:
            offline = _load_offline("train", root), _load_offline("test", root)
        except (FileNotFoundError, ValueError):
            offline = None
        if offline is not None:
            position = {img.numpy().tobytes(): i for i, img in enumerate(splits["train"].images)}
            where = [position.get(img.numpy().tobytes(), -1) for part in offline for img in part.images]
            found = [w for w in where if w >= 0]
            print(f"  offline subset vs full: {len(found):,} of {len(where):,} offline digits are in the full "
                  f"training set" + (f", at indices {min(found):,}-{max(found):,}" if found else ""))
    if cluttered:
        for split in ("train", "test"):
            ds = ClutteredMNIST(split, source=source, root=root)
            path = ds.materialise(progress=progress)
            print(f"  {ds.source}: {path}")
    return 0
