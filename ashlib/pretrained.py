"""Trained models that ship with ashlib, so the notebooks can show a method *working* in seconds.

Each model is two files in the repository's ``data/pretrained/`` folder (installed as
``ashlib.resources``, so a wheel carries them): ``NAME.pt`` (the
state dict, float tensors stored as float16 to keep the wheel small) and ``NAME.json`` (the
experiment, its config, a summary with the recorded test error, the data it was trained on,
the training time and the command that regenerates it, and the SHA-256 of ``NAME.pt``).

    >>> import ashlib.pretrained as pretrained
    >>> pretrained.names()                        # doctest: +SKIP
    ['attention-convnet', 'attention-sparse', ...]
    >>> model = pretrained.load("attention-sparse")   # eval mode; model.config, model.summary

:func:`curves` gives a shipped model's training curve (``NAME.curves.csv``: one row per evaluation).

``python -m ashlib attention|sort ... --save-model PATH`` writes the same format (``PATH.pt`` and
``PATH.json``); a file saved so can be loaded with :func:`load_file`.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict
from pathlib import Path

import torch

from .config import check_device

__all__ = ["names", "load", "load_file", "save", "folder", "curves"]

FORMAT = 1


def folder() -> Path:
    """The folder holding the shipped models (inside the installed package)."""
    from .data import shipped_data

    return shipped_data() / "pretrained"


def names() -> list[str]:
    """Names of the shipped models, sorted."""
    return sorted(p.stem for p in folder().glob("*.json"))


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _experiment(kind: str):
    if kind == "attention":
        from .experiments import attention as module
        return module, module.AttentionConfig
    if kind == "sorting":
        from .experiments import sorting as module
        return module, module.SortingConfig
    raise ValueError(f"unknown experiment {kind!r} in a pretrained model's JSON (expected 'attention' or 'sorting')")


def save(model: torch.nn.Module, path, experiment: str, config, summary: dict, command: str) -> list[Path]:
    """Write ``path.pt`` (state dict, floats as float16) and ``path.json``; return both paths.

    ``experiment`` is ``"attention"`` or ``"sorting"``; ``config`` that experiment's config
    dataclass (the model is rebuilt from it on load); ``summary`` a JSON-able dict with at least
    ``final_test_error`` or ``final_error``; ``command`` the command line that trained it.
    """
    _experiment(experiment)
    path = Path(path)
    if path.suffix in (".pt", ".json"):
        path = path.with_suffix("")
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: (v.detach().cpu().half() if v.is_floating_point() else v.detach().cpu())
             for k, v in model.state_dict().items()}
    weights, meta = path.with_name(path.name + ".pt"), path.with_name(path.name + ".json")
    tmp = weights.with_name(weights.name + ".part")
    torch.save(state, tmp)
    os.replace(tmp, weights)
    record = {"format": FORMAT, "name": path.name, "experiment": experiment, "config": asdict(config),
              "summary": summary, "command": command, "sha256": _sha256(weights),
              "bytes": weights.stat().st_size}
    meta.write_text(json.dumps(record, indent=2) + "\n")
    return [weights, meta]


def load_file(path, device: str = "cpu") -> torch.nn.Module:
    """Load a model written by :func:`save` (``path`` with or without ``.json``/``.pt``); checks its SHA-256."""
    path = Path(path)
    if path.suffix in (".pt", ".json"):
        path = path.with_suffix("")
    meta, weights = path.with_name(path.name + ".json"), path.with_name(path.name + ".pt")
    if not meta.is_file() or not weights.is_file():
        raise ValueError(f"no pretrained model at {path} (need {meta.name} and {weights.name})")
    check_device(device)  # before anything is loaded: a bogus name or a missing GPU says so
    try:
        record = json.loads(meta.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{meta} is not valid JSON ({error}): the file is damaged; restore it or save the model "
                         "again") from None
    missing = [key for key in ("experiment", "config", "sha256") if key not in record] if isinstance(record, dict) \
        else ["a JSON object"]
    if missing:
        raise ValueError(f"{meta} lacks {', '.join(missing)}: it was not written by ashlib.pretrained.save()")
    digest = _sha256(weights)
    if digest != record.get("sha256"):
        raise ValueError(f"{weights} does not match its recorded SHA-256 (got {digest[:12]}..., recorded "
                         f"{str(record.get('sha256'))[:12]}...): the file is damaged or was replaced")
    module, config_class = _experiment(record["experiment"])
    try:
        config = config_class(**record["config"])
    except TypeError as error:  # a setting this version of ashlib does not know
        raise ValueError(f"{meta}: its config does not fit this version of ashlib ({error})") from None
    model = module.build_model(config)
    state = torch.load(weights, map_location="cpu", weights_only=True)
    reference = model.state_dict()
    state = {k: v.to(reference[k].dtype) if k in reference else v for k, v in state.items()}
    model.load_state_dict(state)
    model = model.to(device).eval()
    model.config = config
    model.summary = record["summary"]
    model.summary.setdefault("command", record.get("command"))
    return model


def load(name: str, device: str = "cpu") -> torch.nn.Module:
    """The shipped model ``name`` (see :func:`names`) in eval mode, with ``.config`` and ``.summary``.

    ``.summary`` holds the recorded test error, the data source, the training time and the
    command that regenerates the model. The weights are checked against their SHA-256.
    """
    available = names()
    if name not in available:
        raise ValueError(f"no pretrained model {name!r}; available: {', '.join(available) or 'none'}")
    return load_file(folder() / name, device=device)


def curves(name: str) -> dict[str, list[float]]:
    """The training curve of the shipped model ``name``: column name -> values, one per evaluation.

    Read from ``NAME.curves.csv`` in the installed package (no run folder needed). The first
    column is ``step`` (batches trained); then the experiment's evaluation metrics, e.g.
    ``error, element_error`` (sorting) or ``test_error, near_digit, centre_distance, ...``
    (attention). An empty cell reads as NaN.
    """
    import csv

    available = names()
    if name not in available:
        raise ValueError(f"no pretrained model {name!r}; available: {', '.join(available) or 'none'}")
    path = folder() / f"{name}.curves.csv"
    if not path.is_file():
        raise ValueError(f"the shipped model {name!r} has no training curve ({path.name} is missing)")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    columns = list(rows[0]) if rows else []
    return {c: [float(row[c]) if row[c] != "" else float("nan") for row in rows] for c in columns}
