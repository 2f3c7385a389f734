"""How spread out are a fresh key network's keys, measured against the soft buckets' width 1/C?

Quicksort's round relaxes o to sigmoid(C (key - median)): keys within about 1/C of the median
mix their items, keys further apart are sorted hard. This script builds the two key networks of
``KeyNetwork(arch=...)`` at width 0.25 from several seeds and prints, for one batch of
n = 8 training instances, the within-instance standard deviation of the keys, the mean
|key - median| in units of 1/C, and the mean |o' - 1/2| of round 1 (0: every element is a coin
flip; 0.5: hard buckets). Used to test whether the ConvNet starts with keys too close or too far
apart compared with the MLP (notebook 05, factor study).

    python studies/sorting/sort_key_scale.py [--seeds 0 1 2] [--C 10]
"""

from __future__ import annotations

import argparse
import statistics

import torch

from ashlib.experiments.sorting import KeyNetwork, SortingConfig, make_tasks


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--C", type=float, default=10.0)
    parser.add_argument("--n", type=int, default=8)
    args = parser.parse_args(argv)
    train_task, _ = make_tasks(SortingConfig(n=args.n, source="offline", iterations=1))
    images, _, _ = train_task.sample(256)
    print(f"n = {args.n}, 256 training instances, C = {args.C} (1/C = {1 / args.C:.3f}), width 0.25, train mode")
    soft_header = "|o' - 1/2|"
    print(f"{'key network':>12} {'seed':>4} {'key std':>9} {'|k - med| C':>12} {soft_header:>11}")
    for arch in ("conv", "mlp"):
        rows = []
        for seed in args.seeds:
            torch.manual_seed(seed)
            net = KeyNetwork(3, 0.25, arch).train()
            with torch.no_grad():
                keys = net(images)
            median = keys.median(dim=1, keepdim=True).values
            std = keys.std(dim=1).mean().item()
            scaled = ((keys - median).abs() * args.C).mean().item()
            soft = (torch.sigmoid(args.C * (keys - median)) - 0.5).abs().mean().item()
            rows.append((std, scaled, soft))
            print(f"{arch:>12} {seed:>4} {std:>9.4f} {scaled:>12.3f} {soft:>11.3f}")
        means = [statistics.mean(r[i] for r in rows) for i in range(3)]
        print(f"{arch:>12} {'mean':>4} {means[0]:>9.4f} {means[1]:>12.3f} {means[2]:>11.3f}")


if __name__ == "__main__":
    main()
