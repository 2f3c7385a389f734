"""How strongly does the loss pull the mean toward the target column, as a function of sigma?

One Gaussian (value 1, sigma_rate 1 so the raw sigma inverts plainly) with its mean at column
n/2 - 0.7 (a_local 2, region 8, a_global as given), the target d columns to the right, then d to the
left. Over 4,096 instances each (fresh x ~ N(0, 1), fresh samples), the descent direction of the
MSE for the mean in index units, averaged; the half-difference of the right and the (mirrored) left
case is the pull toward the target (positive = toward it), printed with its mean over its standard
error: a target-blind drift (toward the middle of floor and ceil, which spreads the value and so
lowers the output's noise) cancels out.

    python studies/pointer/mean_gradient.py --a-global 16
"""

import argparse

import torch

import ashlib
from ashlib.layers import index_space  # noqa: F401  (the mapping the layer uses, for the docstring)


def pull(n, a_global, mean_col, sigma, d, b=4096, seed=0):
    torch.manual_seed(seed)
    layer = ashlib.HyperLayer(n, 1, 1, lambda c: None, a_local=2, a_global=a_global, region=(1, 8), sigma_rate=1)
    # invert the index-space mapping so that the mean is mean_col and the sigma is sigma
    raw_col = torch.logit(torch.tensor(mean_col / (n - 1)))
    target_sig = (sigma - layer.min_sigma) / (n * layer.sigma_scale)
    raw_sig = torch.log(torch.expm1(torch.tensor(target_sig))) - 2.0
    raw_means = torch.stack([torch.zeros(()), raw_col]).expand(b, 1, 2).clone().requires_grad_(True)
    raw_sigmas = raw_sig.expand(b, 1).clone()
    values = torch.ones(b, 1)
    x = torch.randn(b, n)
    t = int(round(mean_col + d))
    y = layer.transform(x, raw_means, raw_sigmas, values).squeeze(1)
    loss = ((y - x[:, t]) ** 2).mean()
    (g,) = torch.autograd.grad(loss * b, raw_means)
    dcol_draw = torch.sigmoid(raw_col) * (1 - torch.sigmoid(raw_col)) * (n - 1)
    grad_col = -g[:, 0, 1] / dcol_draw  # descent direction in index units, per instance
    return grad_col.mean().item(), (grad_col.std() / b ** 0.5).item()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=32)
    ap.add_argument("--a-global", type=int, default=16)
    a = ap.parse_args()
    sigmas = [0.3, 0.6, 1, 2, 4, 8, 16]
    c = a.n / 2 - 0.7  # just off the middle, so floor and ceil differ
    ds = [1, 2, 4, 8, 12] if a.n <= 32 else [2, 4, 8, 16, 24]
    print(f"n = {a.n}, a_global = {a.a_global}: mean pull toward the target (index units per unit loss; in brackets "
          "the mean over its standard error), rows sigma, columns distance d")
    print("sigma  " + "  ".join(f"d={d:<18d}" for d in ds))
    for s in sigmas:
        # toward a target on the right and (mirrored) on the left: the half-difference is the pull
        # toward the target; the target-blind drift toward the middle of floor/ceil cancels out
        cells = []
        for d in ds:
            (m1, e1), (m2, e2) = pull(a.n, a.a_global, c, s, d), pull(a.n, a.a_global, c, s, -d)
            cells.append(((m1 - m2) / 2, (e1 ** 2 + e2 ** 2) ** 0.5 / 2))
        print(f"{s:5.1f}  " + "  ".join(f"{m:+.1e} ({m / se:+5.1f} se)" for m, se in cells))


if __name__ == "__main__":
    main()
