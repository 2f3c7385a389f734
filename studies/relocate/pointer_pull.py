"""A relocation pull for HyperLayer, tried on the pointer of studies/pointer (not in the library:
it did not help; see README.md).

A HyperLayer's W differs per instance, so the batch z-scores that move SparseLayer's means do not
exist. The pull tried here adds to each instance's mean gradient
``weight * mean_t v dL/dW[t] (t - mu) / scale``
over the Gaussian's S sampled tuples t: the mean's own gradient without the density factor that
silences far tuples. ``--variant sigma2`` divides by sigma^2 (the form of the mean's own gradient),
``nosigma`` by 1, ``direction`` uses the unit vector (t - mu) / |t - mu| divided by sigma, ``best``
pulls toward the instance's most wanted tuple, measured from the centroid of its tuples.

    python studies/relocate/pointer_pull.py --n 32 64 --seeds 0 1 2 3 4 --variant sigma2

Prints, per seed, what studies/pointer/pointer.py prints; writes the runs as JSON with --out.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

import ashlib
from ashlib.indexing import flat_index

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "pointer"))
import pointer  # noqa: E402  (the pointer study: Source, run, state)


def instance_cell_gradients(grad_y, x, cells):
    """dL/dW_b[cell] for each instance's own cells (b, N, 2) of a (1, n) W: grad_y[b, o] * x[b, i]."""
    b = cells.shape[0]
    rows = flat_index(cells[..., :1], tuple(grad_y.shape[1:]), validate=False)
    cols = flat_index(cells[..., 1:], tuple(x.shape[1:]), validate=False)
    return grad_y.gather(1, rows) * x.gather(1, cols)


class PullHyperLayer(ashlib.HyperLayer):
    """HyperLayer whose means get the pull of the module docstring added to their gradient."""

    def __init__(self, *args, variant="sigma2", weight=1.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.variant, self.weight = variant, weight

    def forward(self, x, context=None, generator=None):
        raw_means, raw_sigmas, values = self.parameters_for(x, context)
        means, sigmas = self.index_space(raw_means, raw_sigmas)
        indices, weights = self.sample_weights(raw_means, raw_sigmas, values, generator)
        y = ashlib.contract(indices, weights, x, self.out_shape, validate=False)
        pulls = {}

        def on_grad_y(grad_y):
            b, k, r = means.shape
            g = instance_cell_gradients(grad_y, x.detach(), indices)
            tuples = indices.view(b, k, -1, r).to(means.dtype)
            signal = (values.detach().unsqueeze(-1) * g.view(b, k, -1)).unsqueeze(-1)
            d = tuples - means.detach().unsqueeze(2)
            s = sigmas.detach()
            if self.variant == "sigma2":
                pull = (signal * d).mean(2) / s.square()
            elif self.variant == "nosigma":
                pull = (signal * d).mean(2)
            elif self.variant == "direction":
                pull = (signal * d / (d.norm(dim=-1, keepdim=True) + 1e-3)).mean(2) / s
            else:  # best
                want = -signal.squeeze(-1)
                best = tuples.gather(2, want.argmax(-1)[..., None, None].expand(b, k, 1, r)).squeeze(2)
                excess = (want.max(-1).values - want.mean(-1)).unsqueeze(-1)
                pull = -excess * (best - tuples.mean(2)) / s.square()
            pulls["pull"] = self.weight * pull

        y.register_hook(on_grad_y)
        # index_space's means are recomputed by sample_weights; the pull reaches the source through these
        means.register_hook(lambda grad: grad + pulls["pull"])
        return y + 0 * means.sum()  # keep this means tensor in the graph so its hook fires


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, nargs="+", default=[32, 64])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--variant", choices=["sigma2", "nosigma", "direction", "best"], default="sigma2")
    ap.add_argument("--weight", type=float, default=1.0)
    ap.add_argument("--sigma-rate", type=float, default=None)
    ap.add_argument("--batches", type=int, default=5000)
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)
    original = ashlib.HyperLayer

    def build(*args, **kwargs):
        if a.sigma_rate is not None:
            kwargs["sigma_rate"] = a.sigma_rate
        return PullHyperLayer(*args, variant=a.variant, weight=a.weight, **kwargs)

    ashlib.HyperLayer = build  # pointer.build constructs ashlib.HyperLayer(...)
    runs = []
    try:
        for n in a.n:
            for seed in a.seeds:
                r = pointer.run(n, 16, dict(pointer.DEFAULTS), seed, a.batches, trace=500)
                runs.append(r)
                print(f"n={n:3d} seed={seed} variant={a.variant} weight={a.weight} to<0.05={r['batches_to_0.05'] or 'never'} "
                      f"final={r['final_mse']:.3f} on_target={r['on_target']:.0%} distance={r['distance']:.1f} "
                      f"sigma={r['sigma']:.2f}", flush=True)
    finally:
        ashlib.HyperLayer = original
    if a.out:
        Path(a.out).write_text(json.dumps({"argv": argv, "runs": runs}, indent=1))


if __name__ == "__main__":
    main()
