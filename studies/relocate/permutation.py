"""A fixed permutation (or the identity) learned by SparseLayer(n, n, k=n, fix_values=True):
the paper's mechanism alone against means that relocate.

    python studies/relocate/permutation.py --n 64 256 --seeds 0 1 2 3 4 --relocate 0 1

Per run: the batch at which every row of the rounded W is right (the rounded W equals the
permutation matrix; checked every --check batches) and the seconds to get there, or the share of
rows right at the end; then --hold more batches of training, to see that right means stay put. Adam at lr 0.01, batch 64, x ~ N(0, 1), the layer's defaults otherwise
(``--set KEY=VALUE`` passes other SparseLayer arguments). One thread per run is the fair setting
for timings (OMP_NUM_THREADS=1).
"""

from __future__ import annotations

import argparse
import ast
import json
import time
from pathlib import Path

import torch

import ashlib


def rows_right(layer, perm) -> float:
    """Share of rows whose rounded W row is exactly the permutation's row."""
    W = layer.to_dense()
    n = len(perm)
    target = torch.zeros(n, n)
    target[torch.arange(n), perm] = 1.0
    return (W == target).all(1).float().mean().item()


def run(n, seed, relocate, batches, check, task, settings, batch=64, lr=0.01, hold=0):
    torch.manual_seed(seed)
    perm = torch.arange(n) if task == "identity" else torch.randperm(n)
    layer = ashlib.SparseLayer(n, n, n, fix_values=True, relocate=bool(relocate), **settings)
    opt = torch.optim.Adam(layer.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(10_000 + seed)
    def step():
        x = torch.randn(batch, n, generator=gen)
        loss = (layer(x) - x[:, perm]).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss.item()

    t0, done, trace = time.time(), None, []
    for i in range(1, batches + 1):
        loss = step()
        if i % check == 0 or i == batches:
            right = rows_right(layer, perm)
            trace.append((i, right, loss, getattr(layer, "moves", 0)))
            if right == 1.0:
                done = i
                break
    seconds = time.time() - t0
    held = None
    if done and hold:  # keep training: do correct means stay put?
        moves = getattr(layer, "moves", 0)
        for _ in range(hold):
            step()
        held = {"batches": hold, "rows_right": rows_right(layer, perm), "moves": getattr(layer, "moves", 0) - moves}
    return {"n": n, "seed": seed, "relocate": bool(relocate), "task": task, "batches_to_all_right": done,
            "seconds": seconds, "rows_right": trace[-1][1], "moves": getattr(layer, "moves", 0), "hold": held,
            "lr": lr, "settings": settings, "trace": trace}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, nargs="+", default=[64, 256])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--relocate", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--task", choices=["permutation", "identity"], default="permutation")
    ap.add_argument("--batches", type=int, default=2000)
    ap.add_argument("--check", type=int, default=10)
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--hold", type=int, default=500, help="batches to keep training once every row is right")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE")
    ap.add_argument("--out", default=None, help="JSON file for the runs")
    a = ap.parse_args(argv)
    settings = {k: ast.literal_eval(v) for k, v in (kv.split("=", 1) for kv in a.set)}
    runs = []
    for n in a.n:
        for relocate in a.relocate:
            for seed in a.seeds:
                r = run(n, seed, relocate, a.batches, a.check, a.task, settings, lr=a.lr, hold=a.hold)
                runs.append(r)
                print(f"{a.task} n={n} relocate={r['relocate']!s:5} seed={seed} all right at "
                      f"{r['batches_to_all_right'] or 'never'} ({r['seconds']:.1f} s; rows right {r['rows_right']:.0%}, "
                      f"moves {r['moves']})" + (f"; {a.hold} batches later {r['hold']['rows_right']:.0%} right, "
                                               f"{r['hold']['moves']} moves" if r["hold"] else ""), flush=True)
    if a.out:
        Path(a.out).write_text(json.dumps({"argv": argv, "runs": runs}, indent=1))


if __name__ == "__main__":
    main()
