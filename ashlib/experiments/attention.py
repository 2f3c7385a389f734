"""Classifying cluttered MNIST through learned glimpses (paper section 3.2, Table 1, Figure 4).

Three models on the same data and budget: ``sparse`` (the paper's: source network -> boxes ->
:class:`ashlib.attention.SparseGlimpse` -> MLP), ``stn`` (the same, with bilinear sampling: a
spatial transformer) and ``convnet`` (the source network with a classification layer, no
glimpse). The paper trains 70 epochs on 60,000 100 x 100 images, batch 128, lr 1e-4.

Deviations, stated: cross-entropy on the logits (the paper writes binary cross-entropy on a
softmax output); ``init_box`` lets the boxes start over the whole canvas (the paper starts from
PyTorch's default initialisation, which can saturate, see :func:`ashlib.attention.check_saturation`).
"""

from __future__ import annotations

import time
import warnings
from dataclasses import asdict, dataclass, field

import torch
from torch.nn import functional as F
from tqdm.auto import tqdm

from ..attention import ConvNetBaseline, GlimpseClassifier, GlimpseSaturationWarning, SpatialTransformerClassifier
from ..config import quick_mode, seed_everything

MODELS = ("sparse", "stn", "convnet")


@dataclass
class AttentionConfig:
    """Settings of one run; None fields take the paper's value (full mode) or a small one (quick mode)."""

    model: str = "sparse"
    n_glimpses: int = 1
    glimpse_size: int | None = None  # paper: 32 (1 glimpse) or 12 (8 glimpses); quick: 12
    canvas: int | None = None  # paper: 100; quick: 40
    n_distractors: int | None = None  # paper: 8; quick: 4
    train_size: int | None = None  # paper: 60,000; quick: 3,000
    test_size: int | None = None  # paper: 10,000; quick: 1,000
    epochs: int | None = None  # paper: 70; quick: 3
    batch_size: int | None = None  # paper: 128; quick: 32
    lr: float | None = None  # paper: 1e-4; quick: 1e-3 (a few hundred steps must show learning)
    init_box: tuple | None = (0.05, 0.05, 0.95, 0.95)  # None: the paper's default initialisation
    chunk_size: int = 1
    source: str = "auto"  # MNIST source (ashlib.data.load_mnist)
    seed: int = 0
    device: str = "cpu"

    def __post_init__(self):
        if self.model not in MODELS:
            raise ValueError(f"model must be one of {MODELS}, got {self.model!r}")
        quick = quick_mode()
        defaults = dict(glimpse_size=12 if quick else (32 if self.n_glimpses == 1 else 12),
                        canvas=40 if quick else 100, n_distractors=4 if quick else 8,
                        train_size=3_000 if quick else 60_000, test_size=1_000 if quick else 10_000,
                        epochs=3 if quick else 70, batch_size=32 if quick else 128, lr=1e-3 if quick else 1e-4)
        for name, value in defaults.items():
            if getattr(self, name) is None:
                setattr(self, name, value)
        if min(self.n_glimpses, self.glimpse_size, self.canvas, self.train_size, self.test_size, self.epochs,
               self.batch_size) < 1:
            raise ValueError("sizes, counts and epochs must be positive")
        if self.glimpse_size > self.canvas:
            raise ValueError(f"glimpse_size {self.glimpse_size} is larger than the canvas {self.canvas}")


@dataclass
class AttentionResult:
    config: AttentionConfig
    losses: list[float] = field(default_factory=list)  # per batch
    epoch_test_error: list[float] = field(default_factory=list)
    saturation: list[float] = field(default_factory=list)  # per epoch, glimpse models only
    data_source: str = ""
    seconds: float = 0.0
    model: torch.nn.Module | None = None
    test_images: torch.Tensor | None = None
    test_labels: torch.Tensor | None = None


def build_model(config: AttentionConfig) -> torch.nn.Module:
    """The config's model for a 1-channel canvas, initialised from the current seed."""
    size = (config.canvas, config.canvas)
    if config.model == "convnet":
        return ConvNetBaseline(1, size)
    if config.model == "stn":
        return SpatialTransformerClassifier(size, config.glimpse_size, config.n_glimpses, init_box=config.init_box)
    region = min(20, config.canvas)
    return GlimpseClassifier(size, config.glimpse_size, config.n_glimpses, init_box=config.init_box,
                             region=(region, region), chunk_size=config.chunk_size)


def load_data(config: AttentionConfig):
    """(train images, train labels, test images, test labels, description), rendered once in memory."""
    from ..data import ClutteredMNIST

    sets = []
    for split, count, offset in (("train", config.train_size, 0), ("test", config.test_size, 1)):
        data = ClutteredMNIST(split, size=config.canvas, n_distractors=config.n_distractors,
                              seed=config.seed + offset, length=count, source=config.source)
        images, labels = data.batch(range(count))
        sets.append((images, labels, data.source))
    (xtr, ytr, src), (xte, yte, _) = sets
    return xtr, ytr, xte, yte, src


@torch.no_grad()
def classification_error(model, images, labels, batch_size: int = 500, device="cpu") -> float:
    """Fraction of ``images`` the model misclassifies (eval mode)."""
    was = model.training
    model.eval()
    wrong = 0
    for i in range(0, len(images), batch_size):
        logits = model(images[i:i + batch_size].to(device))
        wrong += (logits.argmax(1).cpu() != labels[i:i + batch_size]).sum().item()
    model.train(was)
    return wrong / len(images)


def train(config: AttentionConfig, progress: bool = True, data=None) -> AttentionResult:
    """Train the config's model; evaluate on the test set after every epoch."""
    seed_everything(config.seed)
    device = torch.device(config.device)
    xtr, ytr, xte, yte, source = data if data is not None else load_data(config)
    model = build_model(config).to(device)
    optimiser = torch.optim.Adam(model.parameters(), lr=config.lr)
    result = AttentionResult(config=config, model=model, data_source=source, test_images=xte, test_labels=yte)
    order_gen = torch.Generator().manual_seed(config.seed)
    start = time.perf_counter()
    steps = (len(xtr) + config.batch_size - 1) // config.batch_size
    bar = tqdm(total=config.epochs * steps, desc=f"attention {config.model}", disable=not progress,
               mininterval=1.0)
    for _ in range(config.epochs):
        order = torch.randperm(len(xtr), generator=order_gen)
        saturated = []
        for i in range(steps):
            idx = order[i * config.batch_size:(i + 1) * config.batch_size]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", GlimpseSaturationWarning)  # recorded per epoch instead
                logits = model(xtr[idx].to(device))
            loss = F.cross_entropy(logits, ytr[idx].to(device))
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            result.losses.append(loss.item())
            if hasattr(model, "saturation"):
                saturated.append(float(model.saturation))
            bar.update()
        result.epoch_test_error.append(classification_error(model, xte, yte, device=device))
        if saturated:
            result.saturation.append(sum(saturated) / len(saturated))
            if saturated[-1] >= 1.0:
                warnings.warn("every box coordinate sits in the flat part of its sigmoid: the glimpses have stopped "
                              "learning (the paper's 1-glimpse failure). Re-run with another seed, a box "
                              "initialisation over the canvas (init_box) or a lower learning rate.",
                              GlimpseSaturationWarning, stacklevel=2)
        bar.set_postfix(test_error=f"{result.epoch_test_error[-1]:.3f}")
    bar.close()
    result.seconds = time.perf_counter() - start
    return result


def summary(result: AttentionResult) -> dict:
    return {
        "config": asdict(result.config),
        "data": result.data_source,
        "final_test_error": result.epoch_test_error[-1] if result.epoch_test_error else None,
        "best_test_error": min(result.epoch_test_error) if result.epoch_test_error else None,
        "final_saturation": result.saturation[-1] if result.saturation else None,
        "batches": len(result.losses),
        "seconds": round(result.seconds, 1),
    }


def save_result(result: AttentionResult, out_dir) -> list:
    """Write curves.csv, summary.json and glimpses.png (test images, boxes, glimpses)."""
    import csv
    import json
    from pathlib import Path

    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "curves.csv", out / "summary.json"]
    with open(paths[0], "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["epoch", "test_error", "saturation"])
        for e, err in enumerate(result.epoch_test_error, 1):
            writer.writerow([e, f"{err:.4f}", f"{result.saturation[e - 1]:.3f}" if result.saturation else ""])
    paths[1].write_text(json.dumps(summary(result), indent=2) + "\n")
    if hasattr(result.model, "glimpse"):
        from ..plot import plot_glimpses

        fig = plot_glimpses(result.model, result.test_images[:6], result.test_labels[:6])
        paths.append(out / "glimpses.png")
        fig.savefig(paths[-1], dpi=100)
        plt.close(fig)
    return paths
