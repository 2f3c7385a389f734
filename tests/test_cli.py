"""The command line runs end to end (quick mode is set by conftest.py)."""

import csv
import json
import subprocess
import sys

from dataclasses import asdict

import pytest

from ashlib import cli, model_files, pretrained
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
    assert main(["identity", "--size", "4", "--method", "reinforce", "--iterations", "300", "--set",
                 "baseline=leave_one_out", "--out", str(tmp_path)]) == 0
    assert json.loads((tmp_path / "summary.json").read_text())["config"]["method"] == "reinforce"


def test_bad_settings_exit_with_a_message(capsys):
    assert main(["identity", "--size", "8", "--set", "chunk_size=3"]) == 2
    assert "chunk_size must divide" in capsys.readouterr().err
    assert main(["identity", "--set", "no_such_field=3"]) == 2
    err = capsys.readouterr().err
    assert "no such setting" in err and "stop_when_converged" in err  # the list of settings
    assert main(["identity", "--set", "n=eight"]) == 2
    assert "not a value of type int" in capsys.readouterr().err
    assert main(["identity", "--set", "n"]) == 2
    assert "FIELD=VALUE" in capsys.readouterr().err


@pytest.mark.parametrize("experiment", ["identity", "sort", "attention"])
def test_each_experiment_lists_at_most_16_options(experiment):
    out = subprocess.run([sys.executable, "-m", "ashlib", experiment, "--help"], capture_output=True, text=True,
                         check=True).stdout
    options = [line.split()[0] for line in out.splitlines() if line.startswith("  --")]
    assert len(options) <= 16, options
    assert {"--recipe", "--set", "--out", "--resume", "--overwrite", "--save-model", "--seed"} <= set(options)


def test_set_parses_each_field_by_its_type():
    from ashlib.cli import parse_settings
    from ashlib.experiments.attention import AttentionConfig
    from ashlib.experiments.identity import IdentityConfig

    assert parse_settings(IdentityConfig, ["fix_values=false", "lr=1e-3", "chunk_size=none", "a_local=3",
                                           "baseline=none"]) == {
        "fix_values": False, "lr": 1e-3, "chunk_size": None, "a_local": 3, "baseline": "none"}
    assert parse_settings(AttentionConfig, ["scale_range=0.1,0.5", "init_box=canvas", "init_box=0.1,0.1,0.9,0.9"]) \
        == {"scale_range": (0.1, 0.5), "init_box": (0.1, 0.1, 0.9, 0.9)}
    assert parse_settings(AttentionConfig, ["init_box=none", "fresh_canvases=0"]) == {"init_box": None,
                                                                                      "fresh_canvases": False}


def test_sort_passes_set_options_to_the_run(tmp_path):
    assert main(["sort", "--n", "4", "--iterations", "2", "--eval-every", "2", "--set", "eval_instances=20",
                 "--set", "width=0.25", "--batch-size", "4", "--set", "source=offline", "--set", "C=5",
                 "--set", "lr_schedule=cosine", "--out", str(tmp_path)]) == 0
    config = json.loads((tmp_path / "summary.json").read_text())["config"]
    assert (config["C"], config["lr_schedule"], config["width"]) == (5.0, "cosine", 0.25)


@pytest.mark.parametrize("name", pretrained.names())
def test_a_recipe_reproduces_the_record_of_every_shipped_model(name):
    """The config built from ``--recipe NAME`` is the record's, field for field."""
    from ashlib.cli import _config, build_parser

    record = pretrained.record(name)
    kind = {"sorting": "sort"}.get(record["experiment"], record["experiment"])
    args = build_parser().parse_args([kind, "--recipe", name])
    module = pretrained.experiment(record["experiment"])
    config_class = type(pretrained.make_config(record["experiment"], record["config"], name))
    options = {"sort": cli.SORT_OPTIONS, "attention": cli.ATTENTION_OPTIONS, "identity": cli.IDENTITY_OPTIONS}[kind]
    config = _config(args, record["experiment"], config_class, options)
    saved = module.upgrade_config(record["config"]) if hasattr(module, "upgrade_config") else record["config"]
    built = asdict(config)
    assert all(built[k] == (tuple(v) if isinstance(v, list) else v) for k, v in saved.items())  # every recorded one
    assert config == config_class(**saved) == pretrained.load(name).config  # the rest at their defaults


def test_options_beside_a_recipe_override_it(tmp_path):
    assert main(["sort", "--recipe", "sort-quicksort-n4", "--iterations", "2", "--set", "eval_every=2",
                 "--set", "eval_instances=20", "--batch-size", "4", "--seed", "3", "--out", str(tmp_path),
                 "--save-model", str(tmp_path / "model")]) == 0
    recorded = pretrained.record("sort-quicksort-n4")["config"]
    config = json.loads((tmp_path / "summary.json").read_text())["config"]
    changed = {k: v for k, v in config.items() if recorded.get(k, v) != v}
    assert changed == {"iterations": 2, "eval_every": 2, "eval_instances": 20, "batch_size": 4, "seed": 3}
    # our own record is a recipe too, and a plain JSON of config fields
    assert main(["sort", "--recipe", str(tmp_path / "model.json"), "--iterations", "1", "--out",
                 str(tmp_path / "again")]) == 0
    assert json.loads((tmp_path / "again" / "summary.json").read_text())["config"] == {**config, "iterations": 1}
    (tmp_path / "fields.json").write_text(json.dumps({"n": 5, "iterations": 3}))
    assert main(["identity", "--recipe", str(tmp_path / "fields.json"), "--out", str(tmp_path / "id")]) == 0
    summary = json.loads((tmp_path / "id" / "summary.json").read_text())
    assert summary["config"]["n"] == 5 and summary["batches"] == 3
    assert main(["attention", "--recipe", "sort-quicksort-n4"]) == 2  # a recipe for another experiment


def test_save_model_writes_the_model_its_record_and_its_curve(tmp_path):
    assert main(["identity", "--size", "4", "--iterations", "40", "--eval-every", "10",
                 "--save-model", str(tmp_path / "m")]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.curves.csv", "m.json", "m.pt"]
    curves = model_files.read_curves(tmp_path / "m.curves.csv")
    assert list(curves) == ["step", "eval_mse", "diagonal"] and curves["step"] == [10, 20, 30, 40]
    layer = pretrained.load_file(tmp_path / "m")
    assert layer.config.n == 4 and layer.summary["batches"] == 40
