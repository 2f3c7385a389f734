"""Draw README's headline figure: a one-entry sparse layer finds the cell (5, 2) of its target.

The same run as notebook 01, section 7 (seed 0, Adam lr 0.05, 200 batches of 64), drawn for a
reader who has not opened the notebook yet: the target is a 0/1 matrix, so it gets a 0/1 scale
(white 0, black 1), and the right panel shows the training loss on a log scale.

    python docs/figures/make_headline.py        # writes docs/figures/one_entry_learns_its_position.png
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

import ashlib  # noqa: E402
from ashlib.plot import plot_gaussians, plot_matrix  # noqa: E402

OUT = Path(__file__).with_name("one_entry_learns_its_position.png")


def main() -> None:
    n = 8
    torch.manual_seed(0)
    target = torch.zeros(n, n)
    target[5, 2] = 1.0
    layer = ashlib.SparseLayer(n, n, 1, a_local=3, a_global=3, region=3, fix_values=True)
    with torch.no_grad():
        layer.means.copy_(torch.logit(torch.tensor([[1 / 7, 6 / 7]])))  # index space (1, 6)
    optimiser = torch.optim.Adam(layer.parameters(), lr=0.05)
    path, losses = [layer.gaussians()[0][0].detach().clone()], []
    start_sigma = layer.gaussians()[1][0].detach().clone()
    for _ in range(200):
        x = torch.randn(64, n)
        loss = (layer(x) - x @ target.T).pow(2).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        path.append(layer.gaussians()[0][0].detach().clone())
        losses.append(loss.item())
    path = torch.stack(path)
    final_mean, final_sigma = (t.detach()[0] for t in layer.gaussians())

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4), dpi=80)
    image = plot_matrix(target, ax=ax1, title="target W (one 1, all else 0) and the mean's path",
                        cmap="Greys", colorbar=False)
    image.set_clim(0, 1)
    bar = fig.colorbar(image, ax=ax1, fraction=0.046, pad=0.04, ticks=[0, 1])
    bar.set_label("target entry")
    ax1.plot(path[:, 1], path[:, 0], "-", color="tab:orange", lw=1.5)
    plot_gaussians(path[[0]], start_sigma[None], ax=ax1, color="gray", label="start")
    plot_gaussians(final_mean[None], final_sigma[None], ax=ax1, color="tab:blue", label="after 200 batches")
    ax1.legend(loc="upper right", fontsize=9)
    ax2.semilogy(range(1, len(losses) + 1), losses, color="tab:blue")
    ax2.set_xlabel("batch")
    ax2.set_ylabel("training MSE (log scale)")
    ax2.set_title("training loss: flat while the mean travels, then a steep fall")
    fig.tight_layout()
    fig.savefig(OUT)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
