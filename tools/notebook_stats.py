"""Words, figures, exercises and stated time per notebook: the numbers a lesson is held to.

    python tools/notebook_stats.py [notebooks/*.ipynb]

Prose words count the markdown cells only, without fenced code blocks and HTML tags; a word is a
run of letters or a number, inline code included (the stricter count, as the project's before-stop
check makes it). DESIGN: a lesson has at most 2,500 words of prose, a summary of at most 200.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

FENCE = re.compile(r"```.*?```", re.S)
TAG = re.compile(r"<[^>\n]+>")


WORD = re.compile(r"[A-Za-z][A-Za-z'-]*|\d[\d,.]*")


def prose(markdown: str) -> str:
    """A markdown cell's text without code blocks and HTML tags."""
    return TAG.sub(" ", FENCE.sub(" ", markdown))


def words(markdown: str) -> int:
    return len(WORD.findall(prose(markdown)))


def summary_cell(cells) -> str | None:
    """The markdown cell that holds the '## Summary' section (its heading line left out)."""
    for cell in cells:
        text = "".join(cell["source"])
        if cell["cell_type"] == "markdown" and re.search(r"^#+\s*(\d+\.\s*)?Summary", text, re.M):
            body = re.split(r"^#+\s*(?:\d+\.\s*)?Summary.*$", text, maxsplit=1, flags=re.M)[1]
            return re.split(r"^#+\s", body, maxsplit=1, flags=re.M)[0]  # up to the next heading
    return None


def stats(path) -> dict:
    cells = json.loads(Path(path).read_text())["cells"]
    markdown = ["".join(c["source"]) for c in cells if c["cell_type"] == "markdown"]
    code = ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]
    figures = sum(1 for c in cells if c["cell_type"] == "code" for o in c.get("outputs", [])
                  if "image/png" in o.get("data", {}))
    time = re.search(r"\*\*Time[^*]*\*\*[^0-9]*(\d+)\s*min", markdown[0] if markdown else "") or \
        re.search(r"Time[^\n]*?(\d+)\s*min", markdown[0] if markdown else "")
    summary = summary_cell(cells)
    return {"notebook": Path(path).name, "words": sum(words(m) for m in markdown),
            "summary_words": words(summary) if summary is not None else None, "figures": figures,
            "exercises": sum(len(re.findall(r"^@exercise", c, re.M)) for c in code),
            "stated_minutes": int(time.group(1)) if time else None}


def main(argv=None) -> int:
    paths = (argv if argv is not None else sys.argv[1:]) or sorted(str(p) for p in Path("notebooks").glob("*.ipynb"))
    print(f"{'notebook':<30} {'words':>6} {'summary':>8} {'figures':>8} {'exercises':>10} {'time (min)':>11}")
    for path in paths:
        s = stats(path)
        print(f"{s['notebook']:<30} {s['words']:>6} {str(s['summary_words']):>8} {s['figures']:>8} "
              f"{s['exercises']:>10} {str(s['stated_minutes']):>11}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
