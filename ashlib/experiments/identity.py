"""The identity toy (paper section 3.1, appendix A.1 "Identity"): learn W = I from x -> x.

Inputs are fresh N(0, I) vectors every batch and the loss is the MSE between ``W x`` and ``x``.
Evaluation follows the paper: round every mean to its integer tuple, build that W (no
sampling), and measure the MSE on 10,000 fresh vectors, so a layer cannot hide a wrong
structure behind a good sampled training loss.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ..config import progress_interval, quick_mode, seed_everything, show_progress
from ..contract import to_dense
from ..layers import SparseLayer
from ..reinforce import BASELINES, ReinforceLayer
from ..sampling import sample
from .checks import check_device_name, check_int, check_positive, check_seed
from .loop import Plan, Result, run

# (a_local, a_global) from appendix A.1, and the paper's training budgets (Figure 2 caption).
PAPER_SAMPLES = {8: (1, 2), 16: (2, 2), 32: (2, 8), 64: (2, 10)}
PAPER_BUDGETS = {8: 10_000, 16: 20_000, 32: 40_000}
EVAL_FLOOR = 1e-5  # an exact identity evaluates to MSE 0; log-scale plots draw it here
QUICK_BUDGETS = {4: 1_000, 8: 1_500, 16: 3_000, 32: 6_000}  # quick mode (ASHLIB_QUICK=1) without --iterations
# The paper tried these 9 learning rates for its REINFORCE baseline and kept the best per size.
REINFORCE_LEARNING_RATES = (0.1, 0.05, 0.01, 0.005, 0.001, 0.0005, 0.0001, 0.00005, 0.00001)
# Best of those rates by our sweep (studies/reinforce/reinforce_sweep.py, fixed values, moving-average baseline;
# results in studies/reinforce/results/reinforce_sweep.txt); sizes above 16 reuse the rate for 16.
REINFORCE_BEST_LR = {4: 0.1, 8: 0.01, 16: 0.01}
METHODS = ("sparse", "reinforce")


@dataclass
class IdentityConfig:
    """Settings of one identity run; None fields take the paper's value for this n."""

    n: int = 32
    method: str = "sparse"  # or "reinforce": the paper's baseline (ashlib.ReinforceLayer)
    baseline: str = "moving_average"  # REINFORCE only: "moving_average", "leave_one_out" or "none"
    iterations: int | None = None  # paper budget: 10k, 20k, 40k for n = 8, 16, 32 (QUICK_BUDGETS in quick mode)
    batch_size: int = 64
    lr: float | None = None  # 0.005, or 0.001 for n = 64
    a_local: int | None = None
    a_global: int | None = None
    region: int | None = None  # log2 n
    fix_values: bool = True
    # Learned values only: start them at 1 and let them learn 10x slower than the means and sigmas.
    # With N(0, 1) starts and one learning rate, values fit before the structure does and the
    # layer settles in cancelling pairs or dead duplicates (studies/identity/learned_values_study.py).
    values_init: str = "ones"  # or "randn", the plain SparseLayer initialisation
    values_lr_scale: float = 0.1
    chunk_size: int | None = None
    # None: one draw of tuples per instance (the paper); G: the batch shares G draws (SparseLayer)
    shared_draws: int | None = None
    eval_every: int = 500
    eval_samples: int = 10_000
    snapshot_every: int = 250
    seed: int = 0
    device: str = "cpu"
    stop_when_converged: bool = False  # end the run at the first converged evaluation

    def __post_init__(self):
        if not isinstance(self.n, int) or self.n < 2:
            raise ValueError(f"n must be an int >= 2, got {self.n!r}")
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}")
        if self.values_init not in ("ones", "randn"):
            raise ValueError(f"values_init must be 'ones' or 'randn', got {self.values_init!r}")
        check_positive("values_lr_scale", self.values_lr_scale)
        if self.baseline not in BASELINES:
            raise ValueError(f"baseline must be one of {BASELINES}, got {self.baseline!r}")
        log_n = max(1, round(math.log2(self.n)))
        a_local, a_global = PAPER_SAMPLES.get(self.n, (2, max(2, 2 * log_n - 4)))
        self.a_local = a_local if self.a_local is None else self.a_local
        self.a_global = a_global if self.a_global is None else self.a_global
        self.region = min(log_n, self.n) if self.region is None else self.region
        if self.lr is None and self.method == "reinforce":
            self.lr = REINFORCE_BEST_LR.get(self.n, REINFORCE_BEST_LR[16] if self.n > 16 else 0.1)
        self.lr = (0.001 if self.n >= 64 else 0.005) if self.lr is None else self.lr
        if self.iterations is None:
            budgets = QUICK_BUDGETS if quick_mode() else PAPER_BUDGETS
            self.iterations = budgets.get(self.n, 6_000 if quick_mode() else 40_000)
        for name in ("iterations", "batch_size", "eval_every", "snapshot_every", "eval_samples"):
            check_int(name, getattr(self, name))
        check_int("a_local", self.a_local, 0)
        check_int("a_global", self.a_global, 0)
        if check_int("region", self.region) > self.n:
            raise ValueError(f"region must lie in [1, n = {self.n}] (the local box inside W), got {self.region}")
        check_int("chunk_size", self.chunk_size, optional=True)
        check_seed(self.seed)
        check_device_name(self.device)
        if self.chunk_size is not None and (self.chunk_size < 1 or self.n % self.chunk_size):
            raise ValueError(f"chunk_size must divide n = {self.n}, got {self.chunk_size}")
        if self.shared_draws is not None and self.method != "sparse":
            raise ValueError("shared_draws applies to method='sparse' only")
        if self.iterations < 1 or self.batch_size < 1 or self.eval_every < 1 or self.snapshot_every < 1:
            raise ValueError("iterations, batch_size, eval_every and snapshot_every must be >= 1")
        check_positive("lr", self.lr)


    @property
    def k_chunk(self) -> int:
        """The pool size actually used: chunk_size, or all n Gaussians when it is None."""
        return self.n if self.chunk_size is None else self.chunk_size


CONVERGED_MSE, CONVERGED_DIAGONAL = 0.01, 0.95  # an evaluation counts as converged below / at or above these


def converged(metrics: dict) -> bool:
    """Our bar for one evaluation (the paper sets none): MSE < 0.01, at least 95 % of the diagonal."""
    return metrics["eval_mse"] < CONVERGED_MSE and metrics["diagonal"] >= CONVERGED_DIAGONAL


@dataclass
class IdentityResult(Result):
    """What a run produced (see :class:`ashlib.experiments.loop.Result`): the loss per batch, one
    evaluation dict (``step``, ``eval_mse``, ``diagonal``) per evaluation, and snapshots of the
    Gaussians in ``snapshots`` (batch, means, sigmas)."""

    @property
    def snapshots(self) -> list[tuple[int, torch.Tensor, torch.Tensor]]:
        return self.extra.setdefault("snapshots", [])

    @property
    def eval_iterations(self) -> list[int]:
        return self.steps

    @property
    def eval_mse(self) -> list[float]:
        return self.metric("eval_mse")

    @property
    def eval_diagonal(self) -> list[float]:
        return self.metric("diagonal")

    @property
    def converged_at(self) -> int | None:
        """The first evaluation with MSE < 0.01 and >= 95 % of the diagonal (None: never)."""
        return next((e["step"] for e in self.evaluations if converged(e)), None)

    @property
    def ms_per_batch(self) -> float:
        return 1e3 * self.seconds / max(1, len(self.losses))


def rounded_matrix(layer: SparseLayer | ReinforceLayer) -> torch.Tensor:
    """The dense n x n W given by rounding every mean to its nearest integer tuple."""
    means, _ = layer.gaussians()
    return to_dense(means.detach().round().long(), layer.values.detach(), layer.shape)


def evaluate_matrix(W: torch.Tensor, n_samples: int = 10_000, generator=None):
    """(MSE of W x against x on fresh N(0, I) vectors, fraction of diagonal cells W[i, i] != 0).

    The MSE judges the values; the diagonal fraction judges the structure alone.
    """
    n = W.shape[0]
    x = torch.randn(n_samples, n, generator=generator, dtype=W.dtype).to(W.device)
    mse = (x @ W.T - x).pow(2).mean().item()
    diagonal = (W.diagonal() != 0).float().mean().item()
    return mse, diagonal


def evaluate(model: SparseLayer | ReinforceLayer, config: IdentityConfig, test: torch.Generator | None = None, *,
             device=None) -> dict:
    """The paper's evaluation of a trained identity layer: ``{"eval_mse": ..., "diagonal": ...}``.

    Rounds every mean to its tuple and scores that W on ``config.eval_samples`` fresh N(0, I)
    vectors drawn from ``test`` (a torch.Generator; default: a fresh one seeded ``config.seed + 1``,
    the one a training run draws its evaluations from). ``device`` is unused (the rounded W is
    scored where the layer lives); it keeps the three experiments' ``evaluate`` alike.
    """
    test = test if test is not None else torch.Generator().manual_seed(config.seed + 1)
    mse, diagonal = evaluate_matrix(rounded_matrix(model), config.eval_samples, test)
    return {"eval_mse": mse, "diagonal": diagonal}


def build_layer(config: IdentityConfig) -> SparseLayer | ReinforceLayer:
    """The n x n layer with k = n Gaussians that ``config`` asks for (initialised from the current seed)."""
    n = config.n
    if config.method == "reinforce":
        layer = ReinforceLayer(n, n, n, fix_values=config.fix_values, baseline=config.baseline)
    else:
        layer = SparseLayer(n, n, n, a_local=config.a_local, a_global=config.a_global, region=config.region,
                            chunk_size=config.chunk_size, fix_values=config.fix_values,
                            shared_draws=config.shared_draws)
    if not config.fix_values:
        # ReinforceLayer draws N(0, 1) values; for SparseLayer (values start at 1) make the same draw,
        # so seeded runs keep their numbers
        start = torch.randn(n) if config.method != "reinforce" else layer.values.detach().clone()
        with torch.no_grad():
            layer.values.copy_(start if config.values_init == "randn" else torch.ones(n))
    return layer


def build_model(config: IdentityConfig) -> SparseLayer | ReinforceLayer:
    """The config's layer (the name every experiment uses; see :func:`build_layer`)."""
    return build_layer(config)


def build_optimiser(config: IdentityConfig, layer) -> torch.optim.Adam:
    """Adam with the config's learning rate; learned values get ``lr * values_lr_scale``."""
    structure = [layer.means, layer.sigmas]
    groups = [{"params": structure}]
    if not config.fix_values:
        groups.append({"params": [layer.values], "lr": config.lr * config.values_lr_scale})
    return torch.optim.Adam(groups, lr=config.lr)


def identity_loss(state, x: torch.Tensor) -> torch.Tensor:
    """The training loss of one batch: MSE of W x against x (REINFORCE: its surrogate)."""
    layer = state.model
    if state.config.method == "reinforce":
        return layer.surrogate_loss((layer(x) - x).pow(2).mean(dim=1))
    return (layer(x) - x).pow(2).mean()


def train(config: IdentityConfig, *, progress: bool = True, out=None, resume: bool = False, overwrite: bool = False,
          checkpoint_every: int = 500, callbacks=(), model=None, loss=None) -> IdentityResult:
    """Train a layer on the identity task; evaluate every ``eval_every`` batches.

    The loop (:mod:`ashlib.experiments.loop`) gives ``out`` (a folder for ``checkpoint.pt``),
    ``resume``, ``overwrite``, ``checkpoint_every`` and ``callbacks``; ``model`` replaces the
    config's layer, ``loss(state, x)`` the training loss.
    """
    seed_everything(config.seed)
    device = torch.device(config.device)
    layer = (model if model is not None else build_layer(config)).to(device)
    optimiser = build_optimiser(config, layer)
    eval_gen = torch.Generator().manual_seed(config.seed + 1)
    result = IdentityResult(config=config, model=layer)

    def draw(step: int) -> torch.Tensor:
        return torch.randn(config.batch_size, config.n, device=device)

    def snapshot(state) -> None:
        if state.step % config.snapshot_every == 0 or state.step == 1:
            means, sigmas = layer.gaussians()
            result.snapshots.append((state.step, means.detach().cpu().clone(), sigmas.detach().cpu().clone()))

    plan = Plan(model=layer, optimiser=optimiser, steps=config.iterations, eval_every=config.eval_every, draw=draw,
                loss=identity_loss, evaluate=lambda state: evaluate(layer, config, eval_gen),
                generators={"evaluation": eval_gen}, after_batch=snapshot,
                stop=lambda state, metrics: config.stop_when_converged and converged(metrics),
                desc=f"identity n={config.n} {config.method}",
                postfix=lambda m: {"eval_mse": f"{m['eval_mse']:.4f}", "diagonal": f"{m['diagonal']:.2f}"})
    return run(config, plan, result, progress=progress, out=out, resume=resume, overwrite=overwrite,
               checkpoint_every=checkpoint_every, callbacks=callbacks, loss=loss, device=device)


def snapshot_tuples(config: IdentityConfig, means, sigmas, generator=None) -> torch.Tensor:
    """Integer tuples (m, 2) a sparse layer with these index-space Gaussians would sample for one instance.

    For Figure 3's grey diamonds; a REINFORCE layer draws one rounded point per Gaussian instead.
    """
    means, sigmas = means.detach().float().unsqueeze(0), sigmas.detach().float().unsqueeze(0)
    if config.method == "reinforce":
        points = means + sigmas * torch.randn(means.shape, generator=generator)
        return points.round().clamp(0, config.n - 1).long().reshape(-1, 2)
    indices, _ = sample(means, sigmas, (config.n, config.n), a_local=config.a_local, a_global=config.a_global,
                            region=config.region, chunk_size=config.k_chunk, generator=generator)
    return indices.reshape(-1, 2)


def plot_run(result: IdentityResult, panels: int = 5, generator=None):
    """Figure 3 for one run: ``panels`` snapshots of the Gaussians, then the loss curves."""
    import matplotlib.pyplot as plt

    from ..plot import plot_identity_snapshot

    config = result.config
    picks = [round(i * (len(result.snapshots) - 1) / max(1, panels - 1)) for i in range(panels)]
    # snapshots in one row (square panels, readable titles), the loss curves underneath at full width
    fig = plt.figure(figsize=(2.4 * panels, 2.6 + 3.0))
    grid = fig.add_gridspec(2, panels, height_ratios=[2.6, 3.0])
    for col, i in enumerate(picks):
        ax = fig.add_subplot(grid[0, col])
        it, means, sigmas = result.snapshots[i]
        plot_identity_snapshot(means, sigmas, config.n, tuples=snapshot_tuples(config, means, sigmas, generator),
                               ax=ax, title=f"batch {it}")
        ax.title.set_fontsize(11)
    ax = fig.add_subplot(grid[1, :])
    ax.plot(range(1, len(result.losses) + 1), result.losses, lw=0.5, alpha=0.5, label="training (sampled W)")
    ax.plot(result.eval_iterations, result.eval_mse, "o-", ms=3, label="evaluation (rounded means)")
    ax.set_yscale("symlog", linthresh=EVAL_FLOOR)  # logarithmic above the floor, linear below: 0 is 0
    ax.set_ylim(bottom=0)
    ax.set_xlabel("batches")
    ax.set_ylabel("MSE (log above 1e-5, 0 at the bottom)")
    ax.legend(fontsize=9, frameon=False)
    fig.suptitle(f"identity, n = {config.n}, {config.method}, "
                 f"{'fixed' if config.fix_values else 'learned'} values, seed {config.seed}", fontsize=11)
    fig.tight_layout()
    return fig


def summary(result: IdentityResult) -> dict:
    """The numbers a run is judged by, plus its full configuration (JSON-ready)."""
    return {
        "config": asdict(result.config),
        "converged_at": result.converged_at,
        "final_eval_mse": result.eval_mse[-1] if result.eval_mse else None,
        "final_diagonal": result.eval_diagonal[-1] if result.eval_diagonal else None,
        "batches": len(result.losses),
        "seconds": round(result.seconds, 3),
        "ms_per_batch": round(result.ms_per_batch, 3),
    }


def save_result(result: IdentityResult, out_dir) -> list[Path]:
    """Write curves.csv (training loss per batch), evaluation.csv, summary.json and identity.png."""
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "curves.csv", out / "evaluation.csv", out / "summary.json", out / "identity.png"]
    with open(paths[0], "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["batch", "train_mse"])
        writer.writerows((i, f"{v:.6g}") for i, v in enumerate(result.losses, start=1))
    with open(paths[1], "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["batch", "eval_mse", "diagonal_fraction"])
        writer.writerows((i, f"{m:.6g}", f"{d:.4f}")
                         for i, m, d in zip(result.eval_iterations, result.eval_mse, result.eval_diagonal))
    paths[2].write_text(json.dumps(summary(result), indent=2) + "\n")
    fig = plot_run(result, generator=torch.Generator().manual_seed(result.config.seed))
    fig.savefig(paths[3], dpi=100)
    plt.close(fig)
    return paths


def gradient_signal_to_noise(n: int, method: str, *, offset: float = 0.6, sigma: float = 0.5, samples: int = 4000,
                             seed: int = 0) -> float:
    """How clearly one instance's gradient tells a misplaced entry where to go, for either method.

    All n Gaussians sit on their diagonal cells (sigma ``sigma`` cells) except entry 0, which sits
    ``offset`` columns to the right of (0, 0). For ``samples`` independent instances we take the
    gradient of that instance's loss with respect to entry 0's raw column coordinate and return
    ``|mean| / std``: above 1 a single instance mostly points the right way, near 0 it is noise.
    The sparse layer backpropagates through its sampled graph; REINFORCE uses
    ``(L_j - b_j) * d log p(z_j) / d mean`` with the leave-one-out baseline ``b_j``.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    gen = torch.Generator().manual_seed(seed)
    config = IdentityConfig(n=n, method=method, baseline="leave_one_out", iterations=1)
    layer = build_layer(config).double()
    target = torch.arange(n, dtype=torch.float64).unsqueeze(1).repeat(1, 2).clamp(0.05, n - 1.05)
    target[0, 1] += offset
    with torch.no_grad():  # invert index_space: mean = sigmoid(raw) (n - 1), sigma = softplus(raw + 2) n 0.1 + 0.1
        layer.means.copy_(torch.logit(target / (n - 1)))
        layer.sigmas.fill_(math.log(math.expm1((sigma - layer.min_sigma) / (n * layer.sigma_scale))) - 2.0)
    x = torch.randn(samples, n, generator=gen, dtype=torch.float64)
    if method == "sparse":
        raw_means, raw_sigmas, values = (p.detach().clone() for p in layer.batch_parameters(samples))
        raw_means.requires_grad_(True)
        y = layer.transform(x, raw_means, raw_sigmas, values, generator=gen)
        (y - x).pow(2).mean(dim=1).sum().backward()
        grads = raw_means.grad[:, 0, 1]
    else:
        points = layer.sample_points(samples, generator=gen)
        y = layer(x, points=points)
        losses = (y - x).pow(2).mean(dim=1).detach()
        feedback = losses - (losses.sum() - losses) / (samples - 1)
        means, sigmas = layer.gaussians()
        mu, sd, raw = means[0, 1].detach(), sigmas[0, 1].detach(), layer.means[0, 1].detach()
        # d log N(z; mu, sd) / d raw = (z - mu) / sd^2 * d mu / d raw, with mu = sigmoid(raw) (n - 1)
        score = (points[:, 0, 1] - mu) / sd**2 * torch.sigmoid(raw) * (1 - torch.sigmoid(raw)) * (n - 1)
        grads = feedback * score
    return (grads.mean().abs() / grads.std()).item()


def compare_methods(sizes, seeds, *, methods=METHODS, iterations=None, eval_every=250, eval_samples=10_000,
                    progress=True):
    """Figure 2 of the paper: train every (size, method, seed) with default settings for that size.

    Returns ``(curves, results)``: ``curves[(size, method)] = (eval iterations, (seeds, points)
    array of evaluation MSE)`` ready for :func:`ashlib.plot.plot_learning_curves`, and the list of
    every :class:`IdentityResult`.
    """
    import numpy as np

    curves, results = {}, []
    jobs = [(n, m, s) for n in sizes for m in methods for s in seeds]
    for n, method, seed in tqdm(jobs, desc="runs", disable=not show_progress(progress), mininterval=progress_interval(1.0)):
        config = IdentityConfig(n=n, method=method, seed=seed, iterations=iterations, eval_every=eval_every,
                                eval_samples=eval_samples)
        results.append(train(config, progress=False))
    for n in sizes:
        for method in methods:
            runs = [r for r in results if r.config.n == n and r.config.method == method]
            curves[(n, method)] = (runs[0].eval_iterations, np.array([r.eval_mse for r in runs]))
    return curves, results
