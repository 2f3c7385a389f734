"""Trained models that ship with ashlib, so the notebooks can show a method *working* in seconds.

Each model is three files in the repository's ``data/pretrained/`` folder (installed as
``ashlib.resources``, so a wheel carries them): ``NAME.pt`` (the state dict, float tensors
stored as float16 to keep the wheel small), ``NAME.json`` (the experiment, its config, a
summary with the recorded test error, the data it was trained on, the training time, the
command that regenerates it, and the SHA-256 of ``NAME.pt``) and ``NAME.curves.csv`` (its
evaluations during training). The files are read and written by :mod:`ashlib.model_files`;
this module builds the models through the experiments.

    >>> import ashlib.pretrained as pretrained
    >>> pretrained.names()                        # doctest: +SKIP
    ['attention-convnet', 'attention-sparse', ...]
    >>> model = pretrained.load("attention-sparse")   # eval mode; model.config, model.summary

:func:`curves` gives a shipped model's training curve (``NAME.curves.csv``: one row per evaluation).

``python -m ashlib identity|attention|sort ... --save-model PATH`` writes the same format; a file
saved so can be loaded with :func:`load_file`. A record is also a recipe:
``python -m ashlib sort --recipe sort-quicksort-n4`` retrains that model (see :func:`recipe`).
"""

from __future__ import annotations

from pathlib import Path

import torch

from . import model_files
from .config import check_device

__all__ = ["names", "load", "load_file", "save", "folder", "curves", "record", "recipe", "EXPERIMENTS"]

FORMAT = model_files.FORMAT
EXPERIMENTS = ("identity", "attention", "sorting")


def folder() -> Path:
    """The folder holding the shipped models (inside the installed package)."""
    from .data import shipped_data

    return shipped_data() / "pretrained"


def names() -> list[str]:
    """Names of the shipped models, sorted."""
    return sorted(p.stem for p in folder().glob("*.json"))


def experiment(kind: str):
    """The module of experiment ``kind`` ("identity", "attention" or "sorting")."""
    if kind == "attention":
        from .experiments import attention as module
    elif kind == "sorting":
        from .experiments import sorting as module
    elif kind == "identity":
        from .experiments import identity as module
    else:
        raise ValueError(f"unknown experiment {kind!r} in a model's JSON (expected one of {', '.join(EXPERIMENTS)})")
    return module


def _config_class(module):
    return {"attention": "AttentionConfig", "sorting": "SortingConfig", "identity": "IdentityConfig"}[
        module.__name__.rsplit(".", 1)[1]]


def make_config(kind: str, fields: dict, where: str):
    """The experiment's config from saved ``fields``: settings that left the library are dropped
    where they sit at their old default (refused otherwise); an unknown one is refused."""
    module = experiment(kind)
    config_class = getattr(module, _config_class(module))
    fields = module.upgrade_config(dict(fields), where) if hasattr(module, "upgrade_config") else dict(fields)
    try:
        return config_class(**fields)
    except TypeError as error:  # a setting this version of ashlib does not know
        raise ValueError(f"{where}: its config does not fit this version of ashlib ({error})") from None


def save(model: torch.nn.Module, path, experiment_name: str, config, summary: dict, command: str,
         evaluations: list[dict] | None = None) -> list[Path]:
    """Write ``path.pt`` (state dict, floats as float16), ``path.json`` and, given the run's
    ``evaluations``, ``path.curves.csv``; return the paths.

    ``experiment_name`` is ``"identity"``, ``"attention"`` or ``"sorting"``; ``config`` that
    experiment's config dataclass (the model is rebuilt from it on load); ``summary`` a JSON-able
    dict; ``command`` the command line that trained it.
    """
    from dataclasses import asdict

    experiment(experiment_name)
    curve = None
    if evaluations is not None:
        columns = ["step"]
        for e in evaluations:
            columns += [k for k in e if k not in columns]
        curve = (columns, [[e.get(c, "") for c in columns] for e in evaluations])
    record = {"experiment": experiment_name, "config": asdict(config), "summary": summary, "command": command}
    return model_files.write(path, model, record, curve)


def load_file(path, device: str = "cpu") -> torch.nn.Module:
    """Load a model written by :func:`save` (``path`` with or without ``.json``/``.pt``); checks its SHA-256."""
    base = model_files.stem(path)
    weights, meta, _ = model_files.paths(base)
    if not meta.is_file() or not weights.is_file():
        raise ValueError(f"no pretrained model at {base} (need {meta.name} and {weights.name})")
    check_device(device)  # before anything is loaded: a bogus name or a missing GPU says so
    record, state = model_files.read(base)
    config = make_config(record["experiment"], record["config"], str(meta))
    model = experiment(record["experiment"]).build_model(config)
    reference = model.state_dict()
    state = {k: v.to(reference[k].dtype) if k in reference else v for k, v in state.items()}
    try:
        model.load_state_dict(state)
    except RuntimeError as error:  # missing or unexpected tensors, or shapes that differ: torch lists them
        lines = [line.strip() for line in str(error).splitlines()[1:] if line.strip()]
        detail = "; ".join(lines)
        raise ValueError(f"{weights} does not fit the {record['experiment']} model that {meta.name} describes "
                         f"({detail[:400]}{' ...' if len(detail) > 400 else ''}). The weights belong to another "
                         "model, or the record's config (its sizes, e.g. width) was edited; restore the pair or "
                         "save the model again") from None
    model = model.to(device).eval()
    model.config = config
    model.summary = record.get("summary", {})
    model.summary.setdefault("command", record.get("command"))
    return model


def load(name: str, device: str = "cpu") -> torch.nn.Module:
    """The shipped model ``name`` (see :func:`names`) in eval mode, with ``.config`` and ``.summary``.

    ``.summary`` holds the recorded test error, the data source, the training time and the
    command that regenerates the model. The weights are checked against their SHA-256.
    """
    _check_name(name)
    return load_file(folder() / name, device=device)


def _check_name(name: str) -> None:
    available = names()
    if name not in available:
        raise ValueError(f"no pretrained model {name!r}; available: {', '.join(available) or 'none'}")


def curves(name: str) -> dict[str, list[float]]:
    """The training curve of shipped model ``name``: ``{column: values}``, one value per evaluation
    (``step`` first, then the experiment's metrics)."""
    _check_name(name)
    path = model_files.paths(folder() / name)[2]
    if not path.is_file():
        raise ValueError(f"the shipped model {name!r} has no training curve ({path.name} is missing)")
    return model_files.read_curves(path)


def record(name_or_path) -> dict:
    """The JSON record of a shipped model (by name) or of a file (``NAME.json``)."""
    if str(name_or_path) in names():
        return model_files.read_record(folder() / str(name_or_path))
    return model_files.read_record(name_or_path)


def recipe(source, kind: str | None = None, overrides: dict | None = None):
    """The config that retrains a model: ``source`` is a shipped model's name, a record written by
    ``--save-model`` (``PATH.json``) or a plain JSON object of config fields; ``overrides`` replace
    recorded settings. ``kind`` (the experiment) is needed for a plain JSON of fields and checked
    against a record's."""
    import json

    source = str(source)
    if source in names():
        data, where = model_files.read_record(folder() / source), f"recipe {source}"
    else:
        path = Path(source)
        if not path.is_file():
            raise ValueError(f"no recipe {source!r}: not a shipped model ({', '.join(names())}) and no such file")
        try:
            data = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise ValueError(f"recipe {path} is not valid JSON ({error})") from None
        if not isinstance(data, dict):
            raise ValueError(f"recipe {path} must be a JSON object (a model record or config fields)")
        where = f"recipe {path}"
    if "config" in data and isinstance(data["config"], dict):
        recorded = data.get("experiment")
        if kind is not None and recorded is not None and recorded != kind:
            raise ValueError(f"{where} is a recipe for the {recorded} experiment, not {kind}")
        kind, fields = kind or recorded, data["config"]
    else:
        fields = data
    if kind is None:
        raise ValueError(f"{where}: say which experiment it is for")
    return make_config(kind, {**fields, **(overrides or {})}, where)
