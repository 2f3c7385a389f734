"""Model files: a state dict (``PATH.pt``, floats as float16), its record (``PATH.json``) and its
training curve (``PATH.curves.csv``).

The record is a JSON object: ``format``, ``name``, ``experiment``, ``config`` (the experiment's
settings, which are also a recipe to retrain it), ``summary``, ``command``, ``sha256`` and
``bytes`` of ``PATH.pt``. This module reads and writes those files and checks them; it knows no
experiment (``ashlib.pretrained`` builds the models). The curve has one row per evaluation:
``step``, then the metrics the experiment's evaluations report.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from pathlib import Path

import torch

__all__ = ["FORMAT", "stem", "paths", "write", "read", "read_record", "write_curves", "read_curves",
           "check_writable_target", "check_writable", "write_atomic"]

FORMAT = 1


def stem(path) -> Path:
    """``path`` without a ``.pt`` / ``.json`` suffix (``PATH``, ``PATH.pt`` and ``PATH.json`` name one model)."""
    if not isinstance(path, (str, os.PathLike)) or isinstance(path, bytes):
        raise TypeError(f"path must be a str or os.PathLike naming a model (PATH, PATH.pt or PATH.json), "
                        f"got {path!r} ({type(path).__name__})")
    path = Path(path)
    return path.with_suffix("") if path.suffix in (".pt", ".json") else path


def paths(path) -> tuple[Path, Path, Path]:
    """(``PATH.pt``, ``PATH.json``, ``PATH.curves.csv``)."""
    base = stem(path)
    return (base.with_name(base.name + ".pt"), base.with_name(base.name + ".json"),
            base.with_name(base.name + ".curves.csv"))


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_atomic(path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: a temporary name in the same folder, fsync, rename.

    A failure (disk full, a folder gone read-only) leaves any earlier file at ``path`` untouched."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise
    try:  # make the rename itself durable (not possible on every system)
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass


def _atomic(path: Path, data: bytes) -> None:
    write_atomic(path, data)


def check_writable(folder, what: str = "--out") -> Path:
    """Create ``folder`` if needed and prove it writable by writing and removing a file (``os.access``
    says yes to root on a read-only folder); a ValueError naming ``what`` otherwise."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{what} {folder} exists and is not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".ashlib-write-test-{os.getpid()}"
        with open(probe, "wb") as f:
            f.write(b"x")
        probe.unlink()
    except OSError as error:
        raise ValueError(f"{what} {folder} is not writable ({error.strerror or error})") from None
    return folder


def check_writable_target(path, what: str = "--save-model") -> None:
    """Before a run or a save: ``PATH.pt`` / ``.json`` can be written (their folder exists or can be
    made, and is writable; neither is a folder). A ValueError naming ``what`` and ``path`` otherwise."""
    base = stem(path)
    for target in paths(base):
        if target.is_dir():
            raise ValueError(f"{what} {path}: {target} is a folder")
    check_writable(base.parent, f"{what} {path}: the folder")


def write(path, model: torch.nn.Module, record: dict, curves: tuple[list[str], list[list]] | None = None) -> list[Path]:
    """Write ``PATH.pt`` (the state dict, floats as float16), ``PATH.json`` (``record`` plus the
    name, format, SHA-256 and size of ``PATH.pt``) and, given ``(columns, rows)``, ``PATH.curves.csv``.
    Each file is written atomically. Returns the paths written."""
    base = stem(path)
    weights, meta, curve = paths(base)
    check_writable_target(base, "cannot save the model at")  # before anything is written
    state = {k: (v.detach().cpu().half() if v.is_floating_point() else v.detach().cpu())
             for k, v in model.state_dict().items()}
    buffer = io.BytesIO()
    torch.save(state, buffer)
    data = buffer.getvalue()
    full = {"format": FORMAT, "name": base.name, **{k: v for k, v in record.items() if k not in ("format", "name")},
            "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    try:  # before anything is written: a record that cannot be stored must not leave weights without one
        text = json.dumps(full, indent=2) + "\n"
    except (TypeError, ValueError) as error:
        raise ValueError(f"cannot save the model at {base}: its record is not JSON ({error}); the summary and "
                         "config must hold numbers, strings, lists and dicts only") from None
    try:
        _atomic(weights, data)
        _atomic(meta, text.encode())
    except OSError as error:  # the folder was checked above; a full disk or a folder gone read-only since
        raise ValueError(f"cannot save the model at {base}: writing failed ({error.strerror or error})") from None
    written = [weights, meta]
    if curves is not None:
        write_curves(curve, *curves)
        written.append(curve)
    return written


def read_record(path) -> dict:
    """The JSON record of the model at ``path`` (checked to be an object with experiment and config)."""
    meta = paths(path)[1]
    if not meta.is_file():
        raise ValueError(f"no model record at {meta}")
    try:
        record = json.loads(meta.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{meta} is not valid JSON ({error}): the file is damaged; restore it or save the model "
                         "again") from None
    missing = [key for key in _RECORD_TYPES if key not in record] if isinstance(record, dict) \
        else ["a JSON object"]
    if missing:
        raise ValueError(f"{meta} lacks {', '.join(missing)}: it was not written by ashlib.pretrained.save(), or "
                         "was edited by hand; restore it or save the model again")
    for key, (kind, what) in _RECORD_TYPES.items():
        if not isinstance(record[key], kind):
            raise ValueError(f"{meta}: {key} must be {what}, got {record[key]!r:.60}: the record was edited by hand "
                             "or damaged; restore it or save the model again")
    return record


#: what every record holds, with its JSON type
_RECORD_TYPES = {"experiment": (str, "a string (the experiment's name)"), "config": (dict, "a JSON object of settings"),
                 "summary": (dict, "a JSON object (the recorded results)"),
                 "sha256": (str, "a string (the SHA-256 of the .pt file)")}


def read(path) -> tuple[dict, dict]:
    """(record, state dict) of the model at ``path``, after checking ``PATH.pt`` against its SHA-256."""
    base = stem(path)
    weights, meta, _ = paths(base)
    if not meta.is_file() or not weights.is_file():
        raise ValueError(f"no pretrained model at {base} (need {meta.name} and {weights.name})")
    record = read_record(base)
    digest = _sha256(weights)
    if digest != record.get("sha256"):
        raise ValueError(f"{weights} does not match its recorded SHA-256 (got {digest[:12]}..., recorded "
                         f"{str(record.get('sha256'))[:12]}...): the file is damaged or was replaced")
    if weights.stat().st_size == 0:
        raise ValueError(f"{weights} is empty (0 bytes), and {meta.name} records the SHA-256 of an empty file: the "
                         "weights were lost and the record rewritten; restore both from a good copy or save the "
                         "model again")
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - matches its checksum but torch cannot read it
        first = str(error).strip().splitlines()[0][:100] if str(error).strip() else ""
        detail = f"{type(error).__name__}: {first}" if first else type(error).__name__
        raise ValueError(f"{weights} is not a state dict this torch can read ({detail}): the file is damaged, "
                         f"although {meta.name} records its SHA-256; restore both or save the model again") from None
    if not isinstance(state, dict) or not all(isinstance(k, str) and torch.is_tensor(v) for k, v in state.items()):
        raise ValueError(f"{weights} holds {type(state).__name__}, not a state dict (names -> tensors): it was not "
                         "written by ashlib.pretrained.save(); restore it or save the model again")
    return record, state


def _cell(value) -> str:
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, float):
        return f"{value:.6g}"
    return "" if value is None else str(value)


def write_curves(path, columns: list[str], rows: list[list]) -> Path:
    """``columns`` as a header, then ``rows`` (floats to 6 significant digits), atomically."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows([_cell(v) for v in row] for row in rows)
    path = Path(path)
    _atomic(path, buffer.getvalue().encode())
    return path


def read_curves(path) -> dict[str, list[float]]:
    """A curves file as ``{column: [values]}`` (empty cells as NaN)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"no training curve at {path}")
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows or not rows[0] or rows[0][0] != "step":
        raise ValueError(f"{path} is not a training curve (its first column must be 'step')")
    columns, body = rows[0], rows[1:]
    try:
        return {c: [float(r[i]) if i < len(r) and r[i] != "" else float("nan") for r in body]
                for i, c in enumerate(columns)}
    except ValueError as error:
        raise ValueError(f"{path} holds a value that is not a number ({error})") from None
