"""The attention models of the paper's section 3.2, built on the glimpse layers of :mod:`ashlib.glimpse`.

Table 2's ConvNet as a :class:`SourceNetwork` (image -> raw boxes) and as the
:class:`ConvNetBaseline`; the classifiers :class:`GlimpseClassifier` (source network ->
:class:`~ashlib.glimpse.SparseGlimpse` -> head) and :class:`SpatialTransformerClassifier` (the
same with :class:`~ashlib.glimpse.BilinearGlimpse`); the heads (:data:`HEADS`) and
initialisations (:data:`INITS`) they offer.
"""

from __future__ import annotations

import torch
from torch import nn

from .glimpse import BilinearGlimpse, SparseGlimpse, _check_positive_int, _check_size, raw_start_box, start_boxes

__all__ = [
    "HEADS",
    "INITS",
    "ConvNetBaseline",
    "GlimpseClassifier",
    "SourceNetwork",
    "SpatialTransformerClassifier",
]

def _trunk(in_channels: int) -> nn.Sequential:
    """The convolutional part of table 2 (two 3x3 convs per stage; 4x4 then 2x2 max-pooling)."""
    return nn.Sequential(
        nn.Conv2d(in_channels, 32, 3, padding=1), nn.ReLU(),
        nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(),
        nn.MaxPool2d(4),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(),
        nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(64, 128, 3, padding=1), nn.ReLU(),
        nn.Conv2d(128, 128, 3, padding=1), nn.ReLU(),
        nn.Flatten(),
    )


def _table2(in_channels: int, in_size, n_out: int, hidden: int) -> nn.Sequential:
    in_channels = _check_positive_int("in_channels", in_channels)
    h, w = _check_size(in_size)
    if h < 8 or w < 8:
        raise ValueError(f"the table-2 ConvNet pools by 4 and then 2, so images must be at least 8 x 8, got {(h, w)}")
    features = 128 * (h // 4 // 2) * (w // 4 // 2)
    return nn.Sequential(_trunk(in_channels), nn.Linear(features, hidden), nn.ReLU(),
                         nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, n_out))


def _check_images(images, in_channels, in_size):
    h, w = in_size
    if not torch.is_tensor(images) or images.dim() != 4 or tuple(images.shape[1:]) != (in_channels, h, w):
        got = tuple(images.shape) if torch.is_tensor(images) else type(images).__name__
        raise ValueError(f"images must have shape (batch, {in_channels}, {h}, {w}), got {got}")
    if not images.is_floating_point():
        raise ValueError(f"images must be floating point (pixels in [0, 1], as ClutteredMNIST gives them), got "
                         f"{images.dtype}: convert uint8 canvases with images.float() / 255")


INITS = ("he", "pytorch")


def _he_init(net: nn.Module) -> None:
    """Kaiming-normal weights (fan-in, ReLU gain) and zero biases for every conv and linear layer.

    With PyTorch's default (uniform, gain 1/sqrt(3)) the signal shrinks by about half per ReLU
    layer: after table 2's nine layers the output hardly depends on the image.
    """
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            nn.init.zeros_(m.bias)


class _Standardise(nn.Module):
    """(x - mean) / std with the training set's pixel statistics, kept as buffers (saved with the model)."""

    def __init__(self):
        super().__init__()
        self.register_buffer("mean", torch.zeros(()))
        self.register_buffer("std", torch.ones(()))

    def set_statistics(self, images: torch.Tensor) -> None:
        if not torch.is_tensor(images) or images.numel() < 2:
            raise ValueError("need a tensor of at least 2 pixels to measure the input statistics")
        images = images.detach().double()
        if not bool(torch.isfinite(images).all()):
            raise ValueError("images contain NaN or inf: cannot measure the input statistics")
        std = float(images.std())
        if not std > 0:
            raise ValueError("the images have zero variance: cannot standardise them")
        self.mean.fill_(float(images.mean()))
        self.std.fill_(std)

    def forward(self, x):
        return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)


def _init_network(net: nn.Sequential, init: str) -> None:
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {init!r}")
    if init == "he":
        _he_init(net)


class SourceNetwork(nn.Module):
    """Table 2 of the paper's appendix: a ConvNet reading the image, 4 raw numbers per glimpse.

    forward(images (b, c, H, W)) -> raw boxes (b, g, 4) as (y0, x0, y1, x1), before the sigmoid.

    Args:
        in_channels, n_glimpses: c and g.
        in_size: (H, W); sets the size of the first linear layer (128 * H//8 * W//8 features).
        hidden: width of the two 512-unit ReLU layers.
        init: ``"he"`` (default): Kaiming-normal weights, so the boxes depend on the image from
            step 0 (measure it with :func:`box_spread`); ``"pytorch"``: PyTorch's default
            initialisation, the paper's set-up, under which the boxes barely vary across images.
        init_box: None leaves the last layer as ``init`` made it (every box starts near a point at
            the centre). A box (y0, x0, y1, x1) as fractions of the image in (0, 1) sets the last
            layer's bias to the matching raw values and shrinks its weights 10x, so every glimpse
            starts near that box: :data:`CENTRE_BOX` is the authors' start (a central, digit-sized
            box), (0.05, 0.05, 0.95, 0.95) the whole canvas. A list of ``n_glimpses`` such boxes
            starts each glimpse at its own box (e.g. :func:`ashlib.glimpse.tile_box`).

    The input is standardised with statistics set by :meth:`set_input_statistics` (buffers,
    saved in the state dict; identity until set).
    """

    def __init__(self, in_channels: int = 1, n_glimpses: int = 1, in_size=(100, 100), *, hidden: int = 512,
                 init: str = "he", init_box=None, box_param: str = "corners", scale_range=(0.2, 0.6)):
        super().__init__()
        self.in_channels = _check_positive_int("in_channels", in_channels)
        self.n_glimpses = _check_positive_int("n_glimpses", n_glimpses)
        self.in_size = _check_size(in_size)
        self.standardise = _Standardise()
        self.net = _table2(in_channels, in_size, 4 * n_glimpses, _check_positive_int("hidden", hidden))
        _init_network(self.net, init)
        if init_box is not None:
            raw = [v for box in start_boxes(init_box, n_glimpses) for v in raw_start_box(box, box_param, scale_range)]
            last = self.net[-1]
            with torch.no_grad():
                last.weight.mul_(0.1)
                last.bias.copy_(torch.tensor(raw))

    def set_input_statistics(self, images: torch.Tensor) -> None:
        """Standardise inputs with the mean and standard deviation of ``images`` (e.g. a training sample)."""
        self.standardise.set_statistics(images)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        _check_images(images, self.in_channels, self.in_size)
        return self.net(self.standardise(images)).view(images.shape[0], self.n_glimpses, 4)


class ConvNetBaseline(nn.Module):
    """The paper's baseline (table 1): the source network's ConvNet with a classification layer.

    forward(images (b, c, H, W)) -> logits (b, n_classes). Table 2 with its last layer giving
    ``n_classes`` numbers instead of 4 per glimpse; the same input standardisation and
    initialisation options as :class:`SourceNetwork`.
    """

    def __init__(self, in_channels: int = 1, in_size=(100, 100), n_classes: int = 10, *, hidden: int = 512,
                 init: str = "he"):
        super().__init__()
        self.in_channels = _check_positive_int("in_channels", in_channels)
        self.in_size = _check_size(in_size)
        self.standardise = _Standardise()
        self.net = _table2(in_channels, in_size, _check_positive_int("n_classes", n_classes),
                           _check_positive_int("hidden", hidden))
        _init_network(self.net, init)

    def set_input_statistics(self, images: torch.Tensor) -> None:
        """Standardise inputs with the mean and standard deviation of ``images``."""
        self.standardise.set_statistics(images)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        _check_images(images, self.in_channels, self.in_size)
        return self.net(self.standardise(images))


HEADS = ("mlp", "conv", "convnet")


def _head(kind: str, n_glimpses: int, channels: int, s: int, hidden: int, n_classes: int) -> nn.Module:
    """The classifier on the glimpses (b, g, c, s, s): the paper's MLP, or a small ConvNet.

    ``"mlp"``: flatten, ``hidden`` ReLU units, logits (appendix A.1). ``"conv"``: the g glimpses
    as g*c channels, two 3x3 conv + ReLU + 2x2 max-pool stages (32, 64 channels), then the same
    MLP: it sees a digit that sits anywhere in the glimpse, which the MLP must learn per pixel.
    ``"convnet"``: the baseline's own table-2 ConvNet (six 3x3 convs, 4x4 then 2x2 pooling, two
    ``hidden``-unit layers, He-initialised) on the glimpse: the baseline's convolutional trunk,
    with the head's own ``hidden`` width.
    """
    if kind not in HEADS:
        raise ValueError(f"head must be one of {HEADS}, got {kind!r}")
    hidden = _check_positive_int("hidden", hidden)
    n_classes = _check_positive_int("n_classes", n_classes)
    if kind == "mlp":
        return nn.Sequential(nn.Flatten(), nn.Linear(n_glimpses * channels * s * s, hidden), nn.ReLU(),
                             nn.Linear(hidden, n_classes))
    if kind == "convnet":
        if s < 8:
            raise ValueError(f"the convnet head pools by 4 and then 2, so glimpse_size must be at least 8, got {s}")
        net = nn.Sequential(nn.Flatten(1, 2), _table2(n_glimpses * channels, (s, s), n_classes, hidden))
        _he_init(net)
        return net
    if s < 4:
        raise ValueError(f"the conv head pools twice by 2, so glimpse_size must be at least 4, got {s}")
    return nn.Sequential(
        nn.Flatten(1, 2),  # (b, g*c, s, s)
        nn.Conv2d(n_glimpses * channels, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * (s // 4) ** 2, hidden), nn.ReLU(), nn.Linear(hidden, n_classes))


class _BoxGlimpseClassifier(nn.Module):
    """Source network -> boxes -> glimpse module -> 2-layer MLP. Subclasses choose the glimpse module."""

    def __init__(self, glimpser: nn.Module, in_channels, n_classes, hidden, source, init_box, head="mlp",
                 source_hidden=512, init="he", aux_head=False):
        box_param, scale_range = glimpser.box_param, glimpser.scale_range
        super().__init__()
        self.in_size, self.n_glimpses, self.glimpse_size = glimpser.in_size, glimpser.n_glimpses, glimpser.glimpse_size
        self.in_channels = _check_positive_int("in_channels", in_channels)
        if source is None:
            source = SourceNetwork(in_channels, self.n_glimpses, self.in_size, hidden=source_hidden, init=init,
                                   init_box=init_box, box_param=box_param, scale_range=scale_range)
        elif init_box is not None:
            raise ValueError("init_box applies to the default source network; initialise your own source instead")
        self.source = source
        self.glimpser = glimpser
        self.head = head
        self.mlp = _head(head, self.n_glimpses, self.in_channels, self.glimpse_size, hidden, n_classes)
        if aux_head and head == "mlp":
            raise ValueError("aux_head adds the paper's MLP head beside a conv head; head='mlp' already is one")
        # An MLP reads each pixel at a fixed place in the glimpse, so its loss moves the box until the
        # digit sits where it expects it; a conv head tolerates a box a few pixels off and pulls less.
        self.aux = _head("mlp", self.n_glimpses, self.in_channels, self.glimpse_size, hidden, n_classes) \
            if aux_head else None
        self.last_boxes = None
        self.last_glimpses = None

    def set_input_statistics(self, images: torch.Tensor) -> None:
        """Standardise the source network's input (see :meth:`SourceNetwork.set_input_statistics`)."""
        self.source.set_input_statistics(images)

    @property
    def saturation(self) -> float:
        """Fraction of saturated raw box parameters in the last forward (see :func:`check_saturation`)."""
        return self.glimpser.saturation

    def _glimpses(self, images, boxes, generator):
        raise NotImplementedError

    def glimpse(self, images: torch.Tensor, generator: torch.Generator | None = None):
        """(corners (b, g, 4) in pixels as (y0, x0, y1, x1), glimpses (b, g, c, s, s)): what the model looks at."""
        _check_images(images, self.in_channels, self.in_size)
        boxes = self.source(images)
        glimpses = self._glimpses(images, boxes, generator)
        corners = self.glimpser.corners(boxes)
        self.last_boxes, self.last_glimpses = corners.detach(), glimpses.detach()
        return corners, glimpses

    def forward(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Logits (b, n_classes). ``last_boxes`` and ``last_glimpses`` keep this batch's (detached) for plots."""
        _, glimpses = self.glimpse(images, generator)
        return self.mlp(glimpses)

    def logits_and_aux(self, images: torch.Tensor, generator: torch.Generator | None = None):
        """(head logits, auxiliary MLP head logits or None), both from the same glimpses (for training)."""
        _, glimpses = self.glimpse(images, generator)
        return self.mlp(glimpses), (self.aux(glimpses) if self.aux is not None else None)


class GlimpseClassifier(_BoxGlimpseClassifier):
    """The paper's attention model: table-2 source network -> :class:`SparseGlimpse` -> MLP(128) -> logits.

    forward(images (b, c, H, W)) -> logits (b, n_classes); :meth:`glimpse` gives the boxes and
    glimpses for plotting. ``head="conv"`` puts a small ConvNet before the MLP, ``head="convnet"``
    classifies the glimpse with :class:`ConvNetBaseline`'s network (see ``_head``); with a conv
    head, ``aux_head=True`` adds the paper's MLP head ``aux`` on the same glimpses, for an extra
    training loss (:meth:`logits_and_aux`) that places the box more precisely;
    ``source_hidden`` and ``init`` go to the default :class:`SourceNetwork`. Keyword arguments
    not listed go to :class:`SparseGlimpse` (a_local, a_global, region, chunk_size, init_sigma, ...).
    """

    def __init__(self, in_size=(100, 100), glimpse_size: int = 32, n_glimpses: int = 1, in_channels: int = 1,
                 n_classes: int = 10, *, hidden: int = 128, source: nn.Module | None = None, init_box=None,
                 head: str = "mlp", source_hidden: int = 512, init: str = "he", aux_head: bool = False,
                 **glimpse_kwargs):
        super().__init__(SparseGlimpse(in_size, glimpse_size, n_glimpses, **glimpse_kwargs), in_channels,
                         n_classes, hidden, source, init_box, head, source_hidden, init, aux_head)

    def _glimpses(self, images, boxes, generator):
        return self.glimpser(images, boxes, generator)


class SpatialTransformerClassifier(_BoxGlimpseClassifier):
    """Baseline: the same source network and box parametrisation, glimpses by bilinear
    interpolation (:class:`BilinearGlimpse`, an affine spatial transformer with scale and
    translation only), the same s x s glimpse and the same MLP.
    """

    def __init__(self, in_size=(100, 100), glimpse_size: int = 32, n_glimpses: int = 1, in_channels: int = 1,
                 n_classes: int = 10, *, hidden: int = 128, source: nn.Module | None = None, init_box=None,
                 head: str = "mlp", source_hidden: int = 512, init: str = "he", box_param: str = "corners",
                 scale_range=(0.2, 0.6), aux_head: bool = False):
        super().__init__(BilinearGlimpse(in_size, glimpse_size, n_glimpses, box_param=box_param,
                                         scale_range=scale_range), in_channels, n_classes, hidden,
                         source, init_box, head, source_hidden, init, aux_head)

    def _glimpses(self, images, boxes, generator):
        return self.glimpser(images, boxes)
