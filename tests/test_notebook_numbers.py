"""Every number a lesson's prose quotes is backed (the rule is in tools/notebook_numbers.py):

a number of two or more digits in a notebook's markdown must be printed or set in that notebook's
code or stored outputs, stated in the paper (its numbers are listed in tests/paper_numbers.txt), or
found in a project file linked from the same markdown cell (a study's README and results). Years,
the arXiv id, notebook and exercise numbers, the first cell's time line, link targets and code
blocks are exempt. A number copied from an earlier run, or a rounded value the output does not
print, fails here: print what the prose quotes, link the study it comes from, or drop it."""

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import notebook_numbers  # noqa: E402

NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9]*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_number_in_the_prose_is_backed(path, monkeypatch):
    monkeypatch.delenv("ASHLIB_PAPER", raising=False)  # the committed list of the paper's numbers
    missing = notebook_numbers.unbacked(path)
    assert not missing, "numbers nothing backs:\n" + "\n".join(f"cell {i}: {t!r} in ...{c}..." for i, t, c in missing)


def _notebook(tmp_path, markdown, code_output="", link_target=None):
    import json

    cells = [{"cell_type": "markdown", "metadata": {}, "source": markdown},
             {"cell_type": "code", "metadata": {}, "execution_count": 1, "source": "x = 1",
              "outputs": [{"output_type": "stream", "name": "stdout", "text": code_output}]}]
    path = tmp_path / "notebooks" / "07_test.ipynb"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    if link_target:
        target = tmp_path / link_target[0]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(link_target[1])
    return path


def test_the_rule_by_hand(tmp_path):
    """Hand-made cases: what counts as backed and what does not."""
    nb = _notebook(tmp_path, "# t\n\nThe loss ends at 0.125 after 2,808 batches; 97 % of rows.", "loss 0.125 after 2808\n")
    assert [t for _, t, _ in notebook_numbers.unbacked(nb, paper="")] == ["97"]
    nb = _notebook(tmp_path, "# t\n\nThe run took 12 s.", "1.25 s, 312 batches\n")  # digits inside other numbers do not count
    assert [t for _, t, _ in notebook_numbers.unbacked(nb, paper="")] == ["12"]
    nb = _notebook(tmp_path, "# t\n\nIn 2018, arXiv:1810.09184, notebook 04 and Exercise 06.3; see [x](../a/b_99.md).")
    assert notebook_numbers.unbacked(nb, paper="") == []
    nb = _notebook(tmp_path, "# t\n\nThe study found 5,300 ([s](../studies/s/README.md)).",
                   link_target=("studies/s/results/r.txt", "converged_at=5300\n"))
    assert notebook_numbers.unbacked(nb, paper="") == []
    nb = _notebook(tmp_path, "# t\n\nThe paper trains 13,000 batches.")
    assert notebook_numbers.unbacked(nb, paper="Figure 3: after 13 000 batches") == []
    assert [t for _, t, _ in notebook_numbers.unbacked(nb, paper="")] == ["13,000"]
    nb = _notebook(tmp_path, "# t\n\nA source rate of 3e-5, not 4e-5.", "source rate 3e-05\n")  # Python pads the exponent
    assert [t for _, t, _ in notebook_numbers.unbacked(nb, paper="")] == ["4e-5"]
