"""Reference solutions to the notebooks' exercises.

Written the way a student would write them (small tensors, plain loops where they make the
idea clearer), not the way the library computes the same things. Each notebook shows the
solution's source in a collapsed "Show a solution" block; :mod:`ashlib.exercises` checks any
answer (yours or these) against the library or a brute-force computation.
"""

from __future__ import annotations

import torch

# ---------------------------------------------------------------- 01 · sampling


def corner_tuples(mean):
    """The 2**r corners of the unit cell that holds a point: per coordinate, its floor and floor + 1.

    Why not floor and ceil: for an integer coordinate those are the same number, and the cell
    would shrink to repeated tuples; floor + 1 gives two neighbours. (At a matrix's last index
    ashlib also shifts the cell inwards; this exercise has no matrix and leaves that out.)
    """
    import itertools
    import math

    mean = torch.as_tensor(mean, dtype=torch.float64)
    choices = [(math.floor(m), math.floor(m) + 1) for m in mean.tolist()]
    return torch.tensor(list(itertools.product(*choices)), dtype=torch.long)


def proportions(tuples, mean, sigma):
    """Gaussian densities at the tuples, normalised to sum to 1; a repeated tuple gets 0."""
    tuples = torch.as_tensor(tuples, dtype=torch.float64)
    mean = torch.as_tensor(mean, dtype=torch.float64)
    sigma = torch.as_tensor(sigma, dtype=torch.float64)
    log_density = -0.5 * (((tuples - mean) / sigma) ** 2).sum(dim=-1)
    seen = set()
    for j, t in enumerate(tuples.tolist()):
        if tuple(t) in seen:
            log_density[j] = float("-inf")  # a repeat: no share at all
        seen.add(tuple(t))
    return torch.softmax(log_density, dim=0)  # softmax = exp, then normalise, without underflow


def dense_matrix(indices, values, shape):
    """The dense W from (row, column) tuples and their values; repeated tuples add up."""
    W = torch.zeros(shape, dtype=torch.as_tensor(values).dtype)
    for (row, col), v in zip(torch.as_tensor(indices).tolist(), torch.as_tensor(values).tolist()):
        W[row, col] += v
    return W


def mean_gradient(tuples, mean, sigma, costs):
    """dL/dmu for L = sum_j p_j c_j, where p = softmax_j(-1/2 sum_d ((t_jd - mu_d) / sigma_d)^2).

    Why a position can learn: the tuples are integers, constants for autograd, so the gradient
    reaches the mean only through the proportions. Raising one proportion lowers the others (they
    sum to 1): that is the normalisation term, the proportion-weighted average of g below.
    Collecting terms, dL/dmu = sum_j p_j (c_j - c_avg) (t_j - mu) / sigma^2 with
    c_avg = sum_k p_k c_k. A gradient step (minus this) moves the mean towards the tuples whose
    cost is below the proportion-weighted average and away from those above it; if every tuple
    costs the same, nothing moves.
    """
    tuples = torch.as_tensor(tuples, dtype=torch.float64)  # (S, r)
    mean = torch.as_tensor(mean, dtype=torch.float64)  # (r,)
    sigma = torch.as_tensor(sigma, dtype=torch.float64)  # (r,)
    costs = torch.as_tensor(costs, dtype=torch.float64)  # (S,)
    p = torch.softmax(-0.5 * (((tuples - mean) / sigma) ** 2).sum(dim=-1), dim=0)  # (S,)
    g = (tuples - mean) / sigma**2  # (S, r): how the log density at t_j changes with mu
    dp = p.unsqueeze(-1) * (g - (p.unsqueeze(-1) * g).sum(dim=0))  # (S, r): dp_j/dmu
    return (costs.unsqueeze(-1) * dp).sum(dim=0)  # chain rule: sum_j c_j dp_j/dmu, shape (r,)


# ---------------------------------------------------------------- 02 · identity


def diagonal_fraction(means):
    """Fraction of Gaussians (k, 2) whose mean rounds to a cell on the diagonal."""
    cells = torch.as_tensor(means).round().long()
    return (cells[:, 0] == cells[:, 1]).float().mean().item()


def tuples_per_instance(n, k, a_local, a_global):
    """(tuples one instance samples, the most of the n x n cells they can cover)."""
    tuples = k * (2**2 + a_local + a_global)  # 2**r nearest corners with r = 2, then local and global
    return tuples, min(1.0, tuples / n**2)


# ---------------------------------------------------------------- 03 · REINFORCE


def score_function_gradient(z, mu, sigma, losses, baseline):
    """REINFORCE estimate of d E[loss] / d mu for z ~ N(mu, sigma^2 I), from N draws z (N, r)."""
    z, mu = torch.as_tensor(z), torch.as_tensor(mu)
    score = (z - mu) / sigma**2  # d log N(z | mu, sigma) / d mu
    return ((torch.as_tensor(losses) - baseline).unsqueeze(-1) * score).mean(dim=0)


def leave_one_out(losses):
    """Baseline for draw i: the mean loss of the other draws.

    The follow-up: the batch mean m includes draw i's own loss, m = (L_i + (N - 1) b_i) / N with
    b_i this leave-one-out baseline, so L_i - m = (N - 1) / N * (L_i - b_i). Every term, and so
    the whole estimate, is exactly (N - 1) / N of the leave-one-out one: 63/64 for 64 draws.
    Why that makes it biased: b_i does not depend on draw i, so (L_i - b_i) grad log p(z_i) has
    the true gradient as its mean; the batch-mean version has (N - 1) / N of it, the same
    direction shrunk towards zero. In training that hardly matters (Adam divides out a constant
    scale, and 1/64 is small), but at N = 2 it halves the gradient, and a baseline that depends
    on the draw in any other way can also turn its direction.
    """
    losses = torch.as_tensor(losses)
    n = losses.shape[0]
    return (losses.sum() - losses) / (n - 1)


# ---------------------------------------------------------------- 04 · attention


def box_around(top, left, canvas, digit=28):
    """Raw box numbers (y0, x0, y1, x1) whose corners frame the digit's digit x digit square."""
    corners = torch.tensor([top, left, top + digit - 1, left + digit - 1], dtype=torch.float32)
    return torch.logit(corners / (canvas - 1))  # corners are sigmoid(raw) * (canvas - 1)


def grid_means(corners, s):
    """The s x s grid of points (y, x) spread evenly from corner (y0, x0) to corner (y1, x1).

    What y1 < y0 does, and why it is harmless: nothing sorts the corners, so the rows of the
    grid then run upward. Glimpse row 0 reads the box's bottom edge (canvas row y0) and the last
    row its top edge: the glimpse is the same region turned upside down. The same points are
    sampled, with the same gradient, only in reverse row order, and an MLP head learns
    upside-down digits as easily as upright ones (it has no notion of up), as long as the boxes
    of all canvases flip alike. The bad case lies in between: as y1 approaches y0 the rows
    close up, every glimpse row reads the same canvas row, and the box collapses (section 9).
    A box given as a centre and a side (box_param="centre_scale") can neither flip nor collapse.
    """
    y0, x0, y1, x1 = torch.as_tensor(corners, dtype=torch.float32).tolist()
    grid = torch.zeros(s, s, 2)
    for i in range(s):
        for j in range(s):
            grid[i, j, 0] = y0 + (y1 - y0) * i / (s - 1)
            grid[i, j, 1] = x0 + (x1 - x0) * j / (s - 1)
    return grid


def corner_gradient_signs(box, digit):
    """Signs of dL/d(raw y0, x0, y1, x1) for L = minus the ink a glimpse reads, box offset from the digit.

    Why: reading more of the digit lowers L, so a corner lying above (or left of) the digit's
    matching corner lowers L by moving down (right): its gradient is negative. A corner beyond
    the digit's has a positive gradient. The sigmoid that maps a raw number to a corner is
    increasing, so the raw number's gradient has the same sign.
    """
    return torch.sign(torch.as_tensor(box, dtype=torch.float32) - torch.as_tensor(digit, dtype=torch.float32))


# ---------------------------------------------------------------- 05 · sorting


def half_permutation(o, d):
    """Algorithm 2: where each element goes in the half-permutation of order d fixed by o."""
    o = [int(v) for v in torch.as_tensor(o).tolist()]
    n = len(o)
    c = n >> (d - 1)  # chunk size in round d
    rows = [0] * n
    for start in range(0, n, c):
        low, high = start, start + c // 2  # next free slot in each half of the chunk
        for i in range(start, start + c):
            if o[i] == 0:
                rows[i], low = low, low + 1
            else:
                rows[i], high = high, high + 1
    return torch.tensor(rows)


def soft_buckets(keys, C):
    """Round 1's o': sigmoid(C (key - median)), the median halfway between the two middle keys.

    Why halfway: the two middle keys are the last item of the lower half and the first of the
    upper half. With the split exactly between them they sit at -gap/2 and +gap/2, so their o' are
    sigmoid(-C gap / 2) < 1/2 and sigmoid(+C gap / 2) > 1/2: rounding o' gives exactly n/2 ones (a
    valid half-permutation, the hard o), and as C or the gap grows both tend to 0 and 1, so o'
    tends to o. Were the median one of the two middle keys, that item would get o' = 1/2 whatever
    C and the gap: undecided for ever, and whether round(o') still has n/2 ones would depend on
    which middle key was taken and on how 1/2 is rounded.
    """
    keys = torch.as_tensor(keys, dtype=torch.float32)
    ordered = keys.sort().values
    n = keys.shape[0]
    median = (ordered[n // 2 - 1] + ordered[n // 2]) / 2
    return torch.sigmoid(C * (keys - median))


def sample_weight(o, soft_o):
    """Unnormalised weight of the half-permutation o: prod_i (o'_i if o_i = 1 else 1 - o'_i).

    Why ashlib sums logs: the product has n factors below 1. With n = 256 keys near their medians
    every factor is about 1/2 and the product about 1e-77, below the smallest float32 (about
    1e-45): every sample's weight becomes 0 and normalising gives 0 / 0. Far from the median a
    factor for a wrong bucket is about exp(-C |key - median|): a few such factors underflow too.
    ashlib adds log o'_i = logsigmoid(z_i) or log(1 - o'_i) = logsigmoid(-z_i), z_i = C (key_i -
    median), instead and normalises with a softmax, which subtracts the largest log weight first:
    the ratios between the samples, all that the proportions need, survive, and so does the
    gradient.
    """
    o, soft_o = torch.as_tensor(o).bool(), torch.as_tensor(soft_o)
    return torch.where(o, soft_o, 1 - soft_o).prod().item()  # fine for the small n of the check


# ---------------------------------------------------------------- 06 · your own problem


def sparse_parameter_count(in_shape, out_shape, k, fix_values):
    """How many numbers a SparseLayer learns: per Gaussian a mean (one coordinate per dimension
    of W), one raw sigma and, unless the values are fixed, one value."""
    def dims(shape):  # an int is a shape of one dimension
        return len(shape) if isinstance(shape, (tuple, list)) else 1

    rank = dims(in_shape) + dims(out_shape)  # W has out_shape + in_shape
    per_gaussian = rank + 1 + (0 if fix_values else 1)  # mean, sigma, value
    return k * per_gaussian


def pixel_counts(means, height, width):
    """How many Gaussians' means round to each input pixel, for means (k, 3) of a W with
    shape (hidden, height, width): a (height, width) tensor of counts. The first coordinate
    (which hidden unit) is ignored: a pixel counts every connection that reads it."""
    cells = torch.as_tensor(means).round().long()
    counts = torch.zeros(height, width, dtype=torch.long)
    for _, row, col in cells.tolist():
        counts[row, col] += 1
    return counts


def diagnose(trace):
    """Name what a sparse layer's training is doing, from traces recorded during the run: a dict
    of equal-length lists ``placed`` (share of the answer in place: rows right, cues on target),
    ``sigma`` (mean sigma, in cells) and ``value`` (mean absolute value), oldest first. One of
    "working", "small value", "stalled", "still searching"."""
    placed, sigma, value = trace["placed"], trace["sigma"], trace["value"]
    if placed[-1] >= 0.9:
        return "working"  # (nearly) all of the answer in place
    if value[-1] < 0.5 * max(value):
        return "small value"  # the values fell from their peak: misplaced entries shrink, their pull weakens
    half = len(placed) // 2
    if placed[-1] - placed[half] < 0.05 and sigma[-1] < 0.5 * sigma[0]:
        return "stalled"  # narrowed Gaussians, no progress in the second half: far targets are out of reach
    return "still searching"  # progress, or Gaussians still wide: more batches, or relocate=True
