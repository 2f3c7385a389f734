"""Write data/pretrained/NAME.curves.csv for each shipped model from the run folder that trained it.

The notebooks draw a shipped model's training curve from ``ashlib.pretrained.curves(NAME)``, which
reads ``NAME.curves.csv`` inside the installed package, so they need nothing outside it. Each
model's record (``NAME.json``) names its run folder in its ``command_as_run`` (``--out FOLDER``, a kept run
under ``studies/``); this script copies that run's evaluation rows:

- sorting: ``FOLDER/evaluation.csv`` (``batch,error,element_error``), ``batch`` renamed ``step``;
- attention: ``FOLDER/curves.csv`` (``step,test_error,near_digit,...``), columns that are empty
  in every row (the ConvNet has no box) left out.

One row per evaluation, first column ``step``. Run from the repository root (once; kept so
anyone can rebuild and check the files):

    python data/make_curves.py            # all shipped models
    python data/make_curves.py --check    # only compare with the files as they are
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import shlex
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PRETRAINED = ROOT / "data" / "pretrained"


def run_folder(record: dict) -> Path:
    # ``command`` is the recipe (``--recipe NAME``); the command as run names the run folder
    args = shlex.split(record.get("command_as_run") or record["command"])
    return ROOT / args[args.index("--out") + 1]


def curves_text(record: dict) -> str:
    folder = run_folder(record)
    source = folder / ("evaluation.csv" if record["experiment"] == "sorting" else "curves.csv")
    with open(source, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise SystemExit(f"{source} has no rows")
    rows = [{("step" if k == "batch" else k): v for k, v in row.items()} for row in rows]
    columns = [c for c in rows[0] if c == "step" or any(row[c] != "" for row in rows)]
    out = io.StringIO()
    writer = csv.DictWriter(out, columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="compare with the existing files, write nothing")
    args = parser.parse_args(argv)
    stale = []
    for meta in sorted(PRETRAINED.glob("*.json")):
        record = json.loads(meta.read_text())
        target = PRETRAINED / f"{meta.stem}.curves.csv"
        text = curves_text(record)
        if args.check:
            if not target.is_file() or target.read_text() != text:
                stale.append(target.name)
            continue
        target.write_text(text)
        print(f"wrote {target.relative_to(ROOT)} ({text.count(chr(10)) - 1} rows) from "
              f"{run_folder(record).relative_to(ROOT)}")
    if stale:
        print("out of date:", ", ".join(stale))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
