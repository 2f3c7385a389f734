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
    assert "widgets" not in nb["metadata"], "remove metadata.widgets (tools/run_notebooks.py does)"
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    counts = [c["execution_count"] for c in code]
    assert counts == list(range(1, len(code) + 1)), "execute top to bottom: counts must run 1..n"
    assert any(c["outputs"] for c in code), "stored without outputs"
    for c in code:
        assert not any(o["output_type"] == "error" for o in c["outputs"]), "".join(c["source"])[:80]
    first_md = next(c for c in nb["cells"] if c["cell_type"] == "markdown")
    assert "Stored outputs" in "".join(first_md["source"]), "say which mode and data produced the outputs"
    assert any("assert" in "".join(c["source"]) for c in code), "a notebook asserts what it teaches"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=os.path.basename)
def test_notebook_reads_as_course_material(path):
    """Goals, prerequisites and time at the top; summary and references at the end; no frozen
    progress bars or bare widget reprs in the stored outputs; every explorer has a static figure."""
    nb = json.load(open(path))
    cells = nb["cells"]
    top = "".join(cells[0]["source"])
    for heading in ("Learning goals", "Prerequisites", "Time", "Exercises"):
        assert heading in top, f"the first cell must state {heading!r}"
    tail = "".join("".join(c["source"]) for c in cells[-4:] if c["cell_type"] == "markdown")
    assert "## Summary" in tail and "## References" in tail, "end with a summary and references"
    assert "Bloem" in tail, "cite the paper in the references"
    for i, c in enumerate(cells):
        if c["cell_type"] != "code":
            continue
        for o in c["outputs"]:
            text = "".join(o.get("text", "")) + "".join(o.get("data", {}).get("text/plain", ""))
            assert "interactive(children" not in text, f"cell {i}: a bare widget repr (use tools/run_notebooks.py)"
            assert "it/s]" not in text and "0%|" not in text, f"cell {i}: a progress bar in the stored output"
            if "application/vnd.jupyter.widget-view+json" in o.get("data", {}):
                following = next((d for d in cells[i + 1:] if d["cell_type"] == "code"), {"outputs": []})
                assert any("image/png" in out.get("data", {}) for out in following["outputs"]), \
                    f"cell {i}: the next code cell after an explorer must draw a static figure"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=os.path.basename)
def test_notebook_code_reads_nothing_outside_the_package(path):
    """After a wheel install only the package exists: no notebook code may open a file of the
    checkout (studies/, scripts/, data/ paths, ``__file__`` tricks); shipped data comes through
    ``ashlib.data`` and ``ashlib.pretrained`` (tests/test_wheel_install.py runs 04 and 05 so)."""
    nb = json.load(open(path))
    forbidden = ("__file__", "Path(", "open(", "studies/", "scripts/", "../", "np.load", "read_csv", "torch.load")
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"])
        code = "\n".join(line.split("#", 1)[0] for line in source.splitlines())  # comments may cite a study
        found = [word for word in forbidden if word in code]
        assert not found, f"code cell reads a path ({found}): {source[:120]!r}"


def _stats(path):
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "notebook_stats", os.path.join(os.path.dirname(__file__), "..", "tools", "notebook_stats.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.stats(path)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=os.path.basename)
def test_a_lesson_has_a_length(path):
    """DESIGN: at most 2,500 words of prose (markdown, without code and HTML tags) and a summary of
    at most 200 words (python tools/notebook_stats.py prints the numbers)."""
    s = _stats(path)
    assert s["words"] <= 2500, f"{s['words']} words of prose (at most 2,500)"
    assert s["summary_words"] is not None, "no '## Summary' section"
    assert s["summary_words"] <= 200, f"the summary has {s['summary_words']} words (at most 200)"
