"""Find the numbers a lesson's prose quotes that nothing backs.

    python tools/notebook_numbers.py                       # every notebook; exit 1 if any number is unbacked
    python tools/notebook_numbers.py notebooks/06_your_own_problem.ipynb
    python tools/notebook_numbers.py --paper-numbers PAPER.md   # rewrite tests/paper_numbers.txt

The rule (tests/test_notebook_numbers.py applies it): every number of two or more digits in a
notebook's markdown must be found

* in that notebook's code or stored outputs (printed or set there), or
* in the paper (a copy named by ``ASHLIB_PAPER``, else the list of the paper's numbers in
  ``tests/paper_numbers.txt``), or
* in a project file that the same markdown cell links to (a study's result; a linked folder or
  README.md counts through that README and the files under its folder's ``results/``).

Digits are compared as written, without thousands separators ("2,808" matches "2808") or an
exponent's padding ("3e-5" matches "3e-05"), and a
number must stand alone in the source (so "12" is not backed by "312" or "1.25"). Exempt: years
(1900-2099), the arXiv id, notebook and exercise numbers ("notebook 04", "06.3"), the first cell's
time line, numbers inside a link's target (paths) and code blocks shown in the markdown (solutions).
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"

NUMBER = re.compile(r"(?<![\w.])-?\d[\d,]*(?:\.\d+)?(?:[eE][-+]?\d+)?(?![\w])")
LINK = re.compile(r"\]\(([^)\s]+)\)")


def _digits(token: str) -> int:
    return sum(ch.isdigit() for ch in token)


def _normal(token: str) -> str:
    """Without thousands separators, a trailing comma or dot of the sentence, and the padding of an
    exponent (Python prints 3e-05 where the prose writes 3e-5)."""
    token = token.rstrip(",.")
    token = re.sub(r"(?<=\d),(?=\d{3}\b)", "", token)
    return re.sub(r"([eE])([-+]?)0*(\d)", lambda m: m.group(1).lower() + m.group(2).replace("+", "") + m.group(3), token)


def _exempt(token: str, text: str, start: int, first_cell: bool) -> bool:
    value = _normal(token).lstrip("-")
    before = text[max(0, start - 12):start].lower()
    if re.fullmatch(r"(19|20)\d\d", value):
        return True  # a year
    if re.fullmatch(r"\d{4}\.\d{4,5}", value):
        return True  # an arXiv id
    if re.fullmatch(r"0[1-9](\.\d)?", value) or before.rstrip().endswith(("notebook", "notebooks", "exercise", "exercises")):
        return True  # notebook and exercise numbers
    if first_cell:
        line_start = text.rfind("\n", 0, start) + 1
        paragraph = text[text.rfind("\n\n", 0, start) + 1:start]
        if any(mark in paragraph or mark in text[line_start:start] for mark in ("**Time.**", "**Time:**")):
            return True
    return False


def _strip_links(text: str) -> str:
    """The markdown without link targets (paths and addresses are not quoted numbers), with LaTeX's
    thousands separator ``{,}`` written as a comma."""
    text = re.sub(r"```.*?```", "", text, flags=re.S)  # code shown in the prose (a solution) is code
    return LINK.sub("]()", text).replace("{,}", ",")


def _haystack(text: str) -> set[str]:
    """Every number standing alone in ``text``, normalised (Python's ``40_000`` and the paper's
    ``13 000`` read as 40000 and 13000)."""
    text = re.sub(r"(?<=\d)_(?=\d)", "", text)
    text = re.sub(r"(?<=\d) (?=\d{3}\b)", "", text)
    return {_normal(m.group()).lstrip("-") for m in NUMBER.finditer(text)}


def _linked_files(cell_text: str, notebook: Path) -> list[Path]:
    files = []
    for target in LINK.findall(cell_text):
        if "://" in target:
            continue
        path = (notebook.parent / target.split("#")[0]).resolve()
        folder = path if path.is_dir() else path.parent if path.name == "README.md" else None
        if folder is not None:  # a study: its README and its results
            files += [p for p in [folder / "README.md"] if p.is_file()]
            results = folder / "results"
            if results.is_dir():
                files += [p for p in results.rglob("*") if p.is_file() and p.suffix in {".txt", ".json", ".log", ".md", ".csv"}]
        elif path.is_file():
            files.append(path)
    return files


PAPER_NUMBERS = ROOT / "tests" / "paper_numbers.txt"
"""The numbers the paper states (only the numbers, one per line), written by ``--paper-numbers``
from a copy of the paper, so that the check runs where the paper is not at hand."""


def paper_text() -> str:
    """The paper's text if a copy is at hand (``ASHLIB_PAPER``), else its list of numbers."""
    candidate = os.environ.get("ASHLIB_PAPER")
    if candidate and Path(candidate).is_file():
        return Path(candidate).read_text()
    return PAPER_NUMBERS.read_text() if PAPER_NUMBERS.is_file() else ""


def unbacked(notebook: Path, paper: str | None = None) -> list[tuple[int, str, str]]:
    """(cell index, number, context) for every number of the prose that nothing backs."""
    nb = json.loads(notebook.read_text())
    cells = nb["cells"]
    code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    outputs = "\n".join(
        "".join(o.get("text", "")) + "".join(o.get("data", {}).get("text/plain", ""))
        for c in cells if c["cell_type"] == "code" for o in c.get("outputs", []))
    backed = _haystack(code) | _haystack(outputs) | _haystack(paper if paper is not None else paper_text())
    found = []
    for i, cell in enumerate(cells):
        if cell["cell_type"] != "markdown":
            continue
        raw = "".join(cell["source"])
        text = _strip_links(raw)
        linked = None
        for m in NUMBER.finditer(text):
            token = m.group()
            if _digits(token) < 2 or _exempt(token, text, m.start(), i == 0):
                continue
            value = _normal(token).lstrip("-")
            if value in backed:
                continue
            if linked is None:
                linked = set().union(*[_haystack(p.read_text(errors="replace")) for p in _linked_files(raw, notebook)])
            if value in linked:
                continue
            found.append((i, token, text[max(0, m.start() - 50):m.end() + 30].replace("\n", " ")))
    return found


def main(argv=None) -> int:
    args = list(argv if argv is not None else sys.argv[1:])
    if args[:1] == ["--paper-numbers"]:  # --paper-numbers PAPER.md: write tests/paper_numbers.txt
        numbers = sorted(_haystack(Path(args[1]).read_text()), key=lambda v: (len(v), v))
        PAPER_NUMBERS.write_text("\n".join(numbers) + "\n")
        print(f"{PAPER_NUMBERS}: {len(numbers)} numbers")
        return 0
    paths = [Path(p) for p in args] or sorted(NOTEBOOKS.glob("[0-9]*.ipynb"))
    total = 0
    for path in paths:
        for i, token, context in unbacked(path):
            total += 1
            print(f"{path.name} cell {i}: {token!r} in ...{context}...")
    print(f"{total} unbacked number{'s' * (total != 1)}")
    return 1 if total else 0


if __name__ == "__main__":
    sys.exit(main())
