"""Run-time settings: quick mode, seeding, and the set-up call every notebook starts with.

Quick mode (environment variable ``ASHLIB_QUICK=1``, set by the test suite and CI) shrinks
every experiment so a 2-core laptop runs each notebook in well under two minutes. This module
is the one place that reads it; notebooks and experiments ask :func:`quick_mode`.
"""

from __future__ import annotations

import os
import random

import numpy as np
import torch

_TRUE = {"1", "true", "yes", "on"}


def quick_mode() -> bool:
    """True when ``ASHLIB_QUICK`` is set to 1/true/yes/on."""
    return os.environ.get("ASHLIB_QUICK", "").strip().lower() in _TRUE


def show_progress(requested: bool = True) -> bool:
    """Whether to draw a progress bar: as requested, unless ``ASHLIB_PROGRESS=0``.

    ``scripts/run_notebooks.py`` sets ``ASHLIB_PROGRESS=0`` when it executes a notebook for
    storage, so stored outputs hold the final text lines instead of bars frozen at "0%".
    """
    return bool(requested) and os.environ.get("ASHLIB_PROGRESS", "1").strip().lower() not in {"0", "false", "no", "off"}


def progress(iterable, *, disable: bool = False, **kwargs):
    """``tqdm.auto.tqdm(iterable, **kwargs)``, off under ``ASHLIB_PROGRESS=0`` (see :func:`show_progress`)."""
    from tqdm.auto import tqdm

    return tqdm(iterable, disable=disable or not show_progress(), **kwargs)


def seed_everything(seed: int = 0) -> torch.Generator:
    """Seed Python, NumPy and torch; return a torch.Generator seeded the same way."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def setup_notebook(seed: int = 0, data: str = "synthetic (generated in the notebook)") -> bool:
    """Seed everything, set figure defaults, print the mode and data line; return quick_mode()."""
    import matplotlib as mpl

    seed_everything(seed)
    mpl.rcParams.update({"figure.dpi": 80, "figure.figsize": (6.0, 4.0), "image.cmap": "viridis",
                         "axes.grid": False, "savefig.format": "png"})
    quick = quick_mode()
    mode = "quick mode (ASHLIB_QUICK=1)" if quick else "full mode"
    print(f"ashlib {_version()} | {mode} | torch {torch.__version__.split('+')[0]} | data: {data}")
    return quick


def _version() -> str:
    from . import __version__

    return __version__
