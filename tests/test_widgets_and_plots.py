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
