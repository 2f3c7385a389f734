"""Batched sparse tensor contraction ``y = W . x`` without ever building W.

W has shape ``out_shape + in_shape`` and is given per instance as a list of index tuples and
values. Following appendix A.2 of the paper, input and output tuples are flattened to one
integer each, the batch is folded into the output index (each instance's W sits on the
diagonal of one big block matrix), and the product is one gather from x and one
``index_add`` into y. Cost and memory are linear in the number of tuples.

When x carries wide feature rows (a permutation of images), gathering one row per tuple would
hold m copies of a row; there the block matrix is handed to ``torch.sparse.mm`` instead
(:class:`_SparseRowProduct`), which reads each row in place.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from .config import debug_checks, max_tensor_bytes
from .indexing import as_shape, check_fits_int64, flat_index


def _check(indices, values, x, out_shape, feature_dims=0):
    if not torch.is_tensor(indices) or indices.is_floating_point() or indices.is_complex() or indices.dtype == torch.bool:
        dtype = getattr(indices, "dtype", type(indices).__name__)
        raise ValueError(f"indices must be an integer tensor (e.g. torch.long), got {dtype}; round and cast with .long()")
    if not torch.is_tensor(x) or not x.is_floating_point():
        raise ValueError("x must be a floating point tensor of shape (batch, *in_shape)")
    if any(torch.is_tensor(t) and t.is_meta for t in (indices, values, x)):
        raise ValueError("contract needs real tensors, got a meta tensor (no data): move the module and its input "
                         "to 'cpu' or 'cuda' first")
    if isinstance(feature_dims, bool) or not isinstance(feature_dims, int) or feature_dims < 0:
        raise ValueError(f"feature_dims must be a non-negative int, got {feature_dims!r}")
    if x.dim() < 2 + feature_dims:
        raise ValueError(f"x must have shape (batch, *in_shape, *features) with at least one input dimension and "
                         f"{feature_dims} feature dimensions, got {tuple(x.shape)}")
    b, in_shape = x.shape[0], tuple(x.shape[1:x.dim() - feature_dims])
    rank = len(out_shape) + len(in_shape)
    if indices.dim() != 3 or indices.shape[0] != b or indices.shape[2] != rank:
        raise ValueError(
            f"indices must have shape (batch={b}, m, {rank}) for W of shape {out_shape} + {in_shape}, "
            f"got {tuple(indices.shape)}"
        )
    if not torch.is_tensor(values) or values.shape != indices.shape[:2]:
        got = tuple(values.shape) if torch.is_tensor(values) else type(values).__name__
        raise ValueError(f"values must have shape (batch, m) = {tuple(indices.shape[:2])}, got {got}")
    if values.dtype != x.dtype:
        raise ValueError(f"values ({values.dtype}) and x ({x.dtype}) must have the same dtype")
    if values.device != x.device or indices.device != x.device:
        raise ValueError(f"indices, values and x must be on one device, got {indices.device}, {values.device}, {x.device}")
    return b, in_shape


#: feature rows at least this wide go through torch.sparse.mm instead of gather + index_add
WIDE_FEATURES = 16
#: the backward of _SparseRowProduct computes tuple gradients in blocks of this many floats
_BLOCK = 1 << 22


class _SparseRowProduct(torch.autograd.Function):
    """y = W x for a block matrix W given as COO (rows, sources, values) and x (n_in, F).

    Forward and the gradient for x are sparse-dense products (no per-tuple copy of a row).
    The gradient for a value is the dot product of the output gradient's row with the input's
    row; it is computed in blocks so that at most ``_BLOCK`` floats are gathered at once.
    """

    @staticmethod
    def forward(ctx, rows, sources, values, x, n_out):
        W = torch.sparse_coo_tensor(torch.stack([rows, sources]), values, (n_out, x.shape[0]),
                                    check_invariants=False)
        ctx.save_for_backward(rows, sources, values, x)
        return torch.sparse.mm(W, x)

    @staticmethod
    def backward(ctx, grad_y):
        rows, sources, values, x = ctx.saved_tensors
        grad_values = grad_x = None
        if ctx.needs_input_grad[2]:
            grad_values = torch.empty_like(values)
            step = max(1, _BLOCK // max(1, x.shape[1]))
            for start in range(0, rows.numel(), step):  # a few blocks; each is vectorised
                r, c = rows[start:start + step], sources[start:start + step]
                rows_g, rows_x = grad_y.index_select(0, r), x.index_select(0, c)
                grad_values[start:start + step] = torch.bmm(rows_g.unsqueeze(1), rows_x.unsqueeze(2)).view(-1)
        if ctx.needs_input_grad[3]:
            W_t = torch.sparse_coo_tensor(torch.stack([sources, rows]), values, (x.shape[0], grad_y.shape[0]),
                                          check_invariants=False)
            grad_x = torch.sparse.mm(W_t, grad_y.contiguous())
        return None, None, grad_values, grad_x, None


def contract(
    indices: torch.Tensor,
    values: torch.Tensor,
    x: torch.Tensor,
    out_shape: Sequence[int],
    *,
    validate: bool = True,
    feature_dims: int = 0,
) -> torch.Tensor:
    """Compute ``y[b, o] = sum_j values[b, j] * x[b, i]`` over entries with ``indices[b, j] = (o, i)``.

    Args:
        indices: integer (b, m, len(out_shape) + x.dim() - 1), tuples into W of shape
            ``out_shape + x.shape[1:]``. Repeated tuples add up.
        values: (b, m), the value of each tuple, same dtype and device as x.
        x: (b, *in_shape, *features), the input.
        out_shape: the output dimensions.
        validate: check that every index lies inside W (one device sync), a ValueError if one
            does not. Internal callers that produced the indices themselves skip it;
            ``ASHLIB_DEBUG=1`` turns the check on for them too. With ``validate=False`` an index
            outside W gives an undefined result, silently: it may land in another cell, in
            another instance's output (an index past the end of one instance is the start of
            the next), or raise an index error deep inside torch.
        feature_dims: how many trailing dimensions of x W does not touch: they are carried
            along like the batch (e.g. a permutation of n items, each an image: x (b, n, 28, 28),
            W (n, n), ``feature_dims=2``). Costs m * prod(features) per instance, never a
            W over the features.

    Returns:
        y: (b, *out_shape, *features), differentiable with respect to values and x.
    """
    out_shape = as_shape(out_shape, "out_shape")
    b, in_shape = _check(indices, values, x, out_shape, feature_dims)
    features = tuple(x.shape[x.dim() - feature_dims:])
    n_features = math.prod(features)
    check_fits_int64((max(b, 1), *out_shape))  # the flat output index runs over the whole batch
    check_fits_int64((max(b, 1), *in_shape))
    if not validate and debug_checks():
        validate = True  # ASHLIB_DEBUG=1: check every contraction, internal ones included
    n_out = len(out_shape)
    if b == 0:  # an empty batch: an empty output, still connected to x and values for autograd
        return x.new_zeros((0, *out_shape, *features)) + 0 * (x.sum() + values.sum())
    if validate and indices.numel() > 0:
        bounds = torch.tensor(out_shape + in_shape, device=indices.device)
        if bool((indices < 0).any()) or bool((indices >= bounds).any()):
            raise ValueError(f"indices out of range for W of shape {out_shape + in_shape}")

    out_flat = flat_index(indices[..., :n_out], out_shape, validate=False)  # (b, m); checked above if asked
    in_flat = flat_index(indices[..., n_out:], in_shape, validate=False)  # (b, m)
    n_out_flat = math.prod(out_shape)
    rows = out_flat + torch.arange(b, device=x.device).unsqueeze(1) * n_out_flat
    if not feature_dims:
        contributions = values * x.reshape(b, -1).gather(1, in_flat)
        y = x.new_zeros(b * n_out_flat).index_add(0, rows.reshape(-1), contributions.reshape(-1))
        return y.view(b, *out_shape)
    flat_x = x.reshape(b * math.prod(in_shape), n_features)
    sources = in_flat + torch.arange(b, device=x.device).unsqueeze(1) * math.prod(in_shape)
    if n_features >= WIDE_FEATURES:
        y = _SparseRowProduct.apply(rows.reshape(-1), sources.reshape(-1), values.reshape(-1), flat_x,
                                    b * n_out_flat)
        return y.view(b, *out_shape, *features)
    contributions = values.reshape(-1, 1) * flat_x.index_select(0, sources.reshape(-1))
    y = x.new_zeros(b * n_out_flat, n_features).index_add(0, rows.reshape(-1), contributions)
    return y.view(b, *out_shape, *features)


def to_dense(indices: torch.Tensor, weights: torch.Tensor, shape) -> torch.Tensor:
    """Dense W (shape) from tuples (m, r) and weights (m,); repeated tuples add up.

    For small matrices only: figures, and evaluations that need W itself (the layers never call it).
    """
    shape = as_shape(shape)
    if not torch.is_tensor(indices) or indices.is_floating_point() or indices.is_complex() \
            or indices.dtype == torch.bool or indices.dim() != 2 or indices.shape[1] != len(shape):
        got = f"{indices.dtype} {tuple(indices.shape)}" if torch.is_tensor(indices) else type(indices).__name__
        raise ValueError(f"indices must be an integer tensor (m, {len(shape)}), got {got}")
    if not torch.is_tensor(weights) or weights.shape != indices.shape[:1]:
        got = tuple(weights.shape) if torch.is_tensor(weights) else type(weights).__name__
        raise ValueError(f"weights must have shape ({indices.shape[0]},), one per tuple, got {got}")
    if math.prod(shape) * weights.element_size() > max_tensor_bytes():
        raise ValueError(f"a dense W of shape {shape} would exceed ASHLIB_MAX_POOL_GIB; to_dense is for small "
                         "matrices (figures, evaluation)")
    if indices.numel() and (bool((indices < 0).any()) or bool((indices >= torch.tensor(shape, device=indices.device)).any())):
        raise ValueError(f"indices out of range for shape {shape}")
    W = torch.zeros(shape, dtype=weights.dtype, device=weights.device)
    return W.index_put(tuple(indices.long().unbind(-1)), weights, accumulate=True)
