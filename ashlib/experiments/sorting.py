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

import time
from dataclasses import dataclass, field, replace

import torch
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from ..config import progress_interval, quick_mode, seed_everything, show_progress
from ..sort import intermediate_loss, quicksort
from .checks import check_device_name, check_int, check_positive, check_seed, check_source
from .schedule import check_schedule, lr_factor, set_lr
from ..sort_baselines import apply_permutation, neuralsort, softsort

METHODS = ("quicksort", "neuralsort", "softsort")
KEY_NETWORKS = ("conv", "mlp")


@dataclass
class SortingConfig:
    """Settings of one sorting run; None fields take a default for the mode (quick or full)."""

    n: int = 4
    digits: int = 3
    method: str = "quicksort"
    intermediate: bool = False  # quicksort only: the paper's intermediate loss
    batch_size: int = 64
    lr: float = 5e-5  # the paper's
    lr_schedule: str = "constant"  # "constant" (the paper's) or "cosine" (annealed to 0 over the run)
    iterations: int | None = None  # full: 50,000 batches; quick: 300
    samples: int | None = None  # quicksort: random half-permutations per round (paper: n)
    local: int = 0  # quicksort: proposals per round one swap away from the hard split (0: the paper's)
    neighbours: bool = False  # quicksort: also every single swap across a median, every round (not the paper's)
    draws: int = 1  # quicksort: independent sorts per batch, losses averaged (the key network runs once)
    C: float = 10.0  # quicksort sharpness (paper: 10)
    C_final: float | None = None  # quicksort: C rises geometrically from C to C_final over the run (not the paper's)
    standardise_keys: bool = False  # quicksort: sort (key - mean) / std per instance, so C is in units of the spread
    tau: float = 1.0  # NeuralSort / SoftSort temperature
    start_from: str | None = None  # a trained key network to start from: a shipped name or a --save-model path
    width: float = 1.0  # key network channels relative to table 3 (1.0 = the paper's)
    key_network: str = "conv"  # "conv" (table 3) or "mlp" (a per-digit MLP: fast, for factor studies and labs)
    straight_through: bool = False  # quicksort: forward the hard sort, backpropagate through the sparse mixture
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
        if self.key_network not in KEY_NETWORKS:
            raise ValueError(f"key_network must be one of {KEY_NETWORKS}, got {self.key_network!r}")
        if not isinstance(self.straight_through, bool):
            raise ValueError(f"straight_through must be True or False, got {self.straight_through!r}")
        if self.straight_through and (self.method != "quicksort" or self.intermediate):
            raise ValueError("straight_through exists only for method='quicksort' without the intermediate loss")
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
        if not isinstance(self.neighbours, bool):
            raise ValueError(f"neighbours must be True or False, got {self.neighbours!r}")
        if self.neighbours and self.method != "quicksort":
            raise ValueError("neighbours (every one-swap half-permutation) exist only for method='quicksort'")
        if self.C_final is not None:
            check_positive("C_final", self.C_final)
        if not isinstance(self.standardise_keys, bool):
            raise ValueError(f"standardise_keys must be True or False, got {self.standardise_keys!r}")
        if (self.C_final is not None or self.standardise_keys) and self.method != "quicksort":
            raise ValueError("C_final and standardise_keys exist only for method='quicksort'")
        if self.start_from is not None and (not isinstance(self.start_from, str) or not self.start_from):
            raise ValueError(f"start_from must be None or a shipped model's name or a saved model's path, "
                             f"got {self.start_from!r}")
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


def sharpness(config: SortingConfig, it: int | None = None) -> float:
    """Quicksort's C at batch ``it`` (1-based): config.C, or with ``C_final`` a geometric rise from C
    at the first batch to C_final at the last (None: the end value, as used for evaluation)."""
    if config.C_final is None:
        return config.C
    if it is None or config.iterations <= 1:
        return config.C_final
    t = (min(max(it, 1), config.iterations) - 1) / (config.iterations - 1)
    return config.C * (config.C_final / config.C) ** t


def standardised(keys: torch.Tensor) -> torch.Tensor:
    """(keys - mean) / std within each instance (row): the order is kept, the scale is taken away."""
    centred = keys - keys.mean(dim=1, keepdim=True)
    return centred / centred.square().mean(dim=1, keepdim=True).add(1e-12).sqrt()


def sort_items(config: SortingConfig, keys: torch.Tensor, items: torch.Tensor, generator=None, C: float | None = None):
    """Sort items (b, n, *f) by keys with the config's method: (sorted items, quicksort result or None).

    ``C`` overrides the config's sharpness (the training loop passes the scheduled value)."""
    if config.method == "quicksort":
        if config.standardise_keys:
            keys = standardised(keys)
        result = quicksort(keys, items, samples=config.samples, C=sharpness(config) if C is None else C,
                           generator=generator, local=config.local, neighbours=config.neighbours)
        return result.sorted, result
    P = (neuralsort if config.method == "neuralsort" else softsort)(keys, tau=config.tau)
    return apply_permutation(P, items), None


def build_model(config: SortingConfig) -> KeyNetwork:
    """The config's key network (table 3 at ``width``), initialised from the current seed."""
    return KeyNetwork(config.digits, config.width, config.key_network)


def start_weights(net: KeyNetwork, config: SortingConfig) -> KeyNetwork:
    """Copy the weights of ``config.start_from`` (a shipped model's name or a path written by
    ``--save-model``) into ``net``: a curriculum, e.g. a key network trained at n = 4 continues at
    n = 8 (the key network does not depend on n). The two must have the same architecture."""
    from .. import pretrained

    name = config.start_from
    source = pretrained.load(name) if name in pretrained.names() else pretrained.load_file(name)
    theirs = getattr(source, "config", None)
    if not isinstance(theirs, SortingConfig):
        raise ValueError(f"start_from={name!r} is not a sorting key network")
    mismatch = [f"{k} {getattr(theirs, k)!r} != {getattr(config, k)!r}" for k in ("digits", "width", "key_network")
                if getattr(theirs, k) != getattr(config, k)]
    if mismatch:
        raise ValueError(f"start_from={name!r} has another architecture ({'; '.join(mismatch)}); "
                         "set the same digits, width and key network")
    net.load_state_dict(source.state_dict())
    return net


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
    if config.straight_through:  # the value of the hard sort, the gradient of the sparse mixture
        order = keys.detach().argsort(dim=1, stable=True)
        hard = items.gather(1, order.view(*order.shape, *([1] * (items.dim() - 2))).expand_as(items))
        output = hard.clamp(1e-4, 1 - 1e-4) + (output - output.detach())  # inside the BCE clamp: gradients pass
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
    "quicksort": dict(method="quicksort", intermediate=False, samples=None, local=0, neighbours=False, draws=1,
                      straight_through=False, C=10.0, C_final=None, standardise_keys=False),
    "neuralsort": dict(method="neuralsort", intermediate=False, samples=None, local=0, neighbours=False, draws=1,
                       straight_through=False, tau=1.0, C_final=None, standardise_keys=False),
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
def evaluate(net: KeyNetwork, task, instances: int, batch_size: int = 250, device="cpu"):
    """The paper's evaluation on ``instances`` fresh instances of ``task``: (error, element error)."""
    was_training = net.training
    net.eval()
    totals = torch.zeros(2)
    done = 0
    while done < instances:
        b = min(batch_size, instances - done)
        images, numbers, _ = task.sample(b)
        err, elem = order_errors(net(images.to(device)).cpu(), numbers)
        totals += torch.tensor([err * b, elem * b])
        done += b
    net.train(was_training)
    return (totals / instances).tolist()


@dataclass
class SortingResult:
    config: SortingConfig
    losses: list[float] = field(default_factory=list)
    eval_iterations: list[int] = field(default_factory=list)
    eval_error: list[float] = field(default_factory=list)
    eval_element_error: list[float] = field(default_factory=list)
    data_source: str = ""
    seconds: float = 0.0  # wall time of the whole run, evaluations included
    eval_seconds: float = 0.0  # the part of ``seconds`` spent evaluating
    stopped_early: str = ""  # why the run ended before its last batch (interrupt), else ""
    net: KeyNetwork | None = None


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


def _with_defaults(saved: dict) -> dict:
    """A checkpoint's config with the fields added to SortingConfig since it was written set to
    their defaults, so a run started before a new option existed still resumes (a run that sets
    the new option to something else does not match, as it should not)."""
    from dataclasses import MISSING, fields

    full = dict(saved)
    for f in fields(SortingConfig):
        if f.name not in full and f.default is not MISSING:
            full[f.name] = f.default
    return full


def _checkpoint(path, net, optimiser, generator, train_task, result: SortingResult, done: int) -> None:
    from dataclasses import asdict
    from pathlib import Path

    path = Path(path)
    state = {"done": done, "config": asdict(result.config), "net": net.state_dict(), "optimiser": optimiser.state_dict(),
             "generator": generator.get_state(), "task_generator": train_task.generator.get_state(),
             "rng": torch.get_rng_state(), "losses": result.losses, "eval_iterations": result.eval_iterations,
             "eval_error": result.eval_error, "eval_element_error": result.eval_element_error,
             "seconds": result.seconds, "eval_seconds": result.eval_seconds}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    torch.save(state, tmp)
    tmp.replace(path)


def train(config: SortingConfig, progress: bool = True, tasks=None, *, checkpoint=None, checkpoint_every: int = 0,
          resume: bool = False) -> SortingResult:
    """Train the key network through the config's sort; evaluate every ``eval_every`` batches.

    With ``checkpoint`` (a file path) the state is written every ``checkpoint_every`` batches, at
    the end and on Ctrl-C (the result then has ``stopped_early`` set); ``resume=True`` continues
    from it exactly (same batches, same random half-permutations).
    """
    from dataclasses import asdict
    from pathlib import Path

    check_int("checkpoint_every", checkpoint_every, 0)  # 0: only at the end and on Ctrl-C
    seed_everything(config.seed)
    device = torch.device(config.device)
    train_task, make_test_task = tasks if tasks is not None else make_tasks(config)
    net = build_model(config)
    if config.start_from is not None and not resume:
        start_weights(net, config)
    net = net.to(device)
    optimiser = torch.optim.Adam(net.parameters(), lr=config.lr)
    generator = torch.Generator(device=device).manual_seed(config.seed)
    result = SortingResult(config=config, net=net, data_source=getattr(train_task, "source", ""))
    checkpoint = Path(checkpoint) if checkpoint is not None else None
    first = 1
    if resume:
        if checkpoint is None or not checkpoint.is_file():
            raise ValueError(f"resume needs an existing checkpoint file, got {checkpoint}")
        state = torch.load(checkpoint, weights_only=False)
        if _with_defaults(state["config"]) != asdict(config):
            raise ValueError(f"{checkpoint} was written by a run with other settings; resume with the same ones")
        net.load_state_dict(state["net"])
        optimiser.load_state_dict(state["optimiser"])
        generator.set_state(state["generator"])
        train_task.generator.set_state(state["task_generator"])
        torch.set_rng_state(state["rng"])
        for name in ("losses", "eval_iterations", "eval_error", "eval_element_error", "seconds", "eval_seconds"):
            setattr(result, name, state[name])
        first = state["done"] + 1
    tick = time.perf_counter()
    bar = tqdm(range(first, config.iterations + 1), desc=f"sort n={config.n} {config.method}",
               disable=not show_progress(progress), mininterval=progress_interval(1.0), initial=first - 1, total=config.iterations)
    try:
        for it in bar:
            set_lr(optimiser, {"": config.lr}, lr_factor(config.lr_schedule, it - 1, config.iterations))
            images, numbers, perm = train_task.sample(config.batch_size)
            images, perm = images.to(device), perm.to(device)
            target = images.gather(1, perm.view(*perm.shape, 1, 1, 1).expand_as(images))
            loss = sorting_loss(config, net(images), images, target, generator, C=sharpness(config, it))
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            result.losses.append(loss.item())
            if it % config.eval_every == 0 or it == config.iterations:
                eval_start = time.perf_counter()
                err, elem = evaluate(net, make_test_task(), config.eval_instances, device=device)
                result.eval_seconds += time.perf_counter() - eval_start
                result.eval_iterations.append(it)
                result.eval_error.append(err)
                result.eval_element_error.append(elem)
                bar.set_postfix(error=f"{err:.3f}", element_error=f"{elem:.3f}")
            if checkpoint is not None and checkpoint_every and it % checkpoint_every == 0:
                result.seconds += time.perf_counter() - tick
                tick = time.perf_counter()
                _checkpoint(checkpoint, net, optimiser, generator, train_task, result, it)
    except KeyboardInterrupt:
        result.stopped_early = f"interrupted after {len(result.losses)} of {config.iterations} batches"
    finally:
        bar.close()
    result.seconds += time.perf_counter() - tick
    if checkpoint is not None:
        _checkpoint(checkpoint, net, optimiser, generator, train_task, result, len(result.losses))
    return result


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
