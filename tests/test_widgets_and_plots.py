import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from ashlib.plot import sample_kinds, to_dense  # noqa: E402
from ashlib.widgets import draw_sampling, sampling_explorer  # noqa: E402


def test_draw_sampling_returns_the_drawn_W():
    fig, idx, w = draw_sampling(row=0.0, col=7.0, sigma=0.5, a_local=4, a_global=3, region=3, size=8)
    plt.close(fig)
    assert idx.shape == (4 + 4 + 3, 2)
    assert abs(w.sum().item() - 1.0) < 1e-9
    # local box for rounded mean (0, 7) and region 3 slides to rows 0..2, columns 5..7
    local = idx[4:8]
    assert (local[:, 0] <= 2).all() and (local[:, 1] >= 5).all()


def test_sampling_explorer_builds_sliders():
    widget = sampling_explorer(size=6)
    names = {child.description for child in widget.children if hasattr(child, "description")}
    assert {"mean row", "mean col", "sigma", "a_local", "a_global", "region"} <= names
    plt.close("all")


def test_to_dense_adds_repeats_and_sample_kinds_order():
    W = to_dense(torch.tensor([[0, 1], [0, 1], [2, 0]]), torch.tensor([1.0, 2.0, 5.0]), (3, 2))
    assert W.tolist() == [[0.0, 3.0], [0.0, 0.0], [5.0, 0.0]]
    assert sample_kinds(2, 1, 2) == ["nearest"] * 4 + ["local", "global", "global"]


def test_identity_snapshot_widget_counts_the_diagonal():
    from ashlib.experiments.identity import IdentityConfig, IdentityResult
    from ashlib.widgets import draw_identity_snapshot, identity_snapshot_slider

    config = IdentityConfig(n=4, iterations=10)
    means = torch.tensor([[0.2, 0.1], [1.0, 1.4], [2.6, 1.2], [3.0, 3.0]])  # rounds: (0,0) (1,1) (3,1) (3,3)
    result = IdentityResult(config=config, losses=[1.0, 0.5], eval_iterations=[2], eval_mse=[0.0],
                            eval_diagonal=[0.75], snapshots=[(1, means, torch.full((4, 2), 0.3))])
    fig, on_diagonal = draw_identity_snapshot(result, 0)
    plt.close(fig)
    assert on_diagonal == 3
    widget = identity_snapshot_slider(result)
    assert "snapshot" in {c.description for c in widget.children if hasattr(c, "description")}
    plt.close("all")


def test_learning_curves_plot_means_over_seeds():
    from ashlib.plot import plot_learning_curves

    fig, ax = plt.subplots()
    plot_learning_curves({(8, "sparse"): ([1, 2], [[1.0, 0.0], [3.0, 0.0]]), (8, "reinforce"): ([1, 2], [[2.0, 2.0]])}, ax=ax)
    dashed, solid = sorted(ax.lines, key=lambda line: line.get_linestyle() == "-")
    assert list(solid.get_ydata()) == [2.0, 0.0] and dashed.get_linestyle() == "--"  # an exact 0 stays 0
    assert ax.get_yscale() == "symlog" and ax.get_ylim()[0] == 0
    plt.close(fig)


def test_draw_quicksort_shows_every_round_and_sorts_spread_keys():
    from ashlib.widgets import draw_quicksort, quicksort_explorer

    fig, result, keys = draw_quicksort(8, C=10.0, spread=2.0, shuffle=3)
    plt.close(fig)
    assert len(result.layers) == 3 and len(fig.axes) == 8
    torch.testing.assert_close(result.sorted[0, :, 0], keys[0].sort().values)
    widget = quicksort_explorer(4)
    assert {"C", "key spread", "samples", "shuffle"} <= {c.description for c in widget.children if hasattr(c, "description")}
    plt.close("all")


def test_plot_permutation_step_draws_the_layer_matrix():
    from ashlib.plot import plot_permutation_step
    from ashlib.sort import half_permutation_step

    step = half_permutation_step(torch.tensor([[3.0, 0.0, 2.0, 1.0]]) * 10, 1, samples=0)
    fig, ax = plt.subplots()
    W = plot_permutation_step(step, ax=ax)
    plt.close(fig)
    expected = torch.zeros(4, 4)
    expected[[2, 0, 3, 1], [0, 1, 2, 3]] = 1.0  # 0s (keys 0, 1) first in order, then 1s (keys 3, 2)
    torch.testing.assert_close(W.float(), expected)


def test_glimpse_drawings():
    from ashlib.glimpse import SparseGlimpse
    from ashlib.glimpse_models import GlimpseClassifier
    from ashlib.widgets import draw_glimpse_layer, glimpse_browser

    image = torch.zeros(1, 24, 24)
    image[0, 5:10, 12:20] = 1.0
    glimpser = SparseGlimpse((24, 24), 6, 1, a_local=4, a_global=2, region=(5, 5))
    boxes = torch.tensor([[[-1.0, -1.0, 1.0, 1.0]]])
    fig, glimpses = draw_glimpse_layer(glimpser, image, boxes)
    plt.close(fig)
    assert glimpses.shape == (1, 1, 1, 6, 6)
    model = GlimpseClassifier((24, 24), 6, 1, a_local=4, a_global=2, region=(5, 5))
    widget = glimpse_browser(model, image.unsqueeze(0).repeat(3, 1, 1, 1), torch.tensor([1, 2, 3]))
    assert "test image" in {c.description for c in widget.children if hasattr(c, "description")}
    plt.close("all")


def test_progress_bars_can_be_switched_off_for_stored_outputs(monkeypatch):
    from ashlib.config import progress, show_progress

    monkeypatch.delenv("ASHLIB_PROGRESS", raising=False)
    assert show_progress(True) and not show_progress(False)
    assert not progress(range(3)).disable
    monkeypatch.setenv("ASHLIB_PROGRESS", "0")
    assert not show_progress(True)
    bar = progress(range(3))
    assert bar.disable and list(bar) == [0, 1, 2]


def test_progress_bars_redraw_rarely_when_stderr_is_a_log_file(monkeypatch):
    """A long run logged to a file gets a redraw a minute, not a second; a terminal keeps the fast pace."""
    import io
    import sys

    from ashlib import config

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.delitem(sys.modules, "ipykernel", raising=False)
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert config.progress_interval(1.0) == config.LOGGED_PROGRESS_INTERVAL == 60.0
    assert config.progress(range(3), mininterval=2.0).mininterval == 60.0
    monkeypatch.setattr(sys, "stderr", Terminal())
    assert config.progress_interval(1.0) == 1.0
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    monkeypatch.setitem(sys.modules, "ipykernel", object())  # inside Jupyter: the widget bar keeps its pace
    assert config.progress_interval(2.0) == 2.0
