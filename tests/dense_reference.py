"""Independent dense references for the tests: plain loops, no ashlib code."""

import itertools
import math

import torch


def dense_from_tuples(indices, values, shape):
    """W (b, *shape) built entry by entry with a Python loop; repeated tuples add up."""
    b, m, _ = indices.shape
    W = torch.zeros((b, *shape), dtype=values.dtype)
    for i in range(b):
        for j in range(m):
            W[(i, *indices[i, j].tolist())] += values[i, j]
    return W


def dense_differentiable(indices, values, shape):
    """The same W, built with index_put(accumulate=True) so autograd reaches the values."""
    b, m, r = indices.shape
    batch = torch.arange(b).unsqueeze(1).expand(b, m)
    W = torch.zeros((b, *shape), dtype=values.dtype)
    return W.index_put((batch, *indices.unbind(-1)), values, accumulate=True)


def apply_dense(W, x, out_rank):
    """y[b, o...] = sum_i W[b, o..., i...] x[b, i...] via reshape + batched matmul."""
    b = W.shape[0]
    out_shape = W.shape[1 : 1 + out_rank]
    Wm = W.reshape(b, math.prod(out_shape), -1)
    return torch.bmm(Wm, x.reshape(b, -1, 1)).reshape(b, *out_shape)


def gaussian_density(point, mean, std):
    """Product of 1-D normal densities, straight from the formula (float math)."""
    p = 1.0
    for t, mu, s in zip(point, mean, std):
        p *= math.exp(-0.5 * ((t - mu) / s) ** 2) / (math.sqrt(2 * math.pi) * s)
    return p


def corners(mean, shape):
    """The set of integer tuples with floor or ceil in every dimension."""
    options = [sorted({math.floor(m), math.ceil(m)}) for m in mean]
    return {t for t in itertools.product(*options) if all(0 <= v < h for v, h in zip(t, shape))}
