"""studies/paper_scale/run.py: the paper's experiments in one command (issue 32, part 3).

The smoke mode runs every experiment for a few batches on tiny data on the CPU (about 15 s on one
thread); the checks below read what it wrote, resume the finished run (nothing may be redone) and
list the experiments. The full-scale settings are checked without training.
"""

import importlib.util
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "studies" / "paper_scale" / "run.py"


def _script():
    spec = importlib.util.spec_from_file_location("paper_scale_run", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


run_script = _script()
NAMES = list(run_script.EXPERIMENTS)


def _run(*args, timeout=300):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "ASHLIB_PROGRESS": "0",
           "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, str(SCRIPT), *args], env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)
    return proc, time.perf_counter() - start


def _table_rows(path: Path) -> dict:
    rows = {}
    for line in path.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        if line.startswith("| ") and cells[0] in NAMES:
            rows[cells[0]] = cells
    return rows


def test_every_entry_builds_its_full_scale_config_as_written():
    """The settings table gives every field it names, unchanged by quick mode; the paper's scale is kept."""
    for name, exp in run_script.EXPERIMENTS.items():
        config = run_script.make_config(exp, device="cpu", source="offline", smoke=False)
        for field, value in exp.settings.items():
            assert getattr(config, field) == value, (name, field)
        if exp.kind == "attention":
            assert (config.canvas, config.epochs, config.batch_size, config.train_size) == (100, 70, 128, 60_000)
            assert config.model == "convnet" or (config.n_glimpses, config.glimpse_size) in ((1, 32), (8, 12))
        if exp.kind == "sorting":
            assert (config.lr, config.batch_size, config.width, config.digits) == (5e-5, 64, 1.0, 3)
        assert exp.h100_minutes > 0 and exp.paper and exp.cite


def test_recipe_changes_match_the_shipped_recipes():
    """Where an entry says it takes a shipped recipe's change, the value is that recipe's."""
    from ashlib.pretrained import recipe

    sparse, convnet = recipe("attention-sparse"), recipe("attention-convnet")
    for field, value in run_script.SPARSE_RECIPE.items():
        assert getattr(sparse, field) == value, field
    multi, settings = recipe("attention-sparse-multi"), run_script.EXPERIMENTS["attention-8x12"].settings
    for field in (*run_script.SPARSE_RECIPE, "init_box"):  # the multi-glimpse recipe, at the paper's scale
        assert settings[field] == getattr(multi, field), field
    settings = run_script.EXPERIMENTS["attention-convnet"].settings
    for field in ("model", "lr", "source_lr", "lr_schedule", "init", "fresh_canvases", "warmup"):
        assert settings[field] == getattr(convnet, field), field
    changed = [name for name, exp in run_script.EXPERIMENTS.items() if exp.changed]
    assert set(changed) == {"identity-n1024", "attention-1x32", "attention-8x12", "attention-convnet"}


def test_list_names_every_experiment_with_its_expected_time():
    proc, _ = _run("--list", timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    for name in NAMES:
        line = next(line for line in proc.stdout.splitlines() if line.startswith(name + " "))
        assert "expected on one H100" in line and "estimate" in line
    assert "Not yet run on a GPU" in proc.stdout


def test_smoke_run_writes_the_table_and_resume_skips_finished_runs(tmp_path):
    from ashlib.experiments.loop import read_checkpoint

    out = tmp_path / "smoke"
    proc, seconds = _run("--smoke", "--device", "cpu", "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    table = out / "table.md"
    assert table.is_file()
    text = table.read_text()
    assert "SMOKE RUN" in text
    rows = _table_rows(table)
    assert sorted(rows) == sorted(NAMES), text
    for name, cells in rows.items():
        measured = float(cells[2])  # a plain number
        assert math.isfinite(measured), (name, cells)
        assert cells[-1].startswith("finished"), (name, cells)
        folder = out / name
        state = read_checkpoint(folder / "checkpoint.pt")
        assert state["finished"] and state["step"] >= 1, name
        assert (folder / "result.json").is_file() and (folder / "summary.json").is_file()
    changed = {name: cells[4] for name, cells in rows.items()}
    assert changed["sort-n4"] == "-" and "recipe attention-sparse" in changed["attention-1x32"]

    # a second run without --resume refuses to touch the finished runs
    proc, _ = _run("--smoke", "--device", "cpu", "--out", str(out))
    assert proc.returncode == 2 and "--resume" in proc.stderr

    # --resume of a finished smoke run does no work: every run skipped, no checkpoint rewritten
    stamps = {name: (out / name / "checkpoint.pt").stat().st_mtime_ns for name in NAMES}
    proc, resumed = _run("--smoke", "--device", "cpu", "--out", str(out), "--resume")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("skipped") == len(NAMES), proc.stdout
    assert {name: (out / name / "checkpoint.pt").stat().st_mtime_ns for name in NAMES} == stamps
    assert resumed < 30 and resumed < seconds, (resumed, seconds)

    # --table alone rewrites the same rows from the finished runs
    table.unlink()
    proc, _ = _run("--table", "--out", str(out), timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert {n: r[2] for n, r in _table_rows(table).items()} == {n: r[2] for n, r in rows.items()}
    shutil.rmtree(out)  # three attention checkpoints of ~120 MB each (table 2's source network and Adam state)
