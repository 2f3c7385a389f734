"""The same checks on every device this machine has (CPU always; CUDA when present)."""

import pytest
import torch

import ashlib
from dense_reference import apply_dense, dense_from_tuples

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_hyperlayer_on_device_matches_dense_reference(device, dtype):
    torch.manual_seed(0)
    b, k, in_shape, out_shape = 3, 6, (4, 3), (5,)
    r = len(in_shape) + len(out_shape)
    raw = (torch.randn(b, k, r, dtype=dtype), torch.randn(b, k, r, dtype=dtype), torch.randn(b, k, dtype=dtype))
    source = lambda x: tuple(t.to(device) for t in raw)  # noqa: E731  per-dimension sigmas (b, k, r)
    layer = ashlib.HyperLayer(in_shape, out_shape, k, source, a_local=2, a_global=2, region=2, chunk_size=3)
    x = torch.randn(b, *in_shape, dtype=dtype, device=device)
    gen = torch.Generator(device=device)
    indices, weights = layer.sample_weights(*source(x), generator=gen.manual_seed(5))
    y = layer(x, generator=gen.manual_seed(5))
    assert y.device.type == device and y.dtype == dtype
    W = dense_from_tuples(indices.cpu(), weights.detach().cpu(), out_shape + in_shape)
    torch.testing.assert_close(y.detach().cpu(), apply_dense(W, x.cpu(), len(out_shape)))
