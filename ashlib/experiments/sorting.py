"""Sorting MNIST numbers by learned keys (paper section 3.3, Figure 6, appendix table 3).

Each instance holds n numbers of ``digits`` digits, each digit a real MNIST image. A key network
(a ConvNet per digit, concatenated, then an MLP) gives every number one scalar key; the items
(the digit images) are sorted by those keys with a differentiable sort and compared with the
correctly sorted images by binary cross-entropy. Nothing tells the network the numbers' values:
it learns them only through the sort.

Methods: ``quicksort`` (ashlib's sparse half-permutations, optionally with the intermediate
loss), ``neuralsort`` and ``softsort`` (dense relaxations, :mod:`ashlib.sort_baselines`), all
with the same key network, data, batch size, optimiser and budget. Evaluation as in the paper:
on fresh test instances, the error is the fraction whose order by key is not exactly right;
the element-wise error is the fraction of positions holding the wrong number.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import nn
from torch.nn import functional as F

from ..config import quick_mode, seed_everything
from ..sort import intermediate_loss, quicksort
from .checks import check_device_name, check_int, check_positive, check_seed, check_source, drop_removed
from .loop import Plan, Result, run
from .schedule import check_schedule, lr_factor, set_lr
from ..sort_baselines import apply_permutation, neuralsort, softsort

METHODS = ("quicksort", "neuralsort", "softsort")
KEY_NETWORKS = ("conv", "mlp")
# Settings that left SortingConfig for studies/sorting/variants.py, with the value that meant "off":
# a record or checkpoint that has one at that value still loads; another value is refused.
REMOVED_FIELDS = {"neighbours": False, "C_final": None, "standardise_keys": False, "straight_through": False,
                  "key_network": "conv", "start_from": None}


@dataclass
class SortingConfig:
    """Settings of one sorting run; None fields take a default for the mode (quick or full)."""

    n: int = 4
    digits: int = 3
    method: str = "quicksort"
    intermediate: bool = False  # quicksort only: the paper's intermediate loss
    batch_size: int = 64
    lr: float = 5e-5  # the paper's
    lr_schedule: str = "constant"  # "constant" (the paper states one rate) or "cosine" (annealed to 0 over the run)
    iterations: int | None = None  # full: 50,000 batches (our default; the paper gives no count); quick: 300
    samples: int | None = None  # quicksort: random half-permutations per round (paper: n)
    local: int = 0  # quicksort: proposals per round one swap away from the hard split (0: the paper's)
    draws: int = 1  # quicksort: independent sorts per batch, losses averaged (the key network runs once)
    C: float = 10.0  # quicksort sharpness (paper: 10)
    tau: float = 1.0  # NeuralSort / SoftSort temperature
    width: float = 1.0  # key network channels relative to table 3 (1.0 = the paper's)
    eval_every: int = 1000
    eval_instances: int | None = None  # full: 10,000 (the paper's); quick: 1,000
    source: str = "auto"  # MNIST source, see ashlib.data.load_mnist
    seed: int = 0
    device: str = "cpu"

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}")
        if self.intermediate and self.method != "quicksort":
            raise ValueError("the intermediate loss exists only for method='quicksort'")
        if not isinstance(self.n, int) or self.n < 2:
            raise ValueError(f"n must be an int >= 2, got {self.n!r}")
        if self.iterations is None:
            self.iterations = 300 if quick_mode() else 50_000
        if self.eval_instances is None:
            self.eval_instances = 1_000 if quick_mode() else 10_000
        for name in ("iterations", "batch_size", "eval_every", "eval_instances"):
            check_int(name, getattr(self, name))
        check_positive("width", self.width)
        if check_int("digits", self.digits) > 18:
            raise ValueError(f"digits must be between 1 and 18 (numbers must fit in int64), got {self.digits}")
        check_source(self.source)
        check_seed(self.seed)
        check_device_name(self.device)
        check_schedule(self.lr_schedule)
        for name in ("C", "tau", "lr"):
            check_positive(name, getattr(self, name))
        if not isinstance(self.draws, int) or isinstance(self.draws, bool) or self.draws < 1:
            raise ValueError(f"draws must be an int >= 1, got {self.draws!r}")
        if self.samples is not None and (not isinstance(self.samples, int) or isinstance(self.samples, bool)
                                         or self.samples < 0):
            raise ValueError(f"samples must be None (n per round) or an int >= 0, got {self.samples!r}")
        if not isinstance(self.local, int) or isinstance(self.local, bool) or self.local < 0:
            raise ValueError(f"local must be an int >= 0, got {self.local!r}")
        if self.local and self.method != "quicksort":
            raise ValueError("local proposals exist only for method='quicksort'")
        if self.draws > 1 and self.method != "quicksort":
            raise ValueError("draws > 1 averages quicksort's random half-permutations; the dense methods have none")


def _block(c_in: int, c_out: int) -> list[nn.Module]:
    """Three 3x3 convolutions (the last without bias: batch norm follows), batch norm, 2x2 max pool."""
    return [nn.Conv2d(c_in, c_out, 3, padding=1), nn.ReLU(), nn.Conv2d(c_out, c_out, 3, padding=1), nn.ReLU(),
            nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), nn.ReLU(), nn.BatchNorm2d(c_out), nn.MaxPool2d(2)]


class KeyNetwork(nn.Module):
    """Table 3 of the paper: one ConvNet per digit (shared, ``digit_net``), 8 features each, an MLP to one key.

    forward(images (b, n, digits, 28, 28)) -> keys (b, n). ``width`` scales the channels
    (16, 64, 128 at 1.0) for quick runs on a CPU. ``arch="mlp"`` swaps the per-digit ConvNet for
    a two-layer MLP on the 784 pixels (256 units at width 1.0): not the paper's, but several
    times cheaper, for studies that compare sorts rather than key networks.
    """

    def __init__(self, digits: int = 3, width: float = 1.0, arch: str = "conv"):
        super().__init__()
        self.digits = digits
        if arch == "conv":
            c1, c2, c3 = (max(2, round(c * width)) for c in (16, 64, 128))
            self.digit_net = nn.Sequential(
                *_block(1, c1), *_block(c1, c2), *_block(c2, c3), nn.Flatten(),
                nn.Linear(c3 * 3 * 3, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 8),
            )
        elif arch == "mlp":
            h = max(8, round(256 * width))
            self.digit_net = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, h), nn.ReLU(), nn.Linear(h, h), nn.ReLU(),
                                         nn.Linear(h, 8))
        else:
            raise ValueError(f"arch must be 'conv' or 'mlp', got {arch!r}")
        self.mlp = nn.Sequential(nn.Linear(8 * digits, 256), nn.ReLU(), nn.Linear(256, 1))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # Files written before the per-digit network was renamed (it was ``convnet`` for both
        # architectures) still load: shipped pretrained models and checkpoints of runs in progress.
        old = prefix + "convnet."
        for key in [k for k in state_dict if k.startswith(old)]:
            state_dict[prefix + "digit_net." + key[len(old):]] = state_dict.pop(key)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        b, n, digits = images.shape[:3]
        if digits != self.digits or tuple(images.shape[3:]) != (28, 28):
            raise ValueError(f"images must have shape (b, n, {self.digits}, 28, 28), got {tuple(images.shape)}")
        features = self.digit_net(images.reshape(b * n * digits, 1, 28, 28))
        return self.mlp(features.view(b * n, digits * 8)).view(b, n)


def sort_items(config: SortingConfig, keys: torch.Tensor, items: torch.Tensor, generator=None, C: float | None = None):
    """Sort items (b, n, *f) by keys with the config's method: (sorted items, quicksort result or None).

    ``C`` overrides the config's sharpness (a study may schedule it)."""
    if config.method == "quicksort":
        result = quicksort(keys, items, samples=config.samples, C=config.C if C is None else C, generator=generator,
                           local=config.local)
        return result.sorted, result
    P = (neuralsort if config.method == "neuralsort" else softsort)(keys, tau=config.tau)
    return apply_permutation(P, items), None


def build_model(config: SortingConfig) -> KeyNetwork:
    """The config's key network (table 3 at ``width``), initialised from the current seed."""
    return KeyNetwork(config.digits, config.width)


def sorting_loss(config: SortingConfig, keys, items, target, generator=None, C: float | None = None) -> torch.Tensor:
    """Binary cross-entropy between the sorted items and the sorted target (plus intermediate rounds).

    With ``config.draws = K > 1`` the batch is sorted K times with independent random
    half-permutations (one batched call: keys, items and targets repeated K times) and the
    losses averaged: a K-sample estimate of the same expected loss, with less variance.
    """
    if config.draws > 1:
        k = config.draws
        keys, items, target = (t.repeat(k, *([1] * (t.dim() - 1))) for t in (keys, items, target))
    output, result = sort_items(config, keys, items, generator, C)
    if config.intermediate:
        return intermediate_loss(result, target)
    return F.binary_cross_entropy(output.clamp(1e-6, 1 - 1e-6), target)


def order_errors(keys: torch.Tensor, numbers: torch.Tensor):
    """(instance error, element error): ordering the numbers by key, how often is it wrong?

    An instance counts as right when the numbers in key order equal the numbers sorted, so
    ties between equal numbers cannot count as errors.
    """
    by_key = numbers.gather(1, keys.argsort(dim=1, stable=True))
    wrong = by_key != numbers.sort(dim=1).values
    return wrong.any(dim=1).float().mean().item(), wrong.float().mean().item()


def errors_by_place(keys: torch.Tensor, numbers: torch.Tensor, digits: int, softness: float = 1.0) -> list[dict]:
    """Which digit do the misordered neighbours differ in? One dict per place (hundreds first).

    Of the pairs of numbers adjacent in sorted order (ties left out), ``count`` first differ in
    that place (0 = the most significant digit), ``wrong`` is the fraction of them whose keys
    are in the wrong order, and ``median_gap`` the median |key gap| of those pairs divided by
    ``softness`` (1/C for quicksort, tau for NeuralSort/SoftSort; below about 1 the relaxation
    still mixes the pair). Numbers that differ only in the last digit are the hardest pairs: the
    key must resolve a difference of 1 in 10**digits.
    """
    order = numbers.argsort(dim=1, stable=True)
    ordered, by_number = numbers.gather(1, order), keys.gather(1, order)
    low, high = ordered[:, :-1], ordered[:, 1:]
    gap = by_number[:, 1:] - by_number[:, :-1]
    place = torch.full_like(low, digits)  # digits: equal numbers
    for i in reversed(range(digits)):  # most significant last, so it wins
        scale = 10 ** (digits - 1 - i)
        place = torch.where((low // scale) % 10 != (high // scale) % 10, i, place)
    rows = []
    for p in range(digits):
        mask = place == p
        count = int(mask.sum())
        rows.append({"place": p, "count": count,
                     "wrong": (gap[mask] < 0).float().mean().item() if count else float("nan"),
                     "median_gap": (gap[mask].abs() / softness).median().item() if count else float("nan")})
    return rows


SCALES = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0)
PAPER_LOSSES = {  # the two objectives, each at its paper / default setting
    "quicksort": dict(method="quicksort", intermediate=False, samples=None, local=0, draws=1, C=10.0),
    "neuralsort": dict(method="neuralsort", intermediate=False, samples=None, local=0, draws=1, tau=1.0),
}


@torch.no_grad()
def losses_by_scale(net, config: SortingConfig, instances: int, split: str = "test", seed: int = 0, scales=SCALES):
    """({loss name: [loss of s * keys for s in scales]}, the keys' instance error, their mean spread)
    on fixed instances of ``split`` ("train": the digits the network was fitted to, "test": unseen ones).

    Scaling the keys keeps their order, so comparing each loss over ``scales`` asks which keys an
    objective prefers, independently of the scale a training run happened to settle at."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    check_int("instances", instances, 1)
    torch.manual_seed(seed)
    train_task, make_test_task = make_tasks(replace(config, seed=seed))
    task = train_task if split == "train" else make_test_task()
    images, numbers, perm = task.sample(instances)
    target = images.gather(1, perm.view(*perm.shape, 1, 1, 1).expand_as(images))
    keys = torch.cat([net(images[i:i + 250]) for i in range(0, instances, 250)])
    table = {}
    for name, settings in PAPER_LOSSES.items():
        loss_config = replace(config, **settings)
        row = []
        for s in scales:
            generator = torch.Generator().manual_seed(seed)  # the same half-permutations for every scale and model
            row.append(sorting_loss(loss_config, keys * s, images, target, generator=generator).item())
        table[name] = row
    return table, order_errors(keys, numbers)[0], keys.std(dim=1).mean().item()


@torch.no_grad()
def evaluate(model: KeyNetwork, config: SortingConfig, test=None, *, device=None, batch_size: int = 250) -> dict:
    """The paper's evaluation: ``{"error": ..., "element_error": ...}`` on ``config.eval_instances``
    fresh instances of ``test`` (a SortingTask; default: the run's test task, built afresh from
    ``config``, so every evaluation of a run sees the same instances).

    ``error``: the fraction of instances whose order by key is not exactly right; ``element_error``:
    the fraction of positions holding the wrong number.
    """
    test = test if test is not None else make_tasks(config)[1]()
    device = device if device is not None else next(model.parameters()).device
    was_training = model.training
    model.eval()
    totals = torch.zeros(2)
    done, instances = 0, config.eval_instances
    try:
        while done < instances:
            b = min(batch_size, instances - done)
            images, numbers, _ = test.sample(b)
            err, elem = order_errors(model(images.to(device)).cpu(), numbers)
            totals += torch.tensor([err * b, elem * b])
            done += b
    finally:
        model.train(was_training)
    error, element_error = (totals / instances).tolist()
    return {"error": error, "element_error": element_error}


@dataclass
class SortingResult(Result):
    """What a run produced (see :class:`ashlib.experiments.loop.Result`); evaluations hold
    ``step``, ``error`` and ``element_error``."""

    @property
    def eval_iterations(self) -> list[int]:
        return self.steps

    @property
    def eval_error(self) -> list[float]:
        return self.metric("error")

    @property
    def eval_element_error(self) -> list[float]:
        return self.metric("element_error")


def make_tasks(config: SortingConfig):
    """(training SortingTask, a function making the test SortingTask afresh).

    Every evaluation builds the test task anew from the same seed, so every evaluation of a run
    (and every method with the same seed) sees the same test instances.
    """
    from ..data import SortingTask, load_mnist

    train_task = SortingTask(config.n, digits=config.digits, split="train", seed=config.seed, source=config.source)
    test_digits = load_mnist("test", config.source)  # loaded once; each evaluation re-seeds the task
    return train_task, lambda: SortingTask(config.n, digits=config.digits, split="test", seed=10_000 + config.seed,
                                           mnist=test_digits)


def upgrade_config(saved: dict, where: str = "the checkpoint") -> dict:
    """A saved config (record, recipe or checkpoint) with the settings that left SortingConfig taken
    out where they sit at the value that meant "off"; another value is refused (that run needs
    ``studies/sorting/variants.py``)."""
    return drop_removed(saved, REMOVED_FIELDS, where)


def sorting_batch_loss(state, batch) -> torch.Tensor:
    """The training loss of one batch (``batch`` = images, numbers, target): :func:`sorting_loss`
    of the key network's keys, with the run's half-permutation generator."""
    images, _, target = batch
    return sorting_loss(state.config, state.model(images), images, target, state.generators["sort"])


def train(config: SortingConfig, *, progress: bool = True, out=None, resume: bool = False, overwrite: bool = False,
          checkpoint_every: int = 500, callbacks=(), model=None, loss=None, data=None) -> SortingResult:
    """Train the key network through the config's sort; evaluate every ``eval_every`` batches.

    The loop (:mod:`ashlib.experiments.loop`) gives ``out`` (a folder for ``checkpoint.pt``),
    ``resume``, ``overwrite``, ``checkpoint_every`` and ``callbacks``; ``model`` replaces the
    config's key network (e.g. one with pre-loaded weights), ``loss(state, batch)`` the loss
    (``batch`` = images, numbers, sorted images; the quicksort generator is
    ``state.generators["sort"]``). ``data``: (training task, a function making the test task),
    default :func:`make_tasks`.
    """
    seed_everything(config.seed)
    device = torch.device(config.device)
    train_task, make_test_task = data if data is not None else make_tasks(config)
    net = (model if model is not None else build_model(config)).to(device)
    optimiser = torch.optim.Adam(net.parameters(), lr=config.lr)
    generator = torch.Generator(device=device).manual_seed(config.seed)
    result = SortingResult(config=config, model=net, data_source=getattr(train_task, "source", ""))

    def draw(step: int):
        images, numbers, perm = train_task.sample(config.batch_size)
        images, perm = images.to(device), perm.to(device)
        return images, numbers, images.gather(1, perm.view(*perm.shape, 1, 1, 1).expand_as(images))

    plan = Plan(model=net, optimiser=optimiser, steps=config.iterations, eval_every=config.eval_every, draw=draw,
                loss=sorting_batch_loss, evaluate=lambda state: evaluate(net, config, make_test_task(), device=device),
                generators={"task": train_task.generator, "sort": generator},
                set_lr=lambda step: set_lr(optimiser, {"": config.lr},
                                           lr_factor(config.lr_schedule, step, config.iterations)),
                desc=f"sort n={config.n} {config.method}",
                postfix=lambda m: {"error": f"{m['error']:.3f}", "element_error": f"{m['element_error']:.3f}"})
    return run(config, plan, result, progress=progress, out=out, resume=resume, overwrite=overwrite,
               checkpoint_every=checkpoint_every, callbacks=callbacks, loss=loss, upgrade=upgrade_config,
               device=device)


def summary(result: SortingResult) -> dict:
    """The numbers a run is judged by, plus its configuration (JSON-ready)."""
    from dataclasses import asdict

    return {
        "config": asdict(result.config),
        "data": result.data_source,
        "final_error": result.eval_error[-1] if result.eval_error else None,
        "final_element_error": result.eval_element_error[-1] if result.eval_element_error else None,
        "best_error": min(result.eval_error) if result.eval_error else None,
        "batches": len(result.losses),
        "seconds": round(result.seconds, 2),
        "eval_seconds": round(result.eval_seconds, 2),
        "stopped_early": result.stopped_early,
    }


def save_result(result: SortingResult, out_dir) -> list:
    """Write curves.csv, evaluation.csv, summary.json and sorting.png (loss and error curves)."""
    import csv
    import json
    from pathlib import Path

    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "curves.csv", out / "evaluation.csv", out / "summary.json", out / "sorting.png"]
    with open(paths[0], "w", newline="") as f:
        csv.writer(f).writerows([("batch", "loss")] + [(i, f"{v:.6g}") for i, v in enumerate(result.losses, 1)])
    with open(paths[1], "w", newline="") as f:
        rows = zip(result.eval_iterations, result.eval_error, result.eval_element_error)
        csv.writer(f).writerows([("batch", "error", "element_error")] + [(i, f"{e:.4f}", f"{m:.4f}") for i, e, m in rows])
    paths[2].write_text(json.dumps(summary(result), indent=2) + "\n")
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.2))
    a.plot(range(1, len(result.losses) + 1), result.losses, lw=0.6)
    a.set(xlabel="batches", ylabel="training loss", yscale="log")
    b.plot(result.eval_iterations, result.eval_error, "o-", ms=3, label="instances not exactly sorted")
    b.plot(result.eval_iterations, result.eval_element_error, "s--", ms=3, label="positions wrong")
    b.set(xlabel="batches", ylabel="test error", ylim=(0, 1))
    b.legend(fontsize=9, frameon=False)
    c = result.config
    fig.suptitle(f"sorting n = {c.n}, {c.method}{' + intermediate loss' if c.intermediate else ''}", fontsize=10)
    fig.tight_layout()
    fig.savefig(paths[3], dpi=100)
    plt.close(fig)
    return paths
