"""Pretrained models: the shipped files load, match their checksums and still score what they recorded."""

import json

import pytest
import torch

from ashlib import pretrained
from ashlib.experiments import attention, sorting

REQUIRED = {"attention-sparse", "attention-stn", "attention-convnet", "sort-quicksort-n4", "sort-neuralsort-n4",
            "sort-softsort-n4", "sort-quicksort-n8", "attention-sparse-multi"}


def test_save_and_load_round_trip(tmp_path):
    config = attention.AttentionConfig(model="stn", canvas=28, glimpse_size=8, source_hidden=16, source="offline")
    torch.manual_seed(0)
    model = attention.build_model(config)
    model.set_input_statistics(torch.rand(4, 1, 28, 28))
    paths = pretrained.save(model, tmp_path / "m", "attention", config, {"final_test_error": 0.5}, "python -m x")
    assert [p.name for p in paths] == ["m.pt", "m.json"]  # no curve without evaluations
    loaded = pretrained.load_file(tmp_path / "m.json")
    assert not loaded.training and loaded.config == config
    assert loaded.summary["final_test_error"] == 0.5 and loaded.summary["command"] == "python -m x"
    for key, value in model.state_dict().items():  # float16 storage: equal up to half precision
        torch.testing.assert_close(loaded.state_dict()[key], value, atol=1e-3, rtol=1e-3)
    x = torch.rand(3, 1, 28, 28)
    torch.testing.assert_close(loaded(x), model.eval()(x), atol=2e-2, rtol=2e-2)


def test_old_records_with_settings_that_left_still_load_and_others_are_refused(tmp_path):
    """A record written when SortingConfig still had ``neighbours`` etc. loads if they sit at their
    old defaults; one that turned such a setting on is refused, naming it."""
    config = sorting.SortingConfig(n=4, width=0.25)
    paths = pretrained.save(sorting.build_model(config), tmp_path / "k", "sorting", config, {}, "cmd")
    record = json.loads(paths[1].read_text())
    record["config"].update(neighbours=False, C_final=None, key_network="conv", start_from=None)
    paths[1].write_text(json.dumps(record))
    assert pretrained.load_file(tmp_path / "k").config == config
    record["config"]["neighbours"] = True
    paths[1].write_text(json.dumps(record))
    with pytest.raises(ValueError, match="neighbours=True"):
        pretrained.load_file(tmp_path / "k")


def test_curves_of_every_shipped_model_that_has_one():
    for name in pretrained.names():
        if not (pretrained.folder() / f"{name}.curves.csv").is_file():
            continue
        curve = pretrained.curves(name)
        assert list(curve)[0] == "step" and len(curve["step"]) >= 1


def test_identity_models_save_and_load(tmp_path):
    from ashlib.experiments import identity

    config = identity.IdentityConfig(n=4, iterations=5)
    result = identity.train(config, progress=False)
    paths = pretrained.save(result.model, tmp_path / "i", "identity", config, {}, "cmd", result.evaluations)
    assert [p.name for p in paths] == ["i.pt", "i.json", "i.curves.csv"]
    layer = pretrained.load_file(tmp_path / "i")
    assert layer.config == config and torch.equal(layer.means, result.model.means.half().float())


def test_a_damaged_file_is_refused(tmp_path):
    config = sorting.SortingConfig(n=4, width=0.25)
    paths = pretrained.save(sorting.build_model(config), tmp_path / "k", "sorting", config, {}, "cmd")
    data = bytearray(paths[0].read_bytes())
    data[-100] ^= 0xFF
    paths[0].write_bytes(bytes(data))
    with pytest.raises(ValueError, match="SHA-256"):
        pretrained.load_file(tmp_path / "k")
    with pytest.raises(ValueError, match="no pretrained model"):
        pretrained.load_file(tmp_path / "missing")
    with pytest.raises(ValueError, match="available"):
        pretrained.load("no-such-model")


def test_shipped_models_are_listed_checked_and_small():
    names = set(pretrained.names())
    missing = REQUIRED - names
    assert not missing, f"pretrained models not shipped yet: {sorted(missing)}"
    total = 0
    for name in names:
        record = json.loads((pretrained.folder() / f"{name}.json").read_text())
        assert record["name"] == name and record["command"].startswith("python -m ashlib ")
        total += (pretrained.folder() / f"{name}.pt").stat().st_size
        model = pretrained.load(name)  # checks the SHA-256
        assert not model.training and "data" in model.summary and "seconds" in model.summary
    assert total <= 24 * 2**20  # the wheel carries them all: 10 models, 3-4 MB each for attention


# A fixed offline test subset for each experiment: the first 1,000 canvases / instances of the
# run's own test set. Recorded errors were measured on the full 10,000, so the tolerance is 2
# points plus the subset's sampling error (about 1.96 * sqrt(p (1 - p) / 1000)).
def _tolerance(p: float, n: int) -> float:
    return 0.02 + 1.96 * (p * (1 - p) / n) ** 0.5


@pytest.mark.parametrize("name", sorted(n for n in REQUIRED | set(pretrained.names()) if n.startswith("attention")))
def test_attention_models_score_what_they_recorded(name):
    if name not in pretrained.names():
        pytest.fail(f"{name} is not shipped")
    model = pretrained.load(name)
    config = model.config
    subset = attention.AttentionConfig(**{**vars(config), "test_size": 1000, "source": "offline"})
    data = attention.load_data(subset)
    scores = attention.evaluate(model, subset, data)
    recorded = model.summary["final_test_error"]
    assert abs(scores["test_error"] - recorded) <= _tolerance(recorded, 1000), (scores, recorded)
    if "final_near_digit" in model.summary and model.summary["final_near_digit"] is not None:
        assert abs(scores["near_digit"] - model.summary["final_near_digit"]) <= _tolerance(0.5, 1000)


def test_the_multi_glimpse_model_meets_its_targets_on_canvases_of_another_seed():
    """Issue 32: attention-sparse-multi (four 12 x 12 glimpses) errs no more than the one 16 x 16 glimpse
    of attention-sparse on the same canvases, and some glimpse's box centre lies within 4 px of the
    digit's centre on at least 90 % of them. Canvases of seed 2 (training used seed 0, testing seed 1),
    1,000 of them here (10,000 in studies/attention/multi_glimpse.md): the margins are the sampling error."""
    from ashlib.data import ClutteredMNIST, load_mnist

    multi, single = pretrained.load("attention-sparse-multi"), pretrained.load("attention-sparse")
    config = multi.config
    assert config.n_glimpses >= 4 and config.glimpse_size < single.config.glimpse_size
    assert (config.canvas, config.n_distractors, config.head) == (60, 8, "mlp") == \
        (single.config.canvas, single.config.n_distractors, single.config.head)
    canvases = ClutteredMNIST("test", size=60, n_distractors=8, seed=2, length=1000,
                              mnist=load_mnist("test", source="offline"))
    images, labels = canvases.batch(range(1000))
    centres = canvases.digit_yx.double() + 13.5
    got = {name: attention.scores(m, images, labels, centres, seed=m.config.seed)
           for name, m in (("multi", multi), ("single", single))}
    # the same 1,000 canvases for both: the difference's sampling error is smaller than either's
    assert got["multi"]["test_error"] <= got["single"]["test_error"] + 0.02, got
    assert got["multi"]["near_digit"] >= 0.9 - 1.96 * (0.9 * 0.1 / 1000) ** 0.5, got


@pytest.mark.parametrize("name", sorted(n for n in REQUIRED | set(pretrained.names()) if n.startswith("sort")))
def test_sorting_models_score_what_they_recorded(name):
    if name not in pretrained.names():
        pytest.fail(f"{name} is not shipped")
    model = pretrained.load(name)
    config = sorting.SortingConfig(**{**vars(model.config), "source": "offline", "eval_instances": 1000})
    error = sorting.evaluate(model, config)["error"]
    recorded = model.summary["final_error"]
    assert abs(error - recorded) <= _tolerance(recorded, 1000), (error, recorded)


@pytest.mark.parametrize("name", pretrained.names())
def test_shipped_curves_are_the_csv_rows(name):
    """curves(name) gives the rows of NAME.curves.csv column by column; its last point is the recorded error."""
    import csv
    import math

    with open(pretrained.folder() / f"{name}.curves.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    got = pretrained.curves(name)
    assert list(got)[0] == "step" and list(got) == list(rows[0])
    for column, values in got.items():
        assert len(values) == len(rows)
        for value, row in zip(values, rows):
            assert (math.isnan(value) and row[column] == "") or value == float(row[column])
    assert got["step"] == sorted(got["step"]) and got["step"][0] > 0
    record = json.loads((pretrained.folder() / f"{name}.json").read_text())
    final = record["summary"].get("final_error", record["summary"].get("final_test_error"))
    metric = "error" if record["experiment"] == "sorting" else "test_error"
    assert got[metric][-1] == pytest.approx(final, abs=5e-5)
    assert got["step"][-1] == record["summary"]["batches"]


def test_curves_of_an_unknown_model_are_refused():
    with pytest.raises(ValueError, match="no pretrained model"):
        pretrained.curves("no-such-model")
