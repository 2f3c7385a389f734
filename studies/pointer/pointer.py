"""The pointer (issue 30): x is n numbers ~ N(0, 1), a cue p (one-hot), the output is x[p].

A HyperLayer(n -> 1, k = 1) whose source network (a two-layer MLP, 64 hidden units) reads the
cue as ``context`` and gives the one entry's raw mean (2 numbers), raw sigma and value.
Adam lr 1e-3, batch 64. Public API only; the variants below are what this study tried.

    python studies/pointer/pointer.py --n 32 64 --seeds 0 1 2 3 4 --a-global 16 --variant default

Per seed: the batch at which the MSE (moving average over 100 batches) first falls below 0.05
(or "never"), the final MSE (mean of the last 100 batches), the share of cues whose rounded mean
hits the right column. With --trace, the mean |value|, mean sigma, share on target and the
source's gradient norm every --trace batches.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from torch import nn

import ashlib

RESULTS = Path(__file__).parent / "results"

# name -> settings; every key not given keeps the default below
VARIANTS = {
    "default": {},                                 # today's HyperLayer defaults, PyTorch's init
}
DEFAULTS = dict(sigma_bias=0.0, mean_spread=0.0, last_scale=1.0, value_lr=1.0, value_bias=0.0, sigma_lr=1.0,
                min_sigma=None, sigma_scale=None, sigma_rate=None, lr=1e-3,
                value_trunk=1.0, mean_gain=1.0, relocate=0.0)


class Source(nn.Module):
    """cue (b, n) -> raw means (b, 1, 2), raw sigma (b, 1), value (b, 1)."""

    def __init__(self, n, hidden=64, value_trunk=1.0, mean_gain=1.0, relocate=0.0):
        super().__init__()
        self.value_trunk, self.mean_gain = value_trunk, mean_gain
        self.body = nn.Sequential(nn.Linear(n, hidden), nn.ReLU())
        self.mean = nn.Linear(hidden, 2)
        self.sigma = nn.Linear(hidden, 1)
        self.value = nn.Linear(hidden, 1)

    def forward(self, cue):
        h = self.body(cue)
        hv = h if self.value_trunk == 1 else h.detach() + self.value_trunk * (h - h.detach())
        return self.mean_gain * self.mean(h).unsqueeze(1), self.sigma(h), self.value(hv)


def build(n, a_global, s, seed):
    torch.manual_seed(seed)
    source = Source(n, value_trunk=s["value_trunk"], mean_gain=s["mean_gain"])
    with torch.no_grad():
        for lin in (source.mean, source.sigma, source.value):
            lin.weight.mul_(s["last_scale"])
            lin.bias.mul_(s["last_scale"])
        source.sigma.bias.add_(s["sigma_bias"])
        source.value.bias.add_(s["value_bias"])
        if s["mean_spread"]:
            # spread the cues' means over the row at init: the input column's raw mean gets a
            # random offset per cue (through the first layer it is not one-to-one, so do it here)
            source.mean.weight.normal_(0, s["mean_spread"] / 64 ** 0.5)
    kw = {}
    if s["min_sigma"] is not None:
        kw["min_sigma"] = s["min_sigma"]
    if s["sigma_scale"] is not None:
        kw["sigma_scale"] = s["sigma_scale"]
    if s["sigma_rate"] is not None:  # HyperLayer's sigma_rate (None: the layer's default; 1: as before issue 30)
        kw["sigma_rate"] = s["sigma_rate"]
    if s["relocate"]:  # HyperLayer(relocate=True): studies/relocate
        kw["relocate"] = True
    layer = ashlib.HyperLayer(n, 1, 1, source, a_local=2, a_global=a_global, region=(1, 8), **kw)
    return layer


def run(n, a_global, s, seed, batches, batch=64, trace=0):
    layer = build(n, a_global, s, seed)
    src = layer.source
    value_params, sigma_params = list(src.value.parameters()), list(src.sigma.parameters())
    other = [p for p in layer.parameters() if all(p is not q for q in value_params + sigma_params)]
    opt = torch.optim.Adam([{"params": other}, {"params": value_params, "lr": s["lr"] * s["value_lr"]},
                            {"params": sigma_params, "lr": s["lr"] * s["sigma_lr"]}], lr=s["lr"])
    gen = torch.Generator().manual_seed(1000 + seed)
    losses, hit, rows = [], None, []
    eye = torch.eye(n)
    t0 = time.time()
    for i in range(batches):
        x = torch.randn(batch, n, generator=gen)
        p = torch.randint(n, (batch,), generator=gen)
        cue = eye[p]
        y = layer(x, cue).squeeze(1)
        loss = ((y - x[torch.arange(batch), p]) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if i >= 99 and hit is None and sum(losses[-100:]) / 100 < 0.05:
            hit = i + 1
        if trace and (i + 1) % trace == 0:
            rows.append({"batch": i + 1, "mse100": sum(losses[-100:]) / len(losses[-100:]), **state(layer, n)})
    final = sum(losses[-100:]) / 100
    out = {"n": n, "a_global": a_global, "seed": seed, "batches": batches, "batches_to_0.05": hit,
           "final_mse": final, "seconds": time.time() - t0, **state(layer, n)}
    if trace:
        out["trace"] = rows
    return out


@torch.no_grad()
def state(layer, n):
    """Over all n cues: share on target, mean |value|, mean sigma (columns), mean |mean - target|."""
    means, sigmas, values = layer.source(torch.eye(n))
    m, sg = layer.index_space(means, sigmas)
    col, sig = m[:, 0, 1], sg[:, 0, 1]
    target = torch.arange(n, dtype=col.dtype)
    return {"on_target": (col.round() == target).float().mean().item(), "value": values.abs().mean().item(),
            "sigma": sig.mean().item(), "distance": (col - target).abs().mean().item()}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, nargs="+", default=[32, 64])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--a-global", type=int, default=16)
    ap.add_argument("--batches", type=int, default=5000)
    ap.add_argument("--variant", default="default", choices=sorted(VARIANTS))
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                    help=f"override a setting of the variant: {', '.join(DEFAULTS)}")
    ap.add_argument("--trace", type=int, default=0, help="record the state every this many batches")
    ap.add_argument("--out", default=None, help="results file (JSON), default results/<variant>_ag<A>.json")
    a = ap.parse_args(argv)
    s = dict(DEFAULTS, **VARIANTS[a.variant])
    for kv in a.set:
        k, v = kv.split("=")
        if k not in DEFAULTS:
            raise SystemExit(f"unknown setting {k}")
        s[k] = float(v)
    runs = []
    for n in a.n:
        for seed in a.seeds:
            r = run(n, a.a_global, s, seed, a.batches, trace=a.trace)
            runs.append(r)
            hit = r["batches_to_0.05"] or "never"
            print(f"n={n:3d} seed={seed} a_global={a.a_global} to<0.05={hit!s:>6} final={r['final_mse']:.3f} "
                  f"on_target={r['on_target']:.0%} value={r['value']:.2f} sigma={r['sigma']:.2f} "
                  f"({r['seconds']:.0f} s)", flush=True)
    RESULTS.mkdir(exist_ok=True)
    tag = "".join(f"_{kv}" for kv in a.set)
    ns = "_".join(str(n) for n in a.n)
    out = Path(a.out) if a.out else RESULTS / f"{a.variant}{tag}_n{ns}_ag{a.a_global}.json"
    out.write_text(json.dumps({"variant": a.variant, "settings": s, "runs": runs}, indent=1))
    print("wrote", out)


if __name__ == "__main__":
    main()
