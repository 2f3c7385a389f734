"""Words, figures, exercises and stated time per notebook: the numbers a lesson is held to.

    python tools/notebook_stats.py [notebooks/*.ipynb]
    python tools/notebook_stats.py --sections notebooks/04_attention.ipynb   # the time rule per section

The time rule (README, "Teaching with ashlib"; tests/test_notebook_times.py holds the notebooks and
the README to it): reading at 130 words a minute, 10 minutes per exercise, 1 minute per stored
figure, plus the stored run time, the sum of the code cells' execution times that nbclient records
in each cell's metadata when ``tools/run_notebooks.py`` produces the outputs. A notebook's stated
time must lie within 15 % of it.

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


WORDS_PER_MINUTE = 130
MINUTES_PER_EXERCISE = 10
MINUTES_PER_FIGURE = 1
SECTION = re.compile(r"^##\s+(\d+)\.", re.M)


def _seconds(stamp: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def run_seconds(cells) -> float:
    """Seconds the code cells ran when the stored outputs were made (nbclient's timestamps)."""
    total = 0.0
    for cell in cells:
        timing = cell.get("metadata", {}).get("execution", {})
        if cell["cell_type"] == "code" and "iopub.execute_input" in timing and "shell.execute_reply" in timing:
            total += _seconds(timing["shell.execute_reply"]) - _seconds(timing["iopub.execute_input"])
    return total


def count_figures(cells) -> int:
    """Stored figures: PNG outputs of code cells."""
    return sum(1 for c in cells if c["cell_type"] == "code" for o in c.get("outputs", [])
               if "image/png" in o.get("data", {}))


def count_exercises(cells) -> int:
    """Exercise stubs: code cells' lines that start with ``@exercise``."""
    return sum(len(re.findall(r"^@exercise", "".join(c["source"]), re.M)) for c in cells if c["cell_type"] == "code")


def rule(cells) -> dict:
    """The time rule over some cells: its parts in minutes and their sum."""
    markdown = ["".join(c["source"]) for c in cells if c["cell_type"] == "markdown"]
    parts = {
        "reading": sum(words(m) for m in markdown) / WORDS_PER_MINUTE,
        "exercises": MINUTES_PER_EXERCISE * count_exercises(cells),
        "figures": MINUTES_PER_FIGURE * count_figures(cells),
        "running": run_seconds(cells) / 60,
    }
    return {**parts, "total": sum(parts.values())}


def sections(cells) -> dict:
    """Numbered section -> its cells; section 0 is everything before section 1 (title, set-up)."""
    out, current = {0: []}, 0
    for cell in cells:
        found = SECTION.search("".join(cell["source"])) if cell["cell_type"] == "markdown" else None
        if found:
            current = int(found.group(1))
            out.setdefault(current, [])
        out[current].append(cell)
    return out


def rule_for_sections(path, first: int, last: int) -> dict:
    """The time rule for sections first..last of a notebook, with its opening (section 0) counted in."""
    parts = sections(json.loads(Path(path).read_text())["cells"])
    return rule([c for number in [0, *range(first, last + 1)] for c in parts.get(number, [])])


def stats(path) -> dict:
    cells = json.loads(Path(path).read_text())["cells"]
    markdown = ["".join(c["source"]) for c in cells if c["cell_type"] == "markdown"]
    time = re.search(r"\*\*Time[^*]*\*\*[^0-9]*(\d+)\s*min", markdown[0] if markdown else "") or \
        re.search(r"Time[^\n]*?(\d+)\s*min", markdown[0] if markdown else "")
    summary = summary_cell(cells)
    return {"notebook": Path(path).name, "words": sum(words(m) for m in markdown),
            "summary_words": words(summary) if summary is not None else None,
            "figures": count_figures(cells), "exercises": count_exercises(cells),
            "stated_minutes": int(time.group(1)) if time else None, "run_seconds": run_seconds(cells),
            "rule_minutes": rule(cells)["total"]}


def main(argv=None) -> int:
    argv = list(argv if argv is not None else sys.argv[1:])
    by_section = "--sections" in argv
    argv = [a for a in argv if a != "--sections"]
    paths = argv or sorted(str(p) for p in Path("notebooks").glob("*.ipynb"))
    if by_section:
        for path in paths:
            print(Path(path).name)
            for number, cells in sections(json.loads(Path(path).read_text())["cells"]).items():
                r = rule(cells)
                print(f"  section {number:>2}: {r['total']:5.1f} min (read {r['reading']:4.1f}, exercises "
                      f"{r['exercises']:2.0f}, figures {r['figures']:2.0f}, run {r['running']:4.1f})")
        return 0
    print(f"{'notebook':<30} {'words':>6} {'summary':>8} {'figures':>8} {'exercises':>10} {'run (s)':>8} "
          f"{'rule (min)':>11} {'stated':>7}")
    for path in paths:
        s = stats(path)
        print(f"{s['notebook']:<30} {s['words']:>6} {str(s['summary_words']):>8} {s['figures']:>8} "
              f"{s['exercises']:>10} {s['run_seconds']:>8.0f} {s['rule_minutes']:>11.1f} {str(s['stated_minutes']):>7}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
