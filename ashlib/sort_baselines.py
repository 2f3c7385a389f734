"""Two published relaxations of sorting, the peers of :func:`ashlib.quicksort` in the experiments.

Both turn keys (b, n) into a dense, row-stochastic "soft permutation" P (b, n, n) whose row i
says which items land at output position i (ascending order here); ``P @ items`` sorts softly.
Written from the papers' formulas:

* NeuralSort (Grover, Wang, Zweig, Ermon, "Stochastic optimization of sorting networks via
  continuous relaxations", ICLR 2019): row i (1-based, for descending order) is
  ``softmax(((n + 1 - 2i) s - A 1) / tau)`` with ``A[j, k] = |s_j - s_k|``.
* SoftSort (Prillo, Eisenschlos, "SoftSort: a continuous relaxation for the argsort operator",
  ICML 2020): ``P = softmax(-|sort(s)_i - s_j| / tau)`` over j.

Unlike quicksort's sparse layers they cost O(n^2) memory per instance.
"""

from __future__ import annotations


import torch

from .config import is_finite_positive, max_tensor_bytes


def _check(keys: torch.Tensor, tau: float):
    if not torch.is_tensor(keys) or keys.dim() != 2 or not keys.is_floating_point():
        raise ValueError("keys must be a float tensor of shape (batch, n)")
    if not is_finite_positive(tau):
        raise ValueError(f"tau must be a finite number > 0 (the temperature), got {tau!r}: "
                         "tau = inf makes every row uniform, tau <= 0 reverses or breaks the softmax")
    if keys.is_meta:
        raise ValueError("keys is a meta tensor (no data): move it to 'cpu' or 'cuda' first")
    b, n = keys.shape
    need = 4 * b * n * n * max(keys.element_size(), 4)  # pairwise distances, logits, softmax, its output
    if need > max_tensor_bytes():
        raise ValueError(f"a soft permutation of n = {n} items for a batch of {b} needs about {need / 2**30:.1f} GiB "
                         "(O(batch * n^2)); use a smaller batch or n, ashlib.quicksort (sparse), or raise the "
                         "limit with ASHLIB_MAX_POOL_GIB")
    if keys.numel() and not bool(torch.isfinite(keys).all()):
        raise ValueError("keys contain NaN or inf: every row of the soft permutation would be NaN")


def neuralsort(keys: torch.Tensor, tau: float = 1.0) -> torch.Tensor:
    """NeuralSort's relaxed permutation matrix (b, n, n) for ascending order of ``keys``."""
    _check(keys, tau)
    s = -keys  # NeuralSort sorts in descending order; negate for ascending
    n = s.shape[1]
    pairwise = (s.unsqueeze(2) - s.unsqueeze(1)).abs()  # (b, n, n)
    row_sums = pairwise.sum(dim=2)  # (A 1)_j
    scale = (n + 1 - 2 * torch.arange(1, n + 1, device=s.device, dtype=s.dtype))  # (n,)
    logits = scale.view(1, n, 1) * s.unsqueeze(1) - row_sums.unsqueeze(1)  # (b, i, j)
    return torch.softmax(logits / tau, dim=-1)


def softsort(keys: torch.Tensor, tau: float = 1.0) -> torch.Tensor:
    """SoftSort's relaxed permutation matrix (b, n, n) for ascending order of ``keys``."""
    _check(keys, tau)
    ordered = keys.sort(dim=1).values
    return torch.softmax(-(ordered.unsqueeze(2) - keys.unsqueeze(1)).abs() / tau, dim=-1)


def apply_permutation(P: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
    """``P @ items`` for items (b, n, *features)."""
    if not torch.is_tensor(P) or P.dim() != 3 or P.shape[1] != P.shape[2]:
        raise ValueError(f"P must be a (batch, n, n) soft permutation, got "
                         f"{tuple(P.shape) if torch.is_tensor(P) else type(P).__name__}")
    if not torch.is_tensor(items) or items.dim() < 2 or tuple(items.shape[:2]) != tuple(P.shape[:2]):
        raise ValueError(f"items must have shape (batch, n, *features) = {tuple(P.shape[:2])} + features to match P, "
                         f"got {tuple(items.shape) if torch.is_tensor(items) else type(items).__name__}")
    if items.dtype != P.dtype:
        raise ValueError(f"items ({items.dtype}) and P ({P.dtype}) must have the same dtype: convert with "
                         f"items.to(P.dtype)")
    b, n = items.shape[:2]
    return (P @ items.reshape(b, n, -1)).view(items.shape)
