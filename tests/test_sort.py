"""Half-permutations and differentiable quicksort, against loop-built references."""

import itertools
import math

import pytest
import torch

import ashlib
from ashlib.contract import to_dense
from ashlib.sort import half_permutation_rows, half_permutation_step, intermediate_loss, push_back_targets


def reference_half_permutation(o, d):
    """P^d(o) applied to positions, by the definition: per chunk, the 0s in order, then the 1s."""
    n = len(o)
    c = n // 2 ** (d - 1)
    order = []
    for start in range(0, n, c):
        chunk = list(range(start, start + c))
        order += [i for i in chunk if o[i] == 0] + [i for i in chunk if o[i] == 1]
    rows = [0] * n
    for position, i in enumerate(order):
        rows[i] = position  # x[i] ends at `position`
    return rows


def all_balanced(n, d):
    c = n // 2 ** (d - 1)
    chunk_options = [o for o in itertools.product([0, 1], repeat=c) if sum(o) == c // 2]
    for parts in itertools.product(chunk_options, repeat=n // c):
        yield [bit for part in parts for bit in part]


@pytest.mark.parametrize("n,d", [(2, 1), (4, 1), (4, 2), (8, 1), (8, 2), (8, 3)])
def test_rows_match_the_definition_for_every_valid_o(n, d):
    os = list(all_balanced(n, d))
    expected_count = math.comb(n // 2 ** (d - 1), n // 2**d) ** (2 ** (d - 1))
    assert len(os) == expected_count
    rows = half_permutation_rows(torch.tensor(os), d)
    for o, r in zip(os, rows.tolist()):
        assert r == reference_half_permutation(o, d)
        assert sorted(r) == list(range(n))  # a permutation


def test_rows_reject_bad_o():
    with pytest.raises(ValueError, match="ones and"):
        half_permutation_rows(torch.tensor([[1, 1, 0, 1]]), 1)
    with pytest.raises(ValueError, match="power of two"):
        half_permutation_rows(torch.tensor([[1, 0, 0, 1, 1, 0]]), 1)
    with pytest.raises(ValueError, match="order"):
        half_permutation_rows(torch.tensor([[1, 0, 0, 1]]), 3)
    with pytest.raises(ValueError, match="0s and 1s"):
        half_permutation_rows(torch.tensor([[2, 0, 0, 1]]), 1)


def test_one_step_is_the_normalised_mixture_of_its_samples():
    """Dense reference: sum_j p_j P(o_j), p_j proportional to prod(o' or 1 - o'), repeats zero."""
    g = torch.Generator().manual_seed(0)
    keys = torch.randn(3, 8, dtype=torch.float64, generator=g)
    step = half_permutation_step(keys, 2, samples=20, C=2.0, generator=g)
    for b in range(3):
        soft = step.soft_o[b]
        raw = []
        seen = []
        for o in step.o[b].long().tolist():
            p = math.prod(soft[i].item() if bit else 1 - soft[i].item() for i, bit in enumerate(o))
            raw.append(0.0 if o in seen else p)
            seen.append(o)
        raw = torch.tensor(raw, dtype=torch.float64)
        torch.testing.assert_close(step.proportions[b], raw / raw.sum())
        W = to_dense(step.indices[b], step.weights[b], (8, 8))
        expected = torch.zeros(8, 8, dtype=torch.float64)
        for o, p in zip(step.o[b].long().tolist(), raw / raw.sum()):
            for i, r in enumerate(reference_half_permutation(o, 2)):
                expected[r, i] += p
        torch.testing.assert_close(W, expected)
        torch.testing.assert_close(W.sum(0), torch.ones(8, dtype=torch.float64))  # columns sum to 1
    # sample 0 is the hard o: the upper half of each chunk of 4 by key
    chunks = keys.view(3, 2, 4)
    upper = chunks >= chunks.sort(-1).values[..., 2:3]
    assert torch.equal(step.o[:, 0], upper.view(3, 8))


@pytest.mark.parametrize("n", [2, 4, 16, 64])
def test_keys_far_apart_sort_exactly(n):
    g = torch.Generator().manual_seed(n)
    keys = torch.randperm(n, generator=g).double().expand(5, n) * 3.0 + torch.arange(5).unsqueeze(1)
    items = torch.randn(5, n, 3, 2, dtype=torch.float64, generator=g)
    result = ashlib.quicksort(keys, items, generator=g)
    expected = items.gather(1, keys.argsort(1).view(5, n, 1, 1).expand(5, n, 3, 2))
    torch.testing.assert_close(result.sorted, expected, atol=1e-9, rtol=0)
    assert len(result.steps) == int(math.log2(n))
    torch.testing.assert_close(result.keys[-1], keys.sort(1).values, atol=1e-9, rtol=0)


@pytest.mark.parametrize("item_dtype", [torch.float64, torch.float32])
def test_keys_and_items_of_different_precision_keep_their_dtypes(item_dtype):
    """Keys and items share one mixing matrix per round when their dtypes match; otherwise each
    is mixed on its own. Either way the result is the hard sort, in each tensor's own dtype."""
    g = torch.Generator().manual_seed(3)
    keys = (torch.randperm(8, generator=g).float() * 3.0).expand(4, 8)
    items = torch.randn(4, 8, 5, dtype=item_dtype, generator=g)
    result = ashlib.quicksort(keys, items, generator=g)
    assert result.sorted.dtype == item_dtype and result.keys[-1].dtype == torch.float32
    expected = items.gather(1, keys.argsort(1).view(4, 8, 1).expand(4, 8, 5))
    torch.testing.assert_close(result.sorted, expected, atol=1e-6, rtol=0)
    torch.testing.assert_close(result.keys[-1], keys.sort(1).values, atol=1e-5, rtol=0)


def test_padding_for_n_not_a_power_of_two():
    keys = torch.tensor([[5.0, -3.0, 9.0, 1.0, 0.0, 7.0]]) * 2
    items = torch.arange(6.0).view(1, 6)
    result = ashlib.quicksort(keys, items)
    torch.testing.assert_close(result.sorted, items[:, keys[0].argsort()])
    with pytest.raises(ValueError, match="power of two"):
        ashlib.quicksort(keys, items, pad=False)


def test_wrong_order_gets_a_gradient_towards_the_right_order():
    """The paper's n = 2 argument: item 0 should come first, but its key is the larger one."""
    for gap in (0.05, 0.2, 0.5):
        keys = torch.tensor([[0.5 + gap, 0.5 - gap]], requires_grad=True)
        items = torch.tensor([[0.0, 1.0]])
        target = torch.tensor([[0.0, 1.0]])
        # with n = 2 a random balanced o is the swap or the hard o itself (a repeat, masked): draw
        # enough samples that the swap is among them (all 8 equal to the hard o: p = 1/256, and seeded)
        out = ashlib.quicksort(keys, items, samples=8, generator=torch.Generator().manual_seed(0)).sorted
        (out - target).pow(2).sum().backward()
        assert keys.grad[0, 0] > 0 and keys.grad[0, 1] < 0  # descent lowers key 0, raises key 1
        # and in the right order the loss is already smaller
        right = ashlib.quicksort(keys.detach().flip(1), items).sorted
        assert (right - target).pow(2).sum() < (out.detach() - target).pow(2).sum()


@pytest.mark.parametrize("width", [4, 20], ids=["narrow-items", "wide-items"])
def test_gradient_matches_finite_differences_for_fixed_samples(width):
    """Keys' gradient; 20 features take contract's sparse-mm path, 4 its gather path."""
    g_state = torch.Generator().manual_seed(3).get_state()
    keys = torch.randn(2, 8, dtype=torch.float64, requires_grad=True)
    items = torch.rand(2, 8, width, dtype=torch.float64)

    def f(k):
        g = torch.Generator()
        g.set_state(g_state)
        return ashlib.quicksort(k, items, C=1.0, generator=g).sorted.pow(2).sum()

    torch.autograd.gradcheck(f, (keys,))


def test_intermediate_loss_pushes_the_target_back():
    g = torch.Generator().manual_seed(0)
    n = 8
    keys = torch.randperm(n, generator=g).double().unsqueeze(0) * 5  # far apart: hard permutations
    items = torch.rand(1, n, 2, dtype=torch.float64, generator=g)
    result = ashlib.quicksort(keys, items, generator=g)
    target = items[:, keys[0].argsort()]
    targets = push_back_targets(result, target)
    for step, t in zip(result.steps, targets):  # correct keys: every round's target is its output
        torch.testing.assert_close(step, t, atol=1e-9, rtol=0)
    loss = intermediate_loss(result, target)
    bce_of_self = sum(torch.nn.functional.binary_cross_entropy(s, s) for s in result.steps)
    torch.testing.assert_close(loss, bce_of_self, atol=1e-5, rtol=1e-5)
    wrong = intermediate_loss(ashlib.quicksort(-keys, items, generator=g), target)
    assert wrong > loss + 0.1


def test_bad_input():
    with pytest.raises(ValueError, match="keys"):
        ashlib.quicksort(torch.zeros(2, 4, dtype=torch.long), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="items"):
        ashlib.quicksort(torch.zeros(2, 4), torch.zeros(2, 3))
    with pytest.raises(ValueError, match="NaN"):
        ashlib.quicksort(torch.tensor([[0.0, float("nan")]]), torch.zeros(1, 2))


def test_local_proposals_are_one_swap_from_the_hard_split():
    """Every local proposal is a valid balanced o that differs from the hard o by whole swaps."""
    torch.manual_seed(0)
    keys = torch.randn(5, 16)
    for d in (1, 2, 3, 4):
        step = half_permutation_step(keys, d, samples=0, local=6, generator=torch.Generator().manual_seed(d))
        c = 16 >> (d - 1)
        hard, local = step.o[:, :1], step.o[:, 1:]
        diff = (hard != local).view(5, 6, 16 // c, c).sum(-1)  # changed positions per chunk
        assert set(diff.unique().tolist()) <= {0, 2}
        assert bool((diff.sum(-1) > 0).all()) or d > 1  # one chunk: always a swap
        # balanced in every chunk (else half_permutation_rows would have raised)
        assert bool((local.view(5, 6, 16 // c, c).sum(-1) == c // 2).all())
        # a swap moves one element up and one down
        changed = (hard != local).view(5, 6, 16 // c, c)
        ups = (changed & local.view(5, 6, 16 // c, c)).sum(-1)
        assert bool((ups * 2 == diff).all())


def test_local_proposal_for_two_items_is_the_exact_two_permutation_mixture():
    """n = 2: the only swap of the hard o is the other permutation, so one local proposal makes the
    round the exact expectation over both orders, with weights from o' (hand-worked)."""
    keys = torch.tensor([[0.3, 0.5]])
    items = torch.tensor([[[1.0], [2.0]]])
    C = 10.0
    out = ashlib.quicksort(keys, items, samples=0, local=1, C=C).sorted
    up = torch.sigmoid(C * (keys - keys.mean()))  # o' of each key; median = mean for 2 keys
    p_keep = (1 - up[0, 0]) * up[0, 1]  # 0.3 stays down, 0.5 stays up
    p_swap = up[0, 0] * (1 - up[0, 1])
    w = p_keep / (p_keep + p_swap)
    expected = torch.tensor([[w * 1.0 + (1 - w) * 2.0, w * 2.0 + (1 - w) * 1.0]])
    torch.testing.assert_close(out.squeeze(-1), expected)
    with pytest.raises(ValueError, match="local"):
        ashlib.quicksort(keys, items, local=-1)


@pytest.mark.parametrize("n", [4, 8, 16])
def test_swap_neighbours_are_every_balanced_o_one_swap_in_one_chunk_away(n):
    """neighbours=True adds exactly the balanced o's at Hamming distance 2 from the hard o whose
    two changes lie in one chunk: compared with a brute-force filter over all balanced o's."""
    torch.manual_seed(n)
    keys = torch.randn(3, n)
    for d in range(1, n.bit_length()):
        c = n >> (d - 1)
        step = half_permutation_step(keys, d, samples=0, neighbours=True)
        for b in range(3):
            hard = tuple(step.o[b, 0].long().tolist())
            got = [tuple(o) for o in step.o[b, 1:].long().tolist()]
            expected = set()
            for o in all_balanced(n, d):
                changed = [i for i in range(n) if o[i] != hard[i]]
                if len(changed) == 2 and changed[0] // c == changed[1] // c:
                    expected.add(tuple(o))
            assert len(got) == len(set(got)) == (n // c) * (c // 2) ** 2
            assert set(got) == expected


def test_swap_neighbours_give_every_close_pair_a_gradient():
    """Four chunks of two at the last round, each pair already ordered: with neighbours every pair's
    keys get a gradient (each has its own one-swap proposal); the hard o alone gives none."""
    keys = torch.tensor([[0.0, 0.05, 1.0, 1.05, 2.0, 2.05, 3.0, 3.05]], requires_grad=True)
    items = torch.arange(8.0).view(1, 8, 1)
    for neighbours, expect_all in ((True, True), (False, False)):
        keys.grad = None
        out = ashlib.quicksort(keys, items, samples=0, neighbours=neighbours).sorted
        (out.squeeze(-1) * torch.arange(8.0)).sum().backward()
        assert bool((keys.grad.abs() > 1e-6).all()) == expect_all
    with pytest.raises(ValueError, match="neighbours"):
        ashlib.quicksort(keys.detach(), items, neighbours=1)
    with pytest.raises(ValueError, match="n <= 64"):
        ashlib.quicksort(torch.randn(1, 128), torch.zeros(1, 128, 1), neighbours=True)


@pytest.mark.parametrize("n", [4, 62, 63, 130])
def test_repeated_half_permutations_are_found_exactly(n):
    """repeat_rows_mask against a brute-force pairwise comparison, rows of n bits (1, 2 and 3 words)."""
    from ashlib.indexing import repeat_rows_mask

    g = torch.Generator().manual_seed(n)
    base = torch.rand(3, 5, n, generator=g) < 0.5
    rows = base[:, torch.randint(0, 5, (12,), generator=g)]  # 12 rows drawn from 5: many repeats
    rows[:, 7, -1] = ~rows[:, 7, -1]  # differs from its source in the last bit only
    mask = repeat_rows_mask(rows)
    expected = torch.zeros(3, 12, dtype=torch.bool)
    for b in range(3):
        for j in range(12):
            expected[b, j] = any(bool((rows[b, i] == rows[b, j]).all()) for i in range(j))
    assert torch.equal(mask, expected)
