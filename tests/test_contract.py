import pytest
import torch

from ashlib import contract
from dense_reference import apply_dense, dense_differentiable, dense_from_tuples


def random_tuples(b, m, shape, generator):
    cols = [torch.randint(0, h, (b, m), generator=generator) for h in shape]
    return torch.stack(cols, dim=-1)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_vector_to_vector_matches_dense(dtype):
    g = torch.Generator().manual_seed(0)
    b, n_out, n_in, m = 3, 5, 7, 20
    idx = random_tuples(b, m, (n_out, n_in), g)
    vals = torch.randn(b, m, generator=g, dtype=dtype)
    x = torch.randn(b, n_in, generator=g, dtype=dtype)
    y = contract(idx, vals, x, (n_out,))
    W = dense_from_tuples(idx, vals, (n_out, n_in))
    expected = torch.einsum("boi,bi->bo", W, x)
    assert y.dtype == dtype and y.shape == (b, n_out)
    torch.testing.assert_close(y, expected)


def test_rank2_to_rank3_with_different_W_per_instance():
    g = torch.Generator().manual_seed(1)
    b, out_shape, in_shape, m = 4, (2, 3, 4), (5, 3), 40
    idx = random_tuples(b, m, out_shape + in_shape, g)
    vals = torch.randn(b, m, generator=g, dtype=torch.float64)
    x = torch.randn(b, *in_shape, generator=g, dtype=torch.float64)
    y = contract(idx, vals, x, out_shape)
    W = dense_from_tuples(idx, vals, out_shape + in_shape)
    expected = torch.einsum("bopqij,bij->bopq", W, x)
    torch.testing.assert_close(y, expected)
    # The instances really have different W: swapping instance 0's tuples changes only y[0].
    idx2 = idx.clone()
    idx2[0] = random_tuples(1, m, out_shape + in_shape, g)[0]
    y2 = contract(idx2, vals, x, out_shape)
    torch.testing.assert_close(y2[1:], y[1:])
    assert not torch.allclose(y2[0], y[0])


def test_repeated_tuples_add_up():
    # Hand-worked: W = [[0, 2+3], [4, 0]] built from tuple (0, 1) given twice.
    idx = torch.tensor([[[0, 1], [0, 1], [1, 0]]])
    vals = torch.tensor([[2.0, 3.0, 4.0]])
    x = torch.tensor([[10.0, 100.0]])
    y = contract(idx, vals, x, (2,))
    torch.testing.assert_close(y, torch.tensor([[500.0, 40.0]]))


def test_gradients_match_dense_autograd():
    g = torch.Generator().manual_seed(2)
    b, out_shape, in_shape, m = 3, (4, 2), (3, 5), 30
    idx = random_tuples(b, m, out_shape + in_shape, g)
    idx[:, 1] = idx[:, 0]  # make sure there are repeats
    vals = torch.randn(b, m, generator=g, dtype=torch.float64, requires_grad=True)
    x = torch.randn(b, *in_shape, generator=g, dtype=torch.float64, requires_grad=True)
    w_out = torch.randn(b, *out_shape, generator=g, dtype=torch.float64)

    (contract(idx, vals, x, out_shape) * w_out).sum().backward()
    g_vals, g_x = vals.grad.clone(), x.grad.clone()
    vals.grad = x.grad = None
    W = dense_differentiable(idx, vals, out_shape + in_shape)
    (apply_dense(W, x, len(out_shape)) * w_out).sum().backward()
    torch.testing.assert_close(g_vals, vals.grad)
    torch.testing.assert_close(g_x, x.grad)


def test_bad_input_raises_value_error_with_advice():
    x = torch.randn(2, 3)
    vals = torch.randn(2, 4)
    good = torch.zeros(2, 4, 2, dtype=torch.long)
    with pytest.raises(ValueError, match="integer tensor"):
        contract(good.float(), vals, x, (3,))
    with pytest.raises(ValueError, match="shape"):
        contract(good[..., :1], vals, x, (3,))  # rank mismatch
    with pytest.raises(ValueError, match=r"values must have shape"):
        contract(good, vals[:, :3], x, (3,))
    bad = good.clone()
    bad[1, 2, 1] = 3  # input index 3 in a size-3 dimension
    with pytest.raises(ValueError, match="out of range"):
        contract(bad, vals, x, (3,))
    bad[1, 2, 1] = -1
    with pytest.raises(ValueError, match="out of range"):
        contract(bad, vals, x, (3,))
    with pytest.raises(ValueError, match="same dtype"):
        contract(good, vals.double(), x, (3,))


@pytest.mark.parametrize("features", [(3, 2), (4, 7)], ids=["narrow-gather", "wide-sparse-mm"])
def test_feature_dims_carry_trailing_dimensions(features):
    """W (n, n) applied to n items of shape ``features``: the same as the loop over features.

    (3, 2) takes the gather + index_add path, (4, 7) (28 >= WIDE_FEATURES) the sparse-mm path.
    """
    g = torch.Generator().manual_seed(0)
    b, n, m = 2, 5, 7
    indices = torch.randint(0, n, (b, m, 2), generator=g)
    values = torch.randn(b, m, dtype=torch.float64, generator=g)
    x = torch.randn(b, n, *features, dtype=torch.float64, generator=g, requires_grad=True)
    y = contract(indices, values, x, (n,), feature_dims=2)
    expected = torch.zeros(b, n, *features, dtype=torch.float64)
    for i in range(b):
        for j in range(m):
            r, c = indices[i, j].tolist()
            expected[i, r] += values[i, j] * x[i, c].detach()
    torch.testing.assert_close(y, expected)
    y.sum().backward()
    assert x.grad.shape == x.shape
    with pytest.raises(ValueError, match="feature"):
        contract(indices, values, x.detach()[:, :, 0, 0], (n,), feature_dims=2)


@pytest.mark.parametrize("width", [3, 40], ids=["narrow-gather", "wide-sparse-mm"])
def test_feature_dims_gradients_match_finite_differences(width):
    """Both paths' gradients for values and x, with repeated tuples, against finite differences."""
    g = torch.Generator().manual_seed(1)
    b, n, m = 2, 6, 25  # 25 tuples in a 6 x 6 W: repeats are certain
    indices = torch.randint(0, n, (b, m, 2), generator=g)
    assert len({tuple(t) for t in indices[0].tolist()}) < m
    values = torch.randn(b, m, dtype=torch.float64, generator=g, requires_grad=True)
    x = torch.randn(b, n, width, dtype=torch.float64, generator=g, requires_grad=True)
    assert torch.autograd.gradcheck(lambda v, x: contract(indices, v, x, (n,), feature_dims=1), (values, x))
