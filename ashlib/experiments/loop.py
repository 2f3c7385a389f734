"""The one training loop every experiment runs (identity, sorting, attention).

An experiment describes a run with a :class:`Plan`: its model and optimiser, how many batches,
how to draw batch ``step`` (``draw``), its loss on that batch (``loss``), how to evaluate
(``evaluate``), how often, and every ``torch.Generator`` it owns. The loop owns the rest:
the learning-rate schedule hook, the optimiser step, the evaluation cadence, the progress bar,
callbacks for studies, checkpoints, ``resume``, and Ctrl-C / SIGTERM.

Its promises (each broken on purpose in ``tests/test_loop.py``):

1. with ``out`` it writes ``out/checkpoint.pt`` every ``checkpoint_every`` batches, at the end,
   and on Ctrl-C or SIGTERM (the run then returns with ``stopped_early`` set);
   ``resume=True`` continues from it;
2. a resumed run is the exact continuation of the uninterrupted one: an interrupt inside a
   batch or an evaluation throws that unfinished work away and saves the state at the last
   batch boundary (model, optimiser, every random generator, the result so far), so the
   resumed run repeats it with the same data and the same random draws;
3. a fresh run never overwrites another run's checkpoint (``overwrite=True`` says to);
4. a checkpoint carries the SHA-256 of its contents; a damaged, truncated, empty or foreign
   file is refused with a one-line ``ValueError`` naming it;
5. ``out`` is checked writable before the first batch, files are written atomically (temporary
   name, fsync, rename), and a write that fails later keeps the last good checkpoint and says so.

Studies hook in without new config fields: ``callbacks`` (objects with any of ``on_start``,
``on_batch``, ``on_eval``, ``on_end``), a custom ``loss(state, batch)``, or a pre-built
``model`` passed to the experiment's ``train``.
"""

from __future__ import annotations

import hashlib
import io
import random
import signal
import sys
import threading
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from .. import model_files
from ..config import progress_interval, show_progress
from ..model_files import check_writable

CHECKPOINT = "checkpoint.pt"
FORMAT = 1
MAGIC = b"ashlib checkpoint\n"


class Callback:
    """Base class for study hooks (subclass it, or pass any object with some of these methods).

    ``on_batch`` runs after each optimiser step, ``on_eval`` after each evaluation (return True
    to end the run there), ``on_start`` / ``on_end`` around the run. ``state`` is the live
    :class:`State`. A callback's own records are not checkpointed: keep them in
    ``state.result.extra`` (a dict that is) if a resumed run must see them.
    """

    def on_start(self, state: State) -> None:
        pass

    def on_batch(self, state: State, loss: float) -> None:
        pass

    def on_eval(self, state: State, metrics: dict):
        pass

    def on_end(self, state: State) -> None:
        pass


@dataclass
class Result:
    """What a run produced; every experiment's result extends this one.

    ``losses``: the training loss of every batch; ``evaluations``: one dict per evaluation with
    ``"step"`` (batches done) and the experiment's metrics; ``seconds``: wall time of the whole
    run, evaluations included (``eval_seconds`` of it evaluating); ``stopped_early``: why the run
    ended before its last batch (an interrupt), else ``""``.
    """

    config: Any
    model: torch.nn.Module | None = None
    losses: list[float] = field(default_factory=list)
    evaluations: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    eval_seconds: float = 0.0
    stopped_early: str = ""
    data_source: str = ""
    extra: dict = field(default_factory=dict)  # checkpointed records of experiments and callbacks
    checkpoint: Path | None = None  # the run's checkpoint file (with ``out``)
    checkpoint_step: int | None = None  # batches done in the last checkpoint written, if any

    _saved = ("losses", "evaluations", "seconds", "eval_seconds", "data_source", "extra")

    @property
    def steps(self) -> list[int]:
        """The batch counts at which the run was evaluated."""
        return [e["step"] for e in self.evaluations]

    def metric(self, name: str) -> list:
        """One metric over the evaluations (``None`` where an evaluation lacks it)."""
        return [e.get(name) for e in self.evaluations]

    def curve_rows(self) -> tuple[list[str], list[list]]:
        """(columns, rows): ``step`` and every metric, one row per evaluation (for ``NAME.curves.csv``)."""
        columns = ["step"]
        for e in self.evaluations:
            columns += [k for k in e if k not in columns]
        return columns, [[e.get(c, "") for c in columns] for e in self.evaluations]


@dataclass
class Plan:
    """What an experiment hands the loop for one run (see the module docstring)."""

    model: torch.nn.Module
    optimiser: torch.optim.Optimizer
    steps: int  # batches in the whole run
    eval_every: int
    draw: Callable[[int], Any]  # step (0-based) -> the batch's data
    loss: Callable[[State, Any], torch.Tensor]  # the experiment's loss; a study may pass its own
    evaluate: Callable[[State], dict]  # -> metrics (a dict of numbers)
    generators: dict = field(default_factory=dict)  # name -> torch.Generator the experiment draws from
    set_lr: Callable[[int], None] | None = None  # step (0-based) -> set the optimiser's rates
    after_batch: Callable[[State], None] | None = None  # cheap bookkeeping kept in result.extra
    stop: Callable[[State, dict], bool] | None = None  # after an evaluation: end the run here?
    desc: str = ""
    postfix: Callable[[dict], dict] | None = None  # metrics -> what the progress bar shows
    interval: float = 1.0  # seconds between progress-bar redraws on a terminal


@dataclass
class State:
    """The live run, as losses and callbacks see it."""

    config: Any
    model: torch.nn.Module
    optimiser: torch.optim.Optimizer
    result: Result
    generators: dict
    step: int = 0  # batches done
    steps: int = 0  # batches in the whole run
    device: torch.device = torch.device("cpu")


# ------------------------------------------------------------------ files


def _plain(value):
    """numpy's random state as plain Python (a checkpoint loads with ``weights_only=True``)."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, tuple):
        return tuple(_plain(v) for v in value)
    return value


def write_checkpoint(path, state: dict) -> None:
    """``MAGIC``, the SHA-256 of the payload, then the payload (``torch.save`` of ``state``)."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    payload = buffer.getvalue()
    model_files.write_atomic(path, MAGIC + hashlib.sha256(payload).hexdigest().encode() + b"\n" + payload)


def read_checkpoint(path) -> dict:
    """A checkpoint's state, after checking its checksum; a one-line ValueError naming the file otherwise."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ValueError(f"cannot read the checkpoint {path}: {error.strerror or error}") from None
    if not data:
        raise ValueError(f"{path} is empty: not a checkpoint (nothing resumed)")
    if not data.startswith(MAGIC):
        kind = "a zip file or a plain torch.save file" if data.startswith(b"PK") else \
            "a text file" if _looks_like_text(data[:512]) else "a file of another kind"
        raise ValueError(f"{path} is not an ashlib checkpoint ({kind}); nothing resumed")
    header_end = len(MAGIC) + 65
    recorded, payload = data[len(MAGIC):header_end - 1], data[header_end:]
    if len(data) < header_end or data[header_end - 1:header_end] != b"\n" \
            or hashlib.sha256(payload).hexdigest().encode() != recorded:
        raise ValueError(f"{path} does not match its checksum: the checkpoint is damaged or truncated; "
                         "nothing resumed (start again with --overwrite, or restore the file)")
    try:
        state = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - a valid checksum over a payload torch cannot read
        raise ValueError(f"{path}: the checkpoint cannot be read by this torch ({type(error).__name__}); "
                         "nothing resumed") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT or "config" not in state:
        raise ValueError(f"{path} is a checkpoint of another format; nothing resumed")
    return state


def _looks_like_text(head: bytes) -> bool:
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def check_out(out, *, resume: bool, overwrite: bool, config=None) -> Path | None:
    """Check ``out`` before a run (contracts 3 and 5); return its checkpoint path (None without ``out``).

    A fresh run refuses a folder that holds a checkpoint (of this run or another) unless
    ``overwrite``; ``resume`` needs one.
    """
    if out is None:
        if resume:
            raise ValueError("resume needs out (--out): the folder of the run to continue")
        return None
    if resume and overwrite:
        raise ValueError("resume and overwrite contradict each other: pass one")
    out = Path(out)
    path = out / CHECKPOINT
    if resume:
        if not path.is_file():
            raise ValueError(f"no checkpoint to resume in {out} ({CHECKPOINT} is missing); "
                             "start the run without --resume")
    elif path.exists() and not overwrite:
        raise ValueError(f"{out} holds the checkpoint of another run ({path}): pass --resume (resume=True) to "
                         "continue it, choose another folder, or pass --overwrite (overwrite=True) to replace it")
    check_writable(out, "--out")
    return path


# ------------------------------------------------------------------ random state


def _capture(generators: dict, cuda: bool) -> dict:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate(),
             "generators": {name: g.get_state() for name, g in generators.items()}}
    if cuda:
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _restore(state: dict, generators: dict) -> None:
    torch.set_rng_state(state["torch"])
    numpy_state = state["numpy"]
    np.random.set_state((numpy_state[0], np.asarray(numpy_state[1], dtype=np.uint32), *numpy_state[2:]))
    python = state["python"]
    random.setstate((python[0], tuple(python[1]), python[2]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    missing = set(generators) - set(state["generators"])
    if missing:
        raise ValueError(f"the checkpoint lacks the state of the generator(s) {sorted(missing)}")
    for name, g in generators.items():
        g.set_state(state["generators"][name])


def _mark(model, generators: dict, cuda: bool) -> tuple:
    """The state at a batch boundary that the next batch or evaluation may change before it ends:
    every random generator and the model's buffers (batch-norm statistics, a moving-average
    baseline), which a forward pass updates."""
    return _capture(generators, cuda), [b.detach().clone() for b in model.buffers()]


def _rewind(mark: tuple, model, generators: dict) -> None:
    """Back to ``mark``: the unfinished batch or evaluation never happened."""
    rng, buffers = mark
    _restore(rng, generators)
    with torch.no_grad():
        for b, saved in zip(model.buffers(), buffers):
            b.copy_(saved)


# ------------------------------------------------------------------ signals


class _Signals:
    """While a run is on: SIGINT and SIGTERM raise KeyboardInterrupt, except inside ``deferred()``
    (the optimiser step and its bookkeeping, a checkpoint write), where they wait for its end."""

    def __init__(self):
        self.pending = None
        self.deferring = False
        self.previous = {}
        self._deferred = _Deferred(self)

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for s in (signal.SIGINT, getattr(signal, "SIGTERM", None)):
                if s is not None:
                    try:
                        self.previous[s] = signal.signal(s, self._handler)
                    except (ValueError, OSError):  # not allowed here (embedded interpreter)
                        pass
        return self

    def __exit__(self, *exc):
        for s, handler in self.previous.items():
            signal.signal(s, handler if handler is not None else signal.SIG_DFL)
        return False

    def _handler(self, signum, frame):
        if self.deferring:
            self.pending = signum
            return
        raise KeyboardInterrupt(signal.Signals(signum).name)

    def deferred(self) -> "_Deferred":
        return self._deferred


class _Deferred:
    """``with signals.deferred():`` a signal waits until the block has ended, then interrupts."""

    def __init__(self, signals: _Signals):
        self.signals = signals

    def __enter__(self):
        self.signals.deferring = True

    def __exit__(self, *exc):
        signals = self.signals
        signals.deferring = False
        if signals.pending is not None and exc[0] is None:
            signum, signals.pending = signals.pending, None
            raise KeyboardInterrupt(signal.Signals(signum).name)
        return False


# ------------------------------------------------------------------ the loop


def config_dict(config) -> dict:
    return asdict(config)


def same_settings(saved: dict, config) -> list[str]:
    """Differences between a checkpoint's config and ``config`` ([] when they match). A setting
    added since the checkpoint was written counts as its default."""
    current = asdict(config)
    defaults = {f.name: f.default for f in fields(config)}
    diffs = [f"{k}: {saved.get(k, defaults.get(k))!r} there, {v!r} here" for k, v in current.items()
             if _normal(saved.get(k, defaults.get(k))) != _normal(v)]
    diffs += [f"{k}: {saved[k]!r} there, unknown here" for k in saved if k not in current]
    return diffs


def _normal(value):
    return list(value) if isinstance(value, tuple) else value


def run(config, plan: Plan, result: Result, *, progress: bool = True, out=None, resume: bool = False,
        overwrite: bool = False, checkpoint_every: int = 500, callbacks=(), loss=None,
        upgrade: Callable[[dict], dict] | None = None, device=None) -> Result:
    """Train ``plan`` to its end (or an interrupt) and return ``result`` filled in.

    ``out``: folder for ``checkpoint.pt`` (see the module docstring for ``resume``,
    ``overwrite``, ``checkpoint_every``); ``loss(state, batch)`` replaces the plan's loss;
    ``upgrade`` maps a checkpoint's saved config dict onto today's fields before comparing.
    """
    from .checks import check_int

    check_int("checkpoint_every", checkpoint_every, 0)  # 0: only at the end and on an interrupt
    callbacks = tuple(callbacks or ())
    path = check_out(out, resume=resume, overwrite=overwrite)
    result.checkpoint = path
    model, optimiser = plan.model, plan.optimiser
    device = torch.device(device) if device is not None else next(
        (p.device for p in model.parameters()), torch.device("cpu"))
    cuda = device.type == "cuda"
    state = State(config=config, model=model, optimiser=optimiser, result=result, generators=plan.generators,
                  steps=plan.steps, device=device)
    loss_fn = loss if loss is not None else plan.loss
    finished = False
    if resume:
        saved = read_checkpoint(path)
        saved_config = upgrade(dict(saved["config"])) if upgrade else dict(saved["config"])
        diffs = same_settings(saved_config, config)
        if diffs:
            raise ValueError(f"{path} was written by a run with other settings ({'; '.join(diffs[:4])}); "
                             "resume with the same ones")
        try:
            model.load_state_dict(saved["model"])
            optimiser.load_state_dict(saved["optimiser"])
            _restore(saved["rng"], plan.generators)
        except (RuntimeError, KeyError, ValueError, TypeError) as error:
            raise ValueError(f"{path} does not fit this run's model ({str(error).splitlines()[0]})") from None
        for name in result._saved:
            if name in saved["result"]:
                setattr(result, name, saved["result"][name])
        state.step = result.checkpoint_step = int(saved["step"])
        finished = bool(saved.get("finished"))

    def checkpoint_state(done: bool) -> dict:
        return {"format": FORMAT, "config": asdict(config), "step": state.step, "finished": done,
                "model": model.state_dict(), "optimiser": optimiser.state_dict(),
                "rng": {k: _plain(v) for k, v in _capture(plan.generators, cuda).items()},
                "result": {name: getattr(result, name) for name in result._saved}}

    def save(done: bool) -> None:
        if path is None:
            return
        try:
            write_checkpoint(path, checkpoint_state(done))
        except OSError as error:
            kept = f"the last good checkpoint (batch {result.checkpoint_step:,}) is kept" \
                if result.checkpoint_step is not None else "no checkpoint was written yet"
            print(f"warning: could not write {path} ({error.strerror or error}); {kept}", file=sys.stderr)
            return
        result.checkpoint_step = state.step

    def due(step: int) -> bool:
        return step % plan.eval_every == 0 or step == plan.steps

    signals = _Signals()
    bar = None
    tick = time.perf_counter()
    for c in callbacks:
        if hasattr(c, "on_start"):
            c.on_start(state)
    model.train()
    with signals:
        boundary = _mark(model, plan.generators, cuda)
        try:
            bar = _bar(plan, state.step, progress)
            stop = finished
            # an evaluation interrupted before the checkpoint was written is done first
            if not stop and state.step and due(state.step) and (not result.evaluations
                                                                or result.evaluations[-1]["step"] != state.step):
                stop, boundary = _evaluate(plan, state, callbacks, bar, signals, boundary)
            while not stop and state.step < plan.steps:
                step = state.step
                try:
                    if plan.set_lr is not None:
                        plan.set_lr(step)
                    batch = plan.draw(step)
                    value = loss_fn(state, batch)
                    optimiser.zero_grad()
                    value.backward()
                except KeyboardInterrupt:
                    _rewind(boundary, model, plan.generators)  # the unfinished batch never happened
                    optimiser.zero_grad()
                    raise
                with signals.deferred():
                    optimiser.step()
                    result.losses.append(value.item())
                    state.step = step + 1
                    if plan.after_batch is not None:
                        plan.after_batch(state)
                    boundary = _mark(model, plan.generators, cuda)
                bar.update()
                for c in callbacks:
                    if hasattr(c, "on_batch"):
                        c.on_batch(state, result.losses[-1])
                if due(state.step):
                    stop, boundary = _evaluate(plan, state, callbacks, bar, signals, boundary)
                if path is not None and checkpoint_every and state.step % checkpoint_every == 0 \
                        and state.step < plan.steps and not stop:
                    with signals.deferred():
                        result.seconds += time.perf_counter() - tick
                        tick = time.perf_counter()
                        save(False)
            result.seconds += time.perf_counter() - tick
            tick = time.perf_counter()
            with signals.deferred():
                save(True)
        except KeyboardInterrupt as interrupt:
            with signals.deferred():
                _rewind(boundary, model, plan.generators)
                model.train()
                result.seconds += time.perf_counter() - tick
                tick = time.perf_counter()
                why = f" ({interrupt.args[0]})" if interrupt.args and interrupt.args[0] in ("SIGTERM",) else ""
                result.stopped_early = f"interrupted{why} after {state.step:,} of {plan.steps:,} batches"
                save(False)
        finally:
            if bar is not None:
                bar.close()
    for c in callbacks:
        if hasattr(c, "on_end"):
            c.on_end(state)
    return result


def _bar(plan: Plan, initial: int, progress: bool):
    from tqdm.auto import tqdm

    return tqdm(total=plan.steps, initial=initial, desc=plan.desc, disable=not show_progress(progress),
                mininterval=progress_interval(plan.interval))


def _evaluate(plan: Plan, state: State, callbacks, bar, signals, boundary):
    """Evaluate at ``state.step``: (stop?, the boundary after it). An interrupt inside rewinds to
    ``boundary`` and leaves no trace (the resumed run evaluates here again)."""
    result = state.result
    start = time.perf_counter()
    try:
        metrics = plan.evaluate(state)
    except KeyboardInterrupt:
        _rewind(boundary, state.model, plan.generators)
        state.model.train()
        raise
    with signals.deferred():
        state.model.train()
        result.evaluations.append({"step": state.step, **metrics})
        result.eval_seconds += time.perf_counter() - start
        boundary = _mark(state.model, plan.generators, state.device.type == "cuda")
    if plan.postfix is not None:
        bar.set_postfix(**plan.postfix(metrics))
    stop = bool(plan.stop(state, metrics)) if plan.stop is not None else False
    for c in callbacks:
        if hasattr(c, "on_eval") and c.on_eval(state, metrics):
            stop = True
    return stop, boundary
