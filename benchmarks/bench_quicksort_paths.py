"""Quicksort's two ways of applying a round, timed in one process: per kept sample vs one dense mix.

A round of quicksort is y = sum_s p_s P_s x. ``HalfPermutationStep.apply`` either moves the rows
once per kept sample (``_MixedPermutation``, memory linear in n) or, up to
``ashlib.sort.DENSE_MIX_MAX_N``, scatters the proportions into one (b, n, n) matrix and does a
single batched product. This times a forward + backward of a whole quicksort (keys and items,
the sorting experiment's default sampler plus ``local = n`` proposals) both ways, on the
sorting experiment's item size (3 digits of 28 x 28), and prints the ratio.

    python benchmarks/bench_quicksort_paths.py
"""

from __future__ import annotations

import argparse
import time

import torch

import ashlib.sort as sort_module


def time_quicksort(n: int, b: int, f: int, dense: bool, repeats: int) -> float:
    sort_module.DENSE_MIX_MAX_N = 10**9 if dense else 0
    g = torch.Generator().manual_seed(0)
    keys = (torch.randn(b, n, generator=g) * 0.3).requires_grad_()
    items = torch.rand(b, n, f, generator=g).requires_grad_()
    weights = torch.rand(f, generator=g)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        out = sort_module.quicksort(keys, items, generator=torch.Generator().manual_seed(1), local=n).sorted
        (out * weights).sum().backward()
        best = min(best, time.perf_counter() - start)
    return best


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[4, 8, 16, 32, 64, 128])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--features", type=int, default=3 * 28 * 28)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    default = sort_module.DENSE_MIX_MAX_N
    print(f"quicksort forward + backward, batch {args.batch}, {args.features} features per item, "
          f"samples n + local n per round; best of {args.repeats}; {torch.get_num_threads()} thread(s); "
          f"ashlib uses the dense mix up to n = {default}")
    print(f"{'n':>5} {'per-sample (s)':>15} {'dense mix (s)':>14} {'ratio':>7}")
    try:
        for n in args.sizes:
            slow = time_quicksort(n, args.batch, args.features, False, args.repeats)
            fast = time_quicksort(n, args.batch, args.features, True, args.repeats)
            print(f"{n:>5} {slow:>15.3f} {fast:>14.3f} {slow / fast:>6.1f}x", flush=True)
    finally:
        sort_module.DENSE_MIX_MAX_N = default
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
