"""Matplotlib figures for the notebooks: sparse matrices, Gaussians, sampled tuples.

These helpers densify W, which only makes sense for the small matrices one draws; the layers
themselves never build a dense W.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.patches import Ellipse

from .contract import to_dense

KIND_MARKERS = {"nearest": ("o", "tab:orange"), "local": ("s", "tab:green"), "global": ("X", "tab:red")}


def sample_kinds(rank: int, a_local: int, a_global: int) -> list[str]:
    """The kind of each of a Gaussian's S proposals, in the order :func:`ashlib.sample` makes them."""
    return ["nearest"] * 2**rank + ["local"] * a_local + ["global"] * a_global


def plot_matrix(W, ax=None, title=None, cmap=None, colorbar=True):
    """Heat map of a 2-D matrix.

    With ``cmap=None`` a matrix with negative entries gets a diverging map symmetric around zero
    (zero is white) and a non-negative one (densities, proportions) a sequential map from zero.
    At most about 16 tick labels per axis, so they never overprint.
    """
    W = _numpy(W)
    if W.ndim != 2 or W.size == 0:
        raise ValueError(f"W must be a 2-D matrix with at least one row and one column, got shape {W.shape}")
    ax = ax or plt.gca()
    lim = max(float(np.abs(W).max()), 1e-12)
    if cmap is None:
        cmap = "RdBu_r" if float(W.min()) < 0 else "viridis"
    low = 0.0 if cmap != "RdBu_r" and float(W.min()) >= 0 else -lim
    im = ax.imshow(W, cmap=cmap, vmin=low, vmax=lim, interpolation="nearest")
    ax.set_xlabel("input index (column)")
    ax.set_ylabel("output index (row)")
    ax.set_xticks(range(0, W.shape[1], max(1, -(-W.shape[1] // 16))))
    ax.set_yticks(range(0, W.shape[0], max(1, -(-W.shape[0] // 16))))
    ax.tick_params(labelsize=9)
    if title:
        ax.set_title(title)
    if colorbar:
        ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    return im


def plot_gaussians(means, sigmas, ax=None, color="tab:blue", n_std=1.0, label="means"):
    """Means as solid dots and one-std ellipses as translucent patches; (k, 2) tensors, (row, col)."""
    means, sigmas = _numpy(means).reshape(-1, 2), _numpy(sigmas).reshape(-1, 2)
    ax = ax or plt.gca()
    for (r, c), (sr, sc) in zip(means, sigmas):
        ax.add_patch(Ellipse((c, r), 2 * n_std * sc, 2 * n_std * sr, color=color, alpha=0.2, lw=0))
    ax.scatter(means[:, 1], means[:, 0], s=40, color=color, edgecolor="white", zorder=3, label=label)


def plot_tuples(tuples, kinds=None, ax=None, size=50):
    """Mark integer tuples (m, 2) on a matrix plot, one marker per kind (nearest/local/global)."""
    tuples = _numpy(tuples).reshape(-1, 2)
    ax = ax or plt.gca()
    kinds = kinds or ["nearest"] * len(tuples)
    for kind, (marker, colour) in KIND_MARKERS.items():
        pick = np.array([k == kind for k in kinds])
        if pick.any():
            ax.scatter(tuples[pick, 1], tuples[pick, 0], marker=marker, s=size, facecolor="none",
                       edgecolor=colour, linewidths=1.5, zorder=4, label=f"{kind} tuples")


def plot_sparse_weights(indices, weights, shape, *, means=None, sigmas=None, kinds=None, ax=None,
                        title=None, legend=True):
    """One instance's sampled W as a heat map, with its tuples marked and its Gaussians drawn.

    indices (m, 2), weights (m,); optional means/sigmas (k, 2) in index space; kinds: one
    label per tuple (see :func:`sample_kinds`).
    """
    ax = ax or plt.gca()
    plot_matrix(to_dense(indices, weights.detach(), shape), ax=ax, title=title)
    plot_tuples(indices, kinds, ax=ax)
    if means is not None:
        plot_gaussians(means, sigmas, ax=ax)
    ax.set_xlim(-0.5, shape[1] - 0.5)
    ax.set_ylim(shape[0] - 0.5, -0.5)
    if legend:
        ax.legend(loc="upper left", bbox_to_anchor=(1.25, 1.0), fontsize=9, frameon=False)
    return ax


def _numpy(t):
    return t.detach().cpu().numpy() if torch.is_tensor(t) else np.asarray(t)


def plot_identity_snapshot(means, sigmas, n, *, tuples=None, ax=None, title=None):
    """Figure 3 of the paper, one panel: an n x n layer's Gaussians over its matrix.

    Means are solid dots, one standard deviation a translucent ellipse, ``tuples`` (m, 2)
    (integer tuples sampled at this point) small grey diamonds; the target diagonal is dotted.
    """
    ax = ax or plt.gca()
    ax.plot([-0.5, n - 0.5], [-0.5, n - 0.5], ls=":", lw=0.8, color="0.6", zorder=1)
    if tuples is not None:
        t = _numpy(tuples).reshape(-1, 2)
        ax.scatter(t[:, 1], t[:, 0], marker="D", s=6, color="0.45", alpha=0.6, lw=0, zorder=2)
    plot_gaussians(means, sigmas, ax=ax, label=None)
    ax.set_xlim(-0.5, n - 0.5)
    ax.set_ylim(n - 0.5, -0.5)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=9)
    return ax


def plot_learning_curves(curves, ax=None, log=True, floor=1e-5):
    """Figure 2 of the paper: evaluation loss against batches, one colour per size.

    ``curves`` maps ``(size, method)`` to ``(iterations, runs)`` where ``runs`` is an array
    (seeds, points); the line is the mean over seeds and the band one standard deviation.
    Method "reinforce" is dashed, anything else solid. The legend names the size, and the method
    in words ("sparse layer", "REINFORCE") only when ``curves`` holds more than one method, so a
    panel per method reads "n = 8". With ``log`` the axis is symmetric-log:
    logarithmic above ``floor`` and linear below it, so an exact solution (MSE 0) is drawn at a
    labelled 0 rather than at an invented small value.
    """
    ax = ax or plt.gca()
    sizes = sorted({size for size, _ in curves})
    colours = {size: plt.cm.viridis(i / max(1, len(sizes) - 1) * 0.85) for i, size in enumerate(sizes)}
    several = len({method for _, method in curves}) > 1
    names = {"reinforce": "REINFORCE", "sparse": "sparse layer"}
    for (size, method), (iterations, runs) in sorted(curves.items()):
        runs = np.atleast_2d(np.asarray(runs, dtype=float))
        mean, std = runs.mean(0), runs.std(0)
        ls = "--" if method == "reinforce" else "-"
        ax.plot(iterations, mean, ls=ls, color=colours[size], label=f"n = {size}, {names.get(method, method)}" if several else f"n = {size}")
        if runs.shape[0] > 1:
            low = np.maximum(mean - std, 0.0)
            ax.fill_between(iterations, low, mean + std, color=colours[size], alpha=0.15, lw=0)
    if log:
        ax.set_yscale("symlog", linthresh=floor)
        ax.set_ylim(bottom=0)
    ax.set_xlabel("batches")
    ax.set_ylabel("evaluation MSE (rounded means)")
    ax.legend(fontsize=9, frameon=False)
    return ax


def plot_permutation_step(step, instance: int = 0, ax=None, title=None):
    """One quicksort round as its (soft) n x n matrix: column i says where item i goes."""
    from .contract import to_dense

    n = step.o.shape[-1]
    W = to_dense(step.indices[instance], step.weights[instance].detach(), (n, n))
    ax = ax or plt.gca()
    ax.imshow(_numpy(W), cmap="Greys", vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title or f"round {step.d}", fontsize=9)
    return W


def plot_item_rows(rows, ax=None, labels=None, cmap="Greys"):
    """Rows of image items: ``rows`` is a list of (n, H, W) tensors, drawn one row per entry."""
    import numpy as np

    shapes = [tuple(row.shape) if hasattr(row, "shape") else None for row in rows] if isinstance(rows, (list, tuple)) \
        else None
    if not shapes:
        raise ValueError(f"rows must be a non-empty list of (n, H, W) image tensors, one per row, got {rows!r}")
    if any(shape is None or len(shape) != 3 or 0 in shape for shape in shapes):
        raise ValueError(f"rows must be (n, H, W) image tensors with at least one item each, got shapes {shapes}")
    if len({n * w for n, _, w in shapes}) > 1:
        raise ValueError(f"every row must be equally wide (n * W pixels), got shapes {shapes}")
    ax = ax or plt.gca()
    strips = [np.concatenate([_numpy(img) for img in row], axis=1) for row in rows]
    gap = np.full((2, strips[0].shape[1]), np.nan)
    ax.imshow(np.concatenate([x for s in strips for x in (s, gap)][:-1], axis=0), cmap=cmap, vmin=0, vmax=1,
              interpolation="nearest")
    h = rows[0].shape[-2]
    ax.set_xticks([])
    if labels:
        ax.set_yticks([i * (h + 2) + h / 2 for i in range(len(rows))], labels, fontsize=9)
    else:
        ax.set_yticks([])
    return ax


def plot_glimpses(model, images, labels=None, generator=None, digit_boxes=None, columns: int = 1):
    """Figure 4 style: each canvas with its predicted boxes, and the glimpses in a diverging colour map.

    ``model`` has ``glimpse(images) -> (corners (b, g, 4) as (y0, x0, y1, x1) pixels, glimpses
    (b, g, c, s, s))`` and returns logits; ``images`` (b, 1, H, W). ``digit_boxes`` (b, 4), if
    given, draws where the digit really is (dashed). The glimpses share one symmetric colour
    scale (the glimpse value is learned and may be negative), shown by a colour bar.
    ``columns`` lays the b canvases out in that many columns.
    """
    from matplotlib.patches import Rectangle

    if not torch.is_tensor(images) or images.dim() != 4 or len(images) == 0:
        got = tuple(images.shape) if torch.is_tensor(images) else type(images).__name__
        raise ValueError(f"images must be a tensor (b, 1, H, W) holding at least one canvas to draw, got {got}")
    if isinstance(columns, bool) or not isinstance(columns, int) or columns < 1:
        raise ValueError(f"columns must be an int >= 1, got {columns!r}")
    was = model.training
    model.eval()
    with torch.no_grad():
        corners, glimpses = model.glimpse(images, generator=generator)
        predicted = model.mlp(glimpses).argmax(1)
    model.train(was)
    b, g = corners.shape[:2]
    rows = -(-b // columns)
    per = g + 1
    fig, axes = plt.subplots(rows, per * columns, figsize=(2.1 * per * columns + 0.8, 2.2 * rows), squeeze=False,
                             layout="constrained")
    lim = max(float(glimpses.abs().max()), 1e-6)
    image = None
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_axis_off()
    for i in range(b):
        r, col = divmod(i, columns)
        ax = axes[r, col * per]
        ax.set_axis_on()
        ax.imshow(_numpy(images[i, 0]), cmap="Greys", vmin=0, vmax=1)
        if digit_boxes is not None:
            y0, x0, y1, x1 = (float(v) for v in digit_boxes[i])
            ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, edgecolor="0.5", lw=1, ls="--"))
        for j in range(g):
            y0, x0, y1, x1 = corners[i, j].tolist()
            ax.add_patch(Rectangle((min(x0, x1), min(y0, y1)), abs(x1 - x0), abs(y1 - y0), fill=False,
                                   edgecolor=plt.cm.tab10(j % 10), lw=1.8))
        ok = labels is None or int(predicted[i]) == int(labels[i])
        title = f"predicted {int(predicted[i])}" + (f" (true {int(labels[i])})" if labels is not None else "")
        ax.set_title(title, fontsize=9, color="black" if ok else "tab:red")
        for j in range(g):
            gax = axes[r, col * per + j + 1]
            gax.set_axis_on()
            image = gax.imshow(_numpy(glimpses[i, j, 0]), cmap="RdBu_r", vmin=-lim, vmax=lim)
            gax.set_title(f"glimpse {j + 1}", fontsize=9, color=plt.cm.tab10(j % 10))  # its box's colour
    if image is not None:
        fig.colorbar(image, ax=axes, shrink=0.8, label="glimpse value")
    return fig
