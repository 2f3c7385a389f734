"""Why does the identity toy fail with learned values, and what fixes it? (study script)

    OMP_NUM_THREADS=1 python studies/identity/learned_values_study.py --variants baseline ones --sizes 8 --seeds 0 1 2 3 4
    [--budget N] [--diagnose] [--out studies/identity/results/learned_values_study.txt]

Builds the SparseLayer the identity experiment builds (IdentityConfig(n) settings, k = n),
then changes the value initialisation / optimiser / loss as each variant requires, trains with
its own loop (fresh N(0, I) batches of 64, loss = MSE(W x, x), Adam) and evaluates with
ashlib.experiments.identity.evaluate_matrix (the paper's rounded W) every 100 batches, stopping at convergence
(eval MSE < 0.01 and diagonal fraction >= 0.95). One output line per run.

--diagnose prints, for every run that does not converge, the final values, rounded means,
sigmas and the Gaussians that share a rounded cell or a neighbouring cell with an
opposite-sign partner (with their initial values), plus a trajectory logged every 1000 batches.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import time

import torch
from torch.nn import functional as F

from ashlib.config import seed_everything
from ashlib.experiments.identity import IdentityConfig, PAPER_BUDGETS, evaluate_matrix, rounded_matrix
from ashlib.layers import SparseLayer

SOFTPLUS_ONE = math.log(math.e - 1)  # softplus(SOFTPLUS_ONE) = 1

# name -> dict(init, chunk, values_lr, l2, softplus)
VARIANTS = {
    "baseline": dict(init="randn"),
    "ones": dict(init="ones"),
    "abs": dict(init="abs"),
    "chunk1_randn": dict(init="randn", chunk=1),
    "chunk1_ones": dict(init="ones", chunk=1),
    "vlr_randn": dict(init="randn", values_lr=0.0005),
    "vlr_ones": dict(init="ones", values_lr=0.0005),
    "l2_randn": dict(init="randn", l2=1e-3),
    "l2_ones": dict(init="ones", l2=1e-3),
    "softplus_ones": dict(init="ones", softplus=True),
    "softplus_randn": dict(init="randn", softplus=True),  # raw ~ N(0,1), values = softplus(raw) > 0
    "freeze2k_ones": dict(init="ones", freeze=2000),  # values lr 0 for the first 2000 batches
    "freeze2k_randn": dict(init="randn", freeze=2000),
    "neg_ones": dict(init="neg_ones"),  # control: all values start at -1
    "fixed": dict(fixed=True),  # reference: fix_values=True
}


def build(n: int, seed: int, spec: dict):
    """Layer, optimiser, a function giving the values used in forward, and the extra loss."""
    cfg = IdentityConfig(n=n, seed=seed)
    seed_everything(seed)
    layer = SparseLayer(n, n, n, a_local=cfg.a_local, a_global=cfg.a_global, region=cfg.region,
                        chunk_size=spec.get("chunk"), fix_values=spec.get("fixed", False), init_values="randn")
    if spec.get("fixed"):
        opt = torch.optim.Adam(layer.parameters(), lr=cfg.lr)
        return cfg, layer, opt, None, None
    randn = layer.values.detach().clone()  # the same draw identity.train makes for this seed
    init = {"randn": randn, "ones": torch.ones(n), "abs": randn.abs(), "neg_ones": -torch.ones(n)}[spec["init"]]
    raw = None
    if spec.get("softplus"):
        # values = softplus(raw): strictly positive. ones -> raw = log(e - 1); randn -> raw = randn.
        raw = torch.nn.Parameter(torch.full((n,), SOFTPLUS_ONE) if spec["init"] == "ones" else randn.clone())
        del layer.values
        layer.raw_values = raw
        layer.values = F.softplus(raw)  # plain attribute, refreshed before every forward
        value_params = [raw]
    else:
        with torch.no_grad():
            layer.values.copy_(init)
        value_params = [layer.values]
    other = [layer.means, layer.sigmas]
    vlr = spec.get("values_lr", cfg.lr)
    opt = torch.optim.Adam([{"params": other, "lr": cfg.lr}, {"params": value_params, "lr": vlr}])
    l2 = spec.get("l2", 0.0)
    extra = (lambda: l2 * layer.values.pow(2).sum()) if l2 else None
    return cfg, layer, opt, raw, extra


def refresh(layer, raw):
    if raw is not None:
        layer.values = F.softplus(raw)


def pairs(layer, radius: int = 1):
    """Opposite-sign pairs of Gaussians whose rounded means lie within `radius` cells (Chebyshev)."""
    means, _ = layer.gaussians()
    cells = means.detach().round().long()
    v = layer.values.detach()
    out = []
    for i in range(len(v)):
        for j in range(i + 1, len(v)):
            d = (cells[i] - cells[j]).abs().max().item()
            if d <= radius and v[i] * v[j] < 0:
                out.append((i, j, d))
    return out


def diagnose(layer, init_values, n, log):
    means, sigmas = layer.gaussians()
    v = layer.values.detach()
    cells = means.detach().round().long()
    log("  gaussian: init_value -> value | mean (rounded) | sigma")
    for i in range(len(v)):
        m = means[i].detach()
        log(f"   g{i:02d}: {init_values[i]:+.2f} -> {v[i]:+8.3f} | ({m[0]:5.2f},{m[1]:5.2f}) -> "
            f"({cells[i, 0]},{cells[i, 1]}) {'diag' if cells[i, 0] == cells[i, 1] else 'OFF '} | "
            f"{sigmas[i, 0].item():.3f}")
    ps = pairs(layer)
    log(f"  opposite-sign pairs within 1 cell: {len(ps)}")
    for i, j, d in ps:
        log(f"   g{i:02d} (init {init_values[i]:+.2f}, now {v[i]:+.3f}) & g{j:02d} (init {init_values[j]:+.2f}, "
            f"now {v[j]:+.3f}) cell distance {d}")
    # smoothed training W (average of many sampled W) vs rounded W
    with torch.no_grad():
        eye = torch.eye(n)
        Ws = torch.stack([layer(eye).T for _ in range(200)]).mean(0)  # W[i, j] = out i of input e_j
    Wr = rounded_matrix(layer)
    torch.set_printoptions(precision=2, sci_mode=False, linewidth=200)
    log(f"  mean sampled W (200 samples), MSE-to-I per cell {((Ws - eye) ** 2).mean().item():.4f}:\n{Ws}")
    log(f"  rounded W, MSE-to-I per cell {((Wr - eye) ** 2).mean().item():.4f}:\n{Wr}")


def run(variant, n, seed, budget, eval_every=100, diag=False, log=print):
    spec = VARIANTS[variant]
    cfg, layer, opt, raw, extra = build(n, seed, spec)
    budget = budget or PAPER_BUDGETS[n]
    eval_gen = torch.Generator().manual_seed(seed + 1)
    init_values = layer.values.detach().clone()
    converged, mse, diagonal = None, float("nan"), float("nan")
    start = time.perf_counter()
    freeze = spec.get("freeze", 0)
    vlr = opt.param_groups[-1]["lr"]
    for it in range(1, budget + 1):
        if freeze:
            opt.param_groups[-1]["lr"] = 0.0 if it <= freeze else vlr
        refresh(layer, raw)
        x = torch.randn(cfg.batch_size, n)
        loss = (layer(x) - x).pow(2).mean()
        if extra is not None:
            loss = loss + extra()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if it % eval_every == 0 or it == budget:
            refresh(layer, raw)
            mse, diagonal = evaluate_matrix(rounded_matrix(layer), 10_000, eval_gen)
            if diag and it % 1000 == 0:
                v = layer.values.detach()
                log(f"  [{variant} n={n} s={seed}] it={it} train={loss.item():.4f} eval={mse:.4f} "
                    f"diag={diagonal:.2f} |v|max={v.abs().max():.2f} neg={int((v < 0).sum())} "
                    f"opp_pairs={len(pairs(layer))} sigma_mean={layer.gaussians()[1].mean().item():.3f}")
            if mse < 0.01 and diagonal >= 0.95:
                converged = it
                break
    seconds = time.perf_counter() - start
    if diag and converged is None:
        refresh(layer, raw)
        diagnose(layer, init_values, n, log)
    return converged, mse, diagonal, seconds


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--variants", nargs="+", default=["baseline", "ones", "abs", "chunk1_randn", "chunk1_ones",
                                                     "vlr_randn", "l2_randn", "softplus_ones"])
    p.add_argument("--sizes", type=int, nargs="+", default=[8])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--budget", type=int, default=None, help="batches per run (default: paper budget for n)")
    p.add_argument("--diagnose", action="store_true")
    p.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results", "learned_values_study.txt"))
    args = p.parse_args()
    torch.set_num_threads(1)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    for variant in args.variants:
        for n in args.sizes:
            done = []
            for seed in args.seeds:
                c, mse, d, s = run(variant, n, seed, args.budget, diag=args.diagnose)
                line = (f"variant={variant} n={n} seed={seed} converged_at={c} final_eval_mse={mse:.4f} "
                        f"diagonal={d:.2f} seconds={s:.1f}")
                print(line, flush=True)
                with open(args.out, "a") as f:
                    f.write(line + "\n")
                done.append(c)
            ok = [c for c in done if c is not None]
            med = statistics.median(ok) if ok else None
            print(f"# {variant} n={n}: {len(ok)}/{len(done)} converged, median batches {med}", flush=True)


if __name__ == "__main__":
    main()
