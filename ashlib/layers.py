"""Sparse layers whose weight tensor W is learned as k Gaussians plus k values.

``SparseLayer`` keeps the k means, sigmas and values as free parameters (one W for every
instance); ``HyperLayer`` gets them per instance from a source network (one W per instance,
an *adaptive* layer). Both share the same path, section 2.1 and Algorithm 1 of the paper:

1. raw parameters to index space: ``mean = sigmoid(raw) * (size - 1)`` per dimension, and
   ``sigma = softplus(raw + 2) * size * sigma_scale + min_sigma`` per dimension (a HyperLayer
   first multiplies its source's raw sigma by ``sigma_rate``, 0.03 by default);
2. :func:`ashlib.sample` proposes integer tuples and proportions;
3. each Gaussian's value is split over its pool by those proportions;
4. :func:`ashlib.contract` computes ``y = W . x``.

The paper treats the scaled sigma as a (diagonal) covariance; ashlib treats it as a standard
deviation in index units, so ``min_sigma`` (the paper's tau = 0.1) is directly the smallest
spread in cells. Means are scaled by ``size - 1`` rather than ``size`` so the largest index is
reachable and never overshot.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from .config import is_finite_positive
from .contract import contract
from .indexing import as_shape, flat_index
from .sampling import _as_region, check_settings, sample_log_density

SIGMA_OFFSET = 2.0
"""Added to the raw sigma before the softplus (Algorithm 1), so a raw value of 0 starts wide."""

SIGMA_RATE = 0.03
"""HyperLayer's default ``sigma_rate``: the source's raw sigma is multiplied by it before the offset
and the softplus, so that under an optimiser that moves every weight by about the learning rate
(Adam) the sigmas change about 30 times slower than the means. Without it the Gaussians of a fresh
source narrow before the means have found their columns and the search stops for good (a pointer
over 32 columns: 0 of 5 seeds learned; see studies/pointer/README.md)."""


def index_space(raw_means, raw_sigmas, shape, sigma_scale: float = 0.1, min_sigma: float = 0.1):
    """Raw parameters -> (means in [0, size-1], standard deviations in index units), both (..., k, r).

    ``mean = sigmoid(raw) * (size - 1)``; ``sigma = softplus(raw + 2) * size * sigma_scale + min_sigma``.
    Shared by every layer that parametrises W this way (the sparse layers and the REINFORCE baseline).
    """
    sizes = torch.tensor(shape, dtype=raw_means.dtype, device=raw_means.device)
    means = torch.sigmoid(raw_means) * (sizes - 1)
    if raw_sigmas.dim() == raw_means.dim() - 1:
        raw_sigmas = raw_sigmas.unsqueeze(-1)
    sigmas = F.softplus(raw_sigmas + SIGMA_OFFSET) * sizes * sigma_scale + min_sigma
    return means, sigmas.expand_as(means)


def check_layer(in_shape, out_shape, k, sigma_scale: float, min_sigma: float):
    """Validate what every W-parametrising layer is built from; return (in_shape, out_shape, shape of W)."""
    in_shape, out_shape = as_shape(in_shape, "in_shape"), as_shape(out_shape, "out_shape")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k (the number of Gaussians) must be an int >= 1, got {k!r}")
    for name, v in (("sigma_scale", sigma_scale), ("min_sigma", min_sigma)):
        if not is_finite_positive(v):
            raise ValueError(f"{name} must be a finite number > 0 (min_sigma is the paper's tau, 0.1 by default; "
                             f"0 lets sigma shrink until the proportions break down), got {v!r}")
    return in_shape, out_shape, out_shape + in_shape


def split_values(props: torch.Tensor, values: torch.Tensor, chunk_size: int) -> torch.Tensor:
    """Each pool tuple's value ``v'[j] = sum_i p'_ij v_i`` over the Gaussians i of its chunk.

    props (b, k, c*S) from :func:`ashlib.sample`, values (b, k) -> (b, k/c, c*S).
    """
    b, k, pool = props.shape
    c = chunk_size
    return torch.einsum("bqcj,bqc->bqj", props.view(b, k // c, c, pool), values.view(b, k // c, c))


def split_log_density(log_density: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """:func:`split_values` of ``softmax(log_density)``, fused: (b, q, c, P), (b, q, c) -> (b, q, P).

    Normalising and splitting in one autograd node needs one pass over the (Gaussian, tuple)
    pairs forward and three backward, where softmax then einsum keep and traverse more.
    """
    return _SoftmaxSplit.apply(log_density, values)


class _SoftmaxSplit(torch.autograd.Function):
    """w_j = sum_i v_i p_ij with p = softmax(q) over j. Backward, with g = dL/dw:
    dL/dv_i = sum_j p_ij g_j and dL/dq_ij = v_i p_ij (g_j - dL/dv_i)."""

    @staticmethod
    def forward(ctx, log_density, values):
        props = torch.softmax(log_density, dim=-1)
        ctx.save_for_backward(props, values)
        return (values.unsqueeze(-2) @ props).squeeze(-2)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        props, values = ctx.saved_tensors
        grad_values = (props @ grad.unsqueeze(-1)).squeeze(-1)  # (b, q, c)
        grad_log = grad.unsqueeze(-2) - grad_values.unsqueeze(-1)  # (b, q, c, P)
        grad_log.mul_(props).mul_(values.unsqueeze(-1))
        return grad_log, grad_values


class SparseTransform(nn.Module):
    """Shared machinery of the sparse layers: shapes, sampling settings, the forward path."""

    def __init__(
        self,
        in_shape,
        out_shape,
        k: int,
        *,
        a_local: int,
        a_global: int,
        region,
        chunk_size: int | None = None,
        sigma_scale: float = 0.1,
        min_sigma: float = 0.1,
    ):
        super().__init__()
        self.in_shape, self.out_shape, self.shape = check_layer(in_shape, out_shape, k, sigma_scale, min_sigma)
        check_settings(k, a_local, a_global, chunk_size)
        self.k = k
        self.a_local, self.a_global = a_local, a_global
        self.region = _as_region(region, self.shape)
        self.chunk_size = chunk_size
        self.sigma_scale, self.min_sigma = float(sigma_scale), float(min_sigma)

    @property
    def rank(self) -> int:
        """r, the number of dimensions of W (output rank + input rank)."""
        return len(self.shape)

    def extra_repr(self) -> str:
        return (
            f"in_shape={self.in_shape}, out_shape={self.out_shape}, k={self.k}, a_local={self.a_local}, "
            f"a_global={self.a_global}, region={self.region}, chunk_size={self.chunk_size}"
        )

    def index_space(self, raw_means: torch.Tensor, raw_sigmas: torch.Tensor):
        """Map raw parameters to means in [0, size-1] and per-dimension standard deviations.

        raw_means (..., k, r); raw_sigmas (..., k) or (..., k, r). Returns two (..., k, r) tensors.
        """
        return index_space(raw_means, raw_sigmas, self.shape, self.sigma_scale, self.min_sigma)

    def sample_weights(self, raw_means, raw_sigmas, values, generator=None):
        """Sample one sparse W per instance: ``(indices (b, m, r), weights (b, m))``.

        m = k * chunk * S tuples per instance; repeated tuples within a pool carry weight 0.
        """
        b = raw_means.shape[0]
        self._check_parameters(b, raw_means, raw_sigmas, values)
        means, sigmas = self.index_space(raw_means, raw_sigmas)
        chunk = self.k if self.chunk_size is None else self.chunk_size
        indices, log_density = sample_log_density(
            means, sigmas, self.shape, a_local=self.a_local, a_global=self.a_global,
            region=self.region, chunk_size=chunk, generator=generator,
        )
        q = indices.shape[1]
        weights = split_log_density(log_density, values.reshape(b, q, chunk).to(log_density.dtype)).to(values.dtype)
        m = indices.shape[1] * indices.shape[2]  # explicit, so an empty batch (b = 0) reshapes too
        return indices.reshape(b, m, self.rank), weights.reshape(b, m)

    def _check_input(self, x, *tensors):
        if not torch.is_tensor(x) or tuple(x.shape[1:]) != self.in_shape:
            got = tuple(x.shape) if torch.is_tensor(x) else type(x).__name__
            raise ValueError(f"input must have shape (batch, *{self.in_shape}), got {got}")
        if any(t.is_meta for t in (x, *tensors, *self.parameters()) if torch.is_tensor(t)):
            raise ValueError("sparse layers need real tensors, got a meta tensor (no data): move the layer and its "
                             "input to 'cpu' or 'cuda' first")

    def transform(self, x, raw_means, raw_sigmas, values, generator=None):
        """``y = W . x`` for the W sampled from these raw parameters (one per instance)."""
        self._check_input(x, raw_means, raw_sigmas, values)
        indices, weights = self.sample_weights(raw_means, raw_sigmas, values, generator)
        return contract(indices, weights.to(x.dtype), x, self.out_shape, validate=False)

    def _check_parameters(self, b, raw_means, raw_sigmas, values):
        k, r = self.k, self.rank
        if tuple(raw_means.shape) != (b, k, r):
            raise ValueError(f"means must have shape (batch, k, r) = ({b}, {k}, {r}), got {tuple(raw_means.shape)}")
        if tuple(raw_sigmas.shape) not in ((b, k), (b, k, r)):
            raise ValueError(f"sigmas must have shape ({b}, {k}) or ({b}, {k}, {r}), got {tuple(raw_sigmas.shape)}")
        if tuple(values.shape) != (b, k):
            raise ValueError(f"values must have shape ({b}, {k}), got {tuple(values.shape)}")
        if not values.is_floating_point():
            raise ValueError(f"values must be floating point, got {values.dtype}: the proportions split them")
        if not bool(torch.isfinite(values).all()):
            raise ValueError("values contain NaN or inf; check the learning rate or the source network")


class SparseLayer(SparseTransform):
    """A sparse layer with k learned Gaussians (means, sigmas) and k learned or fixed values.

    forward(x: (b, *in_shape)) -> (b, *out_shape). A fresh set of integer tuples is sampled
    for every instance of every batch; gradients reach means and sigmas through the
    proportions and values directly.

    Args:
        in_shape, out_shape: shapes of one input and one output; W has out_shape + in_shape.
        k: number of Gaussians (nonzero weights the layer aims for).
        a_local, a_global, region, chunk_size: sampling settings, see :func:`ashlib.sample`.
            The default ``chunk_size=None`` pools all k Gaussians, as the paper's Algorithm 1
            does; it learns fastest but costs O(batch * k**2 * S) memory. Above a few hundred
            Gaussians pass a small chunk size (e.g. 1 to 16) to keep memory linear in k.
        fix_values: keep every value at 1 (a buffer) instead of learning it.
        sigma_scale, min_sigma: sigma = softplus(raw + 2) * size * sigma_scale + min_sigma.
        shared_draws: None (default, as the paper): every instance of a batch gets its own draw
            of integer tuples. An int G: the batch draws only G sets of tuples and instance i
            uses draw ``i % G``. Every instance of a non-adaptive layer has the same Gaussians,
            so this only lowers the number of independent draws behind one gradient step, and
            it divides the sampling cost (the O(b * k * chunk_size * S) part) by b / G.
    """

    def __init__(self, in_shape, out_shape, k, *, a_local, a_global, region, chunk_size=None,
                 fix_values=False, sigma_scale=0.1, min_sigma=0.1, shared_draws: int | None = None):
        super().__init__(in_shape, out_shape, k, a_local=a_local, a_global=a_global, region=region,
                         chunk_size=chunk_size, sigma_scale=sigma_scale, min_sigma=min_sigma)
        if shared_draws is not None and (isinstance(shared_draws, bool) or not isinstance(shared_draws, int)
                                         or shared_draws < 1):
            raise ValueError(f"shared_draws must be None (one draw per instance) or an int >= 1, got {shared_draws!r}")
        self.shared_draws = shared_draws
        self.fix_values = bool(fix_values)
        self.means = nn.Parameter(torch.randn(k, self.rank))
        self.sigmas = nn.Parameter(torch.zeros(k))
        if self.fix_values:
            self.register_buffer("values", torch.ones(k))
        else:
            self.values = nn.Parameter(torch.randn(k))

    def gaussians(self):
        """The k means and standard deviations in index space, each (k, r) (for plots and evaluation)."""
        return self.index_space(self.means, self.sigmas)

    def batch_parameters(self, batch_size: int):
        """The raw (means, sigmas, values) repeated for each instance: (b, k, r), (b, k), (b, k)."""
        return tuple(p.unsqueeze(0).expand(batch_size, *p.shape) for p in (self.means, self.sigmas, self.values))

    def extra_repr(self) -> str:
        shared = "" if self.shared_draws is None else f", shared_draws={self.shared_draws}"
        return super().extra_repr() + shared

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        b = x.shape[0] if torch.is_tensor(x) and x.dim() > 0 else 0
        if self.shared_draws is None or self.shared_draws >= b:
            return self.transform(x, *self.batch_parameters(b), generator)
        self._check_input(x)
        draws = self.shared_draws
        indices, weights = self.sample_weights(*self.batch_parameters(draws), generator)
        n_out, n_in = math.prod(self.out_shape), math.prod(self.in_shape)
        if draws == 1 and n_out * n_in <= indices.shape[1]:
            # one W for the batch, with fewer cells than sampled tuples: add the tuples up into a
            # dense W once and multiply, instead of contracting b * m tuples
            cells = flat_index(indices[0], self.shape, validate=False)  # sampled inside W
            W = weights.new_zeros(n_out * n_in).index_add(0, cells, weights[0])
            y = x.reshape(b, n_in) @ W.view(n_out, n_in).to(x.dtype).T
            return y.view(b, *self.out_shape)
        which = torch.arange(b, device=indices.device) % draws  # instance i uses draw i % G
        return contract(indices[which], weights[which].to(x.dtype), x, self.out_shape, validate=False)


class HyperLayer(SparseTransform):
    """An adaptive sparse layer: a source network gives each instance its own W.

    Pass ``source``, a module mapping the source input to ``(means, sigmas, values)`` of shapes
    (b, k, r), (b, k) or (b, k, r), and (b, k), all raw (before sigmoid/softplus), or
    subclass and override :meth:`hyper`. Works for any ranks of input and output.

    ``layer(x)`` feeds x itself to the source (attention, sorting: the input decides its own W);
    ``layer(x, context)`` feeds ``context`` instead and contracts x alone, for problems where what
    decides W is not the thing transformed (a pointer: the cue picks which entry of x to read).
    Concatenating the cue to x would let W read the cue's own entries too.

    ``sigma_rate`` (default 0.03) multiplies the source's raw sigma before the mapping:
    ``sigma = softplus(sigma_rate * raw + 2) * size * sigma_scale + min_sigma``. A fresh source
    starts every Gaussian wide (raw ~ 0: about a fifth of the row) and, with Adam, its sigmas then
    move about 1/sigma_rate times slower than its means: they narrow once the means have found
    their columns rather than before, when the search would stop for good (studies/pointer:
    a pointer over 32 columns learned on 0 of 5 seeds with ``sigma_rate=1``). A source that must
    reach a small sigma from raw ~ 0 now needs a raw sigma about 1/sigma_rate times larger; pass
    ``sigma_rate=1`` for the raw sigma as :class:`SparseLayer` reads it.
    """

    def __init__(self, in_shape, out_shape, k, source: nn.Module | None = None, *, a_local, a_global,
                 region, chunk_size=None, sigma_scale=0.1, min_sigma=0.1, sigma_rate=SIGMA_RATE):
        super().__init__(in_shape, out_shape, k, a_local=a_local, a_global=a_global, region=region,
                         chunk_size=chunk_size, sigma_scale=sigma_scale, min_sigma=min_sigma)
        if source is not None and not callable(source):
            raise ValueError(f"source must be a module or function x -> (means, sigmas, values), "
                             f"got {type(source).__name__}")
        if not is_finite_positive(sigma_rate):
            raise ValueError(f"sigma_rate must be a finite number > 0 (the source's raw sigma is multiplied by it; "
                             f"{SIGMA_RATE} by default, 1 for the raw sigma as SparseLayer reads it), got {sigma_rate!r}")
        self.source = source
        self.sigma_rate = float(sigma_rate)

    def index_space(self, raw_means: torch.Tensor, raw_sigmas: torch.Tensor):
        """As :meth:`SparseTransform.index_space`, with the raw sigma multiplied by ``sigma_rate`` first."""
        return index_space(raw_means, raw_sigmas * self.sigma_rate, self.shape, self.sigma_scale, self.min_sigma)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", sigma_rate={self.sigma_rate}"

    def hyper(self, x: torch.Tensor):
        """Raw (means, sigmas, values) per instance from the source input (``context`` when
        :meth:`forward` gets one, else x); override or pass ``source``."""
        if self.source is None:
            raise NotImplementedError("HyperLayer needs a source network: pass source=... or override hyper()")
        return self.source(x)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None,
                generator: torch.Generator | None = None) -> torch.Tensor:
        """y = W x with W from the source network: W is made from ``context`` if given, else from x."""
        if context is None:
            params = self.hyper(x)
        else:
            _check_context(x, context)
            params = self.hyper(context)
        if not isinstance(params, (tuple, list)) or len(params) != 3 or not all(torch.is_tensor(p) for p in params):
            got = (f"{len(params)} tensors" if isinstance(params, (tuple, list)) else type(params).__name__)
            raise ValueError(f"the source network must return three tensors (means (b, k, r), sigmas (b, k) or "
                             f"(b, k, r), values (b, k)), got {got}")
        means, sigmas, values = params
        return self.transform(x, means, sigmas, values, generator)


def _check_context(x, context) -> None:
    """A context is one tensor per instance of x, on x's device."""
    if isinstance(context, torch.Generator):
        raise TypeError("HyperLayer(x, context, generator): the second argument is the context; "
                        "pass the generator as generator=...")
    if not torch.is_tensor(context):
        raise TypeError(f"context must be a tensor with one row per instance of x, got {type(context).__name__}")
    if not torch.is_tensor(x) or x.dim() < 1:
        return  # the contraction reports a bad x
    if context.dim() < 1 or context.shape[0] != x.shape[0]:
        raise ValueError(f"context must have one row per instance of x: x has batch {x.shape[0]}, "
                         f"context has shape {tuple(context.shape)}")
    if context.device != x.device:
        raise ValueError(f"context is on {context.device} but x is on {x.device}: move both to one device")
