"""Write a student copy of every lesson: outputs cleared, solution blocks removed.

    python tools/student_copy.py --out DIR            # every notebook in notebooks/
    python tools/student_copy.py --out DIR notebooks/03_reinforce_baseline.ipynb

For an assessed lab: the stored outputs (figures, printed numbers, the self-checks' lines) and the
collapsed "Show a solution" blocks are what a student should produce or find, so the copy has
neither. The exercise stubs and their self-check cells stay; with the stubs empty a Run All reaches
the end (each check says the exercise is not done yet). The reference solutions remain importable
from ``ashlib.solutions``: a copy hides them from view, it does not make them secret.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
SOLUTION_MARK = "<summary><b>Show a solution</b>"


def is_solution_block(cell) -> bool:
    """A collapsed solution: a markdown cell whose <details> summary says "Show a solution"."""
    return cell.cell_type == "markdown" and SOLUTION_MARK in cell.source


def student_copy(notebook):
    """The notebook (an nbformat node) without outputs, execution counts, widget state or solution blocks."""
    notebook.cells = [cell for cell in notebook.cells if not is_solution_block(cell)]
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        cell.metadata.pop("execution", None)
    notebook.metadata.pop("widgets", None)
    return notebook


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="folder for the copies (created; existing copies are replaced)")
    parser.add_argument("notebooks", nargs="*", help="notebooks to copy (default: every notebook in notebooks/)")
    args = parser.parse_args(argv)
    paths = [Path(p) for p in args.notebooks] or sorted(NOTEBOOKS.glob("[0-9]*.ipynb"))
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        print(f"no such notebook: {', '.join(missing)}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for path in paths:
        notebook = student_copy(nbformat.read(path, as_version=4))
        removed = sum(is_solution_block(c) for c in nbformat.read(path, as_version=4).cells)
        nbformat.write(notebook, out / path.name)
        print(f"{out / path.name}: outputs cleared, {removed} solution block{'s' * (removed != 1)} removed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
