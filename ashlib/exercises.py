"""Self-checks for the notebooks' exercises.

Each exercise is a function stub in a notebook, decorated with :func:`exercise`. The student
fills it in and runs :func:`check`, which tests the answer on several inputs against an
independent computation (ashlib's own implementation, autograd, or brute force) and prints
whether it is right and, if not, the first input where it goes wrong.

With the environment variable ``ASHLIB_SOLUTIONS=1`` (set by ``tools/run_notebooks.py`` for the
stored outputs, and by a teacher who wants a notebook run end to end) :func:`exercise` swaps every
stub for the reference answer in :mod:`ashlib.solutions`, and a failing check raises. The test
suite runs the notebooks without it, as a student's first Run All: an empty stub returns None, and
its check says the exercise is not done yet.
"""

from __future__ import annotations

import torch

from .config import env_flag

__all__ = ["EXERCISES", "check", "exercise", "solutions_enabled"]


def solutions_enabled() -> bool:
    """True when ``ASHLIB_SOLUTIONS`` is 1/true/yes/on: stubs become the reference solutions."""
    return env_flag("ASHLIB_SOLUTIONS")


def exercise(stub):
    """Decorator for a notebook's exercise stub: the stub itself, or the reference solution of
    the same name when :func:`solutions_enabled`."""
    if not callable(stub) or not hasattr(stub, "__name__"):
        raise ValueError(f"@exercise decorates an exercise's function (def corner_tuples(...): ...), got {stub!r}")
    if stub.__name__ not in EXERCISES:
        raise ValueError(f"no exercise named {stub.__name__!r}; known: {sorted(EXERCISES)}")
    if solutions_enabled():
        from . import solutions

        return getattr(solutions, stub.__name__)
    return stub


def _solutions():
    from . import solutions

    return solutions


class _Wrong(Exception):
    """An answer that is not right yet, with the reason shown to the student."""


class _Raised(Exception):
    """The student's function itself raised ``error`` (as opposed to returning something unusable)."""

    def __init__(self, error: BaseException):
        super().__init__(error)
        self.error = error


class _Answer:
    """The student's function as the checks call it: what it raises is marked as raised by it, and
    the last value it returned is kept, so an unusable return value is reported as such."""

    _NOTHING = object()

    def __init__(self, function):
        self.function = function
        self.returned = self._NOTHING
        self.calls = self.nones = 0

    def __call__(self, *args, **kwargs):
        try:
            got = self.function(*args, **kwargs)
        except Exception as error:  # noqa: BLE001 - the student's code: any error is theirs to see
            raise _Raised(error) from error
        self.returned = got
        self.calls += 1
        self.nones += got is None
        return got


def _describe(got) -> str:
    """What a function returned, in a few words (its type, and shape or value)."""
    if torch.is_tensor(got):
        if got.is_meta:
            return f"a meta tensor of shape {tuple(got.shape)} (a shape without values)"
        return f"a {str(got.dtype).replace('torch.', '')} tensor of shape {tuple(got.shape)}"
    if isinstance(got, (bool, int, float)):
        return f"the {type(got).__name__} {got!r}"
    if isinstance(got, (str, bytes)):
        return f"the {type(got).__name__} {got!r:.40}"
    if isinstance(got, dict):
        return f"a dict with keys {list(got)[:4]!r}"
    if isinstance(got, (list, tuple)):
        return f"a {type(got).__name__} of {len(got)} entr{'y' if len(got) == 1 else 'ies'}"
    shape, kind = getattr(got, "shape", None), type(got).__name__
    return f"{'an' if kind[0] in 'aeiou' else 'a'} {kind}" + (f" of shape {tuple(shape)}" if shape is not None else "")


def _expected(shape: tuple) -> str:
    return "one number" if shape == () else f"a tensor of shape {shape}"


def _not_none(got, what: str = "the answer"):
    if got is None:
        raise _Wrong(f"{what}: the function returned None (is the stub still empty?)")
    return got


def _tensor(got, what: str, expected: str, dtype=torch.float64) -> torch.Tensor:
    """``got`` as a CPU tensor (of ``dtype``, or its own for None), or _Wrong saying what came back
    and that ``expected`` was wanted (a string, a dict, a meta tensor: nothing to compare)."""
    _not_none(got, what)
    if torch.is_tensor(got) and got.is_meta:
        raise _Wrong(f"{what}: your function returned {_describe(got)}; expected {expected} with values "
                     "(compute on 'cpu')")
    if isinstance(got, (str, bytes, dict, set)):
        raise _Wrong(f"{what}: your function returned {_describe(got)}; expected {expected}")
    try:
        t = torch.as_tensor(got.detach().cpu() if torch.is_tensor(got) else got)
        return t if dtype is None else t.to(dtype)
    except (TypeError, ValueError, RuntimeError) as error:
        raise _Wrong(f"{what}: your function returned {_describe(got)}, which is not numbers ({error}); "
                     f"expected {expected}") from None


def _number(got, what: str, expected: str = "one number") -> float:
    """``got`` as one float, or _Wrong saying what came back instead."""
    t = _tensor(got, what, expected)
    if t.numel() != 1:
        raise _Wrong(f"{what}: your function returned {_describe(got)}; expected {expected}")
    return float(t.reshape(()))


def _close(got, expected, what: str, atol: float = 1e-5, hints=()) -> None:
    """Raise _Wrong unless ``got`` equals ``expected`` (within atol); the message names the first entry
    that differs. ``hints``: (what a usual slip would return, the hint to give when ``got`` equals it)."""
    expected_t = torch.as_tensor(expected, dtype=torch.float64)
    shape = tuple(expected_t.shape)
    got_t = _tensor(got, what, _expected(shape))
    if got_t.shape != expected_t.shape:
        if shape == () or got_t.dim() == 0:  # one number where several were asked, or the other way round
            raise _Wrong(f"{what}: your function returned {_describe(got)}; expected {_expected(shape)}")
        raise _Wrong(f"{what}: expected shape {shape}, got {tuple(got_t.shape)}")
    close = lambda a: torch.allclose(got_t, torch.as_tensor(a, dtype=torch.float64), atol=atol, rtol=1e-4)  # noqa: E731
    if close(expected_t):
        return
    hint = next((h for slip, h in hints if close(slip)), None)
    raise _Wrong(f"{what}: " + _first_difference(got_t, expected_t, atol) + (f". Hint: {hint}" if hint else ""))


def _first_difference(got: torch.Tensor, expected: torch.Tensor, atol: float) -> str:
    """"expected X, got Y" for one number, else the first entry that differs: its index, both values."""
    if expected.dim() == 0:
        return f"expected {round(float(expected), 4)}, got {round(float(got), 4)}"
    wrong = ~torch.isclose(got, expected, atol=atol, rtol=1e-4)
    flat = int(torch.nonzero(wrong.flatten())[0])
    index = tuple(int(i) for i in torch.unravel_index(torch.tensor(flat), expected.shape))
    where = index[0] if len(index) == 1 else index
    return (f"first difference at index {where}: expected {round(float(expected.flatten()[flat]), 4)}, got "
            f"{round(float(got.flatten()[flat]), 4)} ({int(wrong.sum())} of {wrong.numel()} entries differ; "
            f"expected {_show(expected)}, got {_show(got)})")


def _show(t: torch.Tensor) -> str:
    values = [round(v, 4) for v in t.flatten().tolist()[:12]]
    return str(values) + (" ..." if t.numel() > 12 else "")


# ------------------------------------------------------------------ the checks
# Each takes the answer function and raises _Wrong with a reason, or returns a short
# description of what was verified.


def _check_corner_tuples(f) -> str:
    from .sampling import sample

    g = torch.Generator().manual_seed(11)
    for r in (1, 2, 3):
        for _ in range(3):
            mean = torch.rand(r, generator=g, dtype=torch.float64) * 6 + 0.05
            if _ == 2:
                mean[0] = mean[0].floor()  # one coordinate exactly on an integer: floor and floor + 1, no repeat
            tuples, _ = sample(mean.float().view(1, 1, r), torch.ones(1, 1, r), (8,) * r, a_local=0, a_global=0,
                                 region=1)
            expected = sorted(map(tuple, tuples[0, 0].tolist()))
            where = f"mean {_show(mean)}"
            want = f"the {2**r} nearest tuples, an integer tensor ({2**r}, {r})"
            got = f(mean.float())
            got_t = _tensor(got, where, want, dtype=None)
            if got_t.numel() % r:
                raise _Wrong(f"{where}: your function returned {_describe(got)}; expected {want}")
            got = sorted(map(tuple, got_t.long().view(-1, r).tolist()))
            if got != expected:
                hint = (" Hint: on an integer coordinate, floor and ceil are the same number; take floor and floor + 1"
                        if len(set(got)) < len(got) else "")
                raise _Wrong(f"mean {_show(mean)}: expected the tuples {expected}, got {got}.{hint}")
    return ("matches ashlib.sample's nearest tuples for r = 1, 2, 3, integer coordinates included "
            "(away from the matrix's last index, where ashlib shifts the cell inwards)")


def _check_proportions(f) -> str:
    from .sampling import sample

    g = torch.Generator().manual_seed(3)
    for trial in range(4):
        mean = torch.rand(1, 1, 2, generator=g) * 3
        sigma = torch.rand(1, 1, 2, generator=g) * 1.5 + 0.3
        tuples, props = sample(mean, sigma, (4, 4), a_local=3, a_global=5, region=3, generator=g)
        _close(f(tuples[0, 0], mean[0, 0], sigma[0, 0]), props[0, 0],
               f"tuples {tuples[0, 0].tolist()}, mean {_show(mean)}, sigma {_show(sigma)}")
    corners = torch.tensor([[i, j, k] for i in (3, 4) for j in (3, 4) for k in (3, 4)])
    narrow = f(corners, torch.full((3,), 3.5), torch.full((3,), 0.01))  # every density below 1e-300
    where = "the 8 corners of a 3-D cell, mean in its middle, sigma 0.01"
    if torch.isnan(_tensor(narrow, where, "a tensor (8,)")).any():
        raise _Wrong(f"{where}: your proportions are NaN. Every density underflowed to 0 and 0/0 is NaN: "
                     "work in log space (a softmax of the log densities)")
    _close(narrow, torch.full((8,), 1 / 8), where)
    return "matches ashlib.sample's proportions, repeats included, on 4 draws, and a sigma too small for exp"


def _check_dense_matrix(f) -> str:
    from .contract import contract

    g = torch.Generator().manual_seed(5)
    for n, m in ((4, 6), (6, 20)):
        indices = torch.randint(0, n, (m, 2), generator=g)
        values = torch.randn(m, generator=g)
        # W's column j is W e_j: contract the tuples with the identity's rows
        W = contract(indices.unsqueeze(0).expand(n, m, 2), values.expand(n, m), torch.eye(n), (n,)).T
        overwritten = torch.zeros(n, n)
        overwritten[indices[:, 0], indices[:, 1]] = values  # a repeated tuple keeps one value
        _close(f(indices, values, (n, n)), W, f"{m} tuples in a {n} x {n} matrix",
               hints=[(overwritten, "a repeated tuple must add its values up, not overwrite them "
                                    "(index_put_(..., accumulate=True) or a loop with +=)")])
    return "equals the matrix ashlib.contract multiplies with (duplicates added)"


def _check_mean_gradient(f) -> str:
    g = torch.Generator().manual_seed(29)
    for r, S in ((1, 4), (2, 10), (2, 6), (3, 12)):
        n = 8
        flat = torch.randperm(n**r, generator=g)[:S]  # S distinct cells of an n**r grid
        tuples = torch.stack([(flat // n**d) % n for d in reversed(range(r))], -1)
        mean = torch.rand(r, generator=g, dtype=torch.float64) * (n - 1)
        sigma = torch.rand(r, generator=g, dtype=torch.float64) * 2 + 0.8
        costs = torch.randn(S, generator=g, dtype=torch.float64)
        mu = mean.clone().requires_grad_()  # the independent computation: autograd
        p = torch.softmax(-0.5 * (((tuples.double() - mu) / sigma) ** 2).sum(-1), 0)
        (p * costs).sum().backward()
        expected = mu.grad
        where = f"r = {r}, {S} tuples, mean {_show(mean)}, sigma {_show(sigma)}"
        got_t = _tensor(f(tuples, mean, sigma, costs), f"{where}: dL/dmu", f"a tensor of shape ({r},)")
        if got_t.shape != expected.shape:
            unsummed = " (the terms of the S tuples are not summed over j yet)" if got_t.shape == (S, r) else ""
            raise _Wrong(f"{where}: dL/dmu has one number per coordinate of the mean, shape {tuple(expected.shape)}; "
                         f"got shape {tuple(got_t.shape)}{unsummed}")
        close = lambda a: torch.allclose(got_t, a, atol=1e-6, rtol=1e-4)  # noqa: E731
        if close(expected):
            continue
        gd = (tuples.double() - mean) / sigma**2
        pd = p.detach()
        hints = (
            (-expected, "the sign is flipped: use t_j - mu (not mu - t_j), and return dL/dmu, not the step -dL/dmu"),
            (((costs * pd).unsqueeze(-1) * gd).sum(0),
             "the normalisation term is missing: dp_j/dmu = p_j (g_j - sum_k p_k g_k), not p_j g_j"),
            (expected * sigma, "divide (t_j - mu) by sigma squared, not by sigma"),
            (expected * sigma**2, "divide (t_j - mu) by sigma squared"),
            (-expected * sigma**2, "divide (t_j - mu) by sigma squared, and mind the sign: t_j - mu, not mu - t_j"),
        )
        hint = next((h for a, h in hints if close(a)), None)
        raise _Wrong(f"{where}: expected {_show(expected)}, got {_show(got_t)}" + (f"; {hint}" if hint else ""))
    return "equals autograd through the softmax for r = 1, 2, 3 on 4 random draws"


def _check_diagonal_fraction(f) -> str:
    g = torch.Generator().manual_seed(7)
    for k in (1, 5, 16):
        means = torch.rand(k, 2, generator=g) * 6
        means[: k // 2, 1] = means[: k // 2, 0] + (torch.rand(k // 2, generator=g) - 0.5) * 0.8
        on = sum(1 for y, x in means.tolist() if round(y) == round(x)) / k
        truncated = sum(1 for y, x in means.tolist() if int(y) == int(x)) / k
        _close(f(means), on, f"{k} means {_show(means)}",
               hints=[(truncated, "round each coordinate to its nearest cell (.round()), do not truncate (.long(), int())")]
               if truncated != on else ())
    return "matches a count over 3 sets of means"


def _check_tuples_per_instance(f) -> str:
    from .sampling import sample

    for n, k, a_local, a_global in ((8, 8, 2, 2), (16, 16, 2, 2), (64, 64, 4, 4), (2, 2, 3, 3)):
        tuples, _ = sample(torch.rand(1, k, 2) * (n - 1), torch.ones(1, k, 2), (n, n), a_local=a_local,
                           a_global=a_global, region=2)
        count = tuples.shape[1] * tuples.shape[2]
        got = _not_none(f(n, k, a_local, a_global))
        try:
            pair = not isinstance(got, (str, bytes, dict)) and len(got) == 2
        except TypeError:  # a number, a 0-d tensor: no length
            pair = False
        if not pair:
            raise _Wrong(f"n = {n}, k = {k}: your function returned {_describe(got)}; expected a pair "
                         "(tuples, fraction): return tuples, fraction")
        _close(got[0], count, f"n = {n}, k = {k}, a_local = {a_local}, a_global = {a_global}: the tuples")
        _close(got[1], min(1.0, count / n**2), f"n = {n}: the fraction of cells")
    return "tuple counts agree with what ashlib.sample draws"


def _check_score_function_gradient(f) -> str:
    g = torch.Generator().manual_seed(13)
    for r, N, per_draw in ((1, 5, False), (3, 50, False), (2, 8, True)):
        mu = torch.randn(r, generator=g, dtype=torch.float64)
        sigma = 0.7
        z = mu + sigma * torch.randn(N, r, generator=g, dtype=torch.float64)
        losses = (z**2).sum(-1)
        baseline = float(losses.mean()) * 0.9
        if per_draw:  # one b_i per draw, as a leave-one-out baseline gives (cell 12 of notebook 03 passes one)
            baseline = (losses.sum() - losses) / (N - 1)
        m = mu.clone().requires_grad_()
        logp = torch.distributions.Normal(m, sigma).log_prob(z).sum(-1)
        ((losses - baseline) * logp).mean().backward()  # autograd of the surrogate
        feedback = (losses - baseline).unsqueeze(-1)
        slips = [(-m.grad, "the sign is flipped: d log N(z | mu, sigma) / d mu = (z - mu) / sigma^2"),
                 ((feedback * (z - mu) / sigma).mean(0), "divide by sigma squared, not sigma"),
                 ((feedback * (z - mu) / sigma**2).sum(0), "average over the N draws, do not sum")]
        what = f"r = {r}, N = {N} draws" + (", a tensor baseline (one b_i per draw)" if per_draw else "")
        _close(f(z, mu, sigma, losses, baseline), m.grad, what, hints=slips)
    return "equals autograd through log N(z | mu, sigma) times (loss - baseline)"


def _check_leave_one_out(f) -> str:
    for losses in (torch.tensor([1.0, 2.0, 6.0]), torch.arange(10.0) ** 2, torch.tensor([3.0, -1.0])):
        expected = [sum(losses[j] for j in range(len(losses)) if j != i) / (len(losses) - 1) for i in range(len(losses))]
        _close(f(losses), torch.tensor(expected), f"losses {_show(losses)}")
    return "matches a brute-force mean over the other draws"


def _check_box_around(f) -> str:
    from .glimpse import box_corners

    for top, left, canvas in ((5, 9, 40), (1, 2, 60), (70, 30, 100)):  # off the edge: an edge corner is +-inf
        where = f"digit at ({top}, {left}) on a {canvas}-pixel canvas"
        want = "4 raw numbers (y0, x0, y1, x1 before the sigmoid)"
        got = f(top, left, canvas)
        raw = _tensor(got, where, want, dtype=torch.float32)
        if raw.numel() != 4:
            raise _Wrong(f"{where}: your function returned {_describe(got)}; expected {want}")
        corners = box_corners(raw.view(1, 1, 4), (canvas, canvas))
        expected = torch.tensor([top, left, top + 27, left + 27], dtype=torch.float32)
        scaled_by_canvas = expected * (canvas - 1) / canvas  # what logit(corner / canvas) maps back to
        _close(corners.view(4), expected, f"digit at ({top}, {left}) on a {canvas}-pixel canvas: the box corners",
               atol=1e-2, hints=[(scaled_by_canvas, "a corner is sigmoid(raw) * (canvas - 1): divide by canvas - 1, "
                                                    "not by canvas")])
    return "ashlib.glimpse.box_corners maps the answer onto the digit's frame"


def _check_grid_means(f) -> str:
    from .glimpse import glimpse_means

    for corners, s in (([2.0, 3.0, 29.0, 30.0], 4), ([10.0, 40.0, 0.0, 5.0], 3), ([0.0, 0.0, 59.0, 59.0], 16)):
        expected = glimpse_means(torch.tensor(corners).view(1, 1, 4), s)[0, 0]
        _close(f(torch.tensor(corners), s), expected, f"corners {corners}, s = {s}")
    return "equals the grid ashlib's glimpse reads (flipped boxes included)"


def _check_corner_gradient_signs(f) -> str:
    from .glimpse import SparseGlimpse

    cases = (((18, 18, 31, 31), (13, 13, 26, 26), 40), ((8, 8, 21, 21), (13, 13, 26, 26), 40),
             ((5, 21, 18, 34), (13, 13, 26, 26), 40), ((28, 12, 47, 31), (20, 20, 39, 39), 60),
             ((15, 25, 34, 44), (20, 20, 39, 39), 60))
    for box, digit, canvas in cases:
        where = f"box {box}, digit {digit} on a {canvas}-pixel canvas"
        got = f(box, digit)
        signs = _tensor(got, where, "4 signs (+1 or -1)")
        image = torch.zeros(1, 1, canvas, canvas, dtype=torch.float64)
        image[..., digit[0]:digit[2] + 1, digit[1]:digit[3] + 1] = 1.0  # a square of ink where the digit is
        layer = SparseGlimpse((canvas, canvas), glimpse_size=8, a_local=8, a_global=4, region=(10, 10),
                              init_sigma=2.0).double()
        raw = torch.logit(torch.tensor(box, dtype=torch.float64) / (canvas - 1)).view(1, 1, 4).requires_grad_()
        generator = torch.Generator().manual_seed(0)
        for _ in range(8):  # the mean gradient over 8 draws of the sparse W
            (-layer(image, raw, generator=generator).sum()).backward()
        expected = torch.sign(raw.grad.view(4))
        _close(signs, expected, f"{where}: the signs of dL/d(y0, x0, y1, x1)", atol=0.5,
               hints=[(-expected, "those are the directions the corners should move; gradient descent steps "
                                  "against the gradient, so the gradient's sign is the opposite")])
    return "matches the signs autograd gives through a SparseGlimpse, over 8 draws of W"


def _check_half_permutation(f) -> str:
    from .sort import half_permutation_rows

    g = torch.Generator().manual_seed(17)
    for n in (2, 4, 8, 16):
        for d in range(1, n.bit_length()):
            c = n >> (d - 1)
            o = (torch.rand(n // c, c, generator=g).argsort(-1) >= c // 2).long().view(n)
            where = f"o = {o.tolist()}, d = {d}"
            got = _tensor(f(o, d), where, f"a tensor of {n} row indices", dtype=None)
            expected = half_permutation_rows(o.view(1, n), d)[0]
            if got.long().tolist() != expected.tolist():
                swapped = half_permutation_rows((1 - o).view(1, n), d)[0]
                hint = (". Hint: the two halves are the wrong way round: within each bucket the entries with "
                        "o = 0 come first, then those with o = 1") if got.long().tolist() == swapped.tolist() else ""
                raise _Wrong(f"{where}: expected {expected.tolist()}, got {got.long().tolist()}{hint}")
    return "matches ashlib.sort.half_permutation_rows for n = 2 .. 16, every order d"


def _check_soft_buckets(f) -> str:
    from .sort import half_permutation_step

    g = torch.Generator().manual_seed(19)
    for n, C in ((2, 10.0), (8, 10.0), (8, 1.0), (16, 3.0)):
        keys = torch.randn(n, generator=g)
        step = half_permutation_step(keys.view(1, n), 1, samples=0, C=C)
        _close(f(keys, C), step.soft_o[0], f"keys {_show(keys)}, C = {C}")
    return "matches o' inside ashlib.quicksort's first round"


def _check_sample_weight(f) -> str:
    from .sort import half_permutation_step

    g = torch.Generator().manual_seed(23)
    for n in (4, 8):
        keys = torch.randn(1, n, generator=g)
        step = half_permutation_step(keys, 1, samples=6, C=2.0, generator=g)
        o, soft_o, props = step.o[0], step.soft_o[0], step.proportions[0]
        weights = []
        for j in range(o.shape[0]):
            weights.append(_number(f(o[j].long(), soft_o), f"n = {n}, sample {j}: the weight",  # o as 0/1 integers
                                   "one number (the weight of this o)"))
        kept = props > 0  # repeats get nothing in ashlib; compare the distinct samples
        mine = torch.tensor(weights)[kept]
        _close(mine / mine.sum(), props[kept] / props[kept].sum(), f"n = {n}: the normalised weights of the samples")
    return "normalised, the weights equal ashlib's proportions for the distinct samples"


def _check_sparse_parameter_count(f) -> str:
    from .layers import SparseLayer

    for in_shape, out_shape, k, fix in ((8, 8, 8, True), (8, 8, 8, False), ((28, 28), 32, 1024, False),
                                        ((4, 5), (2, 3), 7, True), (16, (4, 4), 3, False)):
        layer = SparseLayer(in_shape, out_shape, k, a_local=1, a_global=1, region=2, fix_values=fix)
        expected = sum(p.numel() for p in layer.parameters())
        _close(f(in_shape, out_shape, k, fix), expected,
               f"in_shape {in_shape}, out_shape {out_shape}, k = {k}, fix_values = {fix}")
    return "equals the parameters of SparseLayer for 5 shapes, fixed and learned values"


def _check_pixel_counts(f) -> str:
    g = torch.Generator().manual_seed(29)
    for k, hidden, height, width in ((1, 3, 4, 4), (50, 8, 6, 5), (400, 32, 28, 28)):
        means = torch.rand(k, 3, generator=g) * torch.tensor([hidden - 1.0, height - 1.0, width - 1.0])
        expected = torch.zeros(height, width)
        for _, row, col in means.tolist():
            expected[round(row), round(col)] += 1
        _close(f(means, height, width), expected, f"{k} means in a ({hidden}, {height}, {width}) W")
    return "matches a count by hand over 3 sets of means"


def _check_diagnose(f) -> str:
    flat = [0.1 + 0.057 * i for i in range(8)] + [0.5] * 7  # rises, then flat at 0.5 for the second half
    cases = [
        ("placed rises to 0.94", dict(placed=[0.1 + 0.06 * i for i in range(15)], sigma=[6.0] * 15,
                                      value=[1.0] * 15), "working", "90 % or more of the answer is in place"),
        ("the values rise from 0.1 to 0.8, then fall to 0.3, while placed stays at 0.3",
         dict(placed=[0.3] * 15, sigma=[6.0] * 15, value=[0.1 + 0.1 * i for i in range(8)] + [0.8 - 0.07 * i for i in range(1, 8)]),
         "small value", "the values fell below half their peak: misplaced entries shrink, and weaken their pull"),
        ("placed stops at 0.5 for the second half while sigma narrows from 6 to 0.4",
         dict(placed=flat, sigma=[6.0 - 0.4 * i for i in range(15)], value=[0.2] * 15), "stalled",
         "narrowed Gaussians no longer feel far targets, so placed stops rising"),
        ("placed stops at 0.47 while sigma narrows from 7 to 1.5 and then grows a little",
         dict(placed=[0.1 + 0.05 * i for i in range(8)] + [0.47] * 7, sigma=[7.0 - 0.8 * i for i in range(8)] + [1.5] * 7,
              value=[0.0, 0.3, 0.55, 0.59, 0.55, 0.5] + [0.49] * 9), "stalled",
         "sigma has narrowed to less than half its start and placed stopped rising"),
        ("placed climbs slowly to 0.38, sigma still 5",
         dict(placed=[0.1 + 0.02 * i for i in range(15)], sigma=[7.0 - 0.14 * i for i in range(15)], value=[1.0] * 15),
         "still searching", "the Gaussians are still wide and placed still rises; give it more batches, or relocate=True"),
        ("placed stops at 0.5 but sigma is still 4 cells, as at the start",
         dict(placed=flat, sigma=[4.0] * 15, value=[1.0] * 15), "still searching",
         "a sigma as wide as at the start can still feel far targets: slow, not stalled"),
        ("placed ends at 0.95 although the values halved",
         dict(placed=[0.95] * 15, sigma=[0.3] * 15, value=[1.0 - 0.05 * i for i in range(15)]), "working",
         "check placed first: learned values may settle below their peak"),
    ]
    for what, trace, expected, why in cases:
        got = _not_none(f({key: list(v) for key, v in trace.items()}))
        if not isinstance(got, str):
            raise _Wrong(f"for a trace where {what}, your function returned {_describe(got)}; expected one of "
                         "'working', 'small value', 'stalled', 'still searching'")
        if got != expected:
            raise _Wrong(f"for a trace where {what}, your function said {got!r}; expected {expected!r} ({why})")
    return "names 7 hand-made traces as the failure table does"


EXERCISES = {
    "corner_tuples": ("01.2 nearest tuples", _check_corner_tuples),
    "proportions": ("01.3 proportions by hand", _check_proportions),
    "dense_matrix": ("01.1 W from tuples", _check_dense_matrix),
    "mean_gradient": ("01.4 the gradient on a mean", _check_mean_gradient),
    "diagonal_fraction": ("02.1 on the diagonal", _check_diagonal_fraction),
    "tuples_per_instance": ("02.2 how sparse is sparse?", _check_tuples_per_instance),
    "score_function_gradient": ("03.1 the score-function gradient", _check_score_function_gradient),
    "leave_one_out": ("03.2 a leave-one-out baseline", _check_leave_one_out),
    "box_around": ("04.1 move a glimpse by hand", _check_box_around),
    "grid_means": ("04.2 the glimpse grid", _check_grid_means),
    "corner_gradient_signs": ("04.3 which way a corner is pushed", _check_corner_gradient_signs),
    "half_permutation": ("05.1 a half-permutation", _check_half_permutation),
    "soft_buckets": ("05.2 soft buckets", _check_soft_buckets),
    "sample_weight": ("05.3 the weight of a sampled o", _check_sample_weight),
    "sparse_parameter_count": ("06.1 parameters of a sparse layer", _check_sparse_parameter_count),
    "pixel_counts": ("06.2 where the connections go", _check_pixel_counts),
    "diagnose": ("06.3 read a run from its traces", _check_diagnose),
}
"""name -> (title, check). The name is the stub's (and the solution's) function name."""

RETURNS = {
    "corner_tuples": "an integer tensor (2**r, r): the nearest tuples",
    "proportions": "a tensor (S,): one proportion per tuple",
    "dense_matrix": "a tensor of the given shape: W",
    "mean_gradient": "a tensor (r,): dL/dmu",
    "diagonal_fraction": "one number: the fraction on the diagonal",
    "tuples_per_instance": "a pair (tuples, fraction) of numbers",
    "score_function_gradient": "a tensor (r,): the gradient estimate",
    "leave_one_out": "a tensor with one baseline per loss",
    "box_around": "4 raw numbers (y0, x0, y1, x1 before the sigmoid)",
    "grid_means": "a tensor (s, s, 2): the grid of means",
    "corner_gradient_signs": "4 signs (+1 or -1), one per raw corner (y0, x0, y1, x1)",
    "half_permutation": "a tensor (n,) of row indices",
    "soft_buckets": "a tensor (n,): o' per key",
    "sample_weight": "one number: the weight of o",
    "sparse_parameter_count": "one number: the parameter count",
    "pixel_counts": "a tensor (height, width) of counts",
    "diagnose": "one of the strings 'working', 'small value', 'stalled', 'still searching'",
}
"""name -> what its answer returns, in words (said when a check cannot use what came back)."""


def check(answer, *, quiet: bool = False) -> bool | None:
    """Test an exercise answer (the filled-in stub) and say whether it is right.

    Prints one line: a tick and "correct", a cross and the first input where the answer goes wrong,
    "not done yet" for an empty stub, or (with :func:`solutions_enabled`) that the reference
    solution was used. Returns None after printing, so a notebook cell ending in ``check(f)`` shows
    only that line; ``quiet=True`` prints nothing and returns True or False instead. With
    :func:`solutions_enabled` a wrong answer raises AssertionError (CI must notice).
    """
    name = getattr(answer, "__name__", None)
    if name not in EXERCISES:
        raise ValueError(f"check() takes an exercise function, one of {sorted(EXERCISES)}; got {answer!r}")
    title, checker = EXERCISES[name]
    reference = solutions_enabled() and answer is getattr(_solutions(), name, None)
    student = _Answer(answer)
    try:
        detail = checker(student)
        ok, message = True, f"\u2705 Exercise {title}: correct ({detail})."
        if reference:  # say so, neutrally: the stub above is still empty, the reference answer was swapped in
            message = (f"Exercise {title}: ASHLIB_SOLUTIONS=1 put the reference solution (ashlib.solutions) in place "
                       f"of the stub, and it passes ({detail}). Fill in the stub and run this cell to check your "
                       "own answer.")
    except _Wrong as wrong:
        ok, message = False, f"\u274c Exercise {title}: not yet. {wrong}"
        if student.returned is None and _first_call_returned_none(student):
            message = (f"Exercise {title}: not done yet. The stub returns None: fill it in (or add the missing "
                       "`return`), then run this cell again.")
    except _Raised as raised:  # the student's code raised: show it, do not crash the notebook
        error = raised.error
        ok, message = False, f"\u274c Exercise {title}: your function raised {type(error).__name__}: {error}"
    except Exception as error:  # noqa: BLE001 - the function returned, but the check cannot use what it returned
        returned = "nothing yet" if student.returned is _Answer._NOTHING else _describe(student.returned)
        ok, message = False, (f"\u274c Exercise {title}: not yet. Your function returned {returned}, which the check "
                              f"cannot use ({type(error).__name__}: {error}); it expects {RETURNS[name]}")
    if not ok and solutions_enabled():
        raise AssertionError(message)
    if quiet:
        return ok
    print(message)
    return None


def _first_call_returned_none(student: _Answer) -> bool:
    """Whether every call so far returned None (an empty stub), not a later one after right answers."""
    return student.calls == student.nones
