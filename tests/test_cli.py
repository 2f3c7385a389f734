"""The command line runs end to end (quick mode is set by conftest.py)."""

import csv
import json
import subprocess
import sys

from ashlib.cli import main


def test_help_lists_the_experiments():
    out = subprocess.run([sys.executable, "-m", "ashlib", "--help"], capture_output=True, text=True, check=True).stdout
    assert "identity" in out


def test_identity_end_to_end(tmp_path, capsys):
    assert main(["identity", "--size", "8", "--iterations", "1200", "--eval-every", "200", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "final eval MSE" in printed
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["config"]["n"] == 8 and summary["batches"] == 1200
    assert summary["converged_at"] is not None and summary["final_eval_mse"] < 0.01
    with open(tmp_path / "curves.csv") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["batch", "train_mse"] and len(rows) == 1201
    with open(tmp_path / "evaluation.csv") as f:
        evals = list(csv.DictReader(f))
    assert [int(r["batch"]) for r in evals] == list(range(200, 1201, 200))
    assert float(evals[-1]["eval_mse"]) == summary["final_eval_mse"]
    assert (tmp_path / "identity.png").stat().st_size > 10_000


def test_reinforce_runs(tmp_path):
    assert main(["identity", "--size", "4", "--method", "reinforce", "--iterations", "300", "--baseline",
                 "leave_one_out", "--out", str(tmp_path)]) == 0
    assert json.loads((tmp_path / "summary.json").read_text())["config"]["method"] == "reinforce"


def test_bad_settings_exit_with_a_message(capsys):
    assert main(["identity", "--size", "8", "--chunk-size", "3"]) == 2
    assert "chunk_size must divide" in capsys.readouterr().err


def test_sort_passes_the_sharpness_options_to_the_run(tmp_path):
    assert main(["sort", "--n", "4", "--iterations", "2", "--eval-every", "2", "--eval-instances", "20",
                 "--width", "0.25", "--batch-size", "4", "--source", "offline", "--C", "5", "--C-final", "40",
                 "--standardise-keys", "--out", str(tmp_path)]) == 0
    config = json.loads((tmp_path / "summary.json").read_text())["config"]
    assert (config["C"], config["C_final"], config["standardise_keys"]) == (5.0, 40.0, True)


def test_sort_starts_from_a_shipped_key_network(tmp_path):
    assert main(["sort", "--n", "8", "--iterations", "1", "--eval-every", "1", "--eval-instances", "50",
                 "--width", "0.25", "--batch-size", "4", "--source", "offline", "--lr", "1e-12",
                 "--start-from", "sort-quicksort-n4", "--out", str(tmp_path)]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["config"]["start_from"] == "sort-quicksort-n4"
    assert summary["final_error"] < 0.8  # a fresh network gets nearly every n = 8 instance wrong
    assert main(["sort", "--n", "8", "--iterations", "1", "--width", "0.5", "--source", "offline",
                 "--start-from", "sort-quicksort-n4"]) == 2
