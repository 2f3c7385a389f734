"""Three problems a user brought, each beside the tool they would otherwise use:

1. a fixed permutation of 64 numbers: SparseLayer(64, 64, k=64, fix_values=True) against nn.Linear(64, 64);
2. a gather y = x[(q + 3) mod n] from a one-hot cue q: HyperLayer(n, 1, 1, source, fix_values=True)
   with the cue as context (a_global=16 and region (1, 8) as in studies/pointer), with and without
   relocate=True, against soft attention (the same source network giving n logits);
3. a banded 256 x 256 W (the diagonal and its two neighbours, 766 nonzeros, values N(0, 1)) from
   128 pairs (x, W x): SparseLayer(256, 256, k=768) against the Lasso (ISTA, the penalty picked
   from a short list by the error on 128 held-out pairs).

    python studies/relocate/user_problems.py --problems 1 2 3 --seeds 0 1 2

Adam, batch 64, x ~ N(0, 1). Each row of the output: the method, whether it reached the goal, the
batches and seconds it took, and the learned parameters. Run with OMP_NUM_THREADS=1.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

import ashlib


def permutation(seed, relocate, batches=2000, n=64):
    """Batches until every row of the rounded W is the permutation's row."""
    torch.manual_seed(seed)
    perm = torch.randperm(n)
    P = torch.zeros(n, n)
    P[torch.arange(n), perm] = 1.0
    layer = ashlib.SparseLayer(n, n, n, fix_values=True, relocate=relocate)
    return _train(layer, lambda x: x[:, perm], lambda: bool((layer.to_dense() == P).all()), seed, batches, n,
                  lr=0.01, params=sum(p.numel() for p in layer.parameters()))


def permutation_dense(seed, batches=2000, n=64):
    """nn.Linear: batches until the argmax of every row is the permutation's column."""
    torch.manual_seed(seed)
    perm = torch.randperm(n)
    layer = nn.Linear(n, n)
    return _train(layer, lambda x: x[:, perm], lambda: bool((layer.weight.argmax(1) == perm).all()), seed, batches,
                  n, lr=0.01, params=sum(p.numel() for p in layer.parameters()))


def _train(model, target, done, seed, batches, n, lr, params, check=10):
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(1000 + seed)
    start = time.time()
    for i in range(1, batches + 1):
        x = torch.randn(64, n, generator=gen)
        loss = (model(x) - target(x)).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i % check == 0 and done():
            return {"reached": True, "batches": i, "seconds": time.time() - start, "params": params}
    return {"reached": False, "batches": batches, "seconds": time.time() - start, "params": params}


class CueSource(nn.Module):
    """cue (b, n) -> raw means (b, 1, 2) and sigma (b, 1) of one Gaussian (values fixed), or n logits."""

    def __init__(self, n, outputs, hidden=64):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(n, hidden), nn.ReLU(), nn.Linear(hidden, outputs))

    def forward(self, cue):
        out = self.net(cue)
        return (out[:, None, :2], out[:, None, 2]) if out.shape[1] == 3 else out


def gather(seed, n, method, batches=5000, shift=3):
    """Batches until the MSE (mean of the last 100 batches) is below 0.05."""
    torch.manual_seed(seed)
    if method == "soft attention":
        source = CueSource(n, n)
        model = lambda x, cue: (F.softmax(source(cue), dim=1) * x).sum(1, keepdim=True)  # noqa: E731
        params = source.parameters()
    else:
        source = CueSource(n, 3)
        # the pointer study's sampling settings (the defaults for a 1 x n W give only 2 global tuples)
        layer = ashlib.HyperLayer(n, 1, 1, source, fix_values=True, a_global=16, region=(1, 8),
                                  relocate=method.endswith("relocate"))
        model, params = layer, layer.parameters()
    params = list(params)
    opt = torch.optim.Adam(params, lr=1e-3)
    gen = torch.Generator().manual_seed(1000 + seed)
    losses, start = [], time.time()
    for i in range(1, batches + 1):
        x, q = torch.randn(64, n, generator=gen), torch.randint(n, (64,), generator=gen)
        loss = (model(x, F.one_hot(q, n).float())[:, 0] - x[torch.arange(64), (q + shift) % n]).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if i >= 100 and sum(losses[-100:]) / 100 < 0.05:
            return {"reached": True, "batches": i, "seconds": time.time() - start,
                    "params": sum(p.numel() for p in params)}
    return {"reached": False, "batches": batches, "seconds": time.time() - start, "final_mse": sum(losses[-100:]) / 100,
            "params": sum(p.numel() for p in params)}


def banded(seed, method, n=256, pairs=128, batches=1000):
    """Share of the true cells found, and the test MSE of the estimate against an empty W's."""
    g = torch.Generator().manual_seed(seed)
    W = torch.zeros(n, n)
    for offset in (-1, 0, 1):
        idx = torch.arange(max(0, -offset), min(n, n - offset))
        W[idx, idx + offset] = torch.randn(len(idx), generator=g)
    X = torch.randn(pairs, n, generator=g)
    Y = X @ W.T
    X_test = torch.randn(2000, n, generator=g)
    empty = (X_test @ W.T).pow(2).mean().item()
    start = time.time()
    if method == "Lasso":
        X_val = torch.randn(128, n, generator=g)
        best = None
        for lam in (0.003, 0.01, 0.03, 0.1):
            est = lasso(X, Y, lam)
            err = (X_val @ est.T - X_val @ W.T).pow(2).mean().item()
            best = min(best or (err, lam, est), (err, lam, est), key=lambda t: t[0])
        _, lam, est = best
        support = est.abs() > 1e-3
        extra = {"penalty": lam}
        params = n * n
    else:
        torch.manual_seed(seed)
        layer = ashlib.SparseLayer(n, n, 3 * n, relocate=(method == "SparseLayer, relocate"))
        opt = torch.optim.Adam(layer.parameters(), lr=0.01)
        for _ in range(batches):
            rows = torch.randint(pairs, (64,), generator=g)
            loss = (layer(X[rows]) - Y[rows]).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        est = layer.to_dense()
        support = est != 0
        extra = {"batches": batches, "moves": layer.moves}
        params = sum(p.numel() for p in layer.parameters())
    truth = W != 0
    return {"seconds": time.time() - start, "true_cells_found": (support & truth).sum().item() / truth.sum().item(),
            "false_cells": (support & ~truth).sum().item(), "test_mse": (X_test @ est.T - X_test @ W.T).pow(2).mean().item(),
            "empty_W_mse": empty, "params": params, **extra}


def lasso(X, Y, lam, steps=3000):
    """min_W 1/(2m) ||Y - X W^T||^2 + lam ||W||_1 by ISTA, all output rows at once."""
    m = X.shape[0]
    step = m / torch.linalg.matrix_norm(X, ord=2).item() ** 2
    W = torch.zeros(Y.shape[1], X.shape[1])
    for _ in range(steps):
        grad = (X @ W.T - Y).T @ X / m
        W = W - step * grad
        W = W.sign() * (W.abs() - step * lam).clamp_min(0)
    return W


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--problems", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--gather-n", type=int, nargs="+", default=[32, 64])
    ap.add_argument("--gather-methods", nargs="+", default=None, help="only these methods of problem 2")
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)
    rows = []

    def report(problem, method, seed, result):
        rows.append({"problem": problem, "method": method, "seed": seed, **result})
        print(problem, "|", method, "| seed", seed, "|", {k: round(v, 3) if isinstance(v, float) else v
                                                         for k, v in result.items()}, flush=True)

    for seed in a.seeds:
        if 1 in a.problems:
            report("permutation 64", "nn.Linear", seed, permutation_dense(seed))
            report("permutation 64", "SparseLayer, relocate", seed, permutation(seed, True))
            report("permutation 64", "SparseLayer, paper", seed, permutation(seed, False))
        if 2 in a.problems:
            for n in a.gather_n:
                for method in a.gather_methods or ("soft attention", "HyperLayer, fixed values",
                                                   "HyperLayer, fixed values, relocate"):
                    report(f"gather {n}", method, seed, gather(seed, n, method))
        if 3 in a.problems:
            for method in ("Lasso", "SparseLayer, relocate", "SparseLayer, paper"):
                report("banded 256", method, seed, banded(seed, method))
    if a.out:
        Path(a.out).write_text(json.dumps({"argv": argv, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
