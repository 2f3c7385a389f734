"""What a user bringing a problem of their own needs from the layers: defaults, feature dimensions,
an evaluation path, starting points, fixed values in a HyperLayer. Checked against dense
references and hand-worked settings."""

import math

import pytest
import torch
from torch import nn

import ashlib
from ashlib.layers import POOL_ALL_UP_TO, default_sampling


@pytest.mark.parametrize("n, a_local, a_global", [(8, 2, 2), (16, 2, 2), (32, 2, 8), (64, 2, 10)])
def test_default_sampling_follows_the_papers_appendix(n, a_local, a_global):
    """A.1: (a_l, a_g) = (1, 2), (2, 2), (2, 8), (2, 10) at n = 8, 16, 32, 64 (a_l = 2 at n = 8 here),
    region (log2 n, log2 n)."""
    layer = ashlib.SparseLayer(n, n, n)
    assert (layer.a_local, layer.a_global) == (a_local, a_global)
    assert layer.region == (int(math.log2(n)),) * 2


def test_default_sampling_grows_with_the_size_and_is_capped():
    assert default_sampling((256, 256))[1] == 14
    assert default_sampling((4096, 4096))[1] == 16
    assert default_sampling((1, 64))[2] == (1, 6)  # a dimension of size 1 gets region 1


def test_an_int_region_skips_dimensions_of_size_one():
    layer = ashlib.HyperLayer(64, 1, 1, lambda c: None, region=3)
    assert layer.region == (1, 3)
    with pytest.raises(ValueError, match="region"):
        ashlib.SparseLayer(4, 4, 4, region=5)  # larger than a dimension of size 4: still refused


def test_chunk_size_auto_pools_small_layers_whole_and_large_ones_per_gaussian():
    assert ashlib.SparseLayer(8, 8, POOL_ALL_UP_TO).chunk_size is None
    assert ashlib.SparseLayer(8, 16, 2 * POOL_ALL_UP_TO).chunk_size == 1
    assert ashlib.SparseLayer(8, 16, 2 * POOL_ALL_UP_TO, chunk_size=None).chunk_size is None


def test_learned_values_start_at_one_or_where_asked():
    assert torch.equal(ashlib.SparseLayer(4, 4, 4).values.detach(), torch.ones(4))
    assert torch.equal(ashlib.SparseLayer(4, 4, 3, init_values=0.5).values.detach(), torch.full((3,), 0.5))
    torch.manual_seed(0)
    randn = ashlib.SparseLayer(4, 4, 4, init_values="randn").values.detach()
    torch.manual_seed(0)
    torch.randn(4, 2)  # the means come first
    assert torch.equal(randn, torch.randn(4))
    for bad in ("ones", float("nan"), True, None):
        with pytest.raises(ValueError, match="init_values"):
            ashlib.SparseLayer(4, 4, 4, init_values=bad)


def test_init_means_put_each_gaussian_on_its_cell():
    cells = torch.tensor([[0.0, 0.0], [3.0, 7.0], [5.0, 2.0]])
    layer = ashlib.SparseLayer(8, 6, 3, init_means=cells)
    assert torch.equal(layer.gaussians()[0].detach().round(), cells)
    dense = torch.zeros(6, 8)
    dense[0, 0] = dense[3, 7] = dense[5, 2] = 1.0
    assert torch.equal(layer.to_dense(), dense)
    with pytest.raises(ValueError, match=r"init_means must have shape \(k, r\) = \(3, 2\)"):
        ashlib.SparseLayer(8, 6, 3, init_means=torch.zeros(3, 3))
    with pytest.raises(ValueError, match="inside W"):
        ashlib.SparseLayer(8, 6, 3, init_means=torch.tensor([[0.0, 0.0], [6.0, 0.0], [0.0, 0.0]]))


def test_eval_uses_the_nearest_tuples_equal_to_the_dense_rounded_W():
    torch.manual_seed(0)
    layer = ashlib.SparseLayer(7, 5, 6)
    with torch.no_grad():
        layer.values.copy_(torch.randn(6))
    x = torch.randn(4, 7)
    layer.eval()
    y1, y2 = layer(x), layer(x)
    W = torch.zeros(5, 7)
    means = torch.sigmoid(layer.means.detach()) * torch.tensor([4.0, 6.0])
    for (o, i), v in zip(means.round().long().tolist(), layer.values.detach().tolist()):
        W[o, i] += v  # an independent rounding, cell by cell
    assert torch.equal(y1, y2)
    assert torch.allclose(y1, x @ W.T, atol=1e-6)
    assert torch.equal(layer.to_dense(), W)


def test_training_mode_still_samples():
    layer = ashlib.SparseLayer(16, 16, 16)
    x = torch.randn(2, 16)
    assert not torch.equal(layer(x), layer(x))


def test_trailing_feature_dimensions_are_carried_along():
    """W acts on in_shape; each feature slice gets the same sampled W as the slice alone would."""
    torch.manual_seed(1)
    layer = ashlib.SparseLayer(6, 4, 5, shared_draws=None)
    x = torch.randn(3, 6, 2, 5)
    y = layer(x, generator=torch.Generator().manual_seed(7))
    assert y.shape == (3, 4, 2, 5)
    for f in range(2):
        for g in range(5):
            alone = layer(x[..., f, g].contiguous(), generator=torch.Generator().manual_seed(7))
            assert torch.allclose(y[..., f, g], alone, atol=1e-6)
    layer.eval()
    W = layer.to_dense()
    assert torch.allclose(layer(x), torch.einsum("oi,bifg->bofg", W, x), atol=1e-6)


@pytest.mark.parametrize("draws", [1, 2])
def test_feature_dimensions_with_shared_draws(draws):
    torch.manual_seed(2)
    layer = ashlib.SparseLayer(4, 4, 4, shared_draws=draws)
    x = torch.randn(5, 4, 3)
    y = layer(x, generator=torch.Generator().manual_seed(3))
    for f in range(3):
        alone = layer(x[..., f].contiguous(), generator=torch.Generator().manual_seed(3))
        assert torch.allclose(y[..., f], alone, atol=1e-6)


class Pointer(nn.Module):
    def __init__(self, n, outputs):
        super().__init__()
        self.net, self.outputs = nn.Linear(n, 4), outputs

    def forward(self, cue):
        out = self.net(cue)
        params = (out[:, None, :2], out[:, None, 2], out[:, None, 3])
        return params[:self.outputs]


def test_hyperlayer_fix_values_ignores_the_sources_values_or_takes_two_outputs():
    torch.manual_seed(0)
    three, two = Pointer(8, 3), Pointer(8, 2)
    two.load_state_dict(three.state_dict())
    x, cue = torch.randn(5, 8), torch.eye(8)[:5]
    fixed = [ashlib.HyperLayer(8, 1, 1, src, fix_values=True)(x, cue, generator=torch.Generator().manual_seed(1))
             for src in (three, two)]
    assert torch.equal(fixed[0], fixed[1])

    def ones(cue):  # the same source with its values replaced by 1 by hand
        m, s, _ = three(cue)
        return m, s, torch.ones_like(m[..., 0])

    by_hand = ashlib.HyperLayer(8, 1, 1, ones)(x, cue, generator=torch.Generator().manual_seed(1))
    assert torch.equal(fixed[0], by_hand)
    with pytest.raises(ValueError, match="three tensors"):
        ashlib.HyperLayer(8, 1, 1, two)(x, cue)
    with pytest.raises(ValueError, match="fix_values must be True or False"):
        ashlib.HyperLayer(8, 1, 1, two, fix_values=1)


def test_hyperlayer_eval_and_to_dense_give_each_instance_its_rounded_W():
    torch.manual_seed(3)
    layer = ashlib.HyperLayer(8, 2, 3, lambda c: (c[:, :6].reshape(-1, 3, 2) * 3, torch.zeros(c.shape[0], 3),
                                                  c[:, 6:9]))
    context = torch.randn(4, 9)
    x = torch.randn(4, 8)
    W = layer.to_dense(x, context)
    assert W.shape == (4, 2, 8)
    layer.eval()
    assert torch.allclose(layer(x, context), torch.einsum("boi,bi->bo", W, x), atol=1e-6)
    means = torch.sigmoid(context[:, :6].reshape(-1, 3, 2) * 3) * torch.tensor([1.0, 7.0])
    for b in range(4):
        expected = torch.zeros(2, 8)
        for (o, i), v in zip(means[b].round().long().tolist(), context[b, 6:9].tolist()):
            expected[o, i] += v
        assert torch.allclose(W[b], expected)


def test_relocate_settings_are_checked():
    for bad in (dict(relocate=1), dict(relocate=True, relocate_margin=0), dict(relocate=True, relocate_confirm=0)):
        with pytest.raises(ValueError, match="relocate"):
            ashlib.SparseLayer(4, 4, 4, **bad)
