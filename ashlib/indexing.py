"""Integer index tuples: flattening to one key per tuple, and finding repeats.

Both the sampler (duplicate detection) and the contraction (appendix A.2, "flattening
tensors") need a tuple's position in a row-major flattened tensor. Because the shape is
known, that flat index is an exact, collision-free key; the paper's nested Cantor pairing
grows much faster and overflows int64 for moderately large tensors.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from .config import debug_checks

INT64_MAX = 2**63 - 1


def as_shape(shape, name: str = "shape") -> tuple[int, ...]:
    """Return ``shape`` as a tuple of positive ints, or raise a ValueError saying why not.

    Bools are refused (``True`` is an int to Python, but a size of True is a bug), and so are
    strings ("8" would otherwise pass as the sequence ("8",)).
    """
    if isinstance(shape, int) and not isinstance(shape, bool):
        shape = (shape,)
    if isinstance(shape, (str, bytes)) or isinstance(shape, bool):
        raise ValueError(f"{name} must be a sequence of positive ints, got {shape!r}")
    try:
        dims = tuple(int(s) for s in shape)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be a sequence of positive ints, got {shape!r}") from err
    if any(isinstance(s, (bool, str, bytes)) for s in shape) or any(d != s for d, s in zip(dims, shape)) \
            or any(d < 1 for d in dims):
        raise ValueError(f"{name} must contain positive ints only, got {tuple(shape)!r}")
    if len(dims) == 0:
        raise ValueError(f"{name} must have at least one dimension, got ()")
    return dims


def check_fits_int64(shape: Sequence[int]) -> None:
    """Raise a ValueError if a tensor of ``shape`` has more elements than int64 can index."""
    if math.prod(shape) > INT64_MAX:
        raise ValueError(
            f"a tensor of shape {tuple(shape)} has {math.prod(shape)} elements, more than an "
            "int64 flat index can address; use fewer or smaller dimensions"
        )


def flat_index(tuples: torch.Tensor, shape: Sequence[int], *, validate: bool = True) -> torch.Tensor:
    """Row-major flat index of integer tuples ``(..., r)`` into a tensor of ``shape`` (r dims).

    ``flat = sum_d tuples[..., d] * prod(shape[d+1:])``, the paper's ``fi`` function. Type and
    shape are always checked. ``validate`` (the default) also checks that every tuple lies
    inside ``shape``, a ValueError otherwise; that costs one device sync, so the sampler and
    :func:`ashlib.contract`, which call this on their hot paths with tuples they made or
    checked themselves, pass ``validate=False`` (as ``contract(..., validate=False)``;
    ``ASHLIB_DEBUG=1`` turns the check back on). With ``validate=False`` a tuple outside
    ``shape`` gives an undefined result: the flat index of another cell, or one outside
    ``[0, prod(shape))``.
    """
    if not torch.is_tensor(tuples) or tuples.is_floating_point() or tuples.is_complex() or tuples.dtype == torch.bool:
        got = tuples.dtype if torch.is_tensor(tuples) else type(tuples).__name__
        raise ValueError(f"tuples must be an integer tensor (..., r), got {got}; round and cast with .long()")
    if isinstance(shape, int) and not isinstance(shape, bool):
        shape = (shape,)
    if isinstance(shape, (str, bytes, bool)) or not all(
            isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s >= 0 for s in shape):
        raise ValueError(f"shape must be a sequence of non-negative ints, got {shape!r}")
    shape = tuple(int(s) for s in shape)
    if tuples.dim() == 0 or tuples.shape[-1] != len(shape):
        raise ValueError(f"tuples must have shape (..., {len(shape)}), one coordinate per dimension of {shape}, "
                         f"got {tuple(tuples.shape)}")
    if tuples.numel() and 0 in shape:
        raise ValueError(f"shape {shape} has a dimension of size 0: no tuple lies inside it")
    if (validate or debug_checks()) and tuples.numel() and not tuples.is_meta:
        outside = (tuples < 0) | (tuples >= torch.tensor(shape, device=tuples.device))
        if bool(outside.any()):
            first = tuple(tuples[outside.any(-1)][0].tolist())
            raise ValueError(f"tuples out of range for shape {shape}: {first} lies outside it (every coordinate "
                             f"d must be in [0, shape[d]))" + ("" if validate else " (ASHLIB_DEBUG=1 check)"))
    strides = [math.prod(shape[d + 1 :]) for d in range(len(shape))]
    strides_t = torch.tensor(strides, dtype=torch.long, device=tuples.device)
    return (tuples.long() * strides_t).sum(-1)


def tuples_of(flat: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """The inverse of :func:`flat_index`: integer tuples ``(..., r)`` of row-major flat indices
    ``flat`` (...) into a tensor of ``shape`` (indices assumed inside it)."""
    shape = tuple(int(s) for s in shape)
    strides = torch.tensor([math.prod(shape[d + 1 :]) for d in range(len(shape))], dtype=torch.long, device=flat.device)
    sizes = torch.tensor(shape, dtype=torch.long, device=flat.device)
    return (flat.long().unsqueeze(-1) // strides) % sizes


def repeat_mask(keys: torch.Tensor) -> torch.Tensor:
    """True where ``keys[..., j]`` equals some ``keys[..., i]`` with ``i < j`` (same row).

    One stable sort per row, O(n log n): among equal keys the stable sort keeps the earliest
    position first, so every later copy is marked and the first one is not. Keys compare with
    ``==``, so NaN keys are never repeats.
    """
    if not torch.is_tensor(keys) or keys.dim() == 0 or keys.is_complex():
        got = ("a 0-d tensor" if keys.dim() == 0 else f"{keys.dtype}") if torch.is_tensor(keys) else type(keys).__name__
        raise ValueError(f"keys must be a real tensor (..., n) with at least one dimension, got {got}")
    sorted_keys, order = torch.sort(keys, dim=-1, stable=True)
    repeated_sorted = torch.zeros_like(sorted_keys, dtype=torch.bool)
    repeated_sorted[..., 1:] = sorted_keys[..., 1:] == sorted_keys[..., :-1]
    return torch.zeros_like(repeated_sorted).scatter(-1, order, repeated_sorted)


def repeat_rows_mask(rows: torch.Tensor) -> torch.Tensor:
    """True where ``rows[..., j, :]`` equals some ``rows[..., i, :]`` with ``i < j``, for 0/1 rows (..., s, n).

    Exact, with memory linear in the input (no s x s comparison): each row is packed into
    ceil(n / 62) int64 words, the
    rows are sorted lexicographically by stable sorts from the last word to the first (so equal
    rows keep their original order), and a row is a repeat when it equals its predecessor in that
    order. Comparing every pair of rows instead would cost O(s^2 n).
    """
    *batch, s, n = rows.shape
    words = -(-n // 62)
    bits = torch.zeros(*batch, s, words * 62, dtype=torch.long, device=rows.device)
    bits[..., :n] = rows.long()
    weights = torch.ones(62, dtype=torch.long, device=rows.device) << torch.arange(62, device=rows.device)
    packed = (bits.view(*batch, s, words, 62) * weights).sum(-1)  # (..., s, words)
    order = torch.arange(s, device=rows.device).expand(*batch, s)
    for w in reversed(range(words)):  # least significant word first: a stable LSD radix sort over words
        keys = packed[..., w].gather(-1, order)
        order = order.gather(-1, torch.sort(keys, dim=-1, stable=True).indices)
    ordered = packed.gather(-2, order.unsqueeze(-1).expand(*batch, s, words))
    repeated_sorted = torch.zeros(*batch, s, dtype=torch.bool, device=rows.device)
    repeated_sorted[..., 1:] = (ordered[..., 1:, :] == ordered[..., :-1, :]).all(-1)
    return torch.zeros_like(repeated_sorted).scatter(-1, order, repeated_sorted)
