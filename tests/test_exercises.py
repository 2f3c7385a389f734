"""The notebooks' self-checks: every reference solution passes, and an empty stub or a
plausible mistake fails (so a self-check cannot pass on an unfinished exercise)."""

import json
import re
import inspect
from pathlib import Path

import pytest
import torch

from ashlib import exercises, solutions
from ashlib.exercises import EXERCISES, check, exercise

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


@pytest.fixture
def students(monkeypatch):
    """A student's session: no solutions swapped in, failures only printed."""
    monkeypatch.delenv("ASHLIB_SOLUTIONS", raising=False)


@pytest.mark.parametrize("name", sorted(EXERCISES))
def test_reference_solution_passes(name, students, capsys):
    assert check(getattr(solutions, name), quiet=True)
    assert check(getattr(solutions, name)) is None  # printed: nothing trails the cell
    assert capsys.readouterr().out.startswith("\u2705")


@pytest.mark.parametrize("name", sorted(EXERCISES))
def test_empty_stub_fails(name, students, capsys):
    namespace = {}
    exec(f"def {name}(*args):\n    ...\n", namespace)  # what the notebook's stub returns: None
    assert not check(namespace[name], quiet=True)
    check(namespace[name])
    out = capsys.readouterr().out
    assert "not done yet" in out and "\u274c" not in out and "\u2705" not in out


def _wrong_answers():
    """One plausible mistake per exercise."""
    def corner_tuples(mean):  # rounds instead of taking both neighbours
        return torch.as_tensor(mean).round().long().view(1, -1)

    def proportions(tuples, mean, sigma):  # forgets that repeats get nothing
        d = -0.5 * (((torch.as_tensor(tuples).double() - mean) / sigma) ** 2).sum(-1)
        return torch.softmax(d, 0)

    def dense_matrix(indices, values, shape):  # overwrites instead of adding duplicates
        W = torch.zeros(shape)
        W[indices[:, 0], indices[:, 1]] = values
        return W

    def mean_gradient(tuples, mean, sigma, costs):  # forgets the normalisation term of dp_j/dmu
        t = torch.as_tensor(tuples).double()
        p = torch.softmax(-0.5 * (((t - mean) / sigma) ** 2).sum(-1), 0)
        return ((costs * p).unsqueeze(-1) * (t - mean) / sigma**2).sum(0)

    def diagonal_fraction(means):  # truncates instead of rounding
        cells = torch.as_tensor(means).long()
        return (cells[:, 0] == cells[:, 1]).float().mean().item()

    def tuples_per_instance(n, k, a_local, a_global):  # forgets the 2**r nearest tuples
        t = k * (a_local + a_global)
        return t, min(1.0, t / n**2)

    def score_function_gradient(z, mu, sigma, losses, baseline):  # drops the 1/sigma^2
        return ((torch.as_tensor(losses) - baseline).unsqueeze(-1) * (z - mu)).mean(0)

    def leave_one_out(losses):  # includes the draw itself
        return torch.as_tensor(losses).mean().expand(len(losses))

    def box_around(top, left, canvas, digit=28):  # fractions of the canvas, not logits
        return torch.tensor([top, left, top + digit - 1, left + digit - 1]) / (canvas - 1)

    def grid_means(corners, s):  # cell centres instead of corner to corner
        y0, x0, y1, x1 = torch.as_tensor(corners).tolist()
        t = (torch.arange(s) + 0.5) / s
        ys, xs = y0 + (y1 - y0) * t, x0 + (x1 - x0) * t
        return torch.stack(torch.broadcast_tensors(ys[:, None], xs[None, :]), -1)

    def corner_gradient_signs(box, digit):  # the direction each corner should move, not the gradient's sign
        return torch.sign(torch.as_tensor(digit, dtype=torch.float32) - torch.as_tensor(box, dtype=torch.float32))

    def half_permutation(o, d):  # ignores chunks (right only for d = 1)
        return solutions.half_permutation(o, 1)

    def soft_buckets(keys, C):  # mean instead of median
        keys = torch.as_tensor(keys)
        return torch.sigmoid(C * (keys - keys.mean()))

    def sample_weight(o, soft_o):  # sums instead of multiplying
        return torch.where(torch.as_tensor(o).bool(), soft_o, 1 - soft_o).sum().item()

    def sparse_parameter_count(in_shape, out_shape, k, fix_values):  # counts the values even when fixed
        rank = (len(in_shape) if isinstance(in_shape, tuple) else 1) + (len(out_shape) if isinstance(out_shape, tuple) else 1)
        return k * (rank + 2)

    def pixel_counts(means, height, width):  # reads the (hidden, row) coordinates instead of (row, column)
        counts = torch.zeros(height, width)
        for a, b, _ in torch.as_tensor(means).round().long().tolist():
            if a < height and b < width:
                counts[a, b] += 1
        return counts

    def diagnose(trace):  # judges by sigma alone: a narrow sigma is called stalled even when every entry is placed
        return "stalled" if trace["sigma"][-1] < 1.0 else "still searching"

    return dict(locals())


@pytest.mark.parametrize("name", sorted(EXERCISES))
def test_plausible_mistake_fails(name, students):
    assert not check(_wrong_answers()[name], quiet=True)


def test_exercise_swaps_in_the_solution_only_when_enabled(monkeypatch, capsys):
    def leave_one_out(losses):
        ...

    monkeypatch.delenv("ASHLIB_SOLUTIONS", raising=False)
    assert exercise(leave_one_out) is leave_one_out
    monkeypatch.setenv("ASHLIB_SOLUTIONS", "1")
    assert exercise(leave_one_out) is solutions.leave_one_out
    check(exercise(leave_one_out))  # the stored output must not claim the empty stub passed
    out = capsys.readouterr().out
    assert "put the reference solution" in out and "\u2705" not in out
    with pytest.raises(AssertionError, match="not (done )?yet"):  # CI mode: a failing check fails the cell
        check(leave_one_out)
    with pytest.raises(ValueError, match="no exercise named"):
        exercise(lambda x: x)


def test_every_exercise_is_in_a_notebook_with_its_solution_source():
    """Each notebook shows the solution's current source in its collapsed solution block."""
    found = {}
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        cells = json.loads(path.read_text())["cells"]
        text = ["".join(c["source"]) for c in cells]
        for i, src in enumerate(text):
            for name in re.findall(r"^@exercise\s*\ndef (\w+)\(", src, flags=re.M):
                found[name] = path.name
                following = "\n".join(text[i + 1: i + 4])
                assert f"check({name})" in following, f"{path.name}: no self-check after the stub {name}"
                assert inspect.getsource(getattr(solutions, name)).strip() in following, \
                    f"{path.name}: the solution block of {name} differs from ashlib.solutions"
    assert set(found) == set(EXERCISES), f"exercises missing from the notebooks: {set(EXERCISES) - set(found)}"
    per_notebook = {}
    for name, nb in found.items():
        per_notebook[nb] = per_notebook.get(nb, 0) + 1
    assert len(per_notebook) == 6 and min(per_notebook.values()) >= 2


@pytest.mark.parametrize("name", sorted(EXERCISES))
def test_each_solution_runs_when_pasted_into_its_stub(name, students, capsys):
    """The solution block a notebook shows is the function's source; pasted into a kernel that has
    run only the notebook's own imports (torch, ashlib), it must define a working answer."""
    import ashlib

    namespace = {"torch": torch, "ashlib": ashlib}
    exec(inspect.getsource(getattr(solutions, name)), namespace)
    assert check(namespace[name], quiet=True)
    check(namespace[name])
    assert capsys.readouterr().out.startswith("\u2705")


def _slip_message(name, answer, capsys):
    answer.__name__ = name
    check(answer)
    return capsys.readouterr().out


def test_usual_slips_get_a_hint(students, capsys):
    """The slips the exercises warn about are named, not just shown as different numbers."""
    def overwrite(indices, values, shape):  # 01.1: repeated tuples overwritten
        W = torch.zeros(shape)
        W[indices[:, 0], indices[:, 1]] = values
        return W

    def truncate(means):  # 02.1: truncation instead of rounding
        cells = means.long()
        return (cells[:, 0] == cells[:, 1]).float().mean()

    def by_canvas(top, left, canvas, digit=28):  # 04.1: canvas instead of canvas - 1
        corners = torch.tensor([top, left, top + digit - 1, left + digit - 1], dtype=torch.float32)
        return torch.logit(corners / canvas)

    def halves_swapped(o, d):  # 05.1: the o = 1 entries first
        from ashlib.sort import half_permutation_rows
        return half_permutation_rows((1 - o).view(1, -1), d)[0]

    assert "add its values up" in _slip_message("dense_matrix", overwrite, capsys)
    assert "do not truncate" in _slip_message("diagonal_fraction", truncate, capsys)
    assert "divide by canvas - 1" in _slip_message("box_around", by_canvas, capsys)
    assert "wrong way round" in _slip_message("half_permutation", halves_swapped, capsys)
    toward_digit = _wrong_answers()["corner_gradient_signs"]  # 04.3: the direction of the step, not of the gradient
    assert "steps against the gradient" in _slip_message("corner_gradient_signs", toward_digit, capsys)


def test_a_wrong_tensor_is_reported_at_its_first_differing_entry(students, capsys):
    def off_by_one_pixel(means, height, width):
        from ashlib.solutions import pixel_counts
        counts = pixel_counts(means, height, width)
        counts[1, 2] += 1  # one extra count in one pixel
        return counts

    out = _slip_message("pixel_counts", off_by_one_pixel, capsys)
    expected = "first difference at index (1, 2): expected {0}, got {1}"
    assert any(expected.format(float(e), float(e + 1)) in out for e in range(3)), out
    assert "1 of 16 entries differ" in out
