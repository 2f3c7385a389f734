"""Differentiable sorting: ashlib.quicksort against NeuralSort and SoftSort, forward + backward.

    python benchmarks/bench_sort.py [--quick] [--max-log2 12] [--features 1 784] [--repeats 3] [--device cpu]

For n = 16 ... 2**max_log2 items (batch 16), scalar items and 784-d items (an MNIST image), one
step sorts the items by random keys and backpropagates a loss on the sorted items to the keys.
Quicksort runs with the paper's a = n random half-permutations per round and with a fixed
a = 8 (its sparse regime: O(a n log n) work and memory instead of O(n^2)). Times are medians
over repeats in this one process; memory is what the step holds for backward (see
bench_sparse.step_memory). A method is skipped where its estimated memory passes --max-gib.
Quicksort with a = n runs up to --max-n-paper only; "p>1e-6" is a = 8 with
``min_proportion=1e-6`` (samples the keys make negligible are left out of the product with the
items). The last lines per item size state the ratios at the largest n where quicksort (a = 8),
NeuralSort and SoftSort all ran.
"""

from __future__ import annotations

import argparse
import math
import os

import torch

from bench_sparse import step_memory, timed

from ashlib import quicksort
from ashlib.sort_baselines import apply_permutation, neuralsort, softsort

BATCH = 16


def _quicksort_floats(n: int, f: int, a: int) -> float:
    """Rough floats per instance quicksort keeps for backward: each round's output (n f) and its
    (a + 1) n tuples (indices, weights, buckets: about 6 numbers each), twice for slack."""
    return math.log2(n) * n * (f + 6 * (a + 1)) * 2


def methods():
    return {
        "quicksort a=n": (lambda k, x: quicksort(k, x).sorted, lambda n, f: _quicksort_floats(n, f, n)),
        "quicksort a=8": (lambda k, x: quicksort(k, x, samples=8).sorted, lambda n, f: _quicksort_floats(n, f, 8)),
        "quicksort a=8 p>1e-6": (lambda k, x: quicksort(k, x, samples=8, min_proportion=1e-6).sorted,
                                 lambda n, f: _quicksort_floats(n, f, 8)),
        "NeuralSort": (lambda k, x: apply_permutation(neuralsort(k), x), lambda n, f: 4 * n * n + 2 * n * f),
        "SoftSort": (lambda k, x: apply_permutation(softsort(k), x), lambda n, f: 3 * n * n + 2 * n * f),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="n up to 256, one repeat")
    parser.add_argument("--max-log2", type=int, default=12)
    parser.add_argument("--min-log2", type=int, default=4)
    parser.add_argument("--features", type=int, nargs="+", default=[1, 784])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-gib", type=float, default=6.0, help="skip a method whose estimate exceeds this")
    parser.add_argument("--max-n-paper", type=int, default=256,
                        help="largest n for quicksort with a = n (its cost grows as n^2 log n)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    # NeuralSort and SoftSort refuse a dense soft permutation above ASHLIB_MAX_POOL_GIB (2 GiB by
    # default); the benchmark measures them up to --max-gib on purpose
    os.environ.setdefault("ASHLIB_MAX_POOL_GIB", str(args.max_gib))
    device = torch.device(args.device)
    max_log2 = 8 if args.quick else args.max_log2
    repeats = 1 if args.quick else args.repeats
    torch.manual_seed(0)
    print(f"device {device}, batch {BATCH}, float32, torch {torch.__version__}")
    for f in args.features:
        print(f"\nitems of {f} feature(s): median ms per forward+backward (MiB held for backward)")
        names = list(methods())
        print(f"{'n':>6} " + " ".join(f"{name:>22}" for name in names))
        last_all = None
        for log_n in range(args.min_log2, max_log2 + 1):
            n = 2**log_n
            keys = torch.randn(BATCH, n, device=device, requires_grad=True)
            items = torch.rand(BATCH, n, f, device=device)
            cells, row = {}, []
            for name, (sort, estimate) in methods().items():
                if BATCH * estimate(n, f) * 4 / 2**30 > args.max_gib:
                    row.append(f"{'(skipped: memory)':>22}")
                    continue
                if name == "quicksort a=n" and n > args.max_n_paper:
                    row.append(f"{'(skipped: time)':>22}")
                    continue

                def step():
                    keys.grad = None
                    sort(keys, items).pow(2).mean().backward()

                seconds = timed(step, device, repeats)
                mib = step_memory(lambda: sort(keys, items).pow(2).mean(), [keys], device)
                cells[name] = seconds
                row.append(f"{1e3 * seconds:>11.1f} ({mib:>7.1f})")
            print(f"{n:>6} " + " ".join(row), flush=True)
            if {"quicksort a=8", "NeuralSort", "SoftSort"} <= set(cells):
                last_all = (n, cells)
        if last_all:
            n, cells = last_all
            for name in ("quicksort a=8", "quicksort a=8 p>1e-6"):
                if name in cells:
                    q = cells[name]
                    print(f"ratio at n = {n}, {f} feature(s): NeuralSort / {name} = {cells['NeuralSort'] / q:.2f}, "
                          f"SoftSort / {name} = {cells['SoftSort'] / q:.2f} (time; > 1: quicksort faster)")


if __name__ == "__main__":
    main()
