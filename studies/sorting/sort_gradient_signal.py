"""How much does one batch's gradient say, for each differentiable sort? (notebook 05, n = 8.)

Quicksort's gradient reaches a pair of keys only when the pair straddles a median in some round
and its swap is in the sample; NeuralSort's and SoftSort's reach every pair (weighted by how close
it is). This script puts a number on the difference. For one key network (the shipped trained
models and a fresh one) it computes the gradient of each method's loss with respect to all the
network's parameters on the same ``--batches`` training batches, and reports:

- **coherence** = |mean g|^2 / mean |g|^2: 1 when every batch points the same way, 1/B when the
  batches' gradients are pure noise around zero (B batches). Adam's step follows the mean over
  recent batches, so low coherence means slow progress per batch at a given learning rate.
- **cos to ranker**: cosine between the method's mean gradient and that of a supervised pairwise
  ranker (logistic loss on every pair of keys, standardised per instance, told the true order):
  an independent reference for "which way should the keys move".

Both are ratios, so the methods' different loss scales do not matter.

    python studies/sorting/sort_gradient_signal.py --batches 40
"""

from __future__ import annotations

import argparse
from dataclasses import replace

import torch
from torch.nn import functional as F

from ashlib.experiments.sorting import SortingConfig, build_model, make_tasks
from variants import build_key_network, variant_sorting_loss  # studies/sorting/variants.py

SETTINGS = {
    "quicksort, paper sampler": dict(method="quicksort"),
    "quicksort, neighbourhood only": dict(method="quicksort", samples=0, local=0, neighbours=True),  # a variant
    "quicksort, local 8 + 4 draws": dict(method="quicksort", local=8, draws=4),
    "neuralsort": dict(method="neuralsort"),
    "softsort": dict(method="softsort"),
}


def ranker_loss(keys: torch.Tensor, numbers: torch.Tensor) -> torch.Tensor:
    """Pairwise logistic loss on per-instance standardised keys: the supervised reference."""
    z = (keys - keys.mean(1, keepdim=True)) / (keys.std(1, keepdim=True) + 1e-6)
    sign = torch.sign(numbers.unsqueeze(2) - numbers.unsqueeze(1)).float()  # +1 where number i > number j
    diff = z.unsqueeze(2) - z.unsqueeze(1)
    mask = sign != 0
    return F.softplus(-4 * diff[mask] * sign[mask]).mean()


def flat_grad(net, loss) -> torch.Tensor:
    net.zero_grad()
    loss.backward()
    return torch.cat([p.grad.reshape(-1) for p in net.parameters() if p.grad is not None]).clone()


def measure(net, batches, generator_seed: int = 0) -> dict:
    grads = {name: [] for name in [*SETTINGS, "ranker"]}
    net.train()  # as in training (batch norm on batch statistics)
    for images, numbers, perm in batches:
        target = images.gather(1, perm.view(*perm.shape, 1, 1, 1).expand_as(images))
        grads["ranker"].append(flat_grad(net, ranker_loss(net(images), numbers)))
        for name, settings in SETTINGS.items():
            fields = {k: v for k, v in settings.items() if k != "neighbours"}
            config = SortingConfig(n=images.shape[1], width=0.25, source="offline", **fields)
            generator = torch.Generator().manual_seed(generator_seed)
            loss = variant_sorting_loss(config, net(images), images, target, generator,
                                        neighbours=settings.get("neighbours", False))
            grads[name].append(flat_grad(net, loss))
    reference = torch.stack(grads["ranker"]).mean(0)
    out = {}
    for name, gs in grads.items():
        g = torch.stack(gs)
        mean = g.mean(0)
        coherence = (mean.square().sum() / g.square().sum(1).mean()).item()
        out[name] = (coherence, F.cosine_similarity(mean, reference, dim=0).item())
    return out


def load_network(model: str, config: SortingConfig):
    """A fresh key network (seed 0), or a shipped / checkpointed one as sort_error_anatomy.py loads it."""
    if model in ("fresh", "fresh-mlp"):
        if model == "fresh-mlp":
            return build_key_network(replace(config, seed=0), "mlp")
        torch.manual_seed(0)
        return build_model(config)
    from sort_error_anatomy import load_network as load_trained  # the same folder (studies/sorting/)

    return load_trained(model)[0]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--models", nargs="*", default=["fresh", "sort-quicksort-n8", "sort-neuralsort-n8"],
                        help="'fresh' (table 3's ConvNet at width 0.25, seed 0), 'fresh-mlp' (the factor study's "
                             "per-digit MLP), a shipped model's name, or a run's checkpoint.pt")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    config = SortingConfig(n=args.n, width=0.25, source="offline")
    task = make_tasks(config)[0]
    batches = [task.sample(args.batch_size) for _ in range(args.batches)]
    print(f"n = {args.n}, {args.batches} training batches of {args.batch_size}; pure noise would give coherence "
          f"{1 / args.batches:.3f}")
    for model in args.models:
        net = load_network(model, config)
        print(f"\nkey network: {model}")
        print(f"{'loss':>32} {'coherence':>10} {'cos to ranker':>14}")
        for name, (coherence, cos) in measure(net, batches).items():
            print(f"{name:>32} {coherence:10.3f} {cos:14.3f}")


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
