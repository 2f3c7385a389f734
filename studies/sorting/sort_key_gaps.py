"""How far apart do trained key networks put their keys, and how wrong are the pairs they misorder?

For each run folder (``python -m ashlib sort ... --out FOLDER``), loads FOLDER/checkpoint.pt (a checkpoint
of the training loop, checksum checked) and
scores 500 test instances: the within-instance spread of the keys, the median key gap between
numbers adjacent in sorted order, the fraction of such adjacent pairs put in the wrong order, and
how far apart those wrong pairs are (quartiles of the gap, in units of the method's softness:
1/C for quicksort, tau for NeuralSort and SoftSort). Quicksort's round has almost no gradient
for a pair more than a few 1/C apart, so the last column (wrong pairs more than 3 softness units
apart) is the share its own gradient can hardly correct any more. checkpoint.pt comes from
``--checkpoint-every`` and is not kept in git: rerun the training command to score a run anew.
Used in notebook 05 ("Why does quicksort trail at n = 8?").

    python studies/sorting/sort_key_gaps.py studies/sorting/results/n8_quicksort_3000 studies/sorting/results/n8_neuralsort_3000
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from ashlib.experiments.loop import CHECKPOINT, read_checkpoint
from ashlib.experiments.sorting import make_tasks
from variants import network_from  # studies/sorting/variants.py


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--instances", type=int, default=500)
    args = parser.parse_args(argv)
    print(f"{'run':>28} {'batch':>6} {'key std':>8} {'adj. gap':>9} {'wrong pairs':>12} "
          f"{'wrong gap / softness (quartiles)':>34} {'wrong gap > 3 softness':>23}")
    for folder in args.folders:
        net, config = network_from(folder)
        done = read_checkpoint(folder / CHECKPOINT)["step"]
        images, numbers, _ = make_tasks(config)[1]().sample(args.instances)
        with torch.no_grad():
            keys = net(images)
        order = numbers.argsort(dim=1, stable=True)
        by_number, numbers_sorted = keys.gather(1, order), numbers.gather(1, order)
        gap = by_number[:, 1:] - by_number[:, :-1]
        distinct = numbers_sorted[:, 1:] > numbers_sorted[:, :-1]
        wrong = (gap < 0) & distinct
        softness = 1 / config.C if config.method == "quicksort" else config.tau
        scaled = gap[wrong].abs() / softness
        q = scaled.quantile(torch.tensor([0.25, 0.5, 0.75])).tolist() if scaled.numel() else [float("nan")] * 3
        far = (scaled > 3).float().mean().item() if scaled.numel() else float("nan")
        print(f"{folder.name:>28} {done:>6} {keys.std(dim=1).mean():>8.2f} {gap[distinct].abs().median():>9.3f} "
              f"{wrong.sum() / distinct.sum():>12.1%} {q[0]:>10.1f} {q[1]:>10.1f} {q[2]:>10.1f}   {far:>22.0%}")


if __name__ == "__main__":
    main()
