"""Is quicksort's shortfall in its objective or in its optimisation?

Ordering errors do not change when every key is multiplied by the same s > 0, but the sorting
losses do: a larger scale makes the relaxed sort harder (closer to the permutation the keys
imply), a smaller one softer. For each trained key network (a shipped model's name or a run's
checkpoint.pt) this script computes, on the same instances, the quicksort loss (the
paper's: n random half-permutations per round, C = 10) and the NeuralSort loss (tau = 1) of
``s * keys`` for a range of s, and the share of instances the keys order wrongly, on test
instances (``--split test``, the default) or on the training digits the network was fitted to
(``--split train``: how well each training fitted its own data).

Two questions it answers:

- **Where is each network's loss lowest?** If a network's own loss rises when its keys are
  scaled up, the training had no reason to make them harder: it sits where softness pays.
- **Which keys does quicksort's own loss prefer?** If another method's keys reach a lower
  quicksort loss (at their best scale) than quicksort's keys do, the quicksort objective would
  have rewarded those keys; training through quicksort did not find them, so the shortfall is in
  the optimisation, not in what the loss asks for.

    python studies/sorting/sort_loss_by_scale.py sort-quicksort-n8 sort-neuralsort-n8
"""

from __future__ import annotations

import argparse
import torch

from ashlib.experiments.sorting import SCALES, losses_by_scale
from sort_error_anatomy import load_network


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", help="shipped model names or checkpoint.pt paths (same n)")
    parser.add_argument("--instances", type=int, default=1000)
    parser.add_argument("--split", choices=("train", "test"), default="test")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"# python studies/sorting/sort_loss_by_scale.py {' '.join(args.models)} --instances {args.instances} "
          f"--split {args.split}")
    print(f"# {args.instances} {args.split} instances (seed 0), keys of the network in eval mode, times s")
    print("# quicksort loss: n random half-permutations per round, C = 10 (the same draws for every row); "
          "NeuralSort loss: tau = 1")
    head = " ".join(f"{s:>7g}" for s in SCALES)
    for model in args.models:
        net, config = load_network(model)
        net.eval()
        table, error, spread = losses_by_scale(net, config, args.instances, args.split)
        label = model if len(model) <= 48 else "..." + model[-45:]
        print(f"\n{label}  (trained with {config.method}, n = {config.n}; instance error {error:.1%}, "
              f"key std {spread:.3g})")
        print(f"{'s':>12} {head}   best s, loss")
        for name, row in table.items():
            best = min(range(len(row)), key=row.__getitem__)
            print(f"{name:>12} {' '.join(f'{v:7.4f}' for v in row)}   {SCALES[best]:g}, {row[best]:.4f}")


if __name__ == "__main__":
    main()
