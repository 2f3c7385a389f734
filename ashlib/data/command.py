"""``python -m ashlib data``: prepare the digits (and optionally cluttered MNIST) and print a summary."""

from __future__ import annotations

import torch

from .cluttered import ClutteredMNIST
from .mnist import _SOURCES, _load_offline, download_mnist, load_mnist, offline_file

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
