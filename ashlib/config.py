"""Run-time settings: quick mode, seeding, and the set-up call every notebook starts with.

Quick mode (environment variable ``ASHLIB_QUICK=1``, set by the test suite and CI) shrinks
every experiment so a 2-core laptop runs each notebook in well under two minutes. This module
is the one place that reads it; notebooks and experiments ask :func:`quick_mode`.
"""

from __future__ import annotations

import math
import os
import random
import sys

import numpy as np
import torch

from ._version import __version__

_TRUE = {"1", "true", "yes", "on"}


def quick_mode() -> bool:
    """True when ``ASHLIB_QUICK`` is set to 1/true/yes/on."""
    return os.environ.get("ASHLIB_QUICK", "").strip().lower() in _TRUE


def env_flag(name: str) -> bool:
    """True when the environment variable ``name`` is 1/true/yes/on."""
    return os.environ.get(name, "").strip().lower() in _TRUE


def debug_checks() -> bool:
    """True when ``ASHLIB_DEBUG`` is 1/true/yes/on: costly consistency checks run everywhere."""
    return env_flag("ASHLIB_DEBUG")


def is_finite_positive(value) -> bool:
    """True for a finite int or float > 0; bools (an int to Python, a bug as a rate or a scale)
    and strings are not numbers here. Every "must be a finite number > 0" check uses it."""
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value) and value > 0


def max_tensor_bytes() -> float:
    """The largest intermediate tensor ashlib builds before refusing, in bytes: 2 GiB, or
    ``ASHLIB_MAX_POOL_GIB`` GiB (the variable the sampler reads too). A size past it is refused
    with a ValueError saying what to shrink, instead of an allocation failure or a swapping machine."""
    value = os.environ.get("ASHLIB_MAX_POOL_GIB", "").strip()
    try:
        gib = float(value) if value else 2.0
    except ValueError:
        raise ValueError(f"ASHLIB_MAX_POOL_GIB must be a number of GiB, got {value!r}") from None
    return gib * 2**30


def show_progress(requested: bool = True) -> bool:
    """Whether to draw a progress bar: as requested, unless ``ASHLIB_PROGRESS=0``.

    ``tools/run_notebooks.py`` sets ``ASHLIB_PROGRESS=0`` when it executes a notebook for
    storage, so stored outputs hold the final text lines instead of bars frozen at "0%".
    """
    return bool(requested) and os.environ.get("ASHLIB_PROGRESS", "1").strip().lower() not in {"0", "false", "no", "off"}


#: Seconds between progress-bar redraws when stderr goes to a file (see :func:`progress_interval`).
LOGGED_PROGRESS_INTERVAL = 60.0


def progress_interval(interactive: float = 1.0) -> float:
    """Seconds between progress-bar redraws: ``interactive`` on a terminal or in Jupyter,
    :data:`LOGGED_PROGRESS_INTERVAL` when stderr is redirected to a file.

    Why: a run of several hours logged with ``>> run.log 2>&1`` would otherwise write a redraw every
    second, and the log would be mostly bars; one line a minute still shows the pace and the time left.
    """
    if "ipykernel" in sys.modules:
        return interactive
    try:
        tty = sys.stderr.isatty()
    except (AttributeError, ValueError):  # a replaced or closed stderr
        tty = False
    return interactive if tty else max(interactive, LOGGED_PROGRESS_INTERVAL)


def progress(iterable, *, disable: bool = False, **kwargs):
    """``tqdm.auto.tqdm(iterable, **kwargs)``, off under ``ASHLIB_PROGRESS=0`` (see :func:`show_progress`)."""
    from tqdm.auto import tqdm

    kwargs["mininterval"] = progress_interval(kwargs.get("mininterval", 0.1))
    return tqdm(iterable, disable=disable or not show_progress(), **kwargs)


def check_device(name) -> torch.device:
    """``torch.device(name)``, or a ValueError saying why it cannot be used here (a misspelt name,
    or CUDA / MPS that this machine or this torch build does not have)."""
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError) as error:
        raise ValueError(f"device {name!r} is not a device torch knows (try 'cpu' or 'cuda'): {error}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r}: CUDA is not available here (torch {torch.__version__}"
                         f"{' is a CPU build' if torch.version.cuda is None else ', no GPU found'}); use --device cpu")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ValueError(f"device {name!r}: only {torch.cuda.device_count()} CUDA device(s) here")
    if device.type == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise ValueError(f"device {name!r}: MPS is not available here; use --device cpu")
    return device


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
    print(f"ashlib {__version__} | {mode} | torch {torch.__version__.split('+')[0]} | data: {data}")
    return quick
