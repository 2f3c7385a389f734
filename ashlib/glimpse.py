"""The paper's sparse attention glimpse (section 3.2) and its bilinear counterpart, with their box geometry.

A source network (:mod:`ashlib.glimpse_models`) emits four raw numbers per glimpse, the two
corners of a box. An ``s x s`` grid of equally spaced points in the box are the means of
``k = g * s * s`` Gaussians, one per output pixel: each output pixel gets a single incoming
connection, and only *which* input pixel it connects to is learned (the two spatial index
dimensions of W). The integer tuples are sampled by :func:`ashlib.sample` and the glimpse is
computed by :func:`ashlib.contract`, exactly as in every other sparse layer. This module holds the
layers (:class:`SparseGlimpse`, :class:`BilinearGlimpse`), the box geometry they share
(:func:`box_corners`, :func:`glimpse_means`, :data:`CENTRE_BOX`) and the diagnostics that say
whether the boxes still learn (:func:`check_saturation`, :func:`check_collapse`, :func:`box_spread`).

Choices this module makes (the paper leaves them open):

* **W and channels.** The paper's W is a 6-tensor (c, s, s, c, H, W) whose channel
  coordinates are fixed ("each input channel is connected only to a corresponding output
  channel"). Here W has shape (g*s*s, H, W) and the channels ride along untouched: the image is
  contracted as (b, H*W, c) with ``feature_dims=1``. One set of tuples serves every channel, so
  there is no loop over channels and no W over them; memory is O(b * k * chunk * S), never H*W.
* **Values.** One learnable value per glimpse (a parameter, initialised to 1), shared by all
  its connections, as the paper says. The source network keeps table 2's 4*g outputs.
* **Sigma.** One learnable raw sigma per glimpse (a parameter, ``learn_sigma=False`` makes it a
  constant), mapped to pixels with the same rule as every sparse layer
  (``softplus(raw + 2) * size * sigma_scale + min_sigma`` per dimension) and initialised so the
  starting standard deviation is ``init_sigma`` pixels (along the larger image dimension). A
  narrow sigma gives near-nearest-neighbour glimpses with almost no gradient; about a pixel
  interpolates between neighbours and lets the box move.
* **Pooling.** ``chunk_size`` consecutive output pixels (row-major within a glimpse) share
  their proposals: each of them connects its own output pixel to every one of the chunk's
  ``chunk_size * S`` input pixels, weighted by its density there. The default 1 (each output
  pixel uses only its own S = 4 + a_local + a_global samples) keeps memory linear in k: a
  32 x 32 glimpse already has k = 1024 Gaussians, and pooling all of them would cost k**2 * S.
  Neighbouring grid points have nearby means, so a small chunk (e.g. s, one row) lets them
  share local samples at ``chunk_size`` times the cost.
* **Saturation.** The paper reports that the 1-glimpse model can drive every box parameter to
  the sigmoid's bounds and stop learning. Both glimpse modules record the fraction of saturated
  raw box parameters (:func:`check_saturation`) and warn (:class:`GlimpseSaturationWarning`)
  when, in training mode, all of them are.
"""

from __future__ import annotations

import math
import warnings

import torch
from torch import nn
from torch.nn import functional as F

from .contract import contract
from .indexing import as_shape
from .config import is_finite_positive, max_tensor_bytes
from .layers import SIGMA_OFFSET, index_space
from .sampling import _as_region, check_settings, sample, samples_per_gaussian

__all__ = [
    "BilinearGlimpse",
    "BOX_PARAMS",
    "CENTRE_BOX",
    "COLLAPSE_PIXELS",
    "GlimpseSaturationWarning",
    "SATURATION_THRESHOLD",
    "SparseGlimpse",
    "box_corners",
    "box_spread",
    "check_box_param",
    "check_collapse",
    "check_saturation",
    "glimpse_means",
    "nested_boxes",
    "raw_start_box",
    "start_boxes",
    "tile_box",
]

SATURATION_THRESHOLD = 6.0
"""|raw| beyond which a box parameter counts as saturated: sigmoid'(6) ~ 0.0025, 1% of sigmoid'(0)."""


CENTRE_BOX = (1 / (1 + math.e), 1 / (1 + math.e), 1 / (1 + math.e**-1), 1 / (1 + math.e**-1))
"""The authors' start box: raw offsets (-1, -1, +1, +1) through the sigmoid, the central ~46 % of each side."""

COLLAPSE_PIXELS = 1.0
"""A box narrower than this (pixels, in either dimension) reads a single point: it has collapsed."""


class GlimpseSaturationWarning(RuntimeWarning):
    """Every raw box parameter sits far out on the sigmoid: the boxes have stopped learning."""


# --------------------------------------------------------------------------- boxes and means


def _check_size(in_size) -> tuple[int, int]:
    size = as_shape(in_size, "in_size")
    if len(size) != 2:
        raise ValueError(f"in_size must be (height, width), got {in_size!r}")
    return size


def _check_positive_int(name: str, value) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    return value


def _check_count(name: str, value) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{name} must be an int >= 0, got {value!r}")
    return value


def _check_positive_number(name: str, value) -> float:
    if not is_finite_positive(value):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def _check_generator(generator) -> None:
    if generator is not None and not isinstance(generator, torch.Generator):
        raise ValueError(f"generator must be None or a torch.Generator, got {type(generator).__name__}: "
                         "pass torch.Generator().manual_seed(seed) for a seed")


BOX_PARAMS = ("corners", "centre_scale")


def check_box_param(box_param: str, scale_range) -> tuple[float, float]:
    """Check a box parametrisation (one of :data:`BOX_PARAMS`) and its ``scale_range``; return (min, max)."""
    if box_param not in BOX_PARAMS:
        raise ValueError(f"box_param must be one of {BOX_PARAMS}, got {box_param!r}")
    if isinstance(scale_range, (str, bytes)) or not hasattr(scale_range, "__len__") or len(scale_range) != 2 \
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in scale_range):
        raise ValueError(f"scale_range must be two numbers (min, max), fractions of the image, got {scale_range!r}")
    lo, hi = (float(v) for v in scale_range)
    if not 0 < lo < hi <= 1:
        raise ValueError(f"scale_range must be (min, max) fractions of the image with 0 < min < max <= 1, "
                         f"got {scale_range!r}")
    return lo, hi


def box_corners(boxes: torch.Tensor, in_size, box_param: str = "corners", scale_range=(0.2, 0.6)) -> torch.Tensor:
    """Raw boxes (..., 4) -> corners (y0, x0, y1, x1) in pixel index space, (..., 4).

    ``box_param="corners"`` (the paper's): the raw numbers are the two corners,
    ``y = sigmoid(raw) * (H - 1)``, ``x = sigmoid(raw) * (W - 1)``, the same mapping as every
    sparse layer's means (:func:`ashlib.layers.index_space`), so a corner never leaves the image.
    The corners are not sorted: y1 < y0 gives a glimpse flipped upside down.

    ``box_param="centre_scale"``: the raw numbers are (centre y, centre x, height, width): the
    centre is ``sigmoid(raw) * (size - 1)`` and each side ``(lo + (hi - lo) * sigmoid(raw)) *
    (size - 1)`` for ``scale_range = (lo, hi)``. Such a box can neither flip, nor shrink to a
    point, nor grow past ``hi`` of the image; it may reach over the border (its grid points are
    then clamped onto the edge pixels).
    """
    h, w = _check_size(in_size)
    lo, hi = check_box_param(box_param, scale_range)
    if not torch.is_tensor(boxes) or boxes.dim() == 0 or boxes.shape[-1] != 4 or not boxes.is_floating_point():
        got = f"{tuple(boxes.shape)} {boxes.dtype}" if torch.is_tensor(boxes) else type(boxes).__name__
        raise ValueError(f"boxes must be a float tensor (..., 4) of raw (y0, x0, y1, x1), got {got}")
    scale = boxes.new_tensor([h - 1, w - 1, h - 1, w - 1])
    if box_param == "corners":
        return torch.sigmoid(boxes) * scale
    centre = torch.sigmoid(boxes[..., :2]) * scale[:2]
    half = (lo + (hi - lo) * torch.sigmoid(boxes[..., 2:])) * scale[2:] / 2
    return torch.cat([centre - half, centre + half], dim=-1)


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


def raw_start_box(fractions, box_param: str = "corners", scale_range=(0.2, 0.6)) -> list[float]:
    """The raw numbers whose box is ``fractions`` (y0, x0, y1, x1) of the image, for ``box_param``.

    For ``centre_scale`` the sides are clipped into ``scale_range``.
    """
    if isinstance(fractions, (str, bytes)) or not hasattr(fractions, "__iter__") \
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in fractions):
        raise ValueError(f"init_box must be 4 fractions (y0, x0, y1, x1) strictly inside (0, 1), got {fractions!r}"
                         + (" (names such as 'centre' belong to AttentionConfig.init_box)" if isinstance(fractions, str)
                            else ""))
    box = tuple(float(v) for v in fractions)
    if len(box) != 4 or not all(0 < v < 1 for v in box):
        raise ValueError(f"init_box must be 4 fractions (y0, x0, y1, x1) strictly inside (0, 1), got {fractions!r}")
    lo, hi = check_box_param(box_param, scale_range)
    if box_param == "corners":
        return [_logit(v) for v in box]
    y0, x0, y1, x1 = box
    sides = [min(max(abs(y1 - y0), lo + 1e-3 * (hi - lo)), hi - 1e-3 * (hi - lo)),
             min(max(abs(x1 - x0), lo + 1e-3 * (hi - lo)), hi - 1e-3 * (hi - lo))]
    return [_logit((y0 + y1) / 2), _logit((x0 + x1) / 2)] + [_logit((v - lo) / (hi - lo)) for v in sides]


def tile_box(box, n: int) -> list[tuple[float, float, float, float]]:
    """``box`` (y0, x0, y1, x1) cut into ``n`` equal tiles, read row by row.

    The grid is the squarest with rows x cols >= n (rows = floor(sqrt(n))); the last row may be
    short. Start boxes for several glimpses that, together, see what one glimpse on ``box`` sees:
    each starts at a different place, so no two glimpses begin as copies of each other.
    """
    n = _check_positive_int("n", n)
    y0, x0, y1, x1 = (float(v) for v in box)
    rows = max(1, math.isqrt(n))
    cols = -(-n // rows)
    h, w = (y1 - y0) / rows, (x1 - x0) / cols
    return [(y0 + h * (i // cols), x0 + w * (i % cols), y0 + h * (i // cols + 1), x0 + w * (i % cols + 1))
            for i in range(n)]


def nested_boxes(box, n: int, smallest: float = 0.5) -> list[tuple[float, float, float, float]]:
    """``n`` boxes with ``box``'s centre, the first ``box`` itself, the sides shrinking in equal steps
    to ``smallest`` times its sides: start boxes for several glimpses that all look at the middle, at
    several scales (a coarse view for context, finer ones for detail)."""
    n = _check_positive_int("n", n)
    if not 0 < smallest <= 1:
        raise ValueError(f"smallest must be a fraction in (0, 1], got {smallest!r}")
    y0, x0, y1, x1 = (float(v) for v in box)
    cy, cx, h, w = (y0 + y1) / 2, (x0 + x1) / 2, (y1 - y0) / 2, (x1 - x0) / 2
    scales = [1 - (1 - smallest) * i / (n - 1) if n > 1 else 1.0 for i in range(n)]
    return [(cy - h * f, cx - w * f, cy + h * f, cx + w * f) for f in scales]


def start_boxes(init_box, n_glimpses: int) -> list:
    """``init_box`` for ``n_glimpses`` glimpses: one box (4 fractions) for all, or one per glimpse."""
    n_glimpses = _check_positive_int("n_glimpses", n_glimpses)
    if isinstance(init_box, (list, tuple)) and init_box and all(
            isinstance(b, (list, tuple)) for b in init_box):
        if len(init_box) != n_glimpses:
            raise ValueError(f"init_box gives {len(init_box)} boxes for {n_glimpses} glimpses; give one box "
                             "(4 fractions) for all, or exactly one per glimpse")
        return [tuple(b) for b in init_box]
    return [init_box] * n_glimpses


def _grid_fractions(s: int, like: torch.Tensor) -> torch.Tensor:
    """i / (s - 1) for i < s (the centre 0.5 when s = 1)."""
    if s == 1:
        return like.new_full((1,), 0.5)
    return torch.arange(s, dtype=like.dtype, device=like.device) / (s - 1)


def glimpse_means(corners: torch.Tensor, glimpse_size: int) -> torch.Tensor:
    """Corners (b, g, 4) in pixels -> the s x s grid of means, (b, g, s, s, 2) as (y, x).

    Output pixel (i, j) reads ``(y0 + (y1 - y0) * i / (s-1), x0 + (x1 - x0) * j / (s-1))``.
    """
    s = _check_positive_int("glimpse_size", glimpse_size)
    if not torch.is_tensor(corners) or corners.dim() == 0 or corners.shape[-1] != 4:
        got = tuple(corners.shape) if torch.is_tensor(corners) else type(corners).__name__
        raise ValueError(f"corners must be a tensor (..., 4) of (y0, x0, y1, x1) pixels, got {got}")
    t = _grid_fractions(s, corners)
    y0, x0, y1, x1 = corners.unbind(-1)  # each (b, g)
    ys = y0[..., None] + (y1 - y0)[..., None] * t  # (b, g, s)
    xs = x0[..., None] + (x1 - x0)[..., None] * t
    return torch.stack(torch.broadcast_tensors(ys[..., :, None], xs[..., None, :]), dim=-1)


def check_saturation(boxes_raw: torch.Tensor, threshold: float = SATURATION_THRESHOLD) -> float:
    """Fraction of raw box parameters with |raw| > threshold (sigmoid gradient below ~0.25%).

    1.0 means every corner of every box is pinned to the image border (or its opposite) and the
    gradient through the sigmoids has all but vanished: the failure the paper reports for the
    1-glimpse model.
    """
    if not torch.is_tensor(boxes_raw) or boxes_raw.numel() == 0:
        raise ValueError("boxes_raw must be a non-empty tensor of raw box parameters")
    return float((boxes_raw.detach().abs() > threshold).float().mean())


def check_collapse(corners: torch.Tensor, min_extent: float = COLLAPSE_PIXELS) -> float:
    """Fraction of boxes (corners (..., 4) in pixels) narrower than ``min_extent`` in height or width.

    A collapsed box reads (nearly) one pixel for every glimpse pixel: the glimpse is blank or
    constant, the classifier sees nothing and the loss sits at ln(n_classes). It happens when the
    source network's learning rate is too high (see :mod:`ashlib.experiments.attention`).
    """
    if not torch.is_tensor(corners) or corners.shape[-1:] != (4,) or corners.numel() == 0:
        raise ValueError("corners must be a non-empty tensor (..., 4) of (y0, x0, y1, x1) pixels")
    y0, x0, y1, x1 = corners.detach().unbind(-1)
    narrow = ((y1 - y0).abs() < min_extent) | ((x1 - x0).abs() < min_extent)
    return float(narrow.float().mean())


def box_spread(corners: torch.Tensor) -> float:
    """Mean standard deviation over a batch of each box coordinate (pixels), corners (b, g, 4).

    Near 0 means the source network gives every image the same box: it does not yet *see* the
    image, and the only signal reaching it is the noisy gradient through the box position.
    """
    if not torch.is_tensor(corners) or corners.dim() != 3 or corners.shape[0] < 2 or corners.shape[-1] != 4:
        raise ValueError("corners must have shape (batch >= 2, n_glimpses, 4)")
    return float(corners.detach().std(dim=0).mean())


def _record_saturation(module: nn.Module, boxes: torch.Tensor) -> None:
    if boxes.numel() == 0:  # an empty batch has no boxes to saturate
        module.saturation = 0.0
        return
    module.saturation = check_saturation(boxes, module.saturation_threshold)
    if module.training and module.saturation >= 1.0:
        warnings.warn(
            f"every raw box parameter is beyond +-{module.saturation_threshold:g}: the sigmoids are "
            "saturated and the boxes no longer receive gradient. Re-initialise the source network's "
            "last layer (or re-run with another seed) and consider a lower learning rate.",
            GlimpseSaturationWarning,
            stacklevel=2,
        )


def _check_forward(images, boxes, in_size, n_glimpses):
    h, w = in_size
    if not torch.is_tensor(images) or images.dim() != 4 or tuple(images.shape[2:]) != (h, w):
        got = tuple(images.shape) if torch.is_tensor(images) else type(images).__name__
        raise ValueError(f"images must have shape (batch, channels, {h}, {w}), got {got}")
    if not images.is_floating_point():
        raise ValueError(f"images must be floating point, got {images.dtype}")
    if images.is_meta or (torch.is_tensor(boxes) and boxes.is_meta):
        raise ValueError("glimpses need real tensors, got a meta tensor (no data) for the images or boxes: move the "
                         "module and its inputs to 'cpu' or 'cuda' first")
    b = images.shape[0]
    if not torch.is_tensor(boxes) or tuple(boxes.shape) != (b, n_glimpses, 4):
        got = tuple(boxes.shape) if torch.is_tensor(boxes) else type(boxes).__name__
        raise ValueError(f"boxes must have shape (batch, n_glimpses, 4) = ({b}, {n_glimpses}, 4): "
                         f"raw corners (y0, x0, y1, x1) per glimpse, got {got}")
    if boxes.dtype != images.dtype or boxes.device != images.device:
        raise ValueError(f"boxes ({boxes.dtype}, {boxes.device}) and images ({images.dtype}, {images.device}) "
                         "must share dtype and device")
    if not bool(torch.isfinite(boxes).all()):
        raise ValueError("boxes contain NaN or inf; check the source network and the learning rate")


# --------------------------------------------------------------------------- glimpse layers


class SparseGlimpse(nn.Module):
    """Extract g glimpses of s x s pixels through a sampled sparse W (the paper's attention layer).

    forward(images (b, c, H, W), boxes (b, g, 4)) -> glimpses (b, g, c, s, s). ``boxes`` are the
    source network's raw outputs (y0, x0, y1, x1); the sigmoid and rescaling happen here. Each
    output pixel is one Gaussian centred on its grid point in the box; its value (one per
    glimpse) is spread over the input pixels sampled around it, by density.

    Args:
        in_size: (H, W) of the images.
        glimpse_size: s, the glimpse is s x s.
        n_glimpses: g.
        a_local, a_global, region: sampling settings of :func:`ashlib.sample` (the paper's
            attention experiment: 32, 16, (20, 20)); the region must fit inside the image.
        chunk_size: output pixels that pool their proposals (must divide g*s*s); memory is
            O(b * g*s*s * chunk_size * S). Default 1: each output pixel uses its own S samples.
        init_sigma: starting standard deviation in pixels (along the larger image dimension).
        learn_sigma: learn one raw sigma per glimpse (else keep it fixed).
        learn_values: learn one value per glimpse, initialised to 1 (else fixed at 1).
        sigma_scale, min_sigma: the sigma mapping shared with the other sparse layers.
        saturation_threshold: |raw| above which a box parameter counts as saturated.
        box_param, scale_range: how the four raw numbers make a box (see :func:`box_corners`):
            ``"corners"`` (the paper's) or ``"centre_scale"`` (sides bounded by ``scale_range``).

    After each forward, ``saturation`` holds :func:`check_saturation` of the boxes.
    """

    def __init__(self, in_size, glimpse_size: int, n_glimpses: int = 1, *, a_local: int = 32, a_global: int = 16,
                 region=(20, 20), chunk_size: int = 1, init_sigma: float = 1.0, learn_sigma: bool = True,
                 learn_values: bool = True, sigma_scale: float = 0.1, min_sigma: float = 0.1,
                 saturation_threshold: float = SATURATION_THRESHOLD, box_param: str = "corners",
                 scale_range=(0.2, 0.6)):
        super().__init__()
        self.in_size = _check_size(in_size)
        self.glimpse_size = _check_positive_int("glimpse_size", glimpse_size)
        self.n_glimpses = _check_positive_int("n_glimpses", n_glimpses)
        self.scale_range = check_box_param(box_param, scale_range)
        self.box_param = box_param
        self.k = self.n_glimpses * self.glimpse_size**2
        if chunk_size is None:
            raise ValueError("chunk_size=None (pool all g*s*s Gaussians) costs k**2 memory; pass a small divisor "
                             f"of k = {self.k}, e.g. 1 or {self.glimpse_size}")
        self.chunk_size = check_settings(self.k, _check_count("a_local", a_local), _check_count("a_global", a_global),
                                         _check_positive_int("chunk_size", chunk_size))
        self.a_local, self.a_global = a_local, a_global
        try:
            self.region = _as_region(region, self.in_size)
        except ValueError as err:
            raise ValueError(f"{err} (the image is {self.in_size}; the paper's default (20, 20) needs at least "
                             "20 x 20 pixels: pass a smaller region for small canvases)") from None
        sigma_scale = _check_positive_number("sigma_scale", sigma_scale)
        min_sigma = _check_positive_number("min_sigma", min_sigma)
        init_sigma = _check_positive_number("init_sigma", init_sigma)
        if not init_sigma > min_sigma:
            raise ValueError(f"init_sigma ({init_sigma}) must exceed min_sigma ({min_sigma})")
        self.sigma_scale, self.min_sigma = float(sigma_scale), float(min_sigma)
        self.saturation_threshold = float(saturation_threshold)
        self.saturation = float("nan")

        # invert sigma = softplus(raw + 2) * size * sigma_scale + min_sigma for the larger dimension
        target = (init_sigma - min_sigma) / (max(self.in_size) * sigma_scale)
        raw = math.log(math.expm1(target)) if target < 20 else target
        raw_sigma = torch.full((self.n_glimpses,), raw - SIGMA_OFFSET)
        values = torch.ones(self.n_glimpses)
        if learn_sigma:
            self.sigmas = nn.Parameter(raw_sigma)
        else:
            self.register_buffer("sigmas", raw_sigma)
        if learn_values:
            self.values = nn.Parameter(values)
        else:
            self.register_buffer("values", values)

    def corners(self, boxes: torch.Tensor) -> torch.Tensor:
        """Raw boxes (b, g, 4) -> corners (b, g, 4) in pixels (see :func:`box_corners`)."""
        return box_corners(boxes, self.in_size, self.box_param, self.scale_range)

    @property
    def samples_per_pixel(self) -> int:
        """S = 4 + a_local + a_global, the input pixels each output pixel proposes."""
        return samples_per_gaussian(2, self.a_local, self.a_global)

    @property
    def tuples_per_instance(self) -> int:
        """Entries of W one instance contracts: g*s*s * chunk_size * S (each proposal once per pooling pixel)."""
        return self.k * self.chunk_size * self.samples_per_pixel

    def extra_repr(self) -> str:
        return (f"in_size={self.in_size}, glimpse_size={self.glimpse_size}, n_glimpses={self.n_glimpses}, "
                f"a_local={self.a_local}, a_global={self.a_global}, region={self.region}, chunk_size={self.chunk_size}")

    def gaussians(self, boxes: torch.Tensor):
        """Means (b, g, s, s, 2) and standard deviations (b, g, 2) in pixels, (y, x), for raw boxes (b, g, 4)."""
        b, g = boxes.shape[:2]
        # index_space maps the two corners exactly like any layer's means, and the raw sigma
        # through the shared softplus rule (per dimension, hence the (H, W) shape).
        raw_sigmas = self.sigmas.to(boxes.dtype).view(1, g, 1).expand(b, g, 2)
        corners, sigmas = index_space(boxes.reshape(b, g, 2, 2), raw_sigmas, self.in_size, self.sigma_scale,
                                      self.min_sigma)
        if self.box_param != "corners":
            corners = self.corners(boxes)
        means = glimpse_means(corners.reshape(b, g, 4), self.glimpse_size)
        upper = boxes.new_tensor(self.in_size) - 1
        means = torch.minimum(means.clamp(min=0), upper)  # float rounding only
        return means, sigmas[:, :, 0]

    def _sample(self, boxes, generator):
        """Output pixel (b, k/c, c, c*S), pooled input pixels (b, k/c, c*S, 2), weights (b, k, c*S)."""
        b, g = boxes.shape[:2]
        k, c = self.k, self.chunk_size
        means, sigmas = self.gaussians(boxes)
        sigmas = sigmas.unsqueeze(2).expand(b, g, self.glimpse_size**2, 2).reshape(b, k, 2)
        pools, props = sample(means.reshape(b, k, 2), sigmas, self.in_size, a_local=self.a_local,
                              a_global=self.a_global, region=self.region, chunk_size=c, generator=generator)
        values = self.values.to(boxes.dtype).repeat_interleave(self.glimpse_size**2)  # (k,), one per glimpse
        weights = props * values.view(1, k, 1)
        out = torch.arange(k, device=boxes.device).view(1, k // c, c, 1).expand(b, k // c, c, pools.shape[2])
        return out, pools, weights

    def sample_weights(self, boxes: torch.Tensor, generator: torch.Generator | None = None):
        """One sparse W per instance: ``indices (b, m, 3)`` as (output pixel, y, x), ``weights (b, m)``.

        The output pixel is flat over (g, s, s); m = :attr:`tuples_per_instance`. Repeated input
        pixels within a pool carry weight 0. (For inspection and tests; forward uses the same draw.)
        """
        b = boxes.shape[0]
        out, pools, weights = self._sample(boxes, generator)
        src = pools.unsqueeze(2).expand(*out.shape, 2)
        m = self.tuples_per_instance  # explicit, so an empty batch (b = 0) reshapes too
        return torch.cat([out.unsqueeze(-1), src], dim=-1).reshape(b, m, 3), weights.reshape(b, m)

    def _check_memory(self, b: int) -> None:
        """Refuse, before allocating, a batch whose b * k * chunk_size * S tuples would not fit: the largest
        tensor holds one (output pixel, input pixel) pair of int64 per tuple, 16 bytes."""
        need = 16 * b * self.tuples_per_instance
        if need > max_tensor_bytes():
            raise ValueError(
                f"n_glimpses={self.n_glimpses} of glimpse_size={self.glimpse_size} with chunk_size="
                f"{self.chunk_size} and S = {self.samples_per_pixel} samples per pixel contract "
                f"{self.tuples_per_instance:,} tuples per image; a batch of {b} needs about {need / 2**30:.1f} GiB. "
                "Use a smaller glimpse_size, chunk_size or batch (or raise ASHLIB_MAX_POOL_GIB)")

    def forward(self, images: torch.Tensor, boxes: torch.Tensor,
                generator: torch.Generator | None = None) -> torch.Tensor:
        _check_forward(images, boxes, self.in_size, self.n_glimpses)
        _check_generator(generator)
        self._check_memory(images.shape[0])
        _record_saturation(self, boxes)
        b, ch = images.shape[:2]
        h, w = self.in_size
        s = self.glimpse_size
        out, pools, weights = self._sample(boxes, generator)
        # One flat input index per proposal (before it is repeated for the pool's pixels); the
        # channels go last and ride along as a feature dimension of the contraction.
        flat_in = (pools[..., 0] * w + pools[..., 1]).unsqueeze(2).expand(out.shape)
        m = self.tuples_per_instance
        indices = torch.stack([out, flat_in], dim=-1).reshape(b, m, 2)
        x = images.permute(0, 2, 3, 1).reshape(b, h * w, ch)
        y = contract(indices, weights.reshape(b, m), x, (self.k,), validate=False, feature_dims=1)  # (b, k, ch)
        return y.view(b, self.n_glimpses, s, s, ch).permute(0, 1, 4, 2, 3)


class BilinearGlimpse(nn.Module):
    """The differentiable-cropping alternative: the same s x s grid of points, read by bilinear
    interpolation (``F.grid_sample``, a spatial transformer restricted to scale + translation).

    forward(images (b, c, H, W), boxes (b, g, 4) raw) -> glimpses (b, g, c, s, s). Dense in the
    sense that every grid point reads its four neighbouring pixels; no sampling, no learned sigma.
    All glimpses come from one ``grid_sample`` call (stacked along the output height), so the
    image is never copied per glimpse.
    """

    def __init__(self, in_size, glimpse_size: int, n_glimpses: int = 1, *,
                 saturation_threshold: float = SATURATION_THRESHOLD, box_param: str = "corners",
                 scale_range=(0.2, 0.6)):
        super().__init__()
        self.in_size = _check_size(in_size)
        self.glimpse_size = _check_positive_int("glimpse_size", glimpse_size)
        self.n_glimpses = _check_positive_int("n_glimpses", n_glimpses)
        self.scale_range = check_box_param(box_param, scale_range)
        self.box_param = box_param
        self.saturation_threshold = float(saturation_threshold)
        self.saturation = float("nan")

    def extra_repr(self) -> str:
        return f"in_size={self.in_size}, glimpse_size={self.glimpse_size}, n_glimpses={self.n_glimpses}"

    def corners(self, boxes: torch.Tensor) -> torch.Tensor:
        """Raw boxes (b, g, 4) -> corners (b, g, 4) in pixels (see :func:`box_corners`)."""
        return box_corners(boxes, self.in_size, self.box_param, self.scale_range)

    def forward(self, images: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        _check_forward(images, boxes, self.in_size, self.n_glimpses)
        _record_saturation(self, boxes)
        b, ch = images.shape[:2]
        h, w = self.in_size
        g, s = self.n_glimpses, self.glimpse_size
        means = glimpse_means(self.corners(boxes), s)  # (b, g, s, s, 2) as (y, x) pixels
        # align_corners=True: normalised -1 is pixel 0 and +1 is pixel size-1
        scale = boxes.new_tensor([2.0 / max(w - 1, 1), 2.0 / max(h - 1, 1)])
        grid = means.flip(-1) * scale - 1.0  # (x, y) order for grid_sample
        out = F.grid_sample(images, grid.reshape(b, g * s, s, 2), mode="bilinear", padding_mode="border",
                            align_corners=True)  # (b, c, g*s, s)
        return out.view(b, ch, g, s, s).transpose(1, 2)
