"""Classifying cluttered MNIST through learned glimpses (paper section 3.2, Table 1, Figure 4).

Three models on the same data and budget: ``sparse`` (the paper's: source network -> boxes ->
:class:`ashlib.glimpse.SparseGlimpse` -> head), ``stn`` (the same, with bilinear sampling: a
spatial transformer) and ``convnet`` (the source network with a classification layer, no
glimpse). The paper trains 70 epochs on 60,000 100 x 100 images, batch 128, lr 1e-4.

The recipe here differs from the paper's text where that is what makes the glimpses move
(each point measured on this code, see DESIGN notes in the closing notes of issue 11):

* the source network sees standardised canvases and starts from He initialisation, so its
  boxes depend on the image from the first step (``init="pytorch"`` restores the default);
* the boxes start on a central, digit-sized box (:data:`ashlib.glimpse.CENTRE_BOX`, the
  authors' code's offset) rather than near a point;
* the source network has its own, lower learning rate (``source_lr``), optionally warmed up;
* every epoch renders fresh canvases (``fresh_canvases``): the head cannot memorise a fixed set
  before the boxes have found the digits;
* cross-entropy on the logits (the paper writes binary cross-entropy on a softmax output).
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch.nn import functional as F

from ..data import MAX_DISTRACTORS
from ..glimpse import (CENTRE_BOX, GlimpseSaturationWarning, box_spread, check_box_param, check_collapse,
                       nested_boxes, raw_start_box, start_boxes, tile_box)
from ..glimpse_models import HEADS, INITS, ConvNetBaseline, GlimpseClassifier, SpatialTransformerClassifier
from ..config import quick_mode, seed_everything
from .checks import check_device_name, check_int, check_positive, check_seed, check_source, drop_removed
from .loop import Plan, Result, run
from .schedule import check_schedule, lr_factor

MODELS = ("sparse", "stn", "convnet")
INIT_BOXES = {"centre": CENTRE_BOX, "canvas": (0.05, 0.05, 0.95, 0.95), "tiles": CENTRE_BOX, "nested": CENTRE_BOX}
"""Named start boxes; ``tiles`` cuts the centre box into one tile per glimpse (:func:`ashlib.glimpse.tile_box`),
``nested`` gives each glimpse a box with the same centre, from the centre box down to half its side
(:func:`ashlib.glimpse.nested_boxes`)."""
SOURCE_LR_RATIO = {"sparse": 0.1, "stn": 0.03, "convnet": 1.0}
"""Default source_lr / lr. The bilinear glimpse collapsed at 1e-4 with a head at 1e-3; the sparse one trained
at 1e-4 on constant rates but collapsed on a cosine schedule without warm-up (the shipped recipe: 5e-5, warm-up)."""
REMOVED_FIELDS: dict = {}  # none yet; see ashlib.experiments.sorting.REMOVED_FIELDS
NEAR_PIXELS = 4.0
"""A box 'finds' the digit when its centre lies within this many pixels of the digit's centre."""


@dataclass
class AttentionConfig:
    """Settings of one run; None fields take the recipe's value (full mode) or a small one (quick mode).

    ``lr`` is the head's learning rate (the whole ConvNet's for ``convnet``); ``source_lr`` the
    source network's (default ``lr`` times :data:`SOURCE_LR_RATIO`), linearly warmed up over
    ``warmup`` batches. ``init_box``: ``"centre"`` (default), ``"canvas"``, ``"tiles"`` (the centre box cut into one tile
    per glimpse), ``"nested"`` (boxes around the centre box's centre, from its size to half of it), 4 fractions, one box per glimpse, or None
    (whatever ``init`` gives). ``epochs`` x ``train_size`` canvases are seen; with
    ``fresh_canvases`` each epoch draws new ones. ``eval_every`` (batches, default: once per
    epoch) sets how often the test set is scored.
    """

    model: str = "sparse"
    n_glimpses: int = 1
    glimpse_size: int | None = None  # paper: 32 (1 glimpse) or 12 (8 glimpses); quick: 12
    canvas: int | None = None  # paper: 100; quick: 40
    n_distractors: int | None = None  # 8 (the mnist-cluttered example; the paper gives none); quick: 4
    train_size: int | None = None  # canvases per epoch; paper: 60,000; quick: 3,000
    test_size: int | None = None  # paper: 10,000; quick: 1,000
    epochs: int | None = None  # paper: 70; quick: 3
    batch_size: int | None = None  # paper: 128; quick: 32
    lr: float | None = None  # head; 1e-3 (the paper: 1e-4 for everything)
    source_lr: float | None = None  # source network; default lr * SOURCE_LR_RATIO[model]
    warmup: int = 0  # batches of linear warm-up for source_lr
    lr_schedule: str = "constant"  # "constant" or "cosine": both rates annealed to 0 over the run
    init: str = "he"  # source network initialisation: "he" or "pytorch" (the paper's)
    init_box: tuple | str | None = "centre"
    head: str = "mlp"  # "mlp" (paper), "conv" (small) or "convnet" (the baseline's ConvNet on the glimpse)
    aux_mlp_weight: float = 0.0  # conv heads: weight of an auxiliary paper-MLP head's loss (0: none)
    box_param: str = "corners"  # "corners" (paper) or "centre_scale" (bounded size, cannot flip or collapse)
    scale_range: tuple = (0.2, 0.6)  # centre_scale: smallest and largest box side, as fractions of the canvas
    source_hidden: int = 512  # table 2's two hidden layers
    fresh_canvases: bool = True
    chunk_size: int = 1
    eval_every: int | None = None
    source: str = "auto"  # MNIST source (ashlib.data.load_mnist)
    seed: int = 0
    device: str = "cpu"

    def __post_init__(self):
        if self.model not in MODELS:
            raise ValueError(f"model must be one of {MODELS}, got {self.model!r}")
        if self.head not in HEADS:
            raise ValueError(f"head must be one of {HEADS}, got {self.head!r}")
        if self.init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {self.init!r}")
        if isinstance(self.init_box, str) and self.init_box not in INIT_BOXES:
            raise ValueError(f"init_box must be one of {tuple(INIT_BOXES)}, 4 fractions or None, got {self.init_box!r}")
        if isinstance(self.init_box, list):  # from JSON: a box, or one box per glimpse
            self.init_box = tuple(tuple(b) if isinstance(b, list) else b for b in self.init_box)
        check_box_param(self.box_param, self.scale_range)
        if isinstance(self.aux_mlp_weight, bool) or not isinstance(self.aux_mlp_weight, (int, float)) \
                or not self.aux_mlp_weight >= 0:
            raise ValueError(f"aux_mlp_weight must be a number >= 0, got {self.aux_mlp_weight!r}")
        self.aux_mlp_weight = float(self.aux_mlp_weight)
        if self.aux_mlp_weight and (self.model == "convnet" or self.head == "mlp"):
            raise ValueError("aux_mlp_weight adds an MLP head beside a conv head of a glimpse model "
                             f"(model 'sparse' or 'stn', head 'conv' or 'convnet'); got model={self.model!r}, "
                             f"head={self.head!r}")
        self.scale_range = tuple(float(v) for v in self.scale_range)
        quick = quick_mode()
        defaults = dict(glimpse_size=12 if quick else (32 if self.n_glimpses == 1 else 12),
                        canvas=40 if quick else 100, n_distractors=4 if quick else 8,
                        train_size=3_000 if quick else 60_000, test_size=1_000 if quick else 10_000,
                        epochs=3 if quick else 70, batch_size=32 if quick else 128, lr=1e-3)
        for name, value in defaults.items():
            if getattr(self, name) is None:
                setattr(self, name, value)
        check_positive("lr", self.lr)
        if self.source_lr is None:
            self.source_lr = self.lr * SOURCE_LR_RATIO[self.model]
        for name in ("n_glimpses", "glimpse_size", "canvas", "train_size", "test_size", "epochs", "batch_size",
                     "source_hidden", "chunk_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        check_positive("source_lr", self.source_lr)
        check_schedule(self.lr_schedule)
        if isinstance(self.warmup, bool) or not isinstance(self.warmup, int) or self.warmup < 0:
            raise ValueError(f"warmup must be an int >= 0 (batches), got {self.warmup!r}")
        if check_int("n_distractors", self.n_distractors, 0) > MAX_DISTRACTORS:
            raise ValueError(f"n_distractors must be at most {MAX_DISTRACTORS:,}, got {self.n_distractors:,}")
        if self.box_fractions is not None:  # 4 fractions inside (0, 1), for all glimpses or for each
            for box in start_boxes(self.box_fractions, self.n_glimpses):
                raw_start_box(box, self.box_param, self.scale_range)
        k = self.n_glimpses * self.glimpse_size**2
        if self.model == "sparse" and k % self.chunk_size:
            raise ValueError(f"chunk_size must divide the {k} glimpse pixels (n_glimpses x glimpse_size^2), "
                             f"got {self.chunk_size}")
        check_source(self.source)
        check_seed(self.seed)
        check_device_name(self.device)
        if self.eval_every is not None and (not isinstance(self.eval_every, int) or self.eval_every < 1):
            raise ValueError(f"eval_every must be None or an int >= 1 (batches), got {self.eval_every!r}")
        if self.glimpse_size > self.canvas:
            raise ValueError(f"glimpse_size {self.glimpse_size} is larger than the canvas {self.canvas}")
        if self.canvas < 28:
            raise ValueError(f"canvas must be at least 28 (an MNIST digit is 28 x 28), got {self.canvas}")

    @property
    def steps_per_epoch(self) -> int:
        return -(-self.train_size // self.batch_size)

    @property
    def steps(self) -> int:
        """Batches in the whole run."""
        return self.epochs * self.steps_per_epoch

    @property
    def box_fractions(self):
        """init_box as 4 fractions (or one box per glimpse), or None."""
        if self.init_box == "tiles":
            return tile_box(CENTRE_BOX, self.n_glimpses)
        if self.init_box == "nested":
            return nested_boxes(CENTRE_BOX, self.n_glimpses)
        return INIT_BOXES.get(self.init_box, self.init_box) if isinstance(self.init_box, str) else self.init_box


@dataclass
class AttentionData:
    """Training canvases (rendered batch by batch from a generator) and a fixed, rendered test set."""

    train: object  # ashlib.data.ClutteredMNIST, epochs * train_size items when fresh
    test_images: torch.Tensor
    test_labels: torch.Tensor
    test_digit_centres: torch.Tensor  # (n, 2) pixel (y, x) of the centre of each 28 x 28 digit
    source: str  # one line: which digits and how many canvases

    def train_batch(self, config: AttentionConfig, step: int):
        """Images and labels of batch ``step`` (0-based) of the run: deterministic in (seed, step)."""
        epoch, i = divmod(step, config.steps_per_epoch)
        order = torch.randperm(config.train_size, generator=torch.Generator().manual_seed(config.seed * 100_003 + epoch))
        idx = order[i * config.batch_size:(i + 1) * config.batch_size]
        if config.fresh_canvases:
            idx = idx + epoch * config.train_size
        return self.train.batch(idx)


def load_data(config: AttentionConfig) -> AttentionData:
    """The run's cluttered MNIST: a train generator and a rendered test set (seed + 1)."""
    from ..data import ClutteredMNIST, load_mnist

    mnist = {split: load_mnist(split, source=config.source) for split in ("train", "test")}
    length = config.train_size * (config.epochs if config.fresh_canvases else 1)
    train = ClutteredMNIST("train", size=config.canvas, n_distractors=config.n_distractors, seed=config.seed,
                           length=length, mnist=mnist["train"])
    test = ClutteredMNIST("test", size=config.canvas, n_distractors=config.n_distractors, seed=config.seed + 1,
                          length=config.test_size, mnist=mnist["test"])
    images, labels = test.batch(range(config.test_size))
    centres = test.digit_yx.double() + 13.5
    fresh = "fresh canvases every epoch" if config.fresh_canvases else "the same canvases every epoch"
    source = (f"cluttered MNIST {config.canvas}x{config.canvas}, {config.n_distractors} distractors: "
              f"{config.train_size:,} train canvases per epoch ({fresh}) from {train.digits.source}; "
              f"{config.test_size:,} test canvases from {test.digits.source}")
    return AttentionData(train, images, labels, centres, source)


def build_model(config: AttentionConfig) -> torch.nn.Module:
    """The config's model for a 1-channel canvas, initialised from the current seed."""
    size = (config.canvas, config.canvas)
    if config.model == "convnet":
        return ConvNetBaseline(1, size, hidden=config.source_hidden, init=config.init)
    common = dict(init_box=config.box_fractions, head=config.head, source_hidden=config.source_hidden,
                  init=config.init, box_param=config.box_param, scale_range=config.scale_range,
                  aux_head=config.aux_mlp_weight > 0)
    if config.model == "stn":
        return SpatialTransformerClassifier(size, config.glimpse_size, config.n_glimpses, **common)
    region = min(20, config.canvas)
    return GlimpseClassifier(size, config.glimpse_size, config.n_glimpses, region=(region, region),
                             chunk_size=config.chunk_size, **common)


def _eval_generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(10_007 + seed)


@torch.no_grad()
def classification_error(model, images, labels, batch_size: int = 500, device="cpu", seed: int = 0) -> float:
    """Fraction of ``images`` the model misclassifies (eval mode; a sparse glimpse samples with ``seed``)."""
    return scores(model, images, labels, batch_size=batch_size, device=device, seed=seed)["test_error"]


def centre_distances(corners: torch.Tensor, digit_centres: torch.Tensor) -> torch.Tensor:
    """Per canvas, pixels from the nearest box's centre to the digit's centre (float64).

    ``corners`` (b, g, 4) as (y0, x0, y1, x1) pixels (``model.glimpse``'s first output),
    ``digit_centres`` (b, 2) as (y, x) pixels (``AttentionData.test_digit_centres``). With several
    glimpses, the one nearest the digit counts: the others may look at its other parts.
    """
    c = corners.double()
    centre = torch.stack([(c[..., 0] + c[..., 2]) / 2, (c[..., 1] + c[..., 3]) / 2], dim=-1)  # (b, g, 2)
    return (centre - digit_centres.double()[:, None]).norm(dim=-1).min(dim=1).values


def evaluate(model, config: AttentionConfig, test: AttentionData | None = None, *, device=None,
             batch_size: int = 500) -> dict:
    """Test error and, for glimpse models, where the boxes are, on ``test`` (an
    :class:`AttentionData`; default: :func:`load_data` of ``config``). A sparse glimpse draws its
    samples from a generator seeded with ``config.seed``, so the numbers repeat exactly.

    Returns ``test_error``; for models with boxes also ``near_digit`` (fraction of canvases
    where some box's centre is within :data:`NEAR_PIXELS` of the digit centre), ``centre_distance``
    (mean over canvases of the nearest box's, pixels), ``box_size`` (mean side over all boxes, pixels), ``box_spread`` (:func:`ashlib.glimpse.box_spread`),
    ``collapsed`` (:func:`ashlib.glimpse.check_collapse`) and ``saturation``.
    """
    test = test if test is not None else load_data(config)
    device = device if device is not None else next(model.parameters()).device
    return scores(model, test.test_images, test.test_labels, test.test_digit_centres, batch_size=batch_size,
                  device=device, seed=config.seed)


@torch.no_grad()
def scores(model, images, labels, digit_centres=None, batch_size: int = 500, device="cpu", seed: int = 0) -> dict:
    """:func:`evaluate` on any images and labels (``digit_centres`` (b, 2) pixels, for ``near_digit``)."""
    was = model.training
    model.eval()
    generator = _eval_generator(seed)
    wrong, corners = 0, []
    has_boxes = hasattr(model, "glimpse")
    try:
        for i in range(0, len(images), batch_size):
            x = images[i:i + batch_size].to(device)
            if has_boxes:
                box, glimpses = model.glimpse(x, generator=generator) if isinstance(model, GlimpseClassifier) \
                    else model.glimpse(x)
                logits = model.mlp(glimpses)
                corners.append(box.cpu())
            else:
                logits = model(x)
            wrong += (logits.argmax(1).cpu() != labels[i:i + batch_size]).sum().item()
    finally:
        model.train(was)
    out = {"test_error": wrong / len(images)}
    if has_boxes:
        c = torch.cat(corners).double()
        if digit_centres is not None:
            distance = centre_distances(c, digit_centres)
            out.update(near_digit=float((distance <= NEAR_PIXELS).double().mean()),
                       centre_distance=float(distance.mean()))
        out.update(box_size=float(((c[..., 2] - c[..., 0]).abs() + (c[..., 3] - c[..., 1]).abs()).mean() / 2),
                   box_spread=box_spread(c) if len(c) > 1 else 0.0, collapsed=check_collapse(c),
                   saturation=float(model.saturation))
    return out


@dataclass
class AttentionResult(Result):
    """What a run produced (see :class:`ashlib.experiments.loop.Result`); evaluations hold ``step``,
    ``test_error`` and, for glimpse models, the box metrics of :func:`evaluate`."""

    test_images: torch.Tensor | None = None
    test_labels: torch.Tensor | None = None

    @property
    def epoch_test_error(self) -> list[float]:
        """Test error at each evaluation (kept name: one evaluation per epoch by default)."""
        return [e["test_error"] for e in self.evaluations]

    @property
    def saturation(self) -> list[float]:
        return [e["saturation"] for e in self.evaluations if "saturation" in e]

    @property
    def collapse(self) -> str:
        """'' if the boxes are healthy at the last evaluation, else what happened and what to do."""
        return collapse_message(self.evaluations[-1]) if self.evaluations else ""


def collapse_message(metrics: dict) -> str:
    """'' if the boxes of one evaluation are healthy, else what happened and what to do."""
    if "collapsed" not in metrics:
        return ""
    if metrics["collapsed"] >= 0.5:
        return (f"{metrics['collapsed']:.0%} of test boxes are narrower than a pixel: the glimpses read a single "
                "point. Lower source_lr (e.g. 3x lower) or add warm-up, and re-run.")
    if metrics["saturation"] >= 1.0:
        return ("every raw box parameter is saturated (the paper's 1-glimpse failure): the boxes get no "
                "gradient. Re-run with another seed or a lower source_lr.")
    return ""


def _optimiser(model, config: AttentionConfig) -> torch.optim.Optimizer:
    """Adam with two groups: the source network at source_lr, everything else at lr."""
    source = list(model.source.parameters()) if hasattr(model, "source") else []
    ids = {id(p) for p in source}
    rest = [p for p in model.parameters() if id(p) not in ids]
    groups = [{"params": rest, "lr": config.lr, "name": "head"}]
    if source:
        groups.append({"params": source, "lr": config.source_lr, "name": "source"})
    return torch.optim.Adam(groups)


def _set_lrs(optimiser, config: AttentionConfig, step: int) -> None:
    """Both groups' rates at batch ``step``: the schedule's factor, and the source's warm-up."""
    factor = lr_factor(config.lr_schedule, step, config.steps)
    for group in optimiser.param_groups:
        if group.get("name") == "source":
            warm = min(1.0, (step + 1) / config.warmup) if config.warmup else 1.0
            group["lr"] = config.source_lr * warm * factor
        else:
            group["lr"] = config.lr * factor


def training_loss(model, config: AttentionConfig, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the model's logits, plus ``aux_mlp_weight`` times that of its auxiliary MLP head."""
    if not config.aux_mlp_weight:
        return F.cross_entropy(model(images), labels)
    logits, aux = model.logits_and_aux(images)
    return F.cross_entropy(logits, labels) + config.aux_mlp_weight * F.cross_entropy(aux, labels)


def attention_loss(state, batch) -> torch.Tensor:
    """The training loss of one batch (``batch`` = images, labels): :func:`training_loss`."""
    images, labels = batch
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GlimpseSaturationWarning)  # recorded per evaluation instead
        return training_loss(state.model, state.config, images, labels)


def upgrade_config(saved: dict, where: str = "the checkpoint") -> dict:
    """A saved config (record, recipe or checkpoint) without settings AttentionConfig no longer has."""
    return drop_removed(saved, REMOVED_FIELDS, where)


def train(config: AttentionConfig, *, progress: bool = True, out=None, resume: bool = False, overwrite: bool = False,
          checkpoint_every: int = 500, callbacks=(), model=None, loss=None, data: AttentionData | None = None
          ) -> AttentionResult:
    """Train the config's model; score the test set every ``eval_every`` batches (default: per epoch).

    The loop (:mod:`ashlib.experiments.loop`) gives ``out`` (a folder for ``checkpoint.pt``),
    ``resume``, ``overwrite``, ``checkpoint_every`` and ``callbacks``; ``model`` replaces the
    config's model, ``loss(state, batch)`` the loss (``batch`` = images, labels); ``data``: the
    run's :class:`AttentionData` (default :func:`load_data`).
    """
    seed_everything(config.seed)
    device = torch.device(config.device)
    data = data if data is not None else load_data(config)
    net = (model if model is not None else build_model(config)).to(device)
    # standardise with a fixed sample of training canvases (drawn from its own seed)
    sample_images, _ = data.train.batch(torch.arange(min(1024, len(data.train))))
    net.set_input_statistics(sample_images)
    net = net.to(device)
    optimiser = _optimiser(net, config)
    result = AttentionResult(config=config, model=net, data_source=data.source, test_images=data.test_images,
                             test_labels=data.test_labels)

    def draw(step: int):
        x, y = data.train_batch(config, step)
        return x.to(device), y.to(device)

    def evaluate_now(state) -> dict:
        metrics = evaluate(net, config, data, device=device)
        if collapse_message(metrics):
            warnings.warn(collapse_message(metrics), GlimpseSaturationWarning, stacklevel=2)
        return metrics

    plan = Plan(model=net, optimiser=optimiser, steps=config.steps, eval_every=config.eval_every or config.steps_per_epoch,
                draw=draw, loss=attention_loss, evaluate=evaluate_now, set_lr=lambda step: _set_lrs(optimiser, config, step),
                desc=f"attention {config.model}", interval=2.0,
                postfix=lambda m: {"test_error": f"{m['test_error']:.3f}",
                                   **({"near": f"{m['near_digit']:.2f}"} if "near_digit" in m else {})})
    return run(config, plan, result, progress=progress, out=out, resume=resume, overwrite=overwrite,
               checkpoint_every=checkpoint_every, callbacks=callbacks, loss=loss, upgrade=upgrade_config,
               device=device)


def summary(result: AttentionResult) -> dict:
    last = result.evaluations[-1] if result.evaluations else {}
    return {
        "config": asdict(result.config),
        "data": result.data_source,
        "final_test_error": last.get("test_error"),
        "best_test_error": min(result.epoch_test_error) if result.evaluations else None,
        "final_near_digit": last.get("near_digit"),
        "final_centre_distance": last.get("centre_distance"),
        "final_box_size": last.get("box_size"),
        "final_saturation": last.get("saturation"),
        "final_collapsed": last.get("collapsed"),
        "collapse": result.collapse,
        "batches": len(result.losses),
        "seconds": round(result.seconds, 1),
        "eval_seconds": round(result.eval_seconds, 1),
        "stopped_early": result.stopped_early,
    }


def save_result(result: AttentionResult, out_dir) -> list:
    """Write curves.csv (one row per evaluation), summary.json and glimpses.png (test images, boxes, glimpses)."""
    import csv
    import json

    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "curves.csv", out / "summary.json"]
    columns = ["step", "test_error", "near_digit", "centre_distance", "box_size", "box_spread", "collapsed",
               "saturation"]
    with open(paths[0], "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        for e in result.evaluations:
            writer.writerow([e.get(c, "") if not isinstance(e.get(c), float) else f"{e[c]:.4f}" for c in columns])
    paths[1].write_text(json.dumps(summary(result), indent=2) + "\n")
    if hasattr(result.model, "glimpse"):
        from ..plot import plot_glimpses

        fig = plot_glimpses(result.model, result.test_images[:6], result.test_labels[:6],
                            generator=_eval_generator(result.config.seed))
        paths.append(out / "glimpses.png")
        fig.savefig(paths[-1], dpi=100)
        plt.close(fig)
    return paths
