"""Execute notebooks top to bottom in place, so their stored outputs are fresh and nbval-clean.

    python tools/run_notebooks.py notebooks/01_sampling.ipynb [...]        # full mode
    python tools/run_notebooks.py --quick notebooks/02_identity.ipynb       # quick mode

Runs with one thread (reproducible numbers), kernel ``python3``, progress bars off
(``ASHLIB_PROGRESS=0``: a stored bar would stay frozen at its first frame) and the exercises'
reference solutions swapped in (``ASHLIB_SOLUTIONS=1``; the test suite runs the notebooks without
them, as a student would). It removes the
widget state that GitHub cannot render and replaces each widget's text stand-in
("interactive(children=...") with a line saying the explorer needs a live kernel. Each
notebook's first cell prints the mode it ran in.
"""

import argparse
import os
import sys
import time

import nbformat
from nbclient import NotebookClient


WIDGET_STAND_IN = "[interactive explorer: it appears when you run this cell in Jupyter]"


def execute(path: str, quick: bool, timeout: int) -> None:
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = "1"
    os.environ["ASHLIB_PROGRESS"] = "0"
    os.environ["ASHLIB_SOLUTIONS"] = "1"
    if quick:
        os.environ["ASHLIB_QUICK"] = "1"
    else:
        os.environ.pop("ASHLIB_QUICK", None)
    nb = nbformat.read(path, as_version=4)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    start = time.time()
    NotebookClient(nb, timeout=timeout, kernel_name="python3",
                   resources={"metadata": {"path": os.path.dirname(os.path.abspath(path))}}).execute()
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if "application/vnd.jupyter.widget-view+json" in data:
                data["text/plain"] = WIDGET_STAND_IN
    nbformat.write(nb, path)
    print(f"{path}: executed in {'quick' if quick else 'full'} mode in {time.time() - start:.0f} s")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="+")
    parser.add_argument("--quick", action="store_true", help="run with ASHLIB_QUICK=1")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per cell")
    args = parser.parse_args(argv)
    for path in args.notebooks:
        execute(path, args.quick, args.timeout)


if __name__ == "__main__":
    sys.exit(main())
