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

from . import relocation as reloc
from .config import is_finite_positive
from .contract import contract, to_dense as dense_from_tuples
from .indexing import as_shape, flat_index, tuples_of
from .sampling import _as_region, check_settings, sample_log_density

SIGMA_OFFSET = 2.0
"""Added to the raw sigma before the softplus (Algorithm 1), so a raw value of 0 starts wide."""

POOL_ALL_UP_TO = 64
"""``chunk_size="auto"`` (the default) pools all Gaussians (our reading of the paper's section 2.1;
its Algorithm 1 is ambiguous) when there are at most this many, and gives each Gaussian its own pool (``chunk_size=1``) above: whole-layer pooling costs
O(batch * k**2 * S), seconds per batch at k = 768, while each Gaussian's own pool is linear in k."""

SIGMA_RATE = 0.03
"""HyperLayer's default ``sigma_rate``: the source's raw sigma is multiplied by it before the offset
and the softplus, so that under an optimiser that moves every weight by about the learning rate
(Adam) the sigmas change about 30 times slower than the means. Without it the Gaussians of a fresh
source narrow before the means have found their columns and the search stops for good (a pointer
over 32 columns: 0 of 5 seeds learned; see studies/pointer/README.md)."""


def default_sampling(shape) -> tuple[int, int, tuple[int, ...]]:
    """``(a_local, a_global, region)`` for a W of this shape, following the paper's appendix A.1.

    A.1 uses (a_local, a_global) = (1, 2), (2, 2), (2, 8), (2, 10) for the n x n identity at
    n = 8, 16, 32, 64 and a region of log2 n per dimension. Scaled by the number of cells C of W:
    a_local 2; a_global 2 up to 256 cells, then log2(C) - 2 (8 at 1,024 cells, 10 at 4,096), at most
    16; region ceil(log2 size) per dimension, 1 along a dimension of size 1.
    """
    shape = as_shape(shape)
    cells = math.prod(shape)
    a_global = 2 if cells <= 256 else int(min(16, max(2, round(math.log2(cells)) - 2)))
    region = tuple(max(1, math.ceil(math.log2(size))) if size > 1 else 1 for size in shape)
    return 2, a_global, region


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
        a_local: int | None = None,
        a_global: int | None = None,
        region=None,
        chunk_size: int | str | None = "auto",
        sigma_scale: float = 0.1,
        min_sigma: float = 0.1,
    ):
        super().__init__()
        self.in_shape, self.out_shape, self.shape = check_layer(in_shape, out_shape, k, sigma_scale, min_sigma)
        defaults = default_sampling(self.shape)
        a_local = defaults[0] if a_local is None else a_local
        a_global = defaults[1] if a_global is None else a_global
        region = defaults[2] if region is None else region
        if isinstance(chunk_size, str) and chunk_size == "auto":
            chunk_size = None if k <= POOL_ALL_UP_TO else 1
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

    def _check_input(self, x, *tensors) -> int:
        """Check x is (batch, *in_shape, *features); return how many trailing feature dimensions it has."""
        n_in = len(self.in_shape)
        if not torch.is_tensor(x) or x.dim() < 1 + n_in or tuple(x.shape[1:1 + n_in]) != self.in_shape:
            got = tuple(x.shape) if torch.is_tensor(x) else type(x).__name__
            raise ValueError(f"input must have shape (batch, *{self.in_shape}) or (batch, *{self.in_shape}, *features) "
                             f"(trailing feature dimensions are carried along), got {got}")
        if any(t.is_meta for t in (x, *tensors, *self.parameters()) if torch.is_tensor(t)):
            raise ValueError("sparse layers need real tensors, got a meta tensor (no data): move the layer and its "
                             "input to 'cpu' or 'cuda' first")
        return x.dim() - 1 - n_in

    def transform(self, x, raw_means, raw_sigmas, values, generator=None):
        """``y = W . x`` for the W sampled from these raw parameters (one per instance)."""
        features = self._check_input(x, raw_means, raw_sigmas, values)
        indices, weights = self.sample_weights(raw_means, raw_sigmas, values, generator)
        return contract(indices, weights.to(x.dtype), x, self.out_shape, validate=False, feature_dims=features)

    def nearest(self, x, raw_means, raw_sigmas, values):
        """``y = W . x`` with each Gaussian's whole value on its nearest tuple (rounded mean): no sampling.

        The layers use it in ``eval()`` mode; it is the W that :meth:`to_dense` shows.
        """
        features = self._check_input(x, raw_means, raw_sigmas, values)
        b = raw_means.shape[0]
        self._check_parameters(b, raw_means, raw_sigmas, values)
        means, _ = self.index_space(raw_means, raw_sigmas)
        cells = means.detach().round().long()
        return contract(cells, values.to(x.dtype), x, self.out_shape, validate=False, feature_dims=features)

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

    forward(x: (b, *in_shape, *features)) -> (b, *out_shape, *features). In training mode a fresh
    set of integer tuples is sampled for every instance of every batch; gradients reach means and
    sigmas through the proportions and values directly. In ``eval()`` mode every Gaussian puts its
    value on its nearest tuple (the rounded W of :meth:`to_dense`), with no sampling. Trailing
    dimensions of x beyond ``in_shape`` are carried along (W acts on ``in_shape`` only).

    Args:
        in_shape, out_shape: shapes of one input and one output; W has out_shape + in_shape.
        k: number of Gaussians (nonzero weights the layer aims for).
        a_local, a_global, region: sampling settings, see :func:`ashlib.sample`; left out, they
            follow the paper's appendix A.1 scaled by the size of W (:func:`default_sampling`).
        chunk_size: Gaussians per pool (a divisor of k). ``None`` pools all k Gaussians (our reading of
            the paper's section 2.1), at O(batch * k**2 * S) time and memory; the default
            ``"auto"`` does so up to :data:`POOL_ALL_UP_TO` Gaussians and uses ``1`` above.
        fix_values: keep every value at 1 (a buffer) instead of learning it.
        init_means: (k, r) starting means in index space (cell coordinates; e.g. the diagonal), or
            None for ``sigmoid(N(0, 1)) * (size - 1)``, spread around the centre of W.
        init_values: learned values start here (default 1; ``"randn"`` for N(0, 1)). Starting at 1
            avoids the cancelling pairs and dead duplicates of signed starts (notebook 02).
        sigma_scale, min_sigma: sigma = softplus(raw + 2) * size * sigma_scale + min_sigma.
        shared_draws: None (default, as the paper): every instance of a batch gets its own draw
            of integer tuples. An int G: the batch draws only G sets of tuples and instance i
            uses draw ``i % G``. Every instance of a non-adaptive layer has the same Gaussians,
            so this only lowers the number of independent draws behind one gradient step, and
            it divides the sampling cost (the O(b * k * chunk_size * S) part) by b / G.
        relocate: let a Gaussian whose place is clearly harmful jump to a sampled tuple where the
            loss's gradient clearly wants its value (:mod:`ashlib.relocation`): means then find
            far targets that their own gradient cannot feel. ``relocate_margin`` (z-score on both
            sides, default 4) and ``relocate_confirm`` (batches in a row the place must be harmful,
            default 2) keep a correct mean from moving on noise. Moves happen during ``backward``;
            ``moves`` counts them.
    """

    def __init__(self, in_shape, out_shape, k, *, a_local=None, a_global=None, region=None, chunk_size="auto",
                 fix_values=False, init_means=None, init_values=1.0, sigma_scale=0.1, min_sigma=0.1,
                 shared_draws: int | None = None, relocate: bool = False, relocate_margin: float = reloc.MARGIN,
                 relocate_confirm: int = reloc.CONFIRM):
        super().__init__(in_shape, out_shape, k, a_local=a_local, a_global=a_global, region=region,
                         chunk_size=chunk_size, sigma_scale=sigma_scale, min_sigma=min_sigma)
        if shared_draws is not None and (isinstance(shared_draws, bool) or not isinstance(shared_draws, int)
                                         or shared_draws < 1):
            raise ValueError(f"shared_draws must be None (one draw per instance) or an int >= 1, got {shared_draws!r}")
        self.shared_draws = shared_draws
        self.fix_values = bool(fix_values)
        self.relocate = _check_relocation(relocate, relocate_margin, relocate_confirm)
        self.relocate_margin, self.relocate_confirm = float(relocate_margin), int(relocate_confirm)
        self.moves = 0
        self.register_buffer("harm_streak", torch.zeros(k, dtype=torch.long), persistent=False)
        if init_means is None:
            raw = torch.randn(k, self.rank)
        else:
            raw = reloc.raw_means_at(_check_init_means(init_means, k, self.shape), self.shape, torch.empty(0))
        self.means = nn.Parameter(raw)
        self.sigmas = nn.Parameter(torch.zeros(k))
        if self.fix_values:
            self.register_buffer("values", torch.ones(k))
        elif isinstance(init_values, str) and init_values == "randn":
            self.values = nn.Parameter(torch.randn(k))
        elif is_finite_number(init_values):
            self.values = nn.Parameter(torch.full((k,), float(init_values)))
        else:
            raise ValueError(f"init_values must be a finite number (where learned values start; 1 by default) or "
                             f"'randn', got {init_values!r}")

    def gaussians(self):
        """The k means and standard deviations in index space, each (k, r) (for plots and evaluation)."""
        return self.index_space(self.means, self.sigmas)

    def to_dense(self) -> torch.Tensor:
        """The rounded W: every value added into the cell its mean rounds to (shape out + in), the W of eval()."""
        means, _ = self.gaussians()
        return dense_from_tuples(means.detach().round().long(), self.values.detach(), self.shape)

    def batch_parameters(self, batch_size: int):
        """The raw (means, sigmas, values) repeated for each instance: (b, k, r), (b, k), (b, k)."""
        return tuple(p.unsqueeze(0).expand(batch_size, *p.shape) for p in (self.means, self.sigmas, self.values))

    def extra_repr(self) -> str:
        shared = "" if self.shared_draws is None else f", shared_draws={self.shared_draws}"
        return super().extra_repr() + shared + (", relocate=True" if self.relocate else "")

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        b = x.shape[0] if torch.is_tensor(x) and x.dim() > 0 else 0
        if not self.training:
            return self.nearest(x, *self.batch_parameters(b))
        features = self._check_input(x)
        draws = b if self.shared_draws is None else min(self.shared_draws, b)
        indices, weights = self.sample_weights(*self.batch_parameters(draws), generator)
        n_out, n_in = math.prod(self.out_shape), math.prod(self.in_shape)
        if draws == 1 and b > 1 and n_out * n_in <= indices.shape[1]:
            # one W for the batch, with fewer cells than sampled tuples: add the tuples up into a
            # dense W once and multiply, instead of contracting b * m tuples
            cells = flat_index(indices[0], self.shape, validate=False)  # sampled inside W
            W = weights.new_zeros(n_out * n_in).index_add(0, cells, weights[0]).view(n_out, n_in).to(x.dtype)
            if features:
                y = torch.einsum("oi,bif->bof", W, x.reshape(b, n_in, -1))
            else:
                y = x.reshape(b, n_in) @ W.T
            y = y.reshape(b, *self.out_shape, *x.shape[x.dim() - features:])
        elif draws == b:
            y = contract(indices, weights.to(x.dtype), x, self.out_shape, validate=False, feature_dims=features)
        else:
            which = torch.arange(b, device=indices.device) % draws  # instance i uses draw i % G
            y = contract(indices[which], weights[which].to(x.dtype), x, self.out_shape, validate=False,
                         feature_dims=features)
        if self.relocate and y.requires_grad and b > 1:
            y.register_hook(lambda grad_y: self._relocate(grad_y, x.detach(), indices.detach()))
        return y

    @torch.no_grad()
    def _relocate(self, grad_y, x, indices) -> None:
        """Move the Gaussians whose place is harmful to the sampled cells the loss wants most (see
        :mod:`ashlib.relocation`). Runs in the output's gradient hook, before the means' gradient."""
        r = self.rank
        means, sigmas = self.gaussians()
        nearest = means.round().long()
        values = self.values.detach()
        at_nearest = values * reloc.cell_gradients(grad_y, x, nearest, len(self.out_shape))
        harm = reloc.z_scores(at_nearest)
        self.harm_streak.add_(1).mul_(harm > self.relocate_margin)
        movable = reloc.movable(self.harm_streak >= self.relocate_confirm, harm, sigmas,
                                None if self.fix_values else values, self.relocate_margin)
        if not bool(movable.any()):
            return
        b = grad_y.shape[0]
        per_draw = indices.shape[1]
        draws = max(1, min(indices.shape[0], reloc.CANDIDATE_BUDGET // max(1, b * per_draw)))
        cells = reloc.unique_cells(indices[:draws].reshape(-1, r), self.shape, occupied=nearest)
        want = reloc.z_scores(-reloc.cell_gradients(grad_y, x, cells, len(self.out_shape)))
        who, where = reloc.plan_moves(values, harm, movable, cells, want, self.relocate_margin)
        if who.numel():
            self.means[who] = reloc.raw_means_at(where, self.shape, self.means)
            self.sigmas[who] = reloc.raw_sigma_settled(self.shape, self.sigma_scale, self.min_sigma, SIGMA_OFFSET)
            self.harm_streak[who] = 0
            self.moves += who.numel()


class HyperLayer(SparseTransform):
    """An adaptive sparse layer: a source network gives each instance its own W.

    Pass ``source``, a module mapping the source input to ``(means, sigmas, values)`` of shapes
    (b, k, r), (b, k) or (b, k, r), and (b, k), all raw (before sigmoid/softplus), or
    subclass and override :meth:`hyper`. Works for any ranks of input and output.

    ``layer(x)`` feeds x itself to the source (attention, sorting: the input decides its own W);
    ``layer(x, context)`` feeds ``context`` instead and contracts x alone, for problems where what
    decides W is not the thing transformed (a pointer: the cue picks which entry of x to read).
    Concatenating the cue to x would let W read the cue's own entries too.

    ``fix_values=True`` puts every value at 1 (the source's values, if it gives any, are ignored;
    it may then return just ``(means, sigmas)``). In ``eval()`` mode each Gaussian's value sits on
    its nearest tuple (no sampling); :meth:`to_dense` shows those W.

    ``sigma_rate`` (default 0.03) multiplies the source's raw sigma before the mapping:
    ``sigma = softplus(sigma_rate * raw + 2) * size * sigma_scale + min_sigma``. A fresh source
    starts every Gaussian wide (raw ~ 0: about a fifth of the row) and, with Adam, its sigmas then
    move about 1/sigma_rate times slower than its means: they narrow once the means have found
    their columns rather than before, when the search would stop for good (studies/pointer:
    a pointer over 32 columns learned on 0 of 5 seeds with ``sigma_rate=1``). A source that must
    reach a small sigma from raw ~ 0 now needs a raw sigma about 1/sigma_rate times larger; pass
    ``sigma_rate=1`` for the raw sigma as :class:`SparseLayer` reads it.

    ``relocate=True`` lets a Gaussian find a far target where the source's input repeats (a cue, a
    query: contexts that come back bit for bit). Per (context, cell) the layer adds up ``dL/dW``
    over the batches; when a sampled cell is clearly wanted (z-score above ``relocate_margin`` and
    above what that many noise cells would reach) and the Gaussian's own cell is not, the cell becomes
    that context's target, and an auxiliary gradient (``relocate_weight`` per instance, in cell
    units) pulls the source's mean onto it and narrows its sigma, on top of the loss's own gradient.
    Inputs that never repeat gather no evidence, so nothing moves. ``moves`` counts the targets set.
    See :mod:`ashlib.relocation`; the memory is not part of the ``state_dict``.
    """

    def __init__(self, in_shape, out_shape, k, source: nn.Module | None = None, *, a_local=None, a_global=None,
                 region=None, chunk_size="auto", sigma_scale=0.1, min_sigma=0.1, sigma_rate=SIGMA_RATE,
                 fix_values=False, relocate=False, relocate_margin=reloc.MARGIN, relocate_weight=1.0):
        super().__init__(in_shape, out_shape, k, a_local=a_local, a_global=a_global, region=region,
                         chunk_size=chunk_size, sigma_scale=sigma_scale, min_sigma=min_sigma)
        self.relocate = _check_relocation(relocate, relocate_margin, 1)
        if not is_finite_positive(relocate_weight):
            raise ValueError(f"relocate_weight must be a finite number > 0 (scale of the pull toward a target; "
                             f"1 by default), got {relocate_weight!r}")
        self.relocate_margin, self.relocate_weight = float(relocate_margin), float(relocate_weight)
        self.moves = 0
        self._evidence = reloc.ContextEvidence()
        if source is not None and not callable(source):
            raise ValueError(f"source must be a module or function x -> (means, sigmas, values), "
                             f"got {type(source).__name__}")
        if not is_finite_positive(sigma_rate):
            raise ValueError(f"sigma_rate must be a finite number > 0 (the source's raw sigma is multiplied by it; "
                             f"{SIGMA_RATE} by default, 1 for the raw sigma as SparseLayer reads it), got {sigma_rate!r}")
        if not isinstance(fix_values, bool):
            raise ValueError(f"fix_values must be True or False, got {fix_values!r}")
        self.source = source
        self.sigma_rate = float(sigma_rate)
        self.fix_values = fix_values

    def index_space(self, raw_means: torch.Tensor, raw_sigmas: torch.Tensor):
        """As :meth:`SparseTransform.index_space`, with the raw sigma multiplied by ``sigma_rate`` first."""
        return index_space(raw_means, raw_sigmas * self.sigma_rate, self.shape, self.sigma_scale, self.min_sigma)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", sigma_rate={self.sigma_rate}" + (", fix_values=True" if self.fix_values else "")

    def hyper(self, x: torch.Tensor):
        """Raw (means, sigmas, values) per instance from the source input (``context`` when
        :meth:`forward` gets one, else x); override or pass ``source``."""
        if self.source is None:
            raise NotImplementedError("HyperLayer needs a source network: pass source=... or override hyper()")
        return self.source(x)

    def parameters_for(self, x: torch.Tensor, context: torch.Tensor | None = None):
        """The raw (means, sigmas, values) the source gives for this input (values 1 if fixed)."""
        if context is None:
            params = self.hyper(x)
        else:
            _check_context(x, context)
            params = self.hyper(context)
        n = len(params) if isinstance(params, (tuple, list)) else 0
        if n not in ((2, 3) if self.fix_values else (3,)) or not all(torch.is_tensor(p) for p in params):
            got = f"{len(params)} tensors" if isinstance(params, (tuple, list)) else type(params).__name__
            raise ValueError(f"the source network must return three tensors (means (b, k, r), sigmas (b, k) or "
                             f"(b, k, r), values (b, k)){' or two (fix_values=True)' if self.fix_values else ''}, "
                             f"got {got}")
        means, sigmas = params[0], params[1]
        if self.fix_values:
            return means, sigmas, means.new_ones(means.shape[:-1])
        return means, sigmas, params[2]

    def to_dense(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """The rounded W of every instance, (b, *out_shape, *in_shape): each value on its mean's cell."""
        raw_means, raw_sigmas, values = self.parameters_for(x, context)
        means, _ = self.index_space(raw_means, raw_sigmas)
        cells = means.detach().round().long()
        b = cells.shape[0]
        flat = flat_index(cells, self.shape, validate=False) + torch.arange(b, device=cells.device).unsqueeze(1) * math.prod(self.shape)
        W = values.detach().new_zeros(b * math.prod(self.shape)).index_add(0, flat.reshape(-1), values.detach().reshape(-1))
        return W.view(b, *self.shape)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None,
                generator: torch.Generator | None = None) -> torch.Tensor:
        """y = W x with W from the source network: W is made from ``context`` if given, else from x."""
        means, sigmas, values = self.parameters_for(x, context)
        if not self.training:
            return self.nearest(x, means, sigmas, values)
        b = means.shape[0]
        if not (self.relocate and torch.is_grad_enabled() and b > 1):
            return self.transform(x, means, sigmas, values, generator)
        features = self._check_input(x, means, sigmas, values)
        indices, weights = self.sample_weights(means, sigmas, values, generator)
        y = contract(indices, weights.to(x.dtype), x, self.out_shape, validate=False, feature_dims=features)
        index_means, index_sigmas = self.index_space(means, sigmas)
        keys = reloc.context_keys(x if context is None else context)
        return _Relocation.apply(y, index_means, index_sigmas, (self, x.detach(), indices.detach(), keys,
                                                                 values.detach()))

    @torch.no_grad()
    def _relocate(self, grad_y, x, indices, keys, means, sigmas, values):
        """Add this batch's evidence per (context, cell), give movable Gaussians targets, and return
        the auxiliary gradients that pull each instance's means to its context's targets and narrow its
        sigmas there (see :mod:`ashlib.relocation`)."""
        b, k = means.shape[:2]
        shape, memory = self.shape, self._evidence
        n_cells = math.prod(shape)
        nearest = means.round().long()
        cells = torch.cat([indices, nearest], 1)
        flat = flat_index(cells, shape, validate=False)
        g = reloc.instance_cell_gradients(grad_y, x, cells, len(self.out_shape))
        pairs, where = torch.unique(torch.arange(b, device=flat.device).unsqueeze(1) * n_cells + flat,
                                    return_inverse=True)
        pick = torch.empty_like(pairs).scatter_(0, where.flatten(), torch.arange(where.numel(), device=flat.device))
        inst, cell = pairs // n_cells, pairs % n_cells
        memory.add(reloc.pair_ids(keys[inst], cell), g.flatten()[pick])

        # one decision per distinct context: its instances share W
        ukeys, kinv = torch.unique(keys, return_inverse=True)
        rep = torch.empty_like(ukeys).scatter_(0, kinv, torch.arange(b, device=keys.device))
        n_keys = ukeys.numel()
        m, s, v = means[rep], sigmas[rep], values[rep]
        near = flat_index(m.round().long(), shape, validate=False)  # (K, k)
        sign = torch.where(v >= 0, 1.0, -1.0).to(torch.float64)
        gauss = torch.arange(k, device=keys.device)
        gauss_ids = reloc.pair_ids(ukeys.unsqueeze(1), gauss)  # (K, k)
        harm = sign * memory.z(reloc.pair_ids(ukeys.unsqueeze(1), near))
        target = memory.target(gauss_ids)  # flat target cell or -1
        travelling = (target >= 0) & (target != near)
        searching = ~(s < reloc.SETTLED).all(-1)
        if not self.fix_values:
            searching |= v.abs() < reloc.IDLE * v.abs().median()
        margin = self.relocate_margin
        movable = ~travelling & ((harm > margin) | (searching & (harm > -margin)))
        if bool(movable.any()):
            # candidates: the (context, cell) pairs this batch sampled, not stood on or aimed at
            cand = torch.unique(kinv[inst] * n_cells + cell)
            ckey, ccell = cand // n_cells, cand % n_cells
            key_rows = torch.arange(n_keys, device=keys.device).unsqueeze(1) * n_cells
            taken = torch.cat([(key_rows + near).flatten(), (key_rows + target)[target >= 0]])
            free = ~torch.isin(cand, taken)
            ckey, ccell = ckey[free], ccell[free]
            want = -memory.z(reloc.pair_ids(ukeys[ckey], ccell))
            bar = max(margin, math.sqrt(2 * math.log(max(2, ckey.numel()))))
            for side in (1.0, -1.0):  # two signs, not a loop over Gaussians
                gk, gj = torch.nonzero(movable & (sign == side), as_tuple=True)
                ok = side * want > bar
                if gk.numel() == 0 or not bool(ok.any()):
                    continue
                ck, cc, cw = ckey[ok], ccell[ok], side * want[ok]
                g_rank = reloc.ranks_within(gk, harm[gk, gj])
                c_rank = reloc.ranks_within(ck, cw)
                top = int(max(g_rank.max(), c_rank.max())) + 1
                g_code, c_code = gk * top + g_rank, ck * top + c_rank
                order = torch.argsort(c_code)
                pos = torch.searchsorted(c_code[order], g_code).clamp_max(c_code.numel() - 1)
                hit = c_code[order][pos] == g_code
                if bool(hit.any()):
                    memory.set_targets(gauss_ids[gk[hit], gj[hit]], cc[order][pos[hit]])
                    self.moves += int(hit.sum())

        # auxiliary gradients toward each instance's targets: a Huber pull in cell units (weight per
        # instance from a cell away, linear within), on the mean and on a sigma wider than settled
        target = memory.target(reloc.pair_ids(keys.unsqueeze(1), gauss))
        has = target >= 0
        tcell = tuples_of(target.clamp_min(0), shape)  # (b, k, r)
        weight = self.relocate_weight / b
        grad_means = torch.where(has.unsqueeze(-1), (means - tcell).clamp(-1, 1), 0.0) * weight
        aim = (min(self.min_sigma, reloc.SETTLED) + reloc.SETTLED) / 2
        grad_sigmas = torch.where(has.unsqueeze(-1), (sigmas - aim).clamp(0, 1), 0.0) * weight
        return grad_means, grad_sigmas


class _Relocation(torch.autograd.Function):
    """Identity on y; its backward runs HyperLayer's relocation with dL/dy and adds the auxiliary
    gradients to the index-space means and sigmas (and so to the source that made them)."""

    @staticmethod
    def forward(ctx, y, means, sigmas, extra):
        ctx.extra = extra
        ctx.save_for_backward(means.detach(), sigmas.detach())
        return y.clone()

    @staticmethod
    def backward(ctx, grad_y):
        layer, x, indices, keys, values = ctx.extra
        means, sigmas = ctx.saved_tensors
        grad_means, grad_sigmas = layer._relocate(grad_y, x, indices, keys, means, sigmas, values)
        return grad_y, grad_means.to(means.dtype), grad_sigmas.to(sigmas.dtype), None


def is_finite_number(value) -> bool:
    """A finite int or float that is not a bool."""
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)


def _check_relocation(relocate, margin, confirm) -> bool:
    if not isinstance(relocate, bool):
        raise ValueError(f"relocate must be True or False, got {relocate!r}")
    if not is_finite_positive(margin):
        raise ValueError(f"relocate_margin must be a finite number > 0 (a z-score; {reloc.MARGIN} by default), "
                         f"got {margin!r}")
    if isinstance(confirm, bool) or not isinstance(confirm, int) or confirm < 1:
        raise ValueError(f"relocate_confirm must be an int >= 1 (batches in a row; {reloc.CONFIRM} by default), "
                         f"got {confirm!r}")
    return relocate


def _check_init_means(init_means, k, shape) -> torch.Tensor:
    """init_means as a float (k, r) tensor inside W, or a ValueError naming what is wrong."""
    try:
        means = torch.as_tensor(init_means, dtype=torch.float32)
    except (TypeError, ValueError, RuntimeError) as err:
        raise ValueError(f"init_means must be a (k, r) = ({k}, {len(shape)}) array of index-space means, "
                         f"got {type(init_means).__name__}") from err
    if tuple(means.shape) != (k, len(shape)):
        raise ValueError(f"init_means must have shape (k, r) = ({k}, {len(shape)}), got {tuple(means.shape)}")
    upper = torch.tensor(shape, dtype=means.dtype) - 1
    if not bool(torch.isfinite(means).all()) or bool((means < 0).any()) or bool((means > upper).any()):
        raise ValueError(f"init_means must be finite and inside W of shape {shape}: coordinate d in [0, shape[d] - 1]")
    return means


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
