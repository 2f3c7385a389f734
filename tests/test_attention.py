"""Sparse glimpses, their classifiers and baselines, against plain indexing, dense W and torch's resampling."""

import math
import warnings

import pytest
import torch
from torch.nn import functional as F

from ashlib.glimpse import (
    BilinearGlimpse,
    GlimpseSaturationWarning,
    SparseGlimpse,
    box_corners,
    check_saturation,
    glimpse_means,
)
from ashlib.glimpse_models import ConvNetBaseline, GlimpseClassifier, SourceNetwork, SpatialTransformerClassifier
from ashlib.contract import to_dense


def raw_box(corners, in_size):
    """Raw (y0, x0, y1, x1) whose sigmoid-and-scale gives these pixel corners (0 and size-1 via +-30)."""
    h, w = in_size
    out = []
    for v, size in zip(corners, (h, w, h, w)):
        p = v / (size - 1)
        out.append(-30.0 if p == 0 else 30.0 if p == 1 else math.log(p / (1 - p)))
    return out


def sharp(layer):
    """Shrink every glimpse's sigma to min_sigma (0.1 pixel): the index-space small-sigma limit."""
    with torch.no_grad():
        layer.sigmas.fill_(-30.0)
    return layer


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


# ------------------------------------------------------------------ (1), (2): exact crops


def test_small_sigma_glimpse_is_the_exact_strided_crop_times_the_value():
    size = (12, 14)
    layer = sharp(SparseGlimpse(size, 4, 2, a_local=6, a_global=3, region=(5, 5))).double()
    with torch.no_grad():
        layer.values.copy_(torch.tensor([2.5, -1.0]))
    # glimpse 0: rows 2, 4, 6, 8 and columns 1, 4, 7, 10; glimpse 1 flipped: rows 11, 8, 5, 2, columns 13..10
    boxes = torch.tensor([[raw_box((2, 1, 8, 10), size), raw_box((11, 13, 2, 10), size)]] * 3, dtype=torch.float64)
    images = torch.randn(3, 1, *size, dtype=torch.float64)
    out = layer(images, boxes, gen(1))
    assert out.shape == (3, 2, 1, 4, 4)
    torch.testing.assert_close(out[:, 0], 2.5 * images[:, :, 2:9:2, 1:11:3])
    torch.testing.assert_close(out[:, 1], -1.0 * images[:, :, [11, 8, 5, 2]][:, :, :, [13, 12, 11, 10]])


@pytest.mark.parametrize("chunk_size", [1, 5])
def test_whole_image_box_with_s_equal_to_h_gives_the_image_back(chunk_size):
    n = 10
    layer = sharp(SparseGlimpse((n, n), n, 1, a_local=4, a_global=4, region=3, chunk_size=chunk_size)).double().eval()
    with torch.no_grad():
        layer.values.fill_(0.5)
    images = torch.rand(4, 1, n, n, dtype=torch.float64)
    boxes = torch.tensor([[raw_box((0, 0, n - 1, n - 1), (n, n))]] * 4, dtype=torch.float64)
    torch.testing.assert_close(layer(images, boxes, gen(2))[:, 0], 0.5 * images)


def test_means_form_the_equally_spaced_grid_in_the_box():
    corners = torch.tensor([[[1.0, 2.0, 4.0, 8.0]]])
    means = glimpse_means(corners, 3)
    assert means.shape == (1, 1, 3, 3, 2)
    torch.testing.assert_close(means[0, 0, :, 0, 0], torch.tensor([1.0, 2.5, 4.0]))
    torch.testing.assert_close(means[0, 0, 0, :, 1], torch.tensor([2.0, 5.0, 8.0]))
    torch.testing.assert_close(glimpse_means(corners, 1)[0, 0, 0, 0], torch.tensor([2.5, 5.0]))  # centre
    raw = torch.tensor([[[-30.0, 0.0, 30.0, 30.0]]])
    torch.testing.assert_close(box_corners(raw, (5, 9)), torch.tensor([[[0.0, 4.0, 4.0, 8.0]]]))


# ------------------------------------------------------------------ (3): gradients


def test_gradients_move_the_box_toward_a_bright_square_on_its_right():
    size = (24, 24)
    layer = SparseGlimpse(size, 8, 1, a_local=16, a_global=4, region=(7, 7), init_sigma=1.5).double()
    images = torch.zeros(8, 1, *size, dtype=torch.float64)
    images[:, :, 8:16, 12:16] = 1.0  # just right of the box's right edge (x = 11)
    boxes = torch.tensor([[raw_box((8, 4, 15, 11), size)]] * 8, dtype=torch.float64, requires_grad=True)
    (-layer(images, boxes, gen(3)).sum()).backward()
    g = boxes.grad.sum(0)[0]  # summed over the 8 instances: (y0, x0, y1, x1)
    assert g[1] < 0 and g[3] < 0  # descent raises both x corners: the box moves right
    assert g[3].abs() > 5 * g[0].abs() and g[3].abs() > 5 * g[2].abs()  # and barely moves vertically
    assert layer.values.grad.abs().sum() > 0 and layer.sigmas.grad.abs().sum() > 0


def test_classifier_gradients_reach_source_network_sigma_and_values():
    torch.manual_seed(0)
    model = GlimpseClassifier((16, 16), 4, 2, region=(5, 5), a_local=4, a_global=2)
    F.cross_entropy(model(torch.rand(5, 1, 16, 16), gen(4)), torch.arange(5)).backward()
    for p in (model.source.net[0][0].weight, model.source.net[-1].weight, model.glimpser.sigmas, model.glimpser.values):
        assert p.grad is not None and p.grad.abs().sum() > 0


# ------------------------------------------------------------------ (4): channels and the sampled W


def test_channels_are_glimpsed_independently_with_the_same_tuples():
    size = (12, 12)
    torch.manual_seed(0)
    layer = SparseGlimpse(size, 3, 2, a_local=5, a_global=3, region=(4, 4)).double()
    images = torch.randn(2, 3, *size, dtype=torch.float64)
    boxes = torch.randn(2, 2, 4, dtype=torch.float64)
    out = layer(images, boxes, gen(5))
    assert out.shape == (2, 2, 3, 3, 3)
    for c in range(3):
        torch.testing.assert_close(out[:, :, c:c + 1], layer(images[:, c:c + 1], boxes, gen(5)))
    assert not torch.allclose(out[:, :, 0], out[:, :, 1])


@pytest.mark.parametrize("chunk_size", [1, 3, 9])
def test_forward_equals_the_dense_w_it_sampled(chunk_size):
    size, s, g = (7, 9), 3, 2
    torch.manual_seed(1)
    layer = SparseGlimpse(size, s, g, a_local=3, a_global=2, region=(3, 3), chunk_size=chunk_size,
                          init_sigma=2.0).double()
    with torch.no_grad():
        layer.values.copy_(torch.tensor([1.5, -0.5]))
    images = torch.randn(3, 2, *size, dtype=torch.float64)
    boxes = torch.randn(3, g, 4, dtype=torch.float64)
    indices, weights = layer.sample_weights(boxes, gen(6))
    out = layer(images, boxes, gen(6))
    for i in range(3):
        W = to_dense(indices[i], weights[i].detach(), (g * s * s, *size))  # (pixels, H, W), shared by channels
        expected = torch.einsum("ohw,chw->oc", W, images[i]).view(g, s, s, 2).permute(0, 3, 1, 2)
        torch.testing.assert_close(out[i].detach(), expected)
    # each output pixel's weights sum to its glimpse's value (proportions are normalised)
    per_pixel = torch.zeros(3, g * s * s, dtype=torch.float64).index_add_(1, indices[0, :, 0], weights[:1].expand(3, -1))
    torch.testing.assert_close(per_pixel[0].detach(), torch.tensor([1.5, -0.5]).repeat_interleave(s * s).double())


# ------------------------------------------------------------------ (5): size of W


@pytest.mark.parametrize("chunk_size", [1, 4])
def test_tuples_per_instance_are_g_s_s_chunk_s(chunk_size):
    g, s, a_local, a_global = 2, 4, 5, 3
    layer = SparseGlimpse((10, 10), s, g, a_local=a_local, a_global=a_global, region=(4, 4), chunk_size=chunk_size)
    S = 4 + a_local + a_global
    assert layer.samples_per_pixel == S
    indices, weights = layer.sample_weights(torch.randn(3, g, 4), gen(7))
    assert indices.shape == (3, g * s * s * chunk_size * S, 3) and weights.shape == indices.shape[:2]
    assert layer.tuples_per_instance == g * s * s * chunk_size * S
    # every output pixel holds exactly chunk_size * S entries
    counts = torch.bincount(indices[0, :, 0], minlength=g * s * s)
    assert bool((counts == chunk_size * S).all())
    # the paper's 1 x 32 x 32 glimpse on 100 x 100: 52 entries per pixel, not 10,000 (dense)
    paper = SparseGlimpse((100, 100), 32, 1)
    assert paper.tuples_per_instance == 32 * 32 * 52


# ------------------------------------------------------------------ (6): spatial transformer baseline


def test_bilinear_identity_box_returns_the_image_and_matches_interpolate():
    n = 13
    images = torch.rand(2, 3, n, n, dtype=torch.float64)
    whole = torch.tensor([[raw_box((0, 0, n - 1, n - 1), (n, n))]] * 2, dtype=torch.float64)
    torch.testing.assert_close(BilinearGlimpse((n, n), n).eval()(images, whole)[:, 0], images)
    expected = F.interpolate(images, size=(7, 7), mode="bilinear", align_corners=True)
    torch.testing.assert_close(BilinearGlimpse((n, n), 7).eval()(images, whole)[:, 0], expected)


def test_bilinear_glimpse_equals_an_affine_spatial_transformer():
    size, s = (9, 11), 5
    torch.manual_seed(2)
    images = torch.rand(3, 2, *size, dtype=torch.float64)
    boxes = torch.randn(3, 2, 4, dtype=torch.float64)
    out = BilinearGlimpse(size, s, 2)(images, boxes)
    (h, w), (y0, x0, y1, x1) = size, box_corners(boxes, size).unbind(-1)
    # theta maps normalised output coordinates to normalised input coordinates, scale + translation only
    theta = torch.zeros(3, 2, 2, 3, dtype=torch.float64)
    theta[..., 0, 0], theta[..., 0, 2] = (x1 - x0) / (w - 1), (x0 + x1) / (w - 1) - 1
    theta[..., 1, 1], theta[..., 1, 2] = (y1 - y0) / (h - 1), (y0 + y1) / (h - 1) - 1
    for j in range(2):
        grid = F.affine_grid(theta[:, j], (3, 2, s, s), align_corners=True)
        torch.testing.assert_close(out[:, j], F.grid_sample(images, grid, align_corners=True))


def test_bilinear_integer_aligned_box_is_the_exact_crop():
    size = (10, 10)
    images = torch.rand(1, 1, *size, dtype=torch.float64)
    boxes = torch.tensor([[raw_box((1, 3, 7, 9), size)]], dtype=torch.float64)
    torch.testing.assert_close(BilinearGlimpse(size, 4)(images, boxes)[0, 0], images[0, :, 1:8:2, 3:10:2])


# ------------------------------------------------------------------ networks


def test_models_give_logits_and_expose_their_glimpses():
    torch.manual_seed(0)
    images = torch.rand(4, 2, 16, 16)
    for model in (GlimpseClassifier((16, 16), 4, 3, in_channels=2, region=(5, 5)),
                  SpatialTransformerClassifier((16, 16), 4, 3, in_channels=2)):
        logits = model(images)
        assert logits.shape == (4, 10)
        assert model.last_boxes.shape == (4, 3, 4) and model.last_glimpses.shape == (4, 3, 2, 4, 4)
        corners, glimpses = model.glimpse(images)
        assert glimpses.shape == (4, 3, 2, 4, 4)
        assert bool((corners >= 0).all()) and bool((corners <= 15).all())
        assert 0.0 <= model.saturation <= 1.0
    assert ConvNetBaseline(2, (16, 16))(images).shape == (4, 10)
    # table 2: 3 conv stages, two 512 layers, 4 numbers per glimpse
    source = SourceNetwork(1, 8, (100, 100))
    assert source.net[-1].out_features == 32 and source.net[-5].in_features == 128 * 12 * 12
    assert source(torch.rand(2, 1, 100, 100)).shape == (2, 8, 4)


def test_glimpse_heads_classify_and_convnet_head_is_the_baseline_convnet():
    """Every head gives logits and passes gradient to the source; ``"convnet"`` computes exactly
    the ConvNet baseline's function on the glimpse (weights copied across, baseline unstandardised)."""
    torch.manual_seed(0)
    images = torch.rand(3, 1, 24, 24)
    for head in ("mlp", "conv", "convnet"):
        model = GlimpseClassifier((24, 24), 8, 1, head=head, source_hidden=16, init_box=(0.2, 0.2, 0.8, 0.8))
        logits = model(images)
        assert logits.shape == (3, 10) and bool(torch.isfinite(logits).all())
        logits.sum().backward()
        assert next(model.source.parameters()).grad.abs().sum() > 0, head
    model = GlimpseClassifier((24, 24), 16, 2, head="convnet", source_hidden=16, hidden=32, init_box=(0.2, 0.2, 0.8, 0.8))
    baseline = ConvNetBaseline(2, (16, 16), hidden=32)  # the 2 glimpses as 2 channels
    baseline.net.load_state_dict(model.mlp[1].state_dict())
    _, glimpses = model.glimpse(images)
    torch.testing.assert_close(model.mlp(glimpses), baseline(glimpses.flatten(1, 2)))
    with pytest.raises(ValueError, match="glimpse_size must be at least 8"):
        GlimpseClassifier((24, 24), 6, 1, head="convnet")


def test_init_box_starts_every_glimpse_in_that_box():
    torch.manual_seed(0)
    source = SourceNetwork(1, 3, (16, 16), init_box=(0.1, 0.2, 0.9, 0.8))
    corners = box_corners(source(torch.rand(5, 1, 16, 16)), (16, 16)) / 15
    torch.testing.assert_close(corners, torch.tensor([0.1, 0.2, 0.9, 0.8]).expand(5, 3, 4), atol=0.03, rtol=0)


def test_each_glimpse_can_start_in_a_box_of_its_own():
    from ashlib.glimpse import nested_boxes, tile_box

    torch.manual_seed(0)
    boxes = [(0.1, 0.1, 0.4, 0.4), (0.5, 0.2, 0.9, 0.6)]
    source = SourceNetwork(1, 2, (16, 16), init_box=boxes)
    corners = box_corners(source(torch.rand(5, 1, 16, 16)), (16, 16)) / 15
    torch.testing.assert_close(corners, torch.tensor(boxes).expand(5, 2, 4), atol=0.05, rtol=0)
    # tile_box: a 2 x 3 grid for 5 (rows = floor(sqrt(5)) = 2, cols = 3), the last row short
    tiles = tile_box((0.0, 0.0, 0.6, 0.9), 5)
    want = [(0, 0, 0.3, 0.3), (0, 0.3, 0.3, 0.6), (0, 0.6, 0.3, 0.9), (0.3, 0, 0.6, 0.3), (0.3, 0.3, 0.6, 0.6)]
    for got, w in zip(tiles, want, strict=True):
        assert got == pytest.approx(w)
    assert tile_box((0.2, 0.2, 0.8, 0.8), 1) == [pytest.approx((0.2, 0.2, 0.8, 0.8))]
    # nested_boxes: the same centre, sides from the box's down to half of it in equal steps
    nested = nested_boxes((0.2, 0.3, 0.6, 0.7), 3)
    want = [(0.2, 0.3, 0.6, 0.7), (0.25, 0.35, 0.55, 0.65), (0.3, 0.4, 0.5, 0.6)]
    for got, w in zip(nested, want, strict=True):
        assert got == pytest.approx(w)
    with pytest.raises(ValueError, match="gives 2 boxes for 3 glimpses"):
        SourceNetwork(1, 3, (16, 16), init_box=boxes)


# ------------------------------------------------------------------ (7): bad input


def test_bad_inputs_raise_value_errors():
    layer = SparseGlimpse((12, 12), 3, 2, region=(4, 4))
    images, boxes = torch.rand(2, 1, 12, 12), torch.zeros(2, 2, 4)
    cases = [
        (lambda: layer(torch.rand(2, 12, 12), boxes), "images must have shape"),
        (lambda: layer(torch.rand(2, 1, 12, 11), boxes), "images must have shape"),
        (lambda: layer(images.long(), boxes), "floating point"),
        (lambda: layer(images, torch.zeros(2, 1, 4)), "boxes must have shape"),
        (lambda: layer(images, torch.zeros(2, 2, 2)), "boxes must have shape"),
        (lambda: layer(images, boxes.double()), "dtype"),
        (lambda: layer(images, torch.full((2, 2, 4), float("nan"))), "NaN"),
        (lambda: SparseGlimpse((12, 12), 3), "region"),  # the paper's (20, 20) does not fit
        (lambda: SparseGlimpse((12, 12), 0, region=4), "glimpse_size"),
        (lambda: SparseGlimpse((12, 12), 3, 0, region=4), "n_glimpses"),
        (lambda: SparseGlimpse((12, 12, 3), 3, region=4), "in_size"),
        (lambda: SparseGlimpse((12, 12), 3, 1, region=4, chunk_size=4), "chunk_size"),
        (lambda: SparseGlimpse((12, 12), 3, 1, region=4, chunk_size=None), "chunk_size"),
        (lambda: SparseGlimpse((12, 12), 3, 1, region=4, a_local=-1), "a_local"),
        (lambda: SparseGlimpse((12, 12), 3, 1, region=4, init_sigma=0.05), "init_sigma"),
        (lambda: BilinearGlimpse((12, 12), 3, 2)(images, torch.zeros(2, 3, 4)), "boxes must have shape"),
        (lambda: SourceNetwork(1, 1, (6, 6)), "at least 8 x 8"),
        (lambda: SourceNetwork(1, 1, (16, 16), init_box=(0, 0, 1, 1)), "init_box"),
        (lambda: GlimpseClassifier((16, 16), 4, region=(5, 5))(torch.rand(2, 3, 16, 16)), "images must have shape"),
        (lambda: check_saturation(torch.zeros(0)), "non-empty"),
    ]
    for call, message in cases:
        with pytest.raises(ValueError, match=message):
            call()


# ------------------------------------------------------------------ (8): saturation


def test_saturation_is_flagged_at_plus_minus_20_and_not_at_0():
    raw = torch.tensor([20.0, -20.0, 20.0, -20.0]).expand(3, 1, 4)
    assert check_saturation(raw) == 1.0
    assert check_saturation(torch.zeros(3, 1, 4)) == 0.0
    assert check_saturation(torch.tensor([[[20.0, 0.0, -20.0, 1.0]]])) == 0.5
    layer = SparseGlimpse((12, 12), 3, 1, region=(4, 4))
    images = torch.rand(3, 1, 12, 12)
    with pytest.warns(GlimpseSaturationWarning, match="re-run with another seed"):
        layer(images, raw.clone())
    assert layer.saturation == 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        layer(images, torch.zeros(3, 1, 4))
        assert layer.saturation == 0.0
        layer.eval()  # evaluation only records it
        layer(images, raw.clone())
        assert layer.saturation == 1.0
    with pytest.warns(GlimpseSaturationWarning):
        BilinearGlimpse((12, 12), 3).train()(images, raw.clone())


def test_centre_scale_boxes_hand_worked_and_bounded():
    """centre_scale: raw (0, 0, 0, 0) is a centred box of side (lo + hi) / 2; extreme raw values
    stay within the size bounds and never flip."""
    from ashlib.glimpse import raw_start_box

    size = (41, 21)
    zero = torch.zeros(1, 1, 4)
    c = box_corners(zero, size, "centre_scale", (0.2, 0.6))
    # centre (20, 10); sides 0.4 * (40, 20) = (16, 8)
    torch.testing.assert_close(c, torch.tensor([[[12.0, 6.0, 28.0, 14.0]]]))
    extreme = torch.tensor([[[30.0, -30.0, 50.0, -50.0]]])
    y0, x0, y1, x1 = box_corners(extreme, size, "centre_scale", (0.2, 0.6)).unbind(-1)
    assert float(y1 - y0) <= 0.6 * 40 + 1e-4 and float(x1 - x0) >= 0.2 * 20 - 1e-4
    # raw_start_box inverts box_corners for boxes whose sides lie inside the range
    frac = (0.3, 0.2, 0.7, 0.6)
    raw = torch.tensor(raw_start_box(frac, "centre_scale", (0.2, 0.6))).view(1, 1, 4)
    torch.testing.assert_close(box_corners(raw, (101, 101), "centre_scale", (0.2, 0.6)) / 100,
                               torch.tensor([[frac]]), atol=1e-5, rtol=0)
    raw = torch.tensor(raw_start_box(frac)).view(1, 1, 4)
    torch.testing.assert_close(box_corners(raw, (101, 101)) / 100, torch.tensor([[frac]]), atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="box_param"):
        box_corners(zero, size, "centre")
    with pytest.raises(ValueError, match="scale_range"):
        box_corners(zero, size, "centre_scale", (0.6, 0.2))


@pytest.mark.parametrize("module", ["sparse", "bilinear"])
def test_centre_scale_glimpse_reads_the_same_grid(module):
    """A glimpse module with centre_scale reads exactly the grid of the equivalent corner box."""
    from ashlib.glimpse import raw_start_box

    images = torch.rand(2, 1, 30, 30)
    frac = (0.25, 0.3, 0.65, 0.7)
    raw_cs = torch.tensor(raw_start_box(frac, "centre_scale")).view(1, 1, 4).expand(2, 1, 4).contiguous()
    raw_c = torch.tensor(raw_start_box(frac)).view(1, 1, 4).expand(2, 1, 4).contiguous()
    if module == "sparse":
        a = SparseGlimpse((30, 30), 6, a_local=2, a_global=1, region=(4, 4), box_param="centre_scale")
        b = SparseGlimpse((30, 30), 6, a_local=2, a_global=1, region=(4, 4))
        ya = a(images, raw_cs, generator=torch.Generator().manual_seed(3))
        yb = b(images, raw_c, generator=torch.Generator().manual_seed(3))
    else:
        ya = BilinearGlimpse((30, 30), 6, box_param="centre_scale")(images, raw_cs)
        yb = BilinearGlimpse((30, 30), 6)(images, raw_c)
    torch.testing.assert_close(ya, yb, atol=1e-4, rtol=1e-4)
