"""The identity toy (paper section 3.1, appendix A.1 "Identity"): learn W = I from x -> x.

Inputs are fresh N(0, I) vectors every batch and the loss is the MSE between ``W x`` and ``x``.
Evaluation follows the paper: round every mean to its integer tuple, build that W (no
sampling), and measure the MSE on 10,000 fresh vectors, so a layer cannot hide a wrong
structure behind a good sampled training loss.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm

from ..config import seed_everything
from ..contract import to_dense
from ..layers import SparseLayer

# (a_local, a_global) from appendix A.1, and the paper's training budgets (Figure 2 caption).
PAPER_SAMPLES = {8: (1, 2), 16: (2, 2), 32: (2, 8), 64: (2, 10)}
PAPER_BUDGETS = {8: 10_000, 16: 20_000, 32: 40_000}


@dataclass
class IdentityConfig:
    """Settings of one identity run; None fields take the paper's value for this n."""

    n: int = 32
    iterations: int | None = None  # paper budget: 10k, 20k, 40k for n = 8, 16, 32
    batch_size: int = 64
    lr: float | None = None  # 0.005, or 0.001 for n = 64
    a_local: int | None = None
    a_global: int | None = None
    region: int | None = None  # log2 n
    fix_values: bool = True
    chunk_size: int | None = None
    eval_every: int = 500
    eval_samples: int = 10_000
    snapshot_every: int = 250
    seed: int = 0
    device: str = "cpu"
    stop_when_converged: bool = False  # end the run at the first converged evaluation

    def __post_init__(self):
        if not isinstance(self.n, int) or self.n < 2:
            raise ValueError(f"n must be an int >= 2, got {self.n!r}")
        log_n = max(1, round(math.log2(self.n)))
        a_local, a_global = PAPER_SAMPLES.get(self.n, (2, max(2, 2 * log_n - 4)))
        self.a_local = a_local if self.a_local is None else self.a_local
        self.a_global = a_global if self.a_global is None else self.a_global
        self.region = min(log_n, self.n) if self.region is None else self.region
        self.lr = (0.001 if self.n >= 64 else 0.005) if self.lr is None else self.lr
        if self.iterations is None:
            self.iterations = PAPER_BUDGETS.get(self.n, 40_000)
        if self.iterations < 1 or self.batch_size < 1 or self.eval_every < 1 or self.snapshot_every < 1:
            raise ValueError("iterations, batch_size, eval_every and snapshot_every must be >= 1")


@dataclass
class IdentityResult:
    """What a run produced: curves, snapshots of the Gaussians, and when it converged."""

    config: IdentityConfig
    losses: list[float] = field(default_factory=list)  # training MSE per batch
    eval_iterations: list[int] = field(default_factory=list)
    eval_mse: list[float] = field(default_factory=list)
    eval_diagonal: list[float] = field(default_factory=list)
    snapshots: list[tuple[int, torch.Tensor, torch.Tensor]] = field(default_factory=list)  # (it, means, sigmas)
    converged_at: int | None = None  # first evaluation with MSE < 0.01 and >= 95 % of the diagonal
    seconds: float = 0.0
    layer: SparseLayer | None = None


def rounded_matrix(layer: SparseLayer) -> torch.Tensor:
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


def evaluate(layer: SparseLayer, n_samples: int = 10_000, generator=None):
    """The paper's evaluation of a trained identity layer: (MSE, fraction of diagonal recovered)."""
    return evaluate_matrix(rounded_matrix(layer), n_samples, generator)


def train(config: IdentityConfig, progress: bool = True) -> IdentityResult:
    """Train a SparseLayer on the identity task; evaluate every ``eval_every`` batches."""
    seed_everything(config.seed)
    device = torch.device(config.device)
    layer = SparseLayer(config.n, config.n, config.n, a_local=config.a_local, a_global=config.a_global,
                        region=config.region, chunk_size=config.chunk_size, fix_values=config.fix_values).to(device)
    optimiser = torch.optim.Adam(layer.parameters(), lr=config.lr)
    eval_gen = torch.Generator().manual_seed(config.seed + 1)
    result = IdentityResult(config=config, layer=layer)
    start = time.perf_counter()
    bar = tqdm(range(1, config.iterations + 1), desc=f"identity n={config.n}", disable=not progress)
    for it in bar:
        x = torch.randn(config.batch_size, config.n, device=device)
        loss = (layer(x) - x).pow(2).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        result.losses.append(loss.item())
        if it % config.snapshot_every == 0 or it == 1:
            means, sigmas = layer.gaussians()
            result.snapshots.append((it, means.detach().cpu().clone(), sigmas.detach().cpu().clone()))
        if it % config.eval_every == 0 or it == config.iterations:
            mse, diagonal = evaluate(layer, config.eval_samples, eval_gen)
            result.eval_iterations.append(it)
            result.eval_mse.append(mse)
            result.eval_diagonal.append(diagonal)
            bar.set_postfix(eval_mse=f"{mse:.4f}", diagonal=f"{diagonal:.2f}")
            if result.converged_at is None and mse < 0.01 and diagonal >= 0.95:
                result.converged_at = it
                if config.stop_when_converged:
                    break
    result.seconds = time.perf_counter() - start
    return result
