"""NeuralSort and SoftSort: hand-worked cases and their limits (hard sort as tau -> 0)."""

import math

import pytest
import torch

from ashlib.sort_baselines import apply_permutation, neuralsort, softsort


@pytest.mark.parametrize("relax", [neuralsort, softsort])
def test_small_tau_gives_the_hard_sort(relax):
    g = torch.Generator().manual_seed(0)
    keys = torch.randn(4, 9, dtype=torch.float64, generator=g)
    P = relax(keys, tau=1e-4)
    hard = torch.zeros(4, 9, 9, dtype=torch.float64)
    hard.scatter_(2, keys.argsort(1).unsqueeze(2), 1.0)  # row i picks the i-th smallest key
    torch.testing.assert_close(P, hard, atol=1e-8, rtol=0)
    items = torch.randn(4, 9, 2, dtype=torch.float64, generator=g)
    torch.testing.assert_close(apply_permutation(P, items), items.gather(1, keys.argsort(1).unsqueeze(2).expand(4, 9, 2)))


def test_neuralsort_hand_worked_n2():
    # s = -keys = (-1, 1); A 1 = (2, 2); row 1 (largest s first): (n+1-2) s - A1 = (-1-2, 1-2) = (-3, -1)
    P = neuralsort(torch.tensor([[1.0, -1.0]]), tau=1.0)[0]
    e = math.exp(-3) / (math.exp(-3) + math.exp(-1))
    torch.testing.assert_close(P[0], torch.tensor([e, 1 - e]))


def test_softsort_hand_worked_n2():
    # sorted keys (-1, 1); row 0: softmax(-|-1 - (1, -1)|) = softmax(-2, 0)
    P = softsort(torch.tensor([[1.0, -1.0]]), tau=1.0)[0]
    e = math.exp(-2) / (math.exp(-2) + 1)
    torch.testing.assert_close(P[0], torch.tensor([e, 1 - e]))
    torch.testing.assert_close(P.sum(1), torch.ones(2))


@pytest.mark.parametrize("relax", [neuralsort, softsort])
def test_rows_are_distributions_and_bad_input(relax):
    P = relax(torch.randn(3, 5))
    torch.testing.assert_close(P.sum(-1), torch.ones(3, 5))
    with pytest.raises(ValueError):
        relax(torch.randn(5))
    with pytest.raises(ValueError):
        relax(torch.randn(2, 5), tau=0.0)
