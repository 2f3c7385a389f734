"""Stored notebooks must be what nbval and GitHub readers expect (see ../shared/NOTEBOOKS.md)."""

import glob
import json
import os

import pytest

NOTEBOOKS = sorted(glob.glob(os.path.join(os.path.dirname(__file__), "..", "notebooks", "*.ipynb")))


def test_there_are_notebooks():
    assert NOTEBOOKS, "no notebooks found"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=os.path.basename)
def test_notebook_is_stored_executed_and_clean(path):
    nb = json.load(open(path))
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    assert "widgets" not in nb["metadata"], "remove metadata.widgets (scripts/run_notebooks.py does)"
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    counts = [c["execution_count"] for c in code]
    assert counts == list(range(1, len(code) + 1)), "execute top to bottom: counts must run 1..n"
    assert any(c["outputs"] for c in code), "stored without outputs"
    for c in code:
        assert not any(o["output_type"] == "error" for o in c["outputs"]), "".join(c["source"])[:80]
    first_md = next(c for c in nb["cells"] if c["cell_type"] == "markdown")
    assert "Stored outputs" in "".join(first_md["source"]), "say which mode and data produced the outputs"
    assert any("assert" in "".join(c["source"]) for c in code), "a notebook asserts what it teaches"
