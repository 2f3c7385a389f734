"""One identity training step (sample + contract + backward + Adam) of SparseLayer's variants.

    python benchmarks/bench_identity_step.py [--sizes 8 16 32 64 128 256] [--rounds 5] [--steps 20]

Batch 64, k = n Gaussians, fixed values, the experiment's sampling settings per n, one thread.
Variants, interleaved in this one process so their ratios survive a noisy machine:

* ``pooled``: the default, every Gaussian pooled with the whole layer and one draw of tuples
  per instance (Algorithm 1 of the paper);
* ``pooled, shared``: the same pooling, one draw shared by the batch (``shared_draws=1``);
* ``chunk 1``: no pooling (``chunk_size=1``), one draw per instance;
* ``dense``: an n x n ``nn.Linear`` on the same data;
* ``sparse.mm``: the sampled tuples of the pooled layer multiplied by ``torch.sparse.mm``
  (block-diagonal over the batch) instead of :func:`ashlib.contract`, for the contraction's
  share of the step.

Prints medians in ms and, measured in the same run, the ratios pooled / shared, shared / dense
and sparse.mm / contract. The
side-by-side with the authors' sparse-hyper (a harness outside this project, results in
``benchmarks/results/side_by_side_sparse_hyper.txt``) used the same step at n = 8 ... 64.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import torch
from torch.nn import functional as F

from ashlib import SparseLayer, contract
from ashlib.experiments.identity import IdentityConfig

BATCH = 64


def stepper(model, n):
    optimiser = torch.optim.Adam(model.parameters(), lr=0.005)

    def step():
        x = torch.randn(BATCH, n)
        loss = F.mse_loss(model(x), x)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()

    return step


def contraction_steppers(layer, n):
    """Forward + backward of the contraction alone on one sampled W per instance: ashlib vs sparse.mm."""
    with torch.no_grad():
        indices, weights = layer.sample_weights(*layer.batch_parameters(BATCH))
    weights = weights.detach().requires_grad_()
    x = torch.randn(BATCH, n, requires_grad=True)
    rows = (indices[..., 0] + torch.arange(BATCH).unsqueeze(1) * n).reshape(-1)
    cols = (indices[..., 1] + torch.arange(BATCH).unsqueeze(1) * n).reshape(-1)

    def ours():
        contract(indices, weights, x, (n,), validate=False).sum().backward()

    def theirs():
        W = torch.sparse_coo_tensor(torch.stack([rows, cols]), weights.reshape(-1), (BATCH * n, BATCH * n),
                                    check_invariants=False)
        torch.sparse.mm(W, x.reshape(-1, 1)).sum().backward()

    return ours, theirs


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[8, 16, 32, 64, 128, 256])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--max-pooled", type=int, default=64, help="largest n for the per-instance pooled step")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, 1 thread, batch {BATCH}; median ms per identity step (fixed values)")
    header = ["n", "pooled", "pooled, shared", "chunk 1", "dense", "contract", "sparse.mm", "pooled/shared",
              "shared/dense", "sparse.mm/contr"]
    print(" ".join(f"{h:>14}" for h in header))
    for n in args.sizes:
        config = IdentityConfig(n=n, iterations=1)
        settings = dict(a_local=config.a_local, a_global=config.a_global, region=config.region, fix_values=True)
        torch.manual_seed(0)
        models = {"shared": SparseLayer(n, n, n, shared_draws=1, chunk_size=None, **settings),
                  "chunk 1": SparseLayer(n, n, n, chunk_size=1, **settings),
                  "dense": torch.nn.Linear(n, n, bias=False)}
        if n <= args.max_pooled:
            models["pooled"] = SparseLayer(n, n, n, chunk_size=None, **settings)
        steps = {name: stepper(model, n) for name, model in models.items()}
        if "pooled" in models:
            steps["contract"], steps["sparse.mm"] = contraction_steppers(models["pooled"], n)
        for step in steps.values():  # warm-up
            step()
        times = {name: [] for name in steps}
        for _ in range(args.rounds):
            for name, step in steps.items():
                start = time.perf_counter()
                for _ in range(args.steps):
                    step()
                times[name].append((time.perf_counter() - start) / args.steps * 1e3)
        med = {name: statistics.median(t) for name, t in times.items()}
        cell = lambda name: f"{med[name]:>14.2f}" if name in med else f"{'-':>14}"  # noqa: E731
        ratio = lambda a, b: f"{med[a] / med[b]:>14.1f}" if a in med and b in med else f"{'-':>14}"  # noqa: E731
        print(f"{n:>14} {cell('pooled')} {cell('shared')} {cell('chunk 1')} {cell('dense')} {cell('contract')} "
              f"{cell('sparse.mm')} {ratio('pooled', 'shared')} {ratio('shared', 'dense')} "
              f"{ratio('sparse.mm', 'contract')}", flush=True)
    print("contract / sparse.mm: the contraction alone (forward + backward) on the pooled layer's sampled tuples")


if __name__ == "__main__":
    main()
