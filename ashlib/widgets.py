"""ipywidgets explorers for the notebooks. Each drawing function also works when called directly."""

from __future__ import annotations

from numbers import Integral

import matplotlib.pyplot as plt
import torch

from .layers import split_values
from .plot import plot_identity_snapshot, plot_sparse_weights, sample_kinds
from .sampling import sample


def _check_int(value, name: str, low: int, why: str) -> int:
    """``value`` as an int >= ``low``, or a ValueError naming ``name``, the value and why."""
    if isinstance(value, bool) or not isinstance(value, Integral) or value < low:
        raise ValueError(f"{name} must be an int >= {low} ({why}), got {value!r}")
    return value


def draw_sampling(row=2.3, col=5.6, sigma=0.8, a_local=3, a_global=3, region=3, size=8, seed=0, value=1.0):
    """Sample one Gaussian on a size x size W and draw the resulting sparse W.

    Returns ``(fig, indices (S, 2), weights (S,))``: the sampled tuples and the share of
    ``value`` each one got (zero for repeats).
    """
    means = torch.tensor([[[float(row), float(col)]]], dtype=torch.float64)
    sigmas = torch.full_like(means, float(sigma))
    region = min(int(region), size)
    indices, props = sample(means, sigmas, (size, size), a_local=int(a_local), a_global=int(a_global),
                            region=region, chunk_size=1, generator=torch.Generator().manual_seed(seed))
    weights = split_values(props, torch.full((1, 1), float(value), dtype=torch.float64), 1)
    indices, weights = indices.reshape(-1, 2), weights.reshape(-1)
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    kinds = sample_kinds(2, int(a_local), int(a_global))
    plot_sparse_weights(indices, weights, (size, size), means=means[0, 0:1], sigmas=sigmas[0, 0:1],
                        kinds=kinds, ax=ax, title=f"mean ({row:.1f}, {col:.1f}), sigma {sigma:.2f}")
    fig.tight_layout()
    return fig, indices, weights


def sampling_explorer(size=8):
    """Sliders for the mean, sigma, a_local, a_global and region, redrawing :func:`draw_sampling`."""
    import ipywidgets as w

    _check_int(size, "size", 2, "W is size x size and the sliders move the mean over it")

    def show(row, col, sigma, a_local, a_global, region, seed):
        fig, _, _ = draw_sampling(row, col, sigma, a_local, a_global, region, size=size, seed=seed)
        plt.show(fig)

    top = size - 1
    return w.interactive(
        show,
        row=w.FloatSlider(value=2.3, min=0, max=top, step=0.1, description="mean row"),
        col=w.FloatSlider(value=5.6, min=0, max=top, step=0.1, description="mean col"),
        sigma=w.FloatLogSlider(value=0.8, base=10, min=-1.5, max=0.7, step=0.05, description="sigma"),
        a_local=w.IntSlider(value=3, min=0, max=20, description="a_local"),
        a_global=w.IntSlider(value=3, min=0, max=20, description="a_global"),
        region=w.IntSlider(value=3, min=1, max=size, description="region"),
        seed=w.IntSlider(value=0, min=0, max=20, description="draw (seed)"),
    )


def draw_identity_snapshot(result, index: int, seed: int = 0):
    """Draw snapshot ``index`` of an identity run (Figure 3 style) next to its evaluation curve.

    ``result`` is an :class:`ashlib.experiments.identity.IdentityResult`. Returns
    ``(fig, on_diagonal)``: the figure and how many rounded means sit on the diagonal.
    """
    from .experiments.identity import snapshot_tuples

    count = _snapshot_count(result)
    if isinstance(index, bool) or not isinstance(index, Integral) or not -count <= index < count:
        raise ValueError(f"index must be an int in [0, {count}): the run kept {count} snapshot"
                         f"{'s' if count != 1 else ''} (0 to {count - 1}), got {index!r}")
    config = result.config
    it, means, sigmas = result.snapshots[int(index)]
    rounded = means.round().long()
    on_diagonal = int((rounded[:, 0] == rounded[:, 1]).sum())
    fig, (ax, curve) = plt.subplots(1, 2, figsize=(8.4, 3.8), gridspec_kw={"width_ratios": [1, 1.3]})
    tuples = snapshot_tuples(config, means, sigmas, torch.Generator().manual_seed(seed))
    plot_identity_snapshot(means, sigmas, config.n, tuples=tuples, ax=ax,
                           title=f"batch {it}: {on_diagonal}/{config.n} means round onto the diagonal")
    curve.plot(range(1, len(result.losses) + 1), result.losses, lw=0.5, alpha=0.5, label="training MSE")
    curve.plot(result.eval_iterations, [max(m, 1e-5) for m in result.eval_mse], "o-", ms=3, label="evaluation MSE")
    curve.axvline(it, color="tab:red", lw=1)
    curve.set_yscale("log")
    curve.set_xlabel("batches")
    curve.legend(fontsize=9, frameon=False)
    fig.tight_layout()
    return fig, on_diagonal


def _snapshot_count(result) -> int:
    """How many snapshots an identity run kept; a ValueError if it kept none (nothing to draw)."""
    snapshots = getattr(result, "snapshots", None)
    if not isinstance(snapshots, list):
        raise ValueError(f"result must be an identity run's result (with .snapshots), got {type(result).__name__}")
    if not snapshots:
        raise ValueError("result has no snapshots to draw: a training run keeps one at batch 1 and every "
                         "snapshot_every batches; this result kept none")
    return len(snapshots)


def identity_snapshot_slider(result):
    """A slider that scrubs through the training snapshots of an identity run."""
    import ipywidgets as w

    _snapshot_count(result)

    def show(snapshot, draw):
        fig, _ = draw_identity_snapshot(result, snapshot, seed=draw)
        plt.show(fig)

    last = len(result.snapshots) - 1
    return w.interactive(
        show,
        snapshot=w.IntSlider(value=last, min=0, max=last, description="snapshot"),
        draw=w.IntSlider(value=0, min=0, max=20, description="draw (seed)"),
    )


def draw_quicksort(n: int = 8, C: float = 10.0, spread: float = 1.0, shuffle: int = 0, samples: int | None = None,
                   seed: int = 0):
    """Sort n random keys (``spread`` apart on average) with :func:`ashlib.quicksort`; draw every round.

    Top row: each round's soft permutation matrix; bottom: the keys after each round. An n that
    is not a power of two is padded by quicksort to the next one, ``size``: the matrices are
    size x size, and the padding's slots (keys that sort last, far above the real ones) are
    drawn as grey bands instead of bars, so the real keys keep their scale.
    Returns ``(fig, result, keys)``.
    """
    from .plot import plot_permutation_step
    from .sort import quicksort

    _check_int(n, "n", 2, "the number of keys to sort")
    g = torch.Generator().manual_seed(shuffle)
    keys = (torch.randperm(n, generator=g).double() * spread).unsqueeze(0)
    result = quicksort(keys, keys.unsqueeze(-1), samples=samples, C=C, generator=torch.Generator().manual_seed(seed))
    rounds = len(result.layers)
    size = result.layers[0].o.shape[-1]  # n, or the power of two quicksort padded it to
    real = torch.zeros(1, size, 1, dtype=keys.dtype)
    real[:, :n] = 1.0
    fig, axes = plt.subplots(2, rounds + 1, figsize=(2.4 * (rounds + 1), 4.8))
    axes[0, 0].bar(range(n), keys[0].tolist(), color="tab:blue")
    axes[0, 0].set_title("keys in", fontsize=9)
    for d, step in enumerate(result.layers, start=1):
        plot_permutation_step(step, ax=axes[0, d], title=f"round {d}: {size >> (d - 1)}-chunks")
    axes[1, 0].axis("off")
    padded = f"\nn = {n}, padded to {size}\n(grey: padding)" if size != n else ""
    axes[1, 0].text(0, 0.5, f"C = {C:g}\nspread = {spread:g}\nsamples = {samples if samples is not None else size}"
                    + padded, fontsize=9, va="center")
    for d, (k, step) in enumerate(zip(result.keys, result.layers), start=1):
        if size == n:
            axes[1, d].bar(range(n), k[0].tolist(), color="tab:orange")
        else:  # the padding's slots after this round: where the real items' mass is not
            with torch.no_grad():
                real = step.apply(real)
            slots = real[0, :, 0] > 0.5
            at = slots.nonzero()[:, 0]
            axes[1, d].bar(at.tolist(), k[0, at].tolist(), color="tab:orange")
            for i in (~slots).nonzero()[:, 0].tolist():
                axes[1, d].axvspan(i - 0.4, i + 0.4, color="0.85", lw=0)
            axes[1, d].set_xlim(-0.6, size - 0.4)
        axes[1, d].set_title(f"keys after round {d}", fontsize=9)
        axes[1, d].set_xticks([])
    fig.tight_layout()
    return fig, result, keys


def quicksort_explorer(n: int = 8):
    """Sliders for C, the spread of the keys, the number of samples and a shuffle seed."""
    import ipywidgets as w

    _check_int(n, "n", 2, "the number of keys to sort")

    def show(C, spread, samples, shuffle):
        fig, _, _ = draw_quicksort(n, C=C, spread=spread, samples=samples, shuffle=shuffle)
        plt.show(fig)

    return w.interactive(
        show,
        C=w.FloatLogSlider(value=10.0, base=10, min=-1, max=2, step=0.1, description="C"),
        spread=w.FloatLogSlider(value=1.0, base=10, min=-2, max=1, step=0.1, description="key spread"),
        samples=w.IntSlider(value=n, min=0, max=4 * n, description="samples"),
        shuffle=w.IntSlider(value=0, min=0, max=50, description="shuffle"),
    )


def draw_glimpse_layer(glimpser, image, boxes, seed: int = 0, show_tuples: int = 3):
    """A glimpse as a sparse layer: the grid of means over the image, and what it reads.

    ``glimpser`` is an :class:`ashlib.glimpse.SparseGlimpse`, ``image`` (1, H, W), ``boxes``
    raw (1, g, 4). Left: the means (dots) and the input pixels sampled for the first
    ``show_tuples`` output pixels (crosses, one colour each); right: the glimpse(s).
    Returns ``(fig, glimpses)``.
    """
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        means, _ = glimpser.gaussians(boxes)
        indices, _ = glimpser.sample_weights(boxes, generator=torch.Generator().manual_seed(seed))
        glimpses = glimpser(image.unsqueeze(0), boxes, generator=gen)
    g = boxes.shape[1]
    fig, axes = plt.subplots(1, g + 1, figsize=(3.6 * (g + 1), 3.6), squeeze=False)
    ax = axes[0, 0]
    ax.imshow(image[0].numpy(), cmap="Greys", vmin=0, vmax=1)
    m = means[0].reshape(-1, 2)
    ax.scatter(m[:, 1], m[:, 0], s=4, color="tab:blue", label="means (one per output pixel)")
    for p in range(show_tuples):
        pick = indices[0, :, 0] == p
        ax.scatter(indices[0, pick, 2], indices[0, pick, 1], marker="x", s=12, color=plt.cm.tab10(p + 1),
                   label=f"tuples of output pixel {p}")
    ax.set_title("means and sampled input pixels", fontsize=9)
    ax.legend(fontsize=9, loc="lower left", frameon=True)
    ax.set_xticks([])
    ax.set_yticks([])
    for j in range(g):
        axes[0, j + 1].imshow(glimpses[0, j, 0].numpy(), cmap="Greys")
        axes[0, j + 1].set_title(f"glimpse {j + 1} ({glimpser.glimpse_size} x {glimpser.glimpse_size})", fontsize=9)
        axes[0, j + 1].set_xticks([])
        axes[0, j + 1].set_yticks([])
    fig.tight_layout()
    return fig, glimpses


def glimpse_browser(model, images, labels):
    """A slider over test images showing the model's boxes, glimpses and predicted label."""
    import ipywidgets as w

    from .plot import plot_glimpses

    if not torch.is_tensor(images) or images.dim() != 4 or len(images) == 0:
        got = tuple(images.shape) if torch.is_tensor(images) else type(images).__name__
        raise ValueError(f"images must be a tensor (b, 1, H, W) of at least one image to browse, got {got}")
    if labels is not None and len(labels) != len(images):
        raise ValueError(f"labels must have one entry per image: {len(images)} images, {len(labels)} labels")

    def show(index):
        fig = plot_glimpses(model, images[index:index + 1], labels[index:index + 1],
                            generator=torch.Generator().manual_seed(index))
        plt.show(fig)

    return w.interactive(show, index=w.IntSlider(value=0, min=0, max=len(images) - 1, description="test image"))
