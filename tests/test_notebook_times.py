"""Stated times hold: every notebook's time line and the README's teaching table follow one rule.

The rule (README, "Teaching with ashlib"; computed by tools/notebook_stats.py): reading at 130 words
a minute, 10 minutes per exercise, 1 minute per stored figure, plus the stored run time (the code
cells' execution times that nbclient records when tools/run_notebooks.py makes the outputs).

* A notebook's stated time (its first cell's **Time** line) lies within 15 % of the rule.
* The README's teaching table states the same minutes as each notebook, and its "runs in" column
  the stored run time (within 15 %, or 5 seconds for short runs).
* The README's 90-minute lab plan: each part's minutes lie within 15 % of the rule for those
  sections, the parts add up to at most 80 minutes (the stated total), and one part has students
  watch a model learn (its cells run a training loop).
"""

import json
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import notebook_stats  # noqa: E402

NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9]*.ipynb"))
README = (ROOT / "README.md").read_text()
TOLERANCE = 0.15


def _table_rows(heading: str) -> list[list[str]]:
    """The rows of the first markdown table after ``heading`` in the README (header and rule left out)."""
    section = README.split(heading, 1)[1]  # starts after the header row
    rows = []
    for line in section.splitlines()[1:]:
        if not line.startswith("|"):
            break
        if not re.fullmatch(r"[|\- ]+", line):  # not the |---| rule
            rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def _seconds(text: str) -> float:
    number, unit = re.fullmatch(r"(?:about )?([\d.]+) (s|min)", text).groups()
    return float(number) * (60 if unit == "min" else 1)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_the_stated_time_follows_the_rule(path):
    s = notebook_stats.stats(path)
    assert s["run_seconds"] > 0, "no execution timestamps: regenerate with tools/run_notebooks.py"
    assert s["stated_minutes"] is not None, "no **Time** line in the first cell"
    assert abs(s["stated_minutes"] - s["rule_minutes"]) <= TOLERANCE * s["rule_minutes"], (
        f"states {s['stated_minutes']} min; the rule gives {s['rule_minutes']:.1f} "
        "(python tools/notebook_stats.py)")


def test_the_readme_table_is_taken_from_the_notebooks():
    rows = {row[0]: row for row in _table_rows("| notebook | time (min, by the rule) |")}
    assert sorted(rows) == sorted(p.name[:2] for p in NOTEBOOKS)
    for path in NOTEBOOKS:
        s = notebook_stats.stats(path)
        _, minutes, runs_in, exercises = rows[path.name[:2]]
        assert int(minutes) == s["stated_minutes"], f"{path.name}: README {minutes}, notebook {s['stated_minutes']}"
        assert int(exercises) == s["exercises"], path.name
        stated, stored = _seconds(runs_in), s["run_seconds"]
        assert abs(stated - stored) <= max(5, TOLERANCE * stored), f"{path.name}: README {runs_in}, stored {stored:.0f} s"


def test_the_lab_plan_fits_in_80_minutes_and_watches_a_model_learn():
    rows = _table_rows("| part of the lab | minutes (by the rule) | what students do |")
    assert rows, "no lab plan table"
    total, watches = 0, False
    for part, minutes, what in rows:
        number, first, last = re.fullmatch(r"(\d\d) sections (\d+)-(\d+)", part).groups()
        path = next(p for p in NOTEBOOKS if p.name.startswith(number))
        by_rule = notebook_stats.rule_for_sections(path, int(first), int(last))["total"]
        assert abs(int(minutes) - by_rule) <= TOLERANCE * by_rule, f"{part}: README {minutes}, rule {by_rule:.1f}"
        total += int(minutes)
        cells = notebook_stats.sections(json.loads(path.read_text())["cells"])
        code = " ".join("".join(c["source"]) for n in range(int(first), int(last) + 1) for c in cells.get(n, [])
                        if c["cell_type"] == "code")
        trains = re.search(r"\btrain\(|\.step\(\)", code) is not None  # a training loop runs in this part
        watches = watches or ("watch a model learn" in what and trains)
    total_stated = re.search(r"\*\*A 90-minute lab\*\* \((\d+) minutes by the rule\)", README)
    assert total_stated and int(total_stated.group(1)) == total, "the plan's stated total is not the sum of its parts"
    assert total <= 80, f"the lab plan adds up to {total} minutes"
    assert watches, "no part of the lab plan has students watch a model learn"


def test_the_rule_counts_what_it_says(tmp_path):
    """An independent count on a hand-made notebook: 260 words, one exercise, two figures, 90 s."""
    markdown = {"cell_type": "markdown", "metadata": {}, "source": ["word " * 260]}
    figure = {"output_type": "display_data", "data": {"image/png": "", "text/plain": ""}, "metadata": {}}
    code = {"cell_type": "code", "metadata": {"execution": {"iopub.execute_input": "2026-01-01T10:00:00Z",
                                                             "shell.execute_reply": "2026-01-01T10:01:30Z"}},
            "source": ["@exercise\n", "def f():\n", "    ...\n"], "outputs": [figure, figure]}
    rule = notebook_stats.rule([markdown, code])
    assert rule == {"reading": 2.0, "exercises": 10, "figures": 2, "running": 1.5, "total": 15.5}
