"""Where ashlib's data files live: the shipped files (offline digits, pretrained models) and the cache.

The shipped files are the checkout's top-level ``data/`` folder, or its copy in an installed wheel
(the package ``ashlib.resources``). Downloads and generated sets go to ``<data_root>/cache``
(git-ignored): ``data_root`` is the checkout's ``data/``, else ``~/.cache/ashlib``.
"""

from __future__ import annotations

import os
from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parents[1]  # ashlib/
_CHECKOUT_DATA = _PACKAGE_DIR.parent / "data"  # the repository's top-level data/ folder
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
