"""The training loop's fault contract (ashlib/experiments/loop.py), each point broken on purpose.

1. every experiment checkpoints with ``out`` and resumes; Ctrl-C / SIGTERM saves, the CLI exits
   130 with one line saying how to resume;
2. a resumed run is the exact continuation of the uninterrupted one, wherever the interrupt
   lands (inside a batch, inside an evaluation, between batches);
3. a fresh run refuses a folder holding another run's checkpoint;
4. a damaged checkpoint is refused with one line naming the file;
5. output paths are checked before the first batch; a write failing later keeps the last good
   checkpoint and says so.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from ashlib import model_files
from ashlib.cli import main
from ashlib.experiments import attention, identity, loop, sorting
from grey_digits import GreyDigits


ID = identity.IdentityConfig(n=4, iterations=24, eval_every=6, eval_samples=200, snapshot_every=5)
SORT = sorting.SortingConfig(n=4, digits=1, method="quicksort", local=2, iterations=12, eval_every=4,
                             eval_instances=40, width=0.125, lr=2e-3, batch_size=4, lr_schedule="cosine")


def sort_data():
    return GreyDigits(4, digits=1, seed=0), lambda: GreyDigits(4, digits=1, seed=99)


@pytest.fixture(scope="module")
def attention_data():
    config = attention_config()
    return attention.load_data(config)


def attention_config():
    return attention.AttentionConfig(model="sparse", canvas=28, glimpse_size=6, n_distractors=1, train_size=24,
                                     test_size=16, epochs=2, batch_size=8, source_hidden=8, eval_every=2,
                                     source="offline")


def train_id(**kwargs):
    return identity.train(kwargs.pop("config", ID), progress=False, **kwargs)


def train_sort(**kwargs):
    return sorting.train(kwargs.pop("config", SORT), progress=False, data=sort_data(), **kwargs)


def same_run(a, b):
    assert a.losses == b.losses
    assert a.evaluations == b.evaluations
    for (k, x), y in zip(a.model.state_dict().items(), b.model.state_dict().values()):
        assert torch.equal(x, y), k


class StopAt(loop.Callback):
    """Interrupt after batch ``step`` (a batch boundary)."""

    def __init__(self, step):
        self.step = step

    def on_batch(self, state, loss):
        if state.step == self.step:
            raise KeyboardInterrupt


# ------------------------------------------------------------------ 1 and 2: checkpoints, exact resume


@pytest.mark.parametrize("kind", ["identity", "sorting", "attention"])
def test_every_experiment_checkpoints_and_resumes_exactly(kind, tmp_path, attention_data):
    if kind == "identity":
        run = train_id
    elif kind == "sorting":
        run = train_sort
    else:
        def run(**kwargs):
            return attention.train(attention_config(), progress=False, data=attention_data, **kwargs)
    whole = run()
    first = run(out=tmp_path, callbacks=[StopAt(3)])
    assert first.stopped_early and len(first.losses) == 3 and first.checkpoint_step == 3
    assert (tmp_path / loop.CHECKPOINT).is_file()
    rest = run(out=tmp_path, resume=True)
    assert not rest.stopped_early
    same_run(rest, whole)
    again = run(out=tmp_path, resume=True)  # a finished run resumes to the same result, training nothing
    assert again.losses == whole.losses


@pytest.mark.parametrize("where", [1, 5, 6, 7, 23, 24])  # 6, 24: the batch before an evaluation
def test_an_interrupt_inside_a_batch_discards_it_and_resumes_exactly(where, tmp_path):
    """The loss draws from the global RNG (the sampled tuples) before the interrupt: the
    checkpoint must hold the state from before those draws."""
    whole = train_id()
    calls = {"n": 0}

    def interrupting(state, x):
        value = identity.identity_loss(state, x)  # draws the tuples: the random state moves on
        calls["n"] += 1
        if calls["n"] == where:
            raise KeyboardInterrupt
        return value

    first = train_id(out=tmp_path, loss=interrupting)
    assert first.stopped_early and len(first.losses) == where - 1
    rest = train_id(out=tmp_path, resume=True)
    same_run(rest, whole)
    assert [s[0] for s in rest.snapshots] == [s[0] for s in whole.snapshots]


@pytest.mark.parametrize("where", [1, 2, 4])
def test_an_interrupt_inside_an_evaluation_discards_it_and_resumes_exactly(where, tmp_path, monkeypatch):
    """Identity's evaluations draw from a generator that runs on from one evaluation to the next:
    an evaluation cut short must leave it where it was, and be repeated on resume."""
    whole = train_id()
    real, calls = identity.evaluate, {"n": 0}

    def interrupting(*args, **kwargs):
        metrics = real(*args, **kwargs)  # the evaluation generator has moved on
        calls["n"] += 1
        if calls["n"] == where:
            raise KeyboardInterrupt
        return metrics

    monkeypatch.setattr(identity, "evaluate", interrupting)
    first = train_id(out=tmp_path)
    assert first.stopped_early and len(first.evaluations) == where - 1 and len(first.losses) == 6 * where
    monkeypatch.setattr(identity, "evaluate", real)
    rest = train_id(out=tmp_path, resume=True)
    same_run(rest, whole)


@pytest.mark.parametrize("where", [3, 4, 9])
def test_sorting_resumes_with_its_own_generators_exactly(where, tmp_path):
    """The task's generator (draw) and quicksort's (loss) both move inside the interrupted batch."""
    whole = train_sort()
    calls = {"n": 0}

    def interrupting(state, batch):
        value = sorting.sorting_batch_loss(state, batch)
        calls["n"] += 1
        if calls["n"] == where:
            raise KeyboardInterrupt
        return value

    first = train_sort(out=tmp_path, loss=interrupting)
    assert len(first.losses) == where - 1
    same_run(train_sort(out=tmp_path, resume=True), whole)


def test_numpy_and_python_random_states_are_restored(tmp_path):
    """A loss that draws from NumPy and Python's random module resumes exactly too."""
    import random

    def noisy(state, x):
        return identity.identity_loss(state, x) * (1 + 1e-3 * np.random.rand() + 1e-3 * random.random())

    whole = train_id(loss=noisy)
    train_id(out=tmp_path, loss=noisy, callbacks=[StopAt(5)])
    same_run(train_id(out=tmp_path, loss=noisy, resume=True), whole)


def test_resume_refuses_other_settings(tmp_path):
    train_id(out=tmp_path, callbacks=[StopAt(2)])
    with pytest.raises(ValueError, match="other settings.*lr"):
        train_id(config=replace(ID, lr=0.01), out=tmp_path, resume=True)
    with pytest.raises(ValueError, match="no checkpoint to resume"):
        train_id(out=tmp_path / "empty", resume=True)


REAL_LOSS = identity.identity_loss


def _sigterm_at(batch):
    calls = {"n": 0}

    def loss(state, x):
        calls["n"] += 1
        if calls["n"] == batch:
            os.kill(os.getpid(), signal.SIGTERM)  # arrives inside the batch, through the real handler
        return REAL_LOSS(state, x)

    return loss


@pytest.fixture(autouse=True)
def no_bars(monkeypatch):
    monkeypatch.setenv("ASHLIB_PROGRESS", "0")  # stderr holds only what the runs say


def test_sigterm_saves_and_the_cli_exits_130_with_one_line(tmp_path, monkeypatch, capsys):
    args = ["identity", "--size", "4", "--iterations", "24", "--eval-every", "6", "--set", "eval_samples=200"]
    assert main(args + ["--out", str(tmp_path / "whole")]) == 0
    monkeypatch.setattr(identity, "identity_loss", _sigterm_at(10))
    capsys.readouterr()
    assert main(args + ["--out", str(tmp_path / "cut")]) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0], err
    assert "interrupted (SIGTERM) after 9 of 24 batches" in err[0] and "--resume" in err[0]
    assert str(tmp_path / "cut" / loop.CHECKPOINT) in err[0]
    monkeypatch.setattr(identity, "identity_loss", _sigterm_at(-1))
    assert main(args + ["--out", str(tmp_path / "cut"), "--resume"]) == 0
    for name in ("evaluation.csv", "curves.csv"):
        assert (tmp_path / "cut" / name).read_text() == (tmp_path / "whole" / name).read_text()


def test_a_killed_cli_run_saves_a_resumable_checkpoint(tmp_path):
    """A real process, killed with SIGTERM then with SIGINT (Ctrl-C), mid-run."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "ASHLIB_PROGRESS": "0"}
    for signum in (signal.SIGTERM, signal.SIGINT):
        out = tmp_path / signum.name
        process = subprocess.Popen([sys.executable, "-m", "ashlib", "identity", "--size", "8", "--iterations",
                                    "1000000", "--out", str(out), "--checkpoint-every", "5"],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        # the loop is running once its first checkpoint exists; on a loaded machine the process may take
        # over a minute just to import torch, and a signal before the CLI's handler is the default (-15)
        deadline = time.monotonic() + 600
        while not (out / loop.CHECKPOINT).exists() and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.05)
        assert (out / loop.CHECKPOINT).exists(), "the run wrote no checkpoint within 600 s"
        time.sleep(0.2)
        process.send_signal(signum)
        stdout, stderr = process.communicate(timeout=60)
        assert process.returncode == 130, stderr
        lines = stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in stderr and "--resume" in lines[0], stderr
        state = loop.read_checkpoint(out / loop.CHECKPOINT)
        assert 5 <= state["step"] == len(state["result"]["losses"]) < 1_000_000
        assert f"after {state['step']:,} of 1,000,000 batches" in lines[0]


# ------------------------------------------------------------------ 3: never overwrite another run


def test_a_fresh_run_refuses_a_folder_holding_a_checkpoint(tmp_path, capsys):
    train_id(out=tmp_path, callbacks=[StopAt(2)])
    before = (tmp_path / loop.CHECKPOINT).read_bytes()
    with pytest.raises(ValueError, match="--resume.*another folder.*--overwrite"):
        train_id(out=tmp_path)
    with pytest.raises(ValueError, match="holds the checkpoint of another run"):
        train_id(config=replace(ID, seed=3), out=tmp_path)
    assert (tmp_path / loop.CHECKPOINT).read_bytes() == before
    assert main(["identity", "--size", "4", "--iterations", "3", "--out", str(tmp_path)]) == 2
    assert "--resume" in capsys.readouterr().err
    assert (tmp_path / loop.CHECKPOINT).read_bytes() == before
    fresh = train_id(out=tmp_path, overwrite=True)
    assert len(fresh.losses) == ID.iterations and loop.read_checkpoint(tmp_path / loop.CHECKPOINT)["finished"]


# ------------------------------------------------------------------ 4: damaged checkpoints


def _damage(path: Path, how: str) -> None:
    data = path.read_bytes()
    if how == "flipped bytes":
        data = bytearray(data)
        for i in (len(data) // 3, len(data) // 2, len(data) - 10):
            data[i] ^= 0xFF
        path.write_bytes(bytes(data))
    elif how == "truncated":
        path.write_bytes(data[:len(data) // 2])
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "text":
        path.write_text("this is not a checkpoint\n")
    elif how == "plain torch.save":
        torch.save({"step": 3, "model": {}}, path)
    elif how == "zip":
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("a.txt", "hello")
    elif how == "header only":
        path.write_bytes(data[:len(loop.MAGIC) + 65])


DAMAGES = ["flipped bytes", "truncated", "empty", "text", "plain torch.save", "zip", "header only"]


@pytest.mark.parametrize("how", DAMAGES)
def test_a_damaged_checkpoint_is_refused_with_one_line(how, tmp_path, capsys):
    train_id(out=tmp_path, callbacks=[StopAt(4)])
    path = tmp_path / loop.CHECKPOINT
    _damage(path, how)
    damaged = path.read_bytes()
    with pytest.raises(ValueError) as error:
        train_id(out=tmp_path, resume=True)
    message = str(error.value)
    assert str(path) in message and "\n" not in message
    assert path.read_bytes() == damaged  # nothing resumed, nothing written over it
    assert main(["identity", "--size", "4", "--iterations", "24", "--eval-every", "6", "--set", "eval_samples=200",
                 "--set", "snapshot_every=5", "--out", str(tmp_path), "--resume"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and str(path) in err[0]


# ------------------------------------------------------------------ 5: outputs checked first, failed writes


def test_unusable_outputs_are_refused_before_the_first_batch(tmp_path, monkeypatch, capsys):
    batches = {"n": 0}

    def counting(state, x):
        batches["n"] += 1
        return REAL_LOSS(state, x)

    monkeypatch.setattr(identity, "identity_loss", counting)
    a_file = tmp_path / "file"
    a_file.write_text("x")
    base = ["identity", "--size", "4", "--iterations", "3"]
    assert main(base + ["--out", str(a_file)]) == 2
    assert "--out" in capsys.readouterr().err
    assert main(base + ["--save-model", str(a_file / "model")]) == 2
    assert "--save-model" in capsys.readouterr().err
    (tmp_path / "m.pt").mkdir()
    assert main(base + ["--save-model", str(tmp_path / "m")]) == 2
    assert "--save-model" in capsys.readouterr().err
    real_open = open

    def read_only(path, *args, **kwargs):  # a folder gone read-only (root ignores chmod)
        if str(path).startswith(str(tmp_path / "ro")) and any(m in (args[0] if args else kwargs.get("mode", "r"))
                                                             for m in "wax"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    (tmp_path / "ro").mkdir()
    monkeypatch.setattr("builtins.open", read_only)
    assert main(base + ["--out", str(tmp_path / "ro")]) == 2
    assert "not writable" in capsys.readouterr().err
    assert main(base + ["--save-model", str(tmp_path / "ro" / "m")]) == 2
    assert "--save-model" in capsys.readouterr().err
    assert batches["n"] == 0


def test_a_write_failing_later_keeps_the_last_good_checkpoint(tmp_path, monkeypatch, capsys):
    real, writes = model_files.write_atomic, {"n": 0}

    def failing(path, data):
        writes["n"] += 1
        if writes["n"] > 1:
            raise OSError(28, "No space left on device")
        return real(path, data)

    monkeypatch.setattr(model_files, "write_atomic", failing)
    result = train_id(out=tmp_path, checkpoint_every=5, callbacks=[StopAt(17)])
    err = capsys.readouterr().err
    assert "Traceback" not in err and "No space left on device" in err
    assert "the last good checkpoint (batch 5) is kept" in err
    assert result.stopped_early and result.checkpoint_step == 5
    assert loop.read_checkpoint(tmp_path / loop.CHECKPOINT)["step"] == 5  # the good one, whole
    monkeypatch.setattr(model_files, "write_atomic", real)
    same_run(train_id(out=tmp_path, resume=True), train_id())  # and it resumes from batch 5 exactly
    # the CLI says so in its one line too
    monkeypatch.setattr(model_files, "write_atomic", failing)
    writes["n"] = 0
    monkeypatch.setattr(identity, "identity_loss", _sigterm_at(13))
    assert main(["identity", "--size", "4", "--iterations", "24", "--checkpoint-every", "5", "--out",
                 str(tmp_path / "cli")]) == 130
    err = capsys.readouterr().err
    assert "Traceback" not in err and "holds batch 5" in err and "--resume" in err


def test_checkpoints_are_written_atomically(tmp_path):
    """A failed write leaves the earlier file and no temporary file behind."""
    path = tmp_path / "f"
    model_files.write_atomic(path, b"good")

    with pytest.raises(TypeError):
        model_files.write_atomic(path, object())  # fails inside the write
    assert path.read_bytes() == b"good" and sorted(p.name for p in tmp_path.iterdir()) == ["f"]


# ------------------------------------------------------------------ callbacks, custom loss, model


def test_callbacks_see_every_batch_and_evaluation_and_can_stop_the_run():
    seen = {"batches": [], "evals": []}

    class Record(loop.Callback):
        def on_batch(self, state, loss):
            seen["batches"].append((state.step, loss))

        def on_eval(self, state, metrics):
            seen["evals"].append(state.step)
            return state.step == 12  # stop here

    result = train_id(callbacks=[Record()])
    assert [s for s, _ in seen["batches"]] == list(range(1, 13)) and seen["evals"] == [6, 12]
    assert [l for _, l in seen["batches"]] == result.losses and not result.stopped_early


def test_a_model_passed_in_is_the_one_trained():
    layer = identity.build_layer(ID)
    result = train_id(model=layer)
    assert result.model is layer and len(result.losses) == ID.iterations


def test_result_rows_and_curves_file(tmp_path):
    result = train_id()
    columns, rows = result.curve_rows()
    assert columns == ["step", "eval_mse", "diagonal"] and [r[0] for r in rows] == [6, 12, 18, 24]
    model_files.write_curves(tmp_path / "c.csv", columns, rows)
    curves = model_files.read_curves(tmp_path / "c.csv")
    assert curves["step"] == [6, 12, 18, 24] and curves["eval_mse"] == pytest.approx(result.eval_mse, rel=1e-5)
    assert json.dumps(result.evaluations)  # plain numbers
