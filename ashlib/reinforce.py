"""The paper's REINFORCE baseline (section 3.1): the same Gaussians, but a sampled, hard W.

Each Gaussian draws *one* continuous point, which is rounded to the nearest integer tuple
(clamped into W); those k tuples with the k values form W. The tuples are discrete actions, so
their Gaussians learn only through the score-function (REINFORCE, Williams 1992) estimator

    grad E[L] = E[(L - baseline) * grad log p(z)],

where z are the continuous points and the baseline is any quantity independent of this draw.
The values take the ordinary backpropagated gradient. Compared with :class:`ashlib.SparseLayer`,
every Gaussian of one instance receives the same scalar feedback L - baseline: the estimator
knows how *probable* each point was, not how *good*, which is why it scales badly with n.

Usage, one training step::

    y = layer(x)                                   # samples one W per instance
    losses = (y - x).pow(2).flatten(1).mean(1)      # one loss per instance, shape (b,)
    layer.surrogate_loss(losses).backward()         # values: backprop; means/sigmas: REINFORCE
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .contract import contract
from .layers import check_layer, index_space

BASELINES = ("moving_average", "leave_one_out", "none")


class ReinforceLayer(nn.Module):
    """A sparse layer trained with the score-function estimator instead of Algorithm 1.

    Same parametrisation as :class:`ashlib.SparseLayer` (k means, sigmas and values; means and
    standard deviations through :func:`ashlib.layers.index_space`), so the two are compared on
    equal terms and evaluated the same way (rounded means).

    Args:
        in_shape, out_shape: shapes of one input and one output; W has out_shape + in_shape.
        k: number of Gaussians (nonzero entries of each sampled W).
        fix_values: keep every value at 1 (a buffer) instead of learning it.
        baseline: what is subtracted from each instance's loss before it multiplies the score:
            ``"moving_average"`` (an exponential average of past batch losses, as is usual),
            ``"leave_one_out"`` (for instance j the mean loss of the batch's other instances,
            which drew their own W independently) or ``"none"``. All three are unbiased.
        decay: the moving average's decay per batch.
        sigma_scale, min_sigma: as for SparseLayer.

    Each instance of a batch draws its own W (as SparseLayer samples its tuples per instance).
    """

    def __init__(self, in_shape, out_shape, k: int, *, fix_values: bool = False, baseline: str = "moving_average",
                 decay: float = 0.9, sigma_scale: float = 0.1, min_sigma: float = 0.1):
        super().__init__()
        if isinstance(k, bool):
            raise ValueError(f"k (the number of Gaussians) must be an int >= 1, got {k!r}")
        self.in_shape, self.out_shape, self.shape = check_layer(in_shape, out_shape, k, sigma_scale, min_sigma)
        if baseline not in BASELINES:
            raise ValueError(f"baseline must be one of {BASELINES}, got {baseline!r}")
        if isinstance(decay, bool) or not isinstance(decay, (int, float)) or not 0.0 <= decay < 1.0:
            raise ValueError(f"decay must be a number in [0, 1), got {decay!r}")
        self.k, self.baseline, self.decay = k, baseline, float(decay)
        self.sigma_scale, self.min_sigma = float(sigma_scale), float(min_sigma)
        self.fix_values = bool(fix_values)
        self.means = nn.Parameter(torch.randn(k, len(self.shape)))
        self.sigmas = nn.Parameter(torch.zeros(k))
        if self.fix_values:
            self.register_buffer("values", torch.ones(k))
        else:
            self.values = nn.Parameter(torch.randn(k))
        self.register_buffer("average_loss", torch.tensor(float("nan")))
        self.last_log_prob: torch.Tensor | None = None

    @property
    def rank(self) -> int:
        return len(self.shape)

    def extra_repr(self) -> str:
        return f"in_shape={self.in_shape}, out_shape={self.out_shape}, k={self.k}, baseline={self.baseline!r}"

    def gaussians(self):
        """The k means and standard deviations in index space, each (k, r)."""
        return index_space(self.means, self.sigmas, self.shape, self.sigma_scale, self.min_sigma)

    def sample_points(self, batch_size: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """One continuous point per Gaussian and instance, (b, k, r), drawn from N(mean, sigma); constants."""
        means, sigmas = self.gaussians()
        device = means.device if generator is None else generator.device
        noise = torch.randn((batch_size, *means.shape), generator=generator, dtype=means.dtype, device=device)
        return (means + sigmas * noise.to(means.device)).detach()

    def log_prob(self, points: torch.Tensor) -> torch.Tensor:
        """Log density (b,) of each instance's points, differentiable in the raw means and sigmas."""
        means, sigmas = self.gaussians()
        log_prob = -0.5 * ((points - means) / sigmas).pow(2) - sigmas.log() - 0.5 * math.log(2 * math.pi)
        return log_prob.sum(dim=(1, 2))

    def round_points(self, points: torch.Tensor) -> torch.Tensor:
        """The integer tuples (b, k, r) the points round to, clamped into W."""
        upper = torch.tensor(self.shape, device=points.device) - 1
        return torch.minimum(points.round().clamp_min(0).long(), upper)

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None, points: torch.Tensor | None = None):
        """``y = W x`` with a freshly drawn W per instance; remembers the draw's log density.

        Pass ``points`` (b, k, r) from :meth:`sample_points` to use a given draw instead.
        """
        if not torch.is_tensor(x) or tuple(x.shape[1:]) != self.in_shape:
            got = tuple(x.shape) if torch.is_tensor(x) else type(x).__name__
            raise ValueError(f"input must have shape (batch, *{self.in_shape}), got {got}")
        if any(t.is_meta for t in (x, points, *self.parameters(), *self.buffers()) if torch.is_tensor(t)):
            raise ValueError("ReinforceLayer needs real tensors, got a meta tensor (no data): move the layer and its "
                             "input to 'cpu' or 'cuda' first")
        if not all(bool(torch.isfinite(p).all()) for p in (self.means, self.sigmas, self.values)):
            raise ValueError("the layer's parameters contain NaN or inf (a diverged update?): "
                             "re-initialise the layer or lower the learning rate")
        b = x.shape[0]
        if points is None:
            points = self.sample_points(b, generator)
        elif not torch.is_tensor(points) or tuple(points.shape) != (b, self.k, self.rank):
            got = tuple(points.shape) if torch.is_tensor(points) else type(points).__name__
            raise ValueError(f"points must have shape ({b}, {self.k}, {self.rank}), got {got}")
        elif points.numel() and not bool(torch.isfinite(points).all()):
            raise ValueError("points contain NaN or inf: they cannot be rounded to index tuples")
        self.last_log_prob = self.log_prob(points)
        weights = self.values.to(x.dtype).unsqueeze(0).expand(b, self.k)
        return contract(self.round_points(points), weights, x, self.out_shape, validate=False)

    def surrogate_loss(self, losses: torch.Tensor) -> torch.Tensor:
        """A scalar whose gradient is the estimator: backprop for values, REINFORCE for the Gaussians.

        ``losses`` (b,) holds each instance's loss for the W it drew in the last forward call;
        the returned value equals ``losses.mean()``, only its gradient differs. An empty batch
        gives 0 (still connected to the graph) and leaves the moving-average baseline unchanged.
        """
        lp = self.last_log_prob
        if lp is None:
            raise RuntimeError("call forward() before surrogate_loss(): there is no sampled W to score")
        if not torch.is_tensor(losses) or losses.shape != lp.shape:
            raise ValueError(f"losses must have one entry per instance, shape {tuple(lp.shape)}, "
                             f"got {tuple(losses.shape) if torch.is_tensor(losses) else type(losses).__name__}")
        if not losses.is_floating_point():
            raise ValueError(f"losses must be floating point (one loss per instance), got {losses.dtype}")
        if losses.numel() == 0:  # an empty batch: nothing to learn from, and its mean (NaN) must not reach the baseline
            self.last_log_prob = None
            return losses.sum() + 0 * lp.sum()
        feedback = losses.detach()
        if not bool(torch.isfinite(feedback).all()):
            # one inf would become the moving-average baseline and make every later gradient NaN
            raise ValueError(f"losses contain NaN or inf ({int((~torch.isfinite(feedback)).sum())} of "
                             f"{feedback.numel()}): the estimator and its baseline would be poisoned; check the "
                             "model's output for this batch (the baseline is left unchanged)")
        b = feedback.shape[0]
        if self.baseline == "leave_one_out":
            if b < 2:
                raise ValueError("the leave-one-out baseline needs a batch of at least 2 instances")
            feedback = feedback - (feedback.sum() - feedback) / (b - 1)
        elif self.baseline == "moving_average":
            batch_mean = feedback.mean()
            average = self.average_loss
            if not bool(torch.isnan(average)):
                feedback = feedback - average  # the average of *earlier* batches: independent of this draw
            with torch.no_grad():
                new = batch_mean if bool(torch.isnan(average)) else self.decay * average + (1 - self.decay) * batch_mean
                self.average_loss.copy_(new)
        self.last_log_prob = None
        score = (feedback * lp).mean()
        return losses.mean() + score - score.detach()
