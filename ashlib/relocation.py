"""Means that relocate: a Gaussian jumps to a sampled tuple where the loss says it is wanted.

Why: a mean's own gradient reaches it through the proportions, and a tuple more than about two
sigmas away has a proportion near zero, so a mean cannot feel a far target (studies/pointer).
Yet every tuple the layer samples carries a weight, and the loss's gradient with respect to that
weight, ``dL/dW[t]``, is as large for a far tuple as for a near one. This module turns those
gradients into moves, in the spirit of RigL (Evci et al., "Rigging the Lottery", ICML 2020: grow a
connection where the gradient is large), applied to the paper's Gaussians.

The rule, per training batch (all statistics over the batch's instances, as z-scores: the
batch mean of a per-instance quantity over its standard error):

* **Who may move.** With value v at its nearest cell c, the place is *harmful* when
  ``z(v * dL/dW[c]) > margin`` on ``confirm`` batches in a row: the loss falls as that weight
  shrinks. A Gaussian still wide (sigma above :data:`SETTLED` somewhere), or with a learned value
  shrunk below ``IDLE`` times the median, is still searching and may move unless its own cell is
  clearly wanted. A settled mean on its right cell is not harmful, so noise alone must pass the
  margin ``confirm`` times running to move it.
* **Where it may go.** A cell the batch sampled anyway, that no Gaussian stands on, is a target
  for a value of sign s when ``z(-s * dL/dW[t])`` passes the margin and ``sqrt(2 ln N)`` for N
  candidate cells (about the largest z-score pure noise reaches among them).
* **One Gaussian per target.** The most harmful Gaussians take the most wanted cells, one each;
  a moved Gaussian's mean is set on its cell and its sigma narrowed, so it is settled there.

Everything is vectorised over Gaussians and candidate cells; the cost is a few gathers over
(instances x cells), capped by :data:`CANDIDATE_BUDGET`.

A :class:`~ashlib.HyperLayer` has one W per instance, so the same test runs over the batches
instead: :class:`ContextEvidence` sums ``dL/dW`` per (context, cell) wherever the source's input
repeats, and a move sets a target toward which an auxiliary gradient pulls the source (below).
"""

from __future__ import annotations

import math

import torch

from .indexing import flat_index, tuples_of

MARGIN = 4.0
"""Default z-score a move needs, on both sides (harm where the Gaussian is, want where it goes)."""

CONFIRM = 2
"""Default number of batches in a row a Gaussian's place must be harmful before it moves."""

IDLE = 0.1
"""Learned values below this fraction of the median magnitude count as idle (free to move)."""

SETTLED = 0.5
"""A Gaussian whose sigma is below this (index units) in every dimension counts as settled: nearly
all of its value lies on its nearest cell, so only evidence of harm moves it."""

CANDIDATE_BUDGET = 1 << 22
"""At most this many (instance, candidate cell) products per batch: candidates come from as many
instances' draws as fit (all of them for small layers, at least one)."""


def cell_gradients(grad_y: torch.Tensor, x: torch.Tensor, cells: torch.Tensor, out_rank: int) -> torch.Tensor:
    """Per-instance ``dL/dW[cell]`` for a W shared by the batch: (b, N).

    ``grad_y`` (b, *out_shape, *features), x (b, *in_shape, *features), cells (N, r) with the
    first ``out_rank`` coordinates in the output. For ``y[b, o] = sum W[o, i] x[b, i]`` the
    gradient of instance b is ``grad_y[b, o] . x[b, i]`` (a dot product over trailing features).
    """
    b = grad_y.shape[0]
    out_shape = tuple(grad_y.shape[1:1 + out_rank])
    in_rank = cells.shape[1] - out_rank
    in_shape = tuple(x.shape[1:1 + in_rank])
    n_features = math.prod(grad_y.shape[1 + out_rank:])
    rows = flat_index(cells[:, :out_rank], out_shape, validate=False)
    cols = flat_index(cells[:, out_rank:], in_shape, validate=False)
    gy = grad_y.reshape(b, math.prod(out_shape), n_features)
    xs = x.reshape(b, math.prod(in_shape), n_features).to(gy.dtype)
    if n_features == 1:
        return gy[:, rows, 0] * xs[:, cols, 0]
    return (gy[:, rows] * xs[:, cols]).sum(-1)


def z_scores(samples: torch.Tensor) -> torch.Tensor:
    """Batch mean over its standard error, per column of ``samples`` (b, N); 0 where b < 2."""
    b = samples.shape[0]
    if b < 2:
        return samples.new_zeros(samples.shape[1:])
    var, mean = torch.var_mean(samples, dim=0)
    return mean * math.sqrt(b) / var.sqrt().clamp_min(torch.finfo(var.dtype).tiny)


def movable(harmful: torch.Tensor, harm: torch.Tensor, sigmas: torch.Tensor, values, margin: float) -> torch.Tensor:
    """Which Gaussians may move this batch, (k,) bool.

    harmful (k,): their place has been harmful on enough batches in a row; harm (k,): this batch's
    z-score of harm at the nearest cell (below ``-margin``: the loss clearly wants the weight
    there); sigmas (k, r); values (k,) if learned, else None.

    A *settled* Gaussian (sigma below :data:`SETTLED` in every dimension: its value sits on its
    nearest cell) moves only when harmful. One that is still wide, or whose learned value has
    shrunk to nothing (idle, as RigL drops small weights), is searching: it may move unless its own
    cell is clearly wanted, so an idle value just moved to a wanted cell stays there and grows.
    (With learned values, harm can also mean a value that is merely too large; such Gaussians
    move too, which costs moves: see studies/relocate.)
    """
    settled = (sigmas < SETTLED).all(-1)
    unwanted = harm > -margin  # the loss does not clearly want this Gaussian's weight where it is
    searching = ~settled
    if values is not None:
        searching |= values.abs() < IDLE * values.abs().median()
    return harmful | (searching & unwanted)


def plan_moves(values: torch.Tensor, harm: torch.Tensor, movable: torch.Tensor, cells: torch.Tensor,
               want: torch.Tensor, margin: float):
    """Pair movable Gaussians with wanted cells: ``(gaussians (M,), cells (M, r))``.

    values (k,), harm (k,) z-scores of harm, movable (k,) bool; cells (N, r) distinct candidate
    cells and want (N,) their signed z-scores (> 0: positive weight wanted), which must pass both
    ``margin`` and the largest z-score N noise cells would reach. Within each sign the most harmful
    Gaussian takes the most wanted cell, the next the next, and so on.
    """
    chosen, targets = [], []
    # Among N cells of pure noise the largest z-score is about sqrt(2 ln N): a wanted cell must
    # stand above that too, or a large layer would send its Gaussians after noise every batch.
    bar = max(margin, math.sqrt(2 * math.log(max(2, want.numel()))))
    for sign in (1.0, -1.0):  # two signs, not a loop over Gaussians
        side = movable & ((values >= 0) if sign > 0 else (values < 0))
        who = torch.nonzero(side).squeeze(1)
        where = torch.nonzero(sign * want > bar).squeeze(1)
        m = min(who.numel(), where.numel())
        if m == 0:
            continue
        who = who[torch.argsort(harm[who], descending=True)[:m]]
        where = where[torch.argsort(sign * want[where], descending=True)[:m]]
        chosen.append(who)
        targets.append(cells[where])
    if not chosen:
        return values.new_zeros(0, dtype=torch.long), cells.new_zeros(0, cells.shape[1])
    return torch.cat(chosen), torch.cat(targets)


def raw_means_at(cells: torch.Tensor, shape, like: torch.Tensor) -> torch.Tensor:
    """Raw means (M, r) that the layers' ``sigmoid(raw) * (size - 1)`` maps onto ``cells`` (M, r).

    The end cells are approached to a quarter cell (sigmoid never reaches 0 or 1); a dimension of
    size 1 gets raw 0 (every raw mean maps to index 0 there).
    """
    sizes = torch.tensor(shape, dtype=like.dtype, device=like.device)
    span = (sizes - 1).clamp_min(1)
    p = (cells.to(like.dtype) / span).clamp(0.25 / span, 1 - 0.25 / span)
    return torch.where(sizes > 1, torch.logit(p), torch.zeros_like(p))


def raw_sigma_settled(shape, sigma_scale: float, min_sigma: float, offset: float) -> float:
    """The raw sigma (as SparseLayer maps it) that makes a moved Gaussian settled: sigma
    ``(min_sigma + SETTLED) / 2`` along W's largest dimension, less along the others. A move is
    made on strong evidence, so the Gaussian stays on its new cell unless that cell proves harmful."""
    target = (min(min_sigma, SETTLED) + SETTLED) / 2
    y = max(target - min_sigma, 1e-6) / (max(shape) * sigma_scale)
    return math.log(math.expm1(y)) - offset  # softplus(raw + offset) = y


def unique_cells(tuples: torch.Tensor, shape, occupied: torch.Tensor | None = None) -> torch.Tensor:
    """The distinct tuples among ``tuples`` (N, r), as (N', r), leaving out the ``occupied`` ones
    (the Gaussians' nearest cells: a second Gaussian on a cell adds nothing a value could not)."""
    keys = torch.unique(flat_index(tuples, shape, validate=False))
    if occupied is not None:
        keys = keys[~torch.isin(keys, flat_index(occupied, shape, validate=False))]
    return tuples_of(keys, shape)



# --- HyperLayer: evidence kept per context across batches -------------------------------------
#
# A HyperLayer's W differs per instance, so one batch holds no sample of instances behind one
# cell. But where the source's input (the context) repeats, as a cue or a query does, every
# instance with the same context has the same W: the evidence for a cell can be added up over the
# batches in which that context came back. The memory below keeps, per (context, cell), the count,
# sum and sum of squares of dL/dW; a context that never repeats never gathers enough evidence to
# move anything. A move sets a *target* for that context's Gaussian, and the source is trained
# toward it by an auxiliary gradient (the mean pulled onto the target cell, and the sigma narrowed
# once it is there), since a HyperLayer has no mean of its own to set.

MIN_COUNT = 8
"""A (context, cell) pair needs this many observations before its z-score counts."""

MEMORY_BUDGET = 1 << 20
"""At most this many (context, cell) pairs are remembered; the least recently seen go first."""

_MIX = -7046029254386353131  # an odd 64-bit constant (golden ratio): spreads context keys over int64


def context_keys(source_input: torch.Tensor) -> torch.Tensor:
    """One int64 key per instance (b,), equal exactly when the instances' inputs are bit-for-bit equal
    (up to a 64-bit hash collision, about 2**-64 per pair). The sum of per-element products wraps
    modulo 2**64, so it is exact and does not depend on the order of the additions."""
    flat = source_input.detach()
    if flat.is_complex():
        flat = torch.view_as_real(flat)
    flat = flat.reshape(flat.shape[0], -1).contiguous()
    if flat.is_floating_point():  # the bit pattern, so equal floats give equal keys
        flat = flat.view({8: torch.int64, 4: torch.int32, 2: torch.int16}[flat.element_size()])
    flat = flat.long()
    gen = torch.Generator().manual_seed(flat.shape[1])
    coefs = torch.randint(-(1 << 62), 1 << 62, (flat.shape[1],), generator=gen).mul_(2).add_(1).to(flat.device)
    return (flat * coefs).sum(1) * _MIX + flat.shape[1]


def pair_ids(keys: torch.Tensor, cells: torch.Tensor) -> torch.Tensor:
    """A 64-bit id per (context key, flat cell or Gaussian index) pair (wrapping arithmetic)."""
    return keys * _MIX + cells


class ContextEvidence:
    """Running per-(context, cell) statistics of ``dL/dW`` over the batches, and each (context,
    Gaussian)'s target cell. Plain tensors, sorted by id; not part of the module's state_dict."""

    def __init__(self):
        self.ids = self.count = self.total = self.squares = self.seen = None
        self.target_ids = self.targets = None
        self.step = 0

    def add(self, ids: torch.Tensor, grads: torch.Tensor) -> None:
        """Add one observation ``grads`` (N,) per distinct pair id (N,)."""
        self.step += 1
        g = grads.double()
        if self.ids is None:
            self.ids, self.count, self.total, self.squares = ids.new_zeros(0), g.new_zeros(0), g.new_zeros(0), g.new_zeros(0)
            self.seen = ids.new_zeros(0)
        all_ids, where = torch.unique(torch.cat([self.ids, ids]), return_inverse=True)
        old, new = where[:self.ids.numel()], where[self.ids.numel():]
        count, total, squares = (g.new_zeros(all_ids.numel()) for _ in range(3))
        seen = ids.new_zeros(all_ids.numel())
        count[old], total[old], squares[old], seen[old] = self.count, self.total, self.squares, self.seen
        count.index_add_(0, new, torch.ones_like(g))
        total.index_add_(0, new, g)
        squares.index_add_(0, new, g * g)
        seen[new] = self.step
        if all_ids.numel() > MEMORY_BUDGET:  # forget the least recently seen pairs
            keep = torch.sort(torch.argsort(seen, descending=True, stable=True)[:MEMORY_BUDGET]).values
            all_ids, count, total, squares, seen = (t[keep] for t in (all_ids, count, total, squares, seen))
        self.ids, self.count, self.total, self.squares, self.seen = all_ids, count, total, squares, seen

    def z(self, ids: torch.Tensor) -> torch.Tensor:
        """z-score of the mean of dL/dW for each pair id (N,): 0 where it has fewer than MIN_COUNT observations."""
        z = torch.zeros(ids.shape, dtype=torch.float64, device=ids.device)
        if self.ids is None or self.ids.numel() == 0:
            return z
        pos = torch.searchsorted(self.ids, ids).clamp_max(self.ids.numel() - 1)
        found = self.ids[pos] == ids
        n, s, q = self.count[pos], self.total[pos], self.squares[pos]
        mean = s / n.clamp_min(1)
        var = ((q - n * mean * mean) / (n - 1).clamp_min(1)).clamp_min(0)
        score = mean * n.sqrt() / var.sqrt().clamp_min(torch.finfo(var.dtype).tiny)
        return torch.where(found & (n >= MIN_COUNT), score, z)

    def target(self, ids: torch.Tensor) -> torch.Tensor:
        """The target cell (flat index into W) of each (context, Gaussian) id (N,); -1 where it has none."""
        out = torch.full(ids.shape, -1, dtype=torch.long, device=ids.device)
        if self.target_ids is None or self.target_ids.numel() == 0:
            return out
        pos = torch.searchsorted(self.target_ids, ids).clamp_max(self.target_ids.numel() - 1)
        found = self.target_ids[pos] == ids
        out[found] = self.targets[pos[found]]
        return out

    def set_targets(self, ids: torch.Tensor, cells: torch.Tensor) -> None:
        """Give each (context, Gaussian) id (M,) its target cell (M,) (flat), replacing an older one."""
        if self.target_ids is None:
            self.target_ids, self.targets = ids.new_zeros(0), cells.new_zeros(0)
        keep = ~torch.isin(self.target_ids, ids)
        all_ids = torch.cat([self.target_ids[keep], ids])
        all_cells = torch.cat([self.targets[keep], cells])
        order = torch.argsort(all_ids)
        self.target_ids, self.targets = all_ids[order], all_cells[order]


def instance_cell_gradients(grad_y: torch.Tensor, x: torch.Tensor, cells: torch.Tensor, out_rank: int) -> torch.Tensor:
    """Per-instance ``dL/dW_b[cell]`` at each instance's own cells (b, N, r): (b, N)."""
    b, N = cells.shape[:2]
    out_shape = tuple(grad_y.shape[1:1 + out_rank])
    in_rank = cells.shape[2] - out_rank
    in_shape = tuple(x.shape[1:1 + in_rank])
    F = math.prod(grad_y.shape[1 + out_rank:])
    rows = flat_index(cells[..., :out_rank], out_shape, validate=False)
    cols = flat_index(cells[..., out_rank:], in_shape, validate=False)
    gy = grad_y.reshape(b, math.prod(out_shape), F)
    xs = x.reshape(b, math.prod(in_shape), F).to(gy.dtype)
    return (gy.gather(1, rows.unsqueeze(-1).expand(b, N, F)) * xs.gather(1, cols.unsqueeze(-1).expand(b, N, F))).sum(-1)


def ranks_within(groups: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
    """Rank of each item within its group (0 = highest score), for items with group ids (N,)."""
    if groups.numel() == 0:
        return groups.clone()
    order = torch.argsort(scores, descending=True, stable=True)
    order = order[torch.argsort(groups[order], stable=True)]
    sorted_groups = groups[order]
    start = torch.ones_like(sorted_groups, dtype=torch.bool)
    start[1:] = sorted_groups[1:] != sorted_groups[:-1]
    position = torch.arange(groups.numel(), device=groups.device)
    first = torch.cummax(torch.where(start, position, torch.zeros_like(position)), 0).values
    ranks = torch.empty_like(position)
    ranks[order] = position - first
    return ranks
