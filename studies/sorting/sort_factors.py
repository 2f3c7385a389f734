"""Why does quicksort trail NeuralSort/SoftSort? One factor at a time, several seeds, one budget.

Every run sorts the same kind of instances (n MNIST numbers of 3 digits, offline digits) with
the same key network, batch size, optimiser, schedule and number of batches; one setting of the
sort changes per row. The key network is the cheap per-digit MLP (``variants.build_key_network(config, "mlp")``), not
table 3's ConvNet, so a run takes a minute or two on one CPU thread: the study compares *sorts*
(how good a gradient each gives the keys), and the winners are then checked on the paper's
ConvNet with ``python -m ashlib sort``.

Results are appended to a JSON file after every run, so an interrupted study continues where it
stopped (runs already in the file are skipped). Prints a table of mean (min-max) test error.

    python studies/sorting/sort_factors.py --n 8 --iterations 600 --seeds 0 1 \\
        --out studies/sorting/results/factors/n8.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from ashlib.data import SortingTask, load_mnist  # noqa: E402
from ashlib.experiments import sorting  # noqa: E402
from variants import STUDY_SETTINGS, train as train_variant  # noqa: E402 - studies/sorting/variants.py

# name -> (changes to the reference quicksort setting, train on distinct numbers (no ties)?)
VARIANTS = {
    "neuralsort": (dict(method="neuralsort", local=0, draws=1), False),
    "softsort": (dict(method="softsort", local=0, draws=1), False),
    "quicksort (reference: local n, draws 4)": ({}, False),
    "paper sampler (samples n, local 0, draws 1)": (dict(local=0, draws=1), False),
    "samples 0 (hard o + local only)": (dict(samples=0), False),
    "samples 32": (dict(samples=32), False),
    "local 0": (dict(local=0), False),
    "local 32": (dict(local=32), False),
    "draws 1": (dict(draws=1), False),
    "draws 16": (dict(draws=16), False),
    "C 3": (dict(C=3.0), False),
    "C 30": (dict(C=30.0), False),
    "lr 3e-4": (dict(lr=3e-4), False),
    "lr 3e-3": (dict(lr=3e-3), False),
    "intermediate loss": (dict(intermediate=True), False),
    "straight-through o": (dict(straight_through=True), False),
    "no ties in training": ({}, True),
    "neuralsort lr 3e-3": (dict(method="neuralsort", local=0, draws=1, lr=3e-3), False),
    "softsort lr 3e-3": (dict(method="softsort", local=0, draws=1, lr=3e-3), False),
}


def run(name: str, seed: int, args) -> dict:
    changes, distinct = VARIANTS[name]
    base = sorting.SortingConfig(n=args.n, method="quicksort", local=args.n, draws=4, width=1.0,
                                 lr=1e-3, lr_schedule="cosine", iterations=args.iterations,
                                 eval_every=args.iterations, eval_instances=args.eval_instances,
                                 source="offline", seed=seed)
    knobs = {"key_network": "mlp", **{k: v for k, v in changes.items() if k in STUDY_SETTINGS}}
    config = replace(base, **{k: v for k, v in changes.items() if k not in STUDY_SETTINGS})
    train_task = SortingTask(config.n, digits=config.digits, split="train", seed=seed, source="offline",
                             distinct=distinct)
    test_digits = load_mnist("test", "offline")
    make_test = lambda: SortingTask(config.n, digits=config.digits, split="test", seed=10_000 + seed,  # noqa: E731
                                    mnist=test_digits)
    start = time.perf_counter()
    result = train_variant(config, progress=False, data=(train_task, make_test), **knobs)
    return {"name": name, "seed": seed, "error": result.eval_error[-1], "element_error": result.eval_element_error[-1],
            "final_loss": statistics.fmean(result.losses[-50:]), "seconds": round(time.perf_counter() - start, 1)}


def table(rows: list[dict]) -> str:
    lines = ["| setting | test error, mean (min-max) | element error | seconds per run |", "|---|---|---|---|"]
    for name in VARIANTS:
        mine = [r for r in rows if r["name"] == name]
        if not mine:
            continue
        e = [r["error"] for r in mine]
        m = [r["element_error"] for r in mine]
        lines.append(f"| {name} | {statistics.fmean(e):.1%} ({min(e):.1%}-{max(e):.1%}), {len(e)} seeds "
                     f"| {statistics.fmean(m):.1%} | {statistics.fmean(r['seconds'] for r in mine):.0f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--iterations", type=int, default=600)
    parser.add_argument("--eval-instances", type=int, default=2000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--only", nargs="*", default=None, help="run only these variant names")
    parser.add_argument("--out", required=True, help="JSON file the results are appended to")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    out = Path(args.out)
    rows = json.loads(out.read_text())["runs"] if out.is_file() else []
    names = args.only if args.only else list(VARIANTS)
    for name in names:
        if name not in VARIANTS:
            parser.error(f"unknown variant {name!r}; known: {list(VARIANTS)}")
    for seed in args.seeds:
        for name in names:
            if any(r["name"] == name and r["seed"] == seed for r in rows):
                continue
            row = run(name, seed, args)
            rows.append(row)
            print(f"{name:45s} seed {seed}: error {row['error']:.1%} element {row['element_error']:.1%} "
                  f"({row['seconds']:.0f} s)", flush=True)
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps({"n": args.n, "iterations": args.iterations,
                                       "eval_instances": args.eval_instances, "runs": rows}, indent=1) + "\n")
    print(table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
