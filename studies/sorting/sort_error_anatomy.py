"""Where do trained key networks go wrong: recognising digits, or weighing them into one key?

For each trained key network (a shipped model's name or a run's checkpoint.pt) and the same test
instances, it reports:

- **misordered neighbours by the first digit that differs**: of the pairs of numbers adjacent in
  sorted order, the share whose keys are in the wrong order, split by whether the two numbers
  first differ in the hundreds, tens or ones digit (ties excluded). A pair that differs only in
  the ones digit needs the key to resolve a difference of 1 in 999;
- **median key gap of those pairs in units of the method's softness** (1/C for quicksort, tau for
  NeuralSort and SoftSort): below about 1 the sort still mixes the pair almost evenly;
- **linear probe**: how well a multinomial logistic regression on the 8 features the per-digit
  network gives each digit image predicts that digit (fit on 1,000 training instances' digits,
  scored on 500 test instances' digits). Equal probes mean equally good digit recognition, so a
  difference in errors lies in how the key MLP combines the digits.

    python studies/sorting/sort_error_anatomy.py sort-quicksort-n8 sort-neuralsort-n8
"""

from __future__ import annotations

import argparse

import torch
from torch.nn import functional as F

from ashlib import pretrained
from ashlib.experiments.sorting import errors_by_place, make_tasks
from variants import network_from  # studies/sorting/variants.py

PLACES = ("hundreds", "tens", "ones")


def load_network(model: str):
    """(network, config): a shipped model (its own config) or a run's checkpoint.pt (offline digits)."""
    if model in pretrained.names():
        net = pretrained.load(model)
        return net, net.config
    return network_from(model)


@torch.no_grad()
def misordered_by_place(net, config, instances: int):
    images, numbers, _ = make_tasks(config)[1]().sample(instances)
    keys = torch.cat([net(images[i:i + 250]) for i in range(0, instances, 250)])
    softness = 1 / config.C if config.method == "quicksort" else config.tau
    return [(r["count"], r["wrong"], r["median_gap"]) for r in errors_by_place(keys, numbers, config.digits, softness)]


@torch.no_grad()
def digit_features(net, task, instances: int):
    images, numbers, _ = task.sample(instances)
    digits = torch.stack([(numbers // 10 ** (task.digits - 1 - i)) % 10 for i in range(task.digits)], -1)
    flat = images.reshape(-1, 1, 28, 28)
    features = torch.cat([net.digit_net(flat[i:i + 1000]) for i in range(0, len(flat), 1000)])
    return features, digits.reshape(-1)


def linear_probe(net, config, train_instances: int = 1000, test_instances: int = 500) -> float:
    torch.manual_seed(0)
    train_task, make_test = make_tasks(config)
    x, y = digit_features(net, train_task, train_instances)
    xt, yt = digit_features(net, make_test(), test_instances)
    mean, std = x.mean(0), x.std(0) + 1e-6
    x, xt = (x - mean) / std, (xt - mean) / std
    weight = torch.zeros(x.shape[1], 10, requires_grad=True)
    bias = torch.zeros(10, requires_grad=True)
    optimiser = torch.optim.LBFGS([weight, bias], max_iter=500)

    def closure():
        optimiser.zero_grad()
        loss = F.cross_entropy(x @ weight + bias, y) + 1e-4 * weight.square().sum()
        loss.backward()
        return loss

    optimiser.step(closure)
    with torch.no_grad():
        return (xt @ weight + bias).argmax(1).eq(yt).float().mean().item()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", help="shipped model names or runs' checkpoint.pt files")
    parser.add_argument("--instances", type=int, default=2000)
    args = parser.parse_args(argv)
    head = " ".join(f"{p + ' wrong':>15}" for p in PLACES)
    gaps = " ".join(f"{p + ' gap':>13}" for p in PLACES)
    print(f"test instances: {args.instances}; wrong = misordered neighbours (count), gap = median |key gap| / softness")
    print(f"{'key network':>48} {'method':>10} {head} {gaps} {'probe':>7}")
    for model in args.models:
        net, config = load_network(model)
        net.eval()
        rows = misordered_by_place(net, config, args.instances)
        wrong = " ".join(f"{w * 100:7.1f}% ({n:>5})" for n, w, _ in rows)
        gap = " ".join(f"{g:13.2f}" for _, _, g in rows)
        probe = linear_probe(net, config)
        label = model if len(model) <= 48 else "..." + model[-45:]
        print(f"{label:>48} {config.method:>10} {wrong} {gap} {probe * 100:6.1f}%")


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
