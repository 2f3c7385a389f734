"""Send bad and edge-case inputs to every public entry point of ashlib and the CLI (issue 13).

Each case is classified as

* ``clear``: a ValueError (or a documented type: DownloadError; TypeError / IndexError for
  indexing, as Python's sequences do) whose message names the offending argument or says what
  to do;
* ``correct``: no error and a result that matches an expectation computed independently here
  (an empty output for an empty batch, the brute-force sum of a contraction, ...);
* ``wrong``: any other exception, a cryptic message, a silent NaN, a silently wrong result, or a
  bad setting accepted without complaint;
* ``n/a``: the entry point does not exist in the checkout being probed.

ashlib is imported from sys.path, so an older checkout is probed with
``PYTHONPATH=/path/to/checkout python scripts/probe_bad_input.py``; the CLI cases run
``python -m ashlib`` in a subprocess with the same ashlib. Every CLI case errors out before
training or trains a couple of batches at most. Allocations are capped (RLIMIT_AS) so that a
checkout which allocates before refusing a huge size fails fast instead of eating the machine.

    python scripts/probe_bad_input.py --markdown after.md --json after.json
    python scripts/probe_bad_input.py --compare before.json after.json --markdown summary.md
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import json
import math
import os
import re
import resource
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
for _flag in ("ASHLIB_SOLUTIONS", "ASHLIB_DEBUG", "ASHLIB_MAX_POOL_GIB"):
    os.environ.pop(_flag, None)
os.environ["ASHLIB_PROGRESS"] = "0"

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

import ashlib  # noqa: E402

torch.set_num_threads(1)
ROOT = Path(ashlib.__file__).resolve().parent.parent  # the checkout being probed
OUTCOMES = ("clear", "correct", "wrong", "n/a")
CASE_SECONDS = 120


class Missing(Exception):
    """The entry point does not exist in this checkout."""


class CliError(ValueError):
    """The CLI exited non-zero with a one-line error (judged like a ValueError)."""


class CliCrash(Exception):
    """The CLI exited with a traceback."""


def api(path: str):
    """``ashlib.module.name`` -> the object, or Missing."""
    module, _, name = path.rpartition(".")
    try:
        mod = importlib.import_module(module)
    except ImportError as error:
        raise Missing(f"{module} ({error})") from None
    if not hasattr(mod, name):
        raise Missing(path)
    return getattr(mod, name)


@dataclass
class Case:
    cls: str
    entry: str
    name: str
    run: object
    names: str | None = None  # regex a clear message must match (the argument, or what to do)
    check: object = None  # result -> True or why it is wrong
    errors: tuple = (ValueError,)
    note: str = ""


CASES: list[Case] = []


def E(cls, entry, name, run, names, errors=(ValueError,)):
    """A case that must be refused with a clear error."""
    CASES.append(Case(cls, entry, name, run, names=names, errors=errors))


def R(cls, entry, name, run, check, note="", names=None):
    """A case that must give a correct (documented) result."""
    CASES.append(Case(cls, entry, name, run, names=names, check=check, note=note))


# ------------------------------------------------------------------------------------------ helpers


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def is_tensor_shape(shape, dtype=None, finite=True):
    def check(y):
        if not torch.is_tensor(y):
            return f"returned {type(y).__name__}, expected a tensor"
        if tuple(y.shape) != tuple(shape):
            return f"shape {tuple(y.shape)}, expected {tuple(shape)}"
        if dtype is not None and y.dtype != dtype:
            return f"dtype {y.dtype}, expected {dtype}"
        if finite and y.numel() and not y.is_meta and not bool(torch.isfinite(y).all()):
            return "silent NaN/inf in the output"
        return True
    return check


def propagates_nan(shape):
    """NaN/inf in the input of a layer comes out in the output, as in any torch layer (documented)."""
    def check(y):
        if not torch.is_tensor(y) or tuple(y.shape) != tuple(shape):
            return f"got {getattr(y, 'shape', type(y).__name__)}, expected shape {tuple(shape)}"
        if bool(torch.isfinite(y).all()):
            return "the non-finite input vanished from the output"
        return True
    return check


def close(expected, atol=1e-4, rtol=1e-4):
    def check(y):
        if not torch.is_tensor(y) or tuple(y.shape) != tuple(expected.shape):
            return f"got {tuple(getattr(y, 'shape', ()))}, expected shape {tuple(expected.shape)}"
        if not torch.allclose(y.double(), expected.double(), atol=atol, rtol=rtol, equal_nan=True):
            return f"result differs from the brute-force expectation by {float((y.double() - expected.double()).abs().nan_to_num(1e9).max()):.3g}"
        return True
    return check


def ref_contract(indices, values, x, out_shape, feature_dims=0):
    """y[b, o] = sum_j values[b, j] x[b, i] over (o, i) = indices[b, j], by a Python loop."""
    b = x.shape[0]
    features = tuple(x.shape[x.dim() - feature_dims:])
    y = torch.zeros(b, *out_shape, *features, dtype=torch.float64)
    n_out = len(out_shape)
    for i in range(b):
        for j in range(indices.shape[1]):
            t = [int(v) for v in indices[i, j]]
            y[i][tuple(t[:n_out])] += float(values[i, j]) * x[i][tuple(t[n_out:])].double()
    return y


# ------------------------------------------------------------------------------------- sample

SHAPE = (8, 8)


def base_means(b=2, k=3, r=2, dtype=torch.float32):
    return (torch.rand(b, k, r, generator=gen(1), dtype=torch.float64) * 7).to(dtype)


def call_sample(m="default", s="default", shape=SHAPE, **kw):
    fn = api("ashlib.sample")
    m = base_means() if isinstance(m, str) else m
    s = (torch.ones_like(m) if torch.is_tensor(m) else torch.ones(2, 3, 2)) if isinstance(s, str) else s
    args = dict(a_local=2, a_global=2, region=3, generator=gen(0))
    args.update(kw)
    return fn(m, s, shape, **args)


def sample_ok(b, k, r=2, c=1, a_local=2, a_global=2, shape=SHAPE, dtype=None):
    S = 2**r + a_local + a_global

    def check(res):
        idx, props = res
        if tuple(idx.shape) != (b, k // c, c * S, r) or tuple(props.shape) != (b, k, c * S):
            return f"shapes {tuple(idx.shape)}, {tuple(props.shape)}; expected {(b, k // c, c * S, r)}, {(b, k, c * S)}"
        if dtype is not None and props.dtype != dtype:
            return f"proportions are {props.dtype}, expected {dtype}"
        if props.numel():
            if not bool(torch.isfinite(props).all()):
                return "silent NaN in the proportions"
            if not torch.allclose(props.double().sum(-1), torch.ones(b, k, dtype=torch.float64), atol=1e-2):
                return "proportions do not sum to 1"
            if bool((idx < 0).any()) or bool((idx >= torch.tensor(shape)).any()):
                return "a tuple lies outside W"
        return True
    return check


def sample_cases():
    ep = "sample"
    E("type", ep, "means is a list", lambda: call_sample(base_means().tolist()), r"means")
    E("type", ep, "sigmas is a numpy array", lambda: call_sample(s=np.ones((2, 3, 2), np.float32)), r"sigma")
    E("type", ep, "means is None", lambda: call_sample(None), r"means")
    E("type", ep, "shape is None", lambda: call_sample(shape=None), r"shape")
    E("type", ep, "a_local is 2.0", lambda: call_sample(a_local=2.0), r"a_local")
    E("type", ep, "chunk_size is 1.0", lambda: call_sample(chunk_size=1.0), r"chunk_size")
    E("type", ep, "generator is an int seed", lambda: call_sample(generator=42), r"generator")
    E("string for number", ep, "shape '8x8'", lambda: call_sample(shape="8x8"), r"shape")
    E("string for number", ep, "shape ('8', '8')", lambda: call_sample(shape=("8", "8")), r"shape")
    E("string for number", ep, "a_global '2'", lambda: call_sample(a_global="2"), r"a_global")
    E("string for number", ep, "region '3'", lambda: call_sample(region="3"), r"region")
    E("bool as int", ep, "a_local=True", lambda: call_sample(a_local=True), r"a_local")
    E("bool as int", ep, "chunk_size=True", lambda: call_sample(chunk_size=True), r"chunk_size")
    E("bool as int", ep, "shape (True, 8)", lambda: call_sample(shape=(True, 8)), r"shape")
    E("bool as int", ep, "region=True", lambda: call_sample(region=True), r"region")
    E("shape", ep, "means 2-d (k, r)", lambda: call_sample(base_means()[0]), r"means")
    E("shape", ep, "rank of means != rank of W", lambda: call_sample(base_means(r=3)), r"W|rank|dimension")
    E("shape", ep, "sigmas (b, k, 1)", lambda: call_sample(s=torch.ones(2, 3, 1)), r"sigmas")
    E("shape", ep, "region with 3 sizes for a 2-d W", lambda: call_sample(region=(2, 2, 2)), r"region")
    E("dtype", ep, "means int64", lambda: call_sample(base_means().long(), torch.ones(2, 3, 2)), r"means|floating")
    E("dtype", ep, "means bool", lambda: call_sample(torch.ones(2, 3, 2, dtype=torch.bool), torch.ones(2, 3, 2)),
      r"means|floating")
    E("dtype", ep, "means complex64", lambda: call_sample(base_means().to(torch.complex64), torch.ones(2, 3, 2)),
      r"means|floating")
    R("dtype", ep, "means and sigmas float16", lambda: call_sample(base_means(dtype=torch.float16)),
      sample_ok(2, 3, dtype=torch.float16))
    R("dtype", ep, "means and sigmas bfloat16", lambda: call_sample(base_means(dtype=torch.bfloat16)),
      sample_ok(2, 3, dtype=torch.bfloat16))
    R("dtype", ep, "means and sigmas float64", lambda: call_sample(base_means(dtype=torch.float64)),
      sample_ok(2, 3, dtype=torch.float64))
    R("dtype", ep, "float32 means, float64 sigmas", lambda: call_sample(base_means(), torch.ones(2, 3, 2, dtype=torch.float64)),
      sample_ok(2, 3))
    E("NaN/inf", ep, "a NaN mean", lambda: call_sample(base_means().index_fill(1, torch.tensor([0]), float("nan"))),
      r"NaN")
    E("NaN/inf", ep, "an inf sigma", lambda: call_sample(s=torch.ones(2, 3, 2).index_fill(1, torch.tensor([1]), float("inf"))),
      r"inf|NaN")
    E("NaN/inf", ep, "a NaN sigma", lambda: call_sample(s=torch.full((2, 3, 2), float("nan"))), r"NaN")
    R("NaN/inf", ep, "sigma 1e-30 (float32)", lambda: call_sample(s=torch.full((2, 3, 2), 1e-30)), sample_ok(2, 3))
    R("NaN/inf", ep, "sigma 1e-4 (float16)",
      lambda: call_sample(base_means(dtype=torch.float16), torch.full((2, 3, 2), 1e-4, dtype=torch.float16)),
      sample_ok(2, 3, dtype=torch.float16))
    R("NaN/inf", ep, "sigma 1e6 (very wide)", lambda: call_sample(s=torch.full((2, 3, 2), 1e6)), sample_ok(2, 3))
    E("zero/negative size", ep, "sigma 0", lambda: call_sample(s=torch.zeros(2, 3, 2)), r"sigma")
    E("zero/negative size", ep, "sigma -1", lambda: call_sample(s=-torch.ones(2, 3, 2)), r"sigma")
    E("zero/negative size", ep, "shape (0, 8)", lambda: call_sample(shape=(0, 8)), r"shape")
    E("zero/negative size", ep, "shape (-8, 8)", lambda: call_sample(shape=(-8, 8)), r"shape")
    E("zero/negative size", ep, "k = 0 Gaussians", lambda: call_sample(torch.zeros(2, 0, 2)), r"Gaussian|k >= 1|means")
    E("zero/negative size", ep, "a_local -1", lambda: call_sample(a_local=-1), r"a_local")
    E("zero/negative size", ep, "region 0", lambda: call_sample(region=0), r"region")
    E("zero/negative size", ep, "chunk_size 0", lambda: call_sample(chunk_size=0), r"chunk_size")
    E("zero/negative size", ep, "chunk_size 2 does not divide k = 3", lambda: call_sample(chunk_size=2), r"chunk_size")
    E("out of range", ep, "region 9 > W's 8", lambda: call_sample(region=9), r"region")
    E("out of range", ep, "a mean outside W (8.5)", lambda: call_sample(torch.full((2, 3, 2), 8.5)), r"means")
    E("out of range", ep, "a negative mean", lambda: call_sample(torch.full((2, 3, 2), -0.5)), r"means")
    R("empty batch", ep, "b = 0", lambda: call_sample(torch.zeros(0, 3, 2)), sample_ok(0, 3))
    R("valid edge", ep, "a_local = a_global = 0", lambda: call_sample(a_local=0, a_global=0),
      sample_ok(2, 3, a_local=0, a_global=0))
    R("valid edge", ep, "W with a dimension of size 1", lambda: call_sample(torch.zeros(2, 3, 2), shape=(1, 8), region=1),
      sample_ok(2, 3, shape=(1, 8)))
    R("valid edge", ep, "chunk_size None (one pool)", lambda: call_sample(chunk_size=None), sample_ok(2, 3, c=3))
    R("huge size", ep, "W of 2^31 x 2^31 (global draws reach every index)",
      lambda: call_sample(base_means(), shape=(2**31, 2**31)), sample_ok(2, 3, shape=(2**31, 2**31)))
    E("huge size", ep, "W with more cells than int64 (2^32 per dim, rank 3)",
      lambda: call_sample(base_means(r=3), torch.ones(2, 3, 3), shape=(2**32,) * 3), r"int64")
    E("huge size", ep, "one pool of k = 4096 for b = 4 (4 GiB)",
      lambda: call_sample(torch.rand(4, 4096, 2, generator=gen(2)) * 7, torch.ones(4, 4096, 2), chunk_size=None),
      r"chunk_size")
    E("meta/device", ep, "meta means and sigmas",
      lambda: call_sample(torch.ones(2, 3, 2, device="meta"), torch.ones(2, 3, 2, device="meta")), r"meta")
    E("meta/device", ep, "means on cpu, sigmas on meta", lambda: call_sample(s=torch.ones(2, 3, 2, device="meta")),
      r"meta|device")


# ------------------------------------------------------------------------------------- contract


def cbase(b=2, m=5, dtype=torch.float32):
    g = gen(3)
    indices = torch.stack([torch.randint(0, 3, (b, m), generator=g), torch.randint(0, 4, (b, m), generator=g)], -1)
    values = torch.randn(b, m, generator=g).to(dtype)
    x = torch.randn(b, 4, generator=g).to(dtype)
    return indices, values, x


def call_contract(indices="d", values="d", x="d", out_shape=(3,), **kw):
    fn = api("ashlib.contract")
    i0, v0, x0 = cbase()
    return fn(i0 if isinstance(indices, str) and indices == "d" else indices,
              v0 if isinstance(values, str) and values == "d" else values,
              x0 if isinstance(x, str) and x == "d" else x, out_shape, **kw)


def contract_cases():
    ep = "contract"
    i0, v0, x0 = cbase()
    E("type", ep, "indices a list", lambda: call_contract(i0.tolist()), r"indices")
    E("type", ep, "values a list", lambda: call_contract(values=v0.tolist()), r"values")
    E("type", ep, "x a numpy array", lambda: call_contract(x=x0.numpy()), r"\bx\b")
    E("type", ep, "out_shape None", lambda: call_contract(out_shape=None), r"out_shape")
    E("type", ep, "feature_dims 1.0", lambda: call_contract(feature_dims=1.0), r"feature_dims")
    E("string for number", ep, "out_shape '3'", lambda: call_contract(out_shape="3"), r"out_shape")
    E("string for number", ep, "feature_dims '0'", lambda: call_contract(feature_dims="0"), r"feature_dims")
    E("bool as int", ep, "out_shape (True,)", lambda: call_contract(i0.clamp(max=0), out_shape=(True,)), r"out_shape")
    E("bool as int", ep, "feature_dims=True", lambda: call_contract(x=x0.unsqueeze(-1), feature_dims=True),
      r"feature_dims")
    E("shape", ep, "indices with 3 coordinates for a 2-d W", lambda: call_contract(torch.zeros(2, 5, 3, dtype=torch.long)),
      r"indices")
    E("shape", ep, "values (b, m - 1)", lambda: call_contract(values=v0[:, :4]), r"values")
    E("shape", ep, "x 1-d (no batch)", lambda: call_contract(x=x0[0]), r"\bx\b")
    E("shape", ep, "indices for another batch size", lambda: call_contract(i0[:1], v0[:1]), r"indices")
    E("dtype", ep, "indices float", lambda: call_contract(i0.float()), r"indices")
    E("dtype", ep, "indices bool", lambda: call_contract(i0.bool()), r"indices")
    R("dtype", ep, "indices int32", lambda: call_contract(i0.int()), close(ref_contract(i0, v0, x0, (3,))))
    E("dtype", ep, "values float64, x float32", lambda: call_contract(values=v0.double()), r"dtype")
    E("dtype", ep, "x int64", lambda: call_contract(values=v0.long(), x=x0.long()), r"\bx\b")
    E("dtype", ep, "x complex64", lambda: call_contract(values=v0.to(torch.complex64), x=x0.to(torch.complex64)),
      r"\bx\b")
    R("dtype", ep, "values and x float16", lambda: call_contract(values=v0.half(), x=x0.half()),
      close(ref_contract(i0, v0.half(), x0.half(), (3,)), atol=1e-2, rtol=1e-2))
    R("dtype", ep, "values and x bfloat16", lambda: call_contract(values=v0.bfloat16(), x=x0.bfloat16()),
      close(ref_contract(i0, v0.bfloat16(), x0.bfloat16(), (3,)), atol=5e-2, rtol=5e-2))
    R("dtype", ep, "values and x float64", lambda: call_contract(values=v0.double(), x=x0.double()),
      close(ref_contract(i0, v0, x0, (3,)), atol=1e-10))
    nan_v = v0.clone()
    nan_v[0, 0] = float("nan")
    R("NaN/inf", ep, "a NaN value (propagates, as in torch)", lambda: call_contract(values=nan_v),
      close(ref_contract(i0, nan_v, x0, (3,))), note="NaN in the input propagates (documented)")
    inf_x = x0.clone()
    inf_x[1, 2] = float("inf")
    R("NaN/inf", ep, "an inf in x (propagates, as in torch)", lambda: call_contract(x=inf_x),
      propagates_nan((2, 3)), note="inf in the input propagates (documented)")
    E("zero/negative size", ep, "out_shape (0,)", lambda: call_contract(out_shape=(0,)), r"out_shape")
    E("zero/negative size", ep, "out_shape ()", lambda: call_contract(out_shape=()), r"out_shape")
    E("zero/negative size", ep, "feature_dims -1", lambda: call_contract(feature_dims=-1), r"feature_dims")
    E("shape", ep, "feature_dims 2 leaves no input dimension", lambda: call_contract(feature_dims=2),
      r"feature|\bx\b")
    R("empty batch", ep, "m = 0 tuples", lambda: call_contract(torch.zeros(2, 0, 2, dtype=torch.long), torch.zeros(2, 0)),
      close(torch.zeros(2, 3)))
    R("empty batch", ep, "b = 0", lambda: call_contract(i0[:0], v0[:0], x0[:0]), is_tensor_shape((0, 3)))
    R("empty batch", ep, "b = 0, wide features",
      lambda: call_contract(i0[:0], v0[:0], torch.zeros(0, 4, 32), feature_dims=1), is_tensor_shape((0, 3, 32)))
    xf = torch.randn(2, 4, 20, generator=gen(5))
    R("valid edge", ep, "wide features (sparse.mm path)", lambda: call_contract(x=xf, feature_dims=1),
      close(ref_contract(i0, v0, xf, (3,), 1)))
    E("out of range", ep, "an index -1", lambda: call_contract(i0.index_fill(1, torch.tensor([0]), -1)), r"range|indices")
    E("out of range", ep, "an output index = size", lambda: call_contract(i0, out_shape=(2,)), r"range|indices")
    past = i0.clone()
    past[0, 0, 0] = 3
    E("out of range", ep, "validate=False, row past the end (would land in the next instance)",
      lambda: call_contract(past, validate=False), r"range|indices")
    E("huge size", ep, "out_shape (2^62,) x b = 2 overflows int64", lambda: call_contract(i0.clamp(max=0), out_shape=(2**62,)),
      r"int64")
    E("meta/device", ep, "x on meta", lambda: call_contract(x=x0.to("meta")), r"meta")
    E("meta/device", ep, "values on meta, x on cpu", lambda: call_contract(values=v0.to("meta")), r"meta|device")


def to_dense_cases():
    ep = "contract.to_dense"

    def td(indices, weights, shape):
        return api("ashlib.contract.to_dense")(indices, weights, shape)

    idx = torch.tensor([[0, 1], [2, 0], [0, 1]])
    w = torch.tensor([1.0, 2.0, 3.0])
    expected = torch.tensor([[0.0, 4.0], [0.0, 0.0], [2.0, 0.0]])
    R("valid edge", ep, "repeated tuples add up", lambda: td(idx, w, (3, 2)), close(expected))
    R("empty batch", ep, "no tuples", lambda: td(torch.zeros(0, 2, dtype=torch.long), torch.zeros(0), (3, 2)),
      close(torch.zeros(3, 2)))
    E("dtype", ep, "float indices (0.7 would become 0)", lambda: td(idx.float() + 0.7, w, (3, 2)), r"indices")
    E("out of range", ep, "an index past the end", lambda: td(idx + 2, w, (3, 2)), r"indices|range")
    E("out of range", ep, "a negative index (would wrap)", lambda: td(-idx - 1, w, (3, 2)), r"indices|range")
    E("shape", ep, "tuples of 3 for a 2-d shape", lambda: td(torch.zeros(3, 3, dtype=torch.long), w, (3, 2)),
      r"indices|shape")
    E("shape", ep, "weights shorter than the tuples", lambda: td(idx, w[:2], (3, 2)), r"weights")
    E("huge size", ep, "shape (10^6, 10^6) (4 TB dense)", lambda: td(idx, w, (10**6, 10**6)), r"shape|dense|large")


def indexing_cases():
    ep = "indexing.flat_index"

    def fi(t, shape):
        return api("ashlib.indexing.flat_index")(t, shape)

    t = torch.tensor([[1, 2], [3, 0]])
    R("valid edge", ep, "two tuples into (4, 5)", lambda: fi(t, (4, 5)), close(torch.tensor([7.0, 15.0])))
    R("empty batch", ep, "no tuples", lambda: fi(torch.zeros(0, 2, dtype=torch.long), (4, 5)), is_tensor_shape((0,)))
    E("dtype", ep, "float tuples (1.7 would become 1)", lambda: fi(t.float() + 0.7, (4, 5)), r"tuples|integer")
    E("shape", ep, "tuples of 1 for a 2-d shape (would broadcast)", lambda: fi(t[:, :1], (4, 5)), r"tuples|shape")
    E("zero/negative size", ep, "shape (0, 5)", lambda: fi(t, (0, 5)), r"shape")
    E("type", ep, "tuples a list", lambda: fi(t.tolist(), (4, 5)), r"tuples")
    E("bool as int", ep, "shape (True, 5)", lambda: fi(t, (True, 5)), r"shape")
    E("out of range", ep, "a tuple outside the shape", lambda: fi(t + 4, (4, 5)), r"range|tuples")

    ep = "indexing.repeat_mask"

    def rm(keys):
        return api("ashlib.indexing.repeat_mask")(keys)

    keys = torch.tensor([[3, 1, 3, 3, 2, 1]])
    brute = torch.tensor([[False, False, True, True, False, True]])
    R("valid edge", ep, "int keys with repeats", lambda: rm(keys), lambda y: True if torch.equal(y, brute) else f"got {y.tolist()}")
    R("dtype", ep, "float keys", lambda: rm(keys.double()), lambda y: True if torch.equal(y, brute) else f"got {y.tolist()}")
    R("dtype", ep, "bool keys", lambda: rm(torch.tensor([True, False, True, True])),
      lambda y: True if y.tolist() == [False, False, True, True] else f"got {y.tolist()}")
    E("dtype", ep, "complex keys", lambda: rm(keys.to(torch.complex64)), r"keys")
    R("empty batch", ep, "no keys", lambda: rm(torch.zeros(0, dtype=torch.long)), is_tensor_shape((0,)))
    R("empty batch", ep, "rows of no keys (3, 0)", lambda: rm(torch.zeros(3, 0, dtype=torch.long)), is_tensor_shape((3, 0)))
    E("shape", ep, "a 0-d key", lambda: rm(torch.tensor(3)), r"keys")
    E("type", ep, "keys a list", lambda: rm([1, 2, 1]), r"keys")
    R("NaN/inf", ep, "NaN keys are never repeats (NaN != NaN)", lambda: rm(torch.tensor([float("nan"), 1.0, float("nan")])),
      lambda y: True if y.tolist() == [False, False, False] else f"got {y.tolist()}")


# ------------------------------------------------------------------------------------- layers


def layer(**kw):
    args = dict(in_shape=4, out_shape=3, k=4, a_local=1, a_global=1, region=2)
    args.update(kw)
    return api("ashlib.SparseLayer")(args.pop("in_shape"), args.pop("out_shape"), args.pop("k"), **args)


def same_as_float32(x, atol=1e-5):
    """The layer's output for x equals its output for x.float() (same draw), cast."""
    def run():
        torch.manual_seed(0)
        lay = layer()
        return lay(x, generator=gen(9)), lay(x.float(), generator=gen(9))

    def check(pair):
        y, ref = pair
        if y.dtype != x.dtype:
            return f"output dtype {y.dtype}, expected {x.dtype}"
        return close(ref, atol=atol, rtol=atol)(y)
    return run, check


def sparse_layer_cases():
    ep = "SparseLayer"
    x = torch.randn(2, 4, generator=gen(4))
    E("zero/negative size", ep, "in_shape 0", lambda: layer(in_shape=0), r"in_shape")
    E("zero/negative size", ep, "out_shape -3", lambda: layer(out_shape=-3), r"out_shape")
    E("zero/negative size", ep, "k 0", lambda: layer(k=0), r"\bk\b")
    E("zero/negative size", ep, "k -1", lambda: layer(k=-1), r"\bk\b")
    E("zero/negative size", ep, "a_global -1", lambda: layer(a_global=-1), r"a_global")
    E("zero/negative size", ep, "region 0", lambda: layer(region=0), r"region")
    E("zero/negative size", ep, "chunk_size 3 does not divide k = 4", lambda: layer(chunk_size=3), r"chunk_size")
    E("zero/negative size", ep, "sigma_scale 0", lambda: layer(sigma_scale=0), r"sigma_scale")
    E("zero/negative size", ep, "min_sigma 0", lambda: layer(min_sigma=0), r"min_sigma")
    E("zero/negative size", ep, "min_sigma -0.1", lambda: layer(min_sigma=-0.1), r"min_sigma")
    E("NaN/inf", ep, "sigma_scale NaN", lambda: layer(sigma_scale=float("nan")), r"sigma_scale")
    E("NaN/inf", ep, "min_sigma inf", lambda: layer(min_sigma=float("inf")), r"min_sigma")
    E("type", ep, "k 4.0", lambda: layer(k=4.0), r"\bk\b")
    E("type", ep, "in_shape 4.5", lambda: layer(in_shape=4.5), r"in_shape")
    E("type", ep, "region 2.5", lambda: layer(region=2.5), r"region")
    E("type", ep, "min_sigma None", lambda: layer(min_sigma=None), r"min_sigma")
    E("string for number", ep, "in_shape '4'", lambda: layer(in_shape="4"), r"in_shape")
    E("string for number", ep, "k '4'", lambda: layer(k="4"), r"\bk\b")
    E("string for number", ep, "sigma_scale '0.1'", lambda: layer(sigma_scale="0.1"), r"sigma_scale")
    E("bool as int", ep, "k=True", lambda: layer(k=True), r"\bk\b")
    E("bool as int", ep, "in_shape=True", lambda: layer(in_shape=True), r"in_shape")
    E("bool as int", ep, "a_local=True", lambda: layer(a_local=True), r"a_local")
    E("bool as int", ep, "chunk_size=True", lambda: layer(chunk_size=True), r"chunk_size")
    E("out of range", ep, "region 8 > W's 4 columns", lambda: layer(region=8), r"region")
    E("type", ep, "input a list", lambda: layer()(x.tolist()), r"input|\bx\b")
    E("shape", ep, "input (2, 5) for in_shape 4", lambda: layer()(torch.randn(2, 5)), r"input|shape")
    E("shape", ep, "input 1-d (4,)", lambda: layer()(torch.randn(4)), r"input|shape")
    E("dtype", ep, "input int64", lambda: layer()(x.long()), r"input|\bx\b|floating")
    E("dtype", ep, "input bool", lambda: layer()(x > 0), r"input|\bx\b|floating")
    E("dtype", ep, "input complex64", lambda: layer()(x.to(torch.complex64)), r"input|\bx\b|floating")
    run, check = same_as_float32(x.double(), 1e-5)
    R("dtype", ep, "input float64 (same draw as float32)", run, check)
    run, check = same_as_float32(x.half(), 2e-2)
    R("dtype", ep, "input float16 (same draw as float32)", run, check)
    R("NaN/inf", ep, "NaN in the input (propagates, as in torch)", lambda: layer()(x.index_fill(1, torch.tensor([0, 1, 2, 3]), float("nan"))),
      propagates_nan((2, 3)), note="NaN in the input propagates (documented)")

    def nan_param(name):
        lay = layer()
        with torch.no_grad():
            getattr(lay, name).view(-1)[0] = float("nan")
        return lay(x)
    E("NaN/inf", ep, "a NaN mean parameter", lambda: nan_param("means"), r"means|NaN")
    E("NaN/inf", ep, "a NaN value parameter", lambda: nan_param("values"), r"values|NaN")
    R("empty batch", ep, "b = 0", lambda: layer()(torch.zeros(0, 4)), is_tensor_shape((0, 3)))
    R("empty batch", ep, "b = 0, chunk_size=1", lambda: layer(chunk_size=1)(torch.zeros(0, 4)), is_tensor_shape((0, 3)))
    R("valid edge", ep, "rank-2 input and output", lambda: layer(in_shape=(2, 3), out_shape=(2, 2))(torch.randn(2, 2, 3)),
      is_tensor_shape((2, 2, 2)))
    E("huge size", ep, "k = 4096, one pool (chunk_size=None), b = 4",
      lambda: layer(in_shape=4096, out_shape=4096, k=4096, a_local=2, a_global=2, region=4)(torch.zeros(4, 4096)),
      r"chunk_size")
    E("meta/device", ep, "layer and input on meta", lambda: layer().to("meta")(torch.zeros(2, 4, device="meta")), r"meta")
    E("meta/device", ep, "cpu layer, meta input", lambda: layer()(torch.zeros(2, 4, device="meta")), r"meta")
    E("type", ep, "generator=42", lambda: layer()(x, generator=42), r"generator")


def hyper(source, **kw):
    args = dict(a_local=1, a_global=1, region=2)
    args.update(kw)
    return api("ashlib.HyperLayer")(4, 3, 4, source, **args)


def hyper_source(means=None, sigmas=None, values=None, count=3):
    def source(x):
        b = x.shape[0]
        out = (torch.zeros(b, 4, 2) if means is None else means(b),
               torch.zeros(b, 4) if sigmas is None else sigmas(b),
               torch.ones(b, 4) if values is None else values(b))
        return out[:count] if count < 3 else out
    return source


def hyper_layer_cases():
    ep = "HyperLayer"
    x = torch.randn(2, 4, generator=gen(6))
    R("valid edge", ep, "a source giving (b, k, r) sigmas", lambda: hyper(hyper_source(sigmas=lambda b: torch.zeros(b, 4, 2)))(x),
      is_tensor_shape((2, 3)))
    E("type", ep, "no source network", lambda: hyper(None)(x), r"source", errors=(ValueError, NotImplementedError))
    E("type", ep, "source=5 (not callable)", lambda: hyper(5)(x), r"source")
    E("type", ep, "source returns 2 tensors", lambda: hyper(hyper_source(count=2))(x), r"source|three")
    E("type", ep, "source returns one tensor", lambda: hyper(lambda x: torch.zeros(2, 4, 2))(x), r"source|three")
    E("shape", ep, "source means (b, k + 1, r)", lambda: hyper(hyper_source(means=lambda b: torch.zeros(b, 5, 2)))(x), r"means")
    E("shape", ep, "source values (b, k, 1)", lambda: hyper(hyper_source(values=lambda b: torch.ones(b, 4, 1)))(x), r"values")
    def same_as_float(**parts):
        def run():
            mixed = hyper(hyper_source(**parts))(x, generator=gen(5))
            plain = hyper(hyper_source())(x, generator=gen(5))
            return mixed, plain
        return run, lambda r: close(r[1])(r[0])
    # integer values would be truncated by the proportions: refused (before: a silently wrong output)
    E("dtype", ep, "source values int64", lambda: hyper(hyper_source(values=lambda b: torch.ones(b, 4, dtype=torch.long)))(x),
      r"values must be floating point")
    run, check = same_as_float(means=lambda b: torch.zeros(b, 4, 2, dtype=torch.float64))
    R("dtype", ep, "source means float64, values float32 (expected: the output of float32)", run, check)
    E("NaN/inf", ep, "source gives NaN means",
      lambda: hyper(hyper_source(means=lambda b: torch.full((b, 4, 2), float("nan"))))(x), r"means|NaN")
    E("NaN/inf", ep, "source gives inf values",
      lambda: hyper(hyper_source(values=lambda b: torch.full((b, 4), float("inf"))))(x), r"values|inf")
    R("empty batch", ep, "b = 0", lambda: hyper(hyper_source())(torch.zeros(0, 4)), is_tensor_shape((0, 3)))


def reinforce(**kw):
    args = dict(in_shape=4, out_shape=4, k=4)
    args.update(kw)
    return api("ashlib.ReinforceLayer")(args.pop("in_shape"), args.pop("out_shape"), args.pop("k"), **args)


def reinforce_cases():
    ep = "ReinforceLayer"
    x = torch.randn(3, 4, generator=gen(7))
    E("bad choice", ep, "baseline 'mean'", lambda: reinforce(baseline="mean"), r"baseline")
    E("out of range", ep, "decay 1.0", lambda: reinforce(decay=1.0), r"decay")
    E("NaN/inf", ep, "decay NaN", lambda: reinforce(decay=float("nan")), r"decay")
    E("string for number", ep, "decay '0.9'", lambda: reinforce(decay="0.9"), r"decay")
    E("bool as int", ep, "k=True", lambda: reinforce(k=True), r"\bk\b")
    E("zero/negative size", ep, "k 0", lambda: reinforce(k=0), r"\bk\b")
    E("zero/negative size", ep, "min_sigma 0", lambda: reinforce(min_sigma=0), r"min_sigma")
    E("shape", ep, "input (3, 5)", lambda: reinforce()(torch.randn(3, 5)), r"input|shape")
    E("dtype", ep, "input int64", lambda: reinforce()(x.long()), r"input|\bx\b|floating")
    R("dtype", ep, "input float64", lambda: reinforce()(x.double()), is_tensor_shape((3, 4), torch.float64))
    R("empty batch", ep, "b = 0", lambda: reinforce()(torch.zeros(0, 4)), is_tensor_shape((0, 4)))
    E("meta/device", ep, "layer and input on meta", lambda: reinforce().to("meta")(torch.zeros(3, 4, device="meta")),
      r"meta")
    E("meta/device", ep, "cpu layer, meta input", lambda: reinforce()(torch.zeros(3, 4, device="meta")), r"meta")

    def with_points(points):
        return reinforce()(x, points=points)
    E("shape", ep, "points (b, k, r + 1)", lambda: with_points(torch.zeros(3, 4, 3)), r"points")
    E("NaN/inf", ep, "NaN points", lambda: with_points(torch.full((3, 4, 2), float("nan"))), r"points")
    def int_points():
        lay = reinforce()
        points = torch.randint(0, 4, (3, 4, 2), generator=gen(3))
        return lay(x, points=points), lay(x, points=points.float())
    R("dtype", ep, "int64 points (same output as float points)", int_points, lambda r: close(r[1])(r[0]))

    def clamped():
        lay = reinforce(fix_values=True)
        return lay(x, points=torch.full((3, 4, 2), 100.0))  # every point rounds past the end, to W[3, 3]
    expected = torch.zeros(3, 4)
    expected[:, 3] = 4 * x[:, 3]  # four unit values on the one clamped entry
    R("out of range", ep, "points outside W are clamped into it (documented)", clamped, close(expected))

    def nan_parameter():
        lay = reinforce()
        with torch.no_grad():
            lay.means[0, 0] = float("nan")
        return lay(x)
    E("NaN/inf", ep, "a NaN mean parameter", nan_parameter, r"parameters|NaN")

    def surrogate(losses_fn, baseline="moving_average", b=3):
        lay = reinforce(fix_values=True, baseline=baseline)
        xb = torch.randn(b, 4, generator=gen(8))
        y = lay(xb)
        return lay.surrogate_loss(losses_fn(y, xb))
    mse = lambda y, xb: (y - xb).pow(2).mean(1)  # noqa: E731
    R("valid edge", ep, "surrogate_loss of one batch", lambda: surrogate(mse),
      lambda v: True if v.dim() == 0 and bool(torch.isfinite(v)) else f"got {v}")
    E("type", ep, "surrogate_loss before forward", lambda: reinforce().surrogate_loss(torch.zeros(3)), r"forward",
      errors=(ValueError, RuntimeError))
    E("shape", ep, "losses (b, 1)", lambda: surrogate(lambda y, xb: mse(y, xb)[:, None]), r"losses")
    E("type", ep, "losses a list", lambda: surrogate(lambda y, xb: mse(y, xb).tolist()), r"losses")
    E("NaN/inf", ep, "an inf loss", lambda: surrogate(lambda y, xb: mse(y, xb).detach().index_fill(0, torch.tensor([1]), float("inf"))),
      r"losses|NaN or inf")
    E("NaN/inf", ep, "a NaN loss", lambda: surrogate(lambda y, xb: mse(y, xb).detach().index_fill(0, torch.tensor([0]), float("nan"))),
      r"losses|NaN")
    E("dtype", ep, "int64 losses", lambda: surrogate(lambda y, xb: torch.ones(3, dtype=torch.long)), r"losses")
    E("zero/negative size", ep, "leave_one_out with b = 1", lambda: surrogate(mse, "leave_one_out", b=1),
      r"leave-one-out|batch")

    def empty_surrogate():
        lay = reinforce(fix_values=True)
        lay.surrogate_loss(mse(lay(x), x)).backward()
        before = lay.average_loss.clone()
        loss = lay.surrogate_loss(mse(lay(torch.zeros(0, 4)), torch.zeros(0, 4)))
        return loss, before, lay.average_loss

    def empty_ok(res):
        loss, before, after = res
        if not bool(torch.isfinite(loss)):
            return f"the loss of an empty batch is {float(loss)} (silent NaN)"
        if not torch.equal(before, after):
            return f"the empty batch moved the baseline {float(before):.3g} -> {float(after):.3g}"
        return True
    R("empty batch", ep, "surrogate_loss of an empty batch", empty_surrogate, empty_ok)


# ------------------------------------------------------------------------------------- sorting


def qs(keys, items=None, **kw):
    fn = api("ashlib.quicksort")
    if items is None:
        items = torch.eye(keys.shape[1]).expand(keys.shape[0], -1, -1).clone() if torch.is_tensor(keys) and keys.dim() == 2 \
            else torch.rand(2, 4, 3)
    kw.setdefault("generator", gen(0))
    return fn(keys, items, **kw)


def sorts_correctly(keys, items=None):
    """For well-separated keys the sort is exact: sorted == items[argsort(keys)]."""
    def check(result):
        y = result.sorted
        its = torch.eye(keys.shape[1]).expand(keys.shape[0], -1, -1) if items is None else items
        expected = its.gather(1, keys.argsort(1).view(*keys.shape, *([1] * (its.dim() - 2))).expand_as(its))
        return close(expected.to(y.dtype), atol=1e-3, rtol=1e-3)(y)
    return check


def keeps_mass(items):
    """Every column of each round's mixed matrix sums to 1, so the items' sum survives the sort."""
    def check(result):
        y = result.sorted
        if not bool(torch.isfinite(y).all()):
            return "silent NaN in the sorted items"
        return close(items.sum(1), atol=1e-3)(y.sum(1))
    return check


def quicksort_cases():
    ep = "quicksort"
    spaced = torch.tensor([[3.0, -1.0, 7.0, 0.0], [1.0, 5.0, -4.0, 2.0]])
    R("valid edge", ep, "well-separated keys sort exactly", lambda: qs(spaced, C=100.0), sorts_correctly(spaced))
    R("valid edge", ep, "n = 5 (padded to 8)", lambda: qs(spaced[:, :3].repeat(1, 2)[:, :5] + torch.arange(5) * 20, C=100.0),
      sorts_correctly(spaced[:, :3].repeat(1, 2)[:, :5] + torch.arange(5) * 20))
    R("valid edge", ep, "all keys equal (items mix, mass kept)", lambda: qs(torch.zeros(2, 4), torch.rand(2, 4, 3, generator=gen(1))),
      keeps_mass(torch.rand(2, 4, 3, generator=gen(1))))
    R("valid edge", ep, "samples = 0 (only the hard split)", lambda: qs(spaced, samples=0), sorts_correctly(spaced))
    R("valid edge", ep, "items (b, n) without features", lambda: qs(spaced, spaced * 2, C=100.0), sorts_correctly(spaced, spaced * 2))
    E("type", ep, "keys a list", lambda: qs(spaced.tolist(), torch.rand(2, 4, 3)), r"keys")
    E("type", ep, "items a list", lambda: qs(spaced, torch.rand(2, 4, 3).tolist()), r"items")
    E("type", ep, "generator=0", lambda: qs(spaced, generator=0), r"generator")
    E("shape", ep, "keys 1-d", lambda: qs(spaced[0], torch.rand(2, 4, 3)), r"keys")
    E("shape", ep, "items (2, 5, 3) for 4 keys", lambda: qs(spaced, torch.rand(2, 5, 3)), r"items")
    E("shape", ep, "n = 1", lambda: qs(spaced[:, :1]), r"2 items|\bn\b")
    E("zero/negative size", ep, "n = 0", lambda: qs(torch.zeros(2, 0), torch.zeros(2, 0, 3)), r"2 items|\bn\b")
    E("dtype", ep, "keys int64", lambda: qs(spaced.long(), torch.rand(2, 4, 3)), r"keys")
    E("dtype", ep, "keys bool", lambda: qs(spaced > 0, torch.rand(2, 4, 3)), r"keys")
    E("dtype", ep, "keys complex64", lambda: qs(spaced.to(torch.complex64), torch.rand(2, 4, 3)), r"keys")
    E("dtype", ep, "items int64", lambda: qs(spaced, torch.arange(8).view(2, 4)), r"items")
    E("dtype", ep, "items bool", lambda: qs(spaced, torch.ones(2, 4, 3, dtype=torch.bool)), r"items")
    E("dtype", ep, "items complex64", lambda: qs(spaced, torch.rand(2, 4, 3).to(torch.complex64)), r"items")
    R("dtype", ep, "keys and items float64", lambda: qs(spaced.double(), torch.eye(4, dtype=torch.float64).expand(2, 4, 4), C=100.0),
      sorts_correctly(spaced.double(), torch.eye(4, dtype=torch.float64).expand(2, 4, 4)))
    E("NaN/inf", ep, "a NaN key", lambda: qs(spaced.index_fill(1, torch.tensor([1]), float("nan"))), r"keys")
    E("NaN/inf", ep, "an inf key", lambda: qs(spaced.index_fill(1, torch.tensor([1]), float("inf"))), r"keys")
    E("NaN/inf", ep, "keys near the float maximum (padding overflows)", lambda: qs(torch.tensor([[3e38, 1.0, -2.0]])),
      r"keys|padding")
    E("NaN/inf", ep, "C NaN", lambda: qs(spaced, C=float("nan")), r"\bC\b")
    E("NaN/inf", ep, "C inf", lambda: qs(spaced, C=float("inf")), r"\bC\b")
    E("zero/negative size", ep, "C 0", lambda: qs(spaced, C=0), r"\bC\b")
    E("zero/negative size", ep, "C -1", lambda: qs(spaced, C=-1.0), r"\bC\b")
    E("zero/negative size", ep, "samples -1", lambda: qs(spaced, samples=-1), r"samples")
    E("zero/negative size", ep, "local -1", lambda: qs(spaced, local=-1), r"local")
    E("string for number", ep, "C '10'", lambda: qs(spaced, C="10"), r"\bC\b")
    E("string for number", ep, "samples '4'", lambda: qs(spaced, samples="4"), r"samples")
    E("bool as int", ep, "C=True", lambda: qs(spaced, C=True), r"\bC\b")
    E("bool as int", ep, "samples=True", lambda: qs(spaced, samples=True), r"samples")
    E("bool as int", ep, "local=True", lambda: qs(spaced, local=True), r"local")
    E("type", ep, "samples 2.5", lambda: qs(spaced, samples=2.5), r"samples")
    E("shape", ep, "pad=False with n = 3", lambda: qs(spaced[:, :3], pad=False), r"power of two|pad")
    R("empty batch", ep, "b = 0", lambda: qs(torch.zeros(0, 8), torch.zeros(0, 8, 5)),
      lambda r: is_tensor_shape((0, 8, 5))(r.sorted))
    E("meta/device", ep, "meta keys and items", lambda: qs(torch.zeros(2, 4, device="meta"), torch.zeros(2, 4, 3, device="meta")),
      r"meta")
    E("meta/device", ep, "cpu keys, meta items", lambda: qs(spaced, torch.zeros(2, 4, 3, device="meta")), r"meta|items")

    big = torch.randn(4, 1024, generator=gen(2)).sort(1).values.flip(1) * 1e3  # spaced, descending
    big = big + torch.arange(1024) * 0  # keep the shape explicit
    R("huge size", ep, "n = 1024, b = 4, samples = n (repeat check O(b a n))",
      lambda: qs(big, big.unsqueeze(-1), C=10.0), lambda r: True if tuple(r.sorted.shape) == (4, 1024, 1)
      and bool(torch.isfinite(r.sorted).all()) and float((r.sorted[:, 1:, 0] - r.sorted[:, :-1, 0] >= -1e-3).float().mean()) > 0.99
      else "not sorted / not finite")


def baseline_cases():
    for fname in ("neuralsort", "softsort"):
        ep = f"sort_baselines.{fname}"

        def call(keys, tau=1.0, _f=fname):
            return api(f"ashlib.sort_baselines.{_f}")(keys, tau=tau)

        keys = torch.tensor([[0.3, -2.0, 1.5, 0.9], [4.0, 1.0, 2.0, 3.0]])

        def perm_ok(keys, tau=None):
            def check(P):
                if not torch.is_tensor(P) or tuple(P.shape) != (keys.shape[0], keys.shape[1], keys.shape[1]):
                    return f"shape {tuple(getattr(P, 'shape', ()))}"
                if P.numel() == 0:
                    return True
                if not bool(torch.isfinite(P).all()):
                    return "silent NaN in P"
                if not torch.allclose(P.double().sum(-1), torch.ones(P.shape[:2], dtype=torch.float64), atol=1e-2):
                    return "rows do not sum to 1"
                if not torch.equal(P.argmax(-1), keys.argsort(1)):
                    return "argmax of the rows is not the sorting permutation"
                return True
            return check
        R("valid edge", ep, "distinct keys", lambda c=call: c(keys, 0.1), perm_ok(keys))
        R("dtype", ep, "float64 keys", lambda c=call: c(keys.double(), 0.1), perm_ok(keys))
        R("dtype", ep, "float16 keys", lambda c=call: c(keys.half(), 0.1), perm_ok(keys))
        E("dtype", ep, "int64 keys", lambda c=call: c(keys.long()), r"keys")
        E("type", ep, "keys a list", lambda c=call: c(keys.tolist()), r"keys")
        E("shape", ep, "keys 1-d", lambda c=call: c(keys[0]), r"keys")
        E("zero/negative size", ep, "tau 0", lambda c=call: c(keys, 0.0), r"tau")
        E("zero/negative size", ep, "tau -1", lambda c=call: c(keys, -1.0), r"tau")
        E("NaN/inf", ep, "tau NaN", lambda c=call: c(keys, float("nan")), r"tau")
        E("NaN/inf", ep, "tau inf (every row uniform)", lambda c=call: c(keys, float("inf")), r"tau")
        E("NaN/inf", ep, "a NaN key", lambda c=call: c(keys.index_fill(1, torch.tensor([2]), float("nan"))), r"keys")
        E("NaN/inf", ep, "an inf key", lambda c=call: c(keys.index_fill(1, torch.tensor([2]), float("inf"))), r"keys")
        E("string for number", ep, "tau '1'", lambda c=call: c(keys, "1"), r"tau")
        E("bool as int", ep, "tau=True", lambda c=call: c(keys, True), r"tau")
        R("empty batch", ep, "b = 0", lambda c=call: c(torch.zeros(0, 4)), perm_ok(torch.zeros(0, 4)))
        E("huge size", ep, "n = 10^5, b = 4 (160 GB of P)", lambda c=call: c(torch.randn(4, 100_000)), r"memory|GiB|\bn\b")

    ep = "sort_baselines.apply_permutation"

    def ap(P, items):
        return api("ashlib.sort_baselines.apply_permutation")(P, items)
    P = torch.eye(4)[[1, 0, 3, 2]].expand(2, 4, 4)
    items = torch.rand(2, 4, 3, generator=gen(3))
    R("valid edge", ep, "a hard permutation", lambda: ap(P, items), close(items[:, [1, 0, 3, 2]]))
    E("shape", ep, "P (2, 4, 4) for 5 items", lambda: ap(P, torch.rand(2, 5, 3)), r"\bP\b|items")
    E("dtype", ep, "int items", lambda: ap(P, torch.ones(2, 4, 3, dtype=torch.long)), r"items|dtype")


# ------------------------------------------------------------------------------------- attention


def glimpse(**kw):
    args = dict(a_local=2, a_global=2, region=(5, 5))
    args.update(kw)
    in_size = args.pop("in_size", (20, 20))
    size = args.pop("glimpse_size", 4)
    return api("ashlib.glimpse.SparseGlimpse")(in_size, size, **args)


def attention_cases():
    ep = "attention.SparseGlimpse"
    images = torch.rand(2, 1, 20, 20, generator=gen(1))
    boxes = torch.randn(2, 1, 4, generator=gen(2))
    E("zero/negative size", ep, "in_size (0, 20)", lambda: glimpse(in_size=(0, 20)), r"in_size")
    E("shape", ep, "in_size (20,)", lambda: glimpse(in_size=(20,)), r"in_size")
    E("string for number", ep, "in_size '20'", lambda: glimpse(in_size="20"), r"in_size")
    E("type", ep, "in_size (20.5, 20)", lambda: glimpse(in_size=(20.5, 20)), r"in_size")
    E("bool as int", ep, "in_size (True, 20)", lambda: glimpse(in_size=(True, 20), region=1), r"in_size")
    E("zero/negative size", ep, "glimpse_size 0", lambda: glimpse(glimpse_size=0), r"glimpse_size")
    E("type", ep, "glimpse_size 2.5", lambda: glimpse(glimpse_size=2.5), r"glimpse_size")
    E("bool as int", ep, "glimpse_size True", lambda: glimpse(glimpse_size=True), r"glimpse_size")
    E("zero/negative size", ep, "n_glimpses 0", lambda: glimpse(n_glimpses=0), r"n_glimpses")
    E("out of range", ep, "region (30, 30) on 20 x 20", lambda: glimpse(region=(30, 30)), r"region")
    E("type", ep, "region (2.5, 2)", lambda: glimpse(region=(2.5, 2)), r"region")
    E("zero/negative size", ep, "chunk_size None (k^2 memory)", lambda: glimpse(chunk_size=None), r"chunk_size")
    E("zero/negative size", ep, "chunk_size 3 does not divide k = 16", lambda: glimpse(chunk_size=3), r"chunk_size")
    E("zero/negative size", ep, "a_local -1", lambda: glimpse(a_local=-1), r"a_local")
    E("bool as int", ep, "a_global=True", lambda: glimpse(a_global=True), r"a_global")
    E("out of range", ep, "init_sigma below min_sigma", lambda: glimpse(init_sigma=0.05), r"init_sigma")
    E("NaN/inf", ep, "init_sigma inf", lambda: glimpse(init_sigma=float("inf")), r"init_sigma")
    E("NaN/inf", ep, "init_sigma NaN", lambda: glimpse(init_sigma=float("nan")), r"init_sigma")
    E("NaN/inf", ep, "sigma_scale inf", lambda: glimpse(sigma_scale=float("inf")), r"sigma_scale")
    E("string for number", ep, "min_sigma '0.1'", lambda: glimpse(min_sigma="0.1"), r"min_sigma")
    E("bad choice", ep, "box_param 'centre'", lambda: glimpse(box_param="centre"), r"box_param")
    E("out of range", ep, "scale_range (0.6, 0.2)", lambda: glimpse(box_param="centre_scale", scale_range=(0.6, 0.2)),
      r"scale_range")
    E("shape", ep, "scale_range (0.2,)", lambda: glimpse(box_param="centre_scale", scale_range=(0.2,)), r"scale_range")
    E("string for number", ep, "scale_range 'ab'", lambda: glimpse(box_param="centre_scale", scale_range="ab"),
      r"scale_range")
    R("valid edge", ep, "one glimpse of 4 x 4", lambda: glimpse()(images, boxes, gen(0)), is_tensor_shape((2, 1, 1, 4, 4)))
    R("valid edge", ep, "3 channels, 2 glimpses", lambda: glimpse(n_glimpses=2)(torch.rand(2, 3, 20, 20), torch.randn(2, 2, 4)),
      is_tensor_shape((2, 2, 3, 4, 4)))
    E("type", ep, "images a list", lambda: glimpse()(images.tolist(), boxes), r"images")
    E("shape", ep, "images (2, 20, 20) without channels", lambda: glimpse()(images[:, 0], boxes), r"images")
    E("shape", ep, "images 24 x 24 for in_size 20", lambda: glimpse()(torch.rand(2, 1, 24, 24), boxes), r"images")
    E("shape", ep, "boxes (2, 4)", lambda: glimpse()(images, boxes[:, 0]), r"boxes")
    E("dtype", ep, "images uint8", lambda: glimpse()((images * 255).byte(), boxes), r"images")
    E("dtype", ep, "boxes float64, images float32", lambda: glimpse()(images, boxes.double()), r"boxes|dtype")
    E("NaN/inf", ep, "NaN boxes", lambda: glimpse()(images, torch.full((2, 1, 4), float("nan"))), r"boxes")
    R("NaN/inf", ep, "NaN in the images (propagates, as in torch)",
      lambda: glimpse(region=(20, 20), a_local=60)(torch.full((2, 1, 20, 20), float("nan")), boxes),
      propagates_nan((2, 1, 1, 4, 4)), note="NaN in the input propagates (documented)")
    R("dtype", ep, "images and boxes float64", lambda: glimpse()(images.double(), boxes.double()),
      is_tensor_shape((2, 1, 1, 4, 4), torch.float64))
    R("empty batch", ep, "b = 0", lambda: glimpse()(images[:0], boxes[:0].requires_grad_()), is_tensor_shape((0, 1, 1, 4, 4)))
    E("meta/device", ep, "module, images and boxes on meta",
      lambda: glimpse().to("meta")(images.to("meta"), boxes.to("meta")), r"meta")
    E("type", ep, "generator='seed'", lambda: glimpse()(images, boxes, "seed"), r"generator")
    E("huge size", ep, "glimpse_size 10^5 (k = 10^10 output pixels)",
      lambda: glimpse(glimpse_size=100_000)(images, boxes), r"glimpse_size|GiB|memory")
    E("huge size", ep, "chunk_size 1024 on 100 x 100, b = 64 (pooled memory)",
      lambda: glimpse(in_size=(100, 100), glimpse_size=32, chunk_size=1024)(torch.rand(64, 1, 100, 100), torch.randn(64, 1, 4)),
      r"chunk_size")

    ep = "attention.BilinearGlimpse"

    def bil(**kw):
        return api("ashlib.glimpse.BilinearGlimpse")((20, 20), 4, **kw)
    R("valid edge", ep, "one glimpse", lambda: bil()(images, boxes), is_tensor_shape((2, 1, 1, 4, 4)))
    R("empty batch", ep, "b = 0", lambda: bil()(images[:0], boxes[:0]), is_tensor_shape((0, 1, 1, 4, 4)))
    E("NaN/inf", ep, "inf boxes", lambda: bil()(images, torch.full((2, 1, 4), float("inf"))), r"boxes")
    E("zero/negative size", ep, "glimpse_size -1", lambda: api("ashlib.glimpse.BilinearGlimpse")((20, 20), -1),
      r"glimpse_size")
    E("meta/device", ep, "images and boxes on meta", lambda: bil()(images.to("meta"), boxes.to("meta")), r"meta")

    ep = "attention.SourceNetwork"

    def src(**kw):
        args = dict(in_channels=1, n_glimpses=1, in_size=(16, 16), hidden=8)
        args.update(kw)
        return api("ashlib.glimpse_models.SourceNetwork")(**args)
    R("valid edge", ep, "boxes for 2 images", lambda: src()(torch.rand(2, 1, 16, 16)), is_tensor_shape((2, 1, 4)))
    R("empty batch", ep, "b = 0", lambda: src()(torch.rand(0, 1, 16, 16)), is_tensor_shape((0, 1, 4)))
    E("out of range", ep, "in_size (4, 4) (pools by 8)", lambda: src(in_size=(4, 4)), r"in_size|8 x 8|images")
    E("zero/negative size", ep, "hidden 0", lambda: src(hidden=0), r"hidden")
    E("bad choice", ep, "init 'xavier'", lambda: src(init="xavier"), r"init")
    E("out of range", ep, "init_box (0, 0, 1, 1)", lambda: src(init_box=(0, 0, 1, 1)), r"init_box")
    E("type", ep, "init_box 'centre' (a name, not fractions)", lambda: src(init_box="centre"), r"init_box")
    E("dtype", ep, "images uint8", lambda: src()((torch.rand(2, 1, 16, 16) * 255).byte()), r"images")
    E("shape", ep, "images (2, 3, 16, 16) for 1 channel", lambda: src()(torch.rand(2, 3, 16, 16)), r"images")
    E("NaN/inf", ep, "set_input_statistics on NaN images",
      lambda: src().set_input_statistics(torch.full((4, 1, 16, 16), float("nan"))), r"images|NaN")
    E("zero/negative size", ep, "set_input_statistics on constant images",
      lambda: src().set_input_statistics(torch.ones(4, 1, 16, 16)), r"variance|images")

    ep = "attention.ConvNetBaseline"
    conv = lambda **kw: api("ashlib.glimpse_models.ConvNetBaseline")(in_size=(16, 16), hidden=8, **kw)  # noqa: E731
    R("empty batch", ep, "b = 0", lambda: conv()(torch.rand(0, 1, 16, 16)), is_tensor_shape((0, 10)))
    E("zero/negative size", ep, "n_classes 0", lambda: conv(n_classes=0), r"n_classes")
    E("bool as int", ep, "in_channels=True", lambda: conv(in_channels=True), r"in_channels")

    ep = "attention.GlimpseClassifier"

    def clf(**kw):
        args = dict(in_size=(20, 20), glimpse_size=4, source_hidden=8, hidden=8, a_local=2, a_global=2, region=(5, 5))
        args.update(kw)
        return api("ashlib.glimpse_models.GlimpseClassifier")(**args)
    R("valid edge", ep, "logits for 2 images", lambda: clf()(images, gen(0)), is_tensor_shape((2, 10)))
    R("empty batch", ep, "b = 0", lambda: clf()(images[:0]), is_tensor_shape((0, 10)))
    E("bad choice", ep, "head 'rnn'", lambda: clf(head="rnn"), r"head")
    E("out of range", ep, "head 'conv' with glimpse_size 2", lambda: clf(head="conv", glimpse_size=2), r"glimpse_size")
    E("out of range", ep, "head 'convnet' with glimpse_size 6", lambda: clf(head="convnet", glimpse_size=6), r"glimpse_size")
    E("type", ep, "init_box with a custom source", lambda: clf(source=nn.Identity(), init_box=(0.2, 0.2, 0.8, 0.8)),
      r"init_box")
    E("shape", ep, "images 2 channels for in_channels 1", lambda: clf()(torch.rand(2, 2, 20, 20)), r"images")

    ep = "attention.SpatialTransformerClassifier"
    stc = lambda **kw: api("ashlib.glimpse_models.SpatialTransformerClassifier")(  # noqa: E731
        in_size=(20, 20), glimpse_size=4, source_hidden=8, hidden=8, **kw)
    R("empty batch", ep, "b = 0", lambda: stc()(images[:0]), is_tensor_shape((0, 10)))
    E("bad choice", ep, "box_param 'corner'", lambda: stc(box_param="corner"), r"box_param")

    ep = "attention helpers"
    E("type", ep, "box_corners of a list", lambda: api("ashlib.glimpse.box_corners")([[0.0] * 4], (20, 20)), r"boxes")
    E("shape", ep, "box_corners of (b, g, 3)", lambda: api("ashlib.glimpse.box_corners")(torch.zeros(2, 1, 3), (20, 20)),
      r"boxes")
    E("shape", ep, "glimpse_means of corners (b, g, 3)",
      lambda: api("ashlib.glimpse.glimpse_means")(torch.zeros(2, 1, 3), 4), r"corners")
    E("zero/negative size", ep, "glimpse_means with s = 0", lambda: api("ashlib.glimpse.glimpse_means")(torch.zeros(2, 1, 4), 0),
      r"glimpse_size")
    E("empty batch", ep, "check_saturation of no boxes", lambda: api("ashlib.glimpse.check_saturation")(torch.zeros(0, 1, 4)),
      r"boxes_raw")
    E("shape", ep, "box_spread of one image", lambda: api("ashlib.glimpse.box_spread")(torch.zeros(1, 1, 4)), r"corners|batch")
    E("shape", ep, "check_collapse of (b, 3)", lambda: api("ashlib.glimpse.check_collapse")(torch.zeros(2, 3)), r"corners")
    E("out of range", ep, "raw_start_box with a fraction 1.2",
      lambda: api("ashlib.glimpse.raw_start_box")((0.1, 0.1, 1.2, 0.9)), r"init_box|fractions")


# ------------------------------------------------------------------------------------- data

_DATA = {}


def offline_cluttered(**kw):
    args = dict(split="test", size=40, n_distractors=2, length=8, source="offline")
    args.update(kw)
    return api("ashlib.data.ClutteredMNIST")(**args)


def cluttered():
    if "ds" not in _DATA:
        _DATA["ds"] = offline_cluttered()
    return _DATA["ds"]


def no_network():
    """load_mnist(source='auto') must not reach the network while probing."""
    data = importlib.import_module("ashlib.data.mnist")

    def refuse(*args, **kwargs):
        raise OSError("no network while probing")
    data.fetch_url = refuse
    if hasattr(data, "_download_failures"):
        data._download_failures.clear()
    return data


def data_cases(tmp: Path):
    ep = "data.load_mnist"
    a_file = tmp / "a_file"
    a_file.write_text("not a folder")

    def lm(*args, **kw):
        no_network()
        return api("ashlib.data.load_mnist")(*args, **kw)

    def mnist_ok(n):
        def check(d):
            images, labels, source = d
            if tuple(images.shape) != (n, 28, 28) or images.dtype != torch.uint8 or len(labels) != n:
                return f"got {tuple(images.shape)} {images.dtype}, {len(labels)} labels; expected {n} uint8 digits"
            return True if "offline" in source or "full" in source else f"source {source!r} says neither"
        return check
    R("valid edge", ep, "offline test split", lambda: lm("test", "offline"), mnist_ok(2000))
    E("bad choice", ep, "split 'val'", lambda: lm("val", "offline"), r"split")
    E("bad choice", ep, "split None", lambda: lm(None, "offline"), r"split")
    E("bad choice", ep, "source 'FULL'", lambda: lm("test", "FULL"), r"source")
    R("files/paths", ep, "auto, root is a file (falls back to offline, documented)", lambda: lm("test", "auto", root=a_file),
      mnist_ok(2000), note="documented offline fallback")
    E("files/paths", ep, "full, root is a file", lambda: lm("test", "full", root=a_file), r"root|cannot store|store")
    E("files/paths", ep, "full, root below a file", lambda: lm("test", "full", root=a_file / "sub"), r"root|cannot store|store")
    R("files/paths", ep, "offline, root without the subset (uses the checkout's)", lambda: lm("test", "offline", root=tmp / "empty"),
      mnist_ok(2000))
    E("type", ep, "root=123", lambda: lm("test", "offline", root=123), r"root")
    bad_npz = tmp / "badnpz"
    bad_npz.mkdir()
    (bad_npz / "mnist_offline.npz").write_text("not an npz")
    E("files/paths", ep, "offline, root holds a damaged mnist_offline.npz", lambda: lm("test", "offline", root=bad_npz),
      r"mnist_offline|offline subset")
    other_npz = tmp / "othernpz"
    other_npz.mkdir()
    np.savez(other_npz / "mnist_offline.npz", test_images=np.zeros((3, 28, 28), np.uint8), test_labels=np.zeros(3, np.uint8),
             train_images=np.zeros((3, 28, 28), np.uint8), train_labels=np.zeros(3, np.uint8))
    E("files/paths", ep, "offline, root holds another npz", lambda: lm("test", "offline", root=other_npz),
      r"mnist_offline|offline subset|SHA")

    ep = "data.ClutteredMNIST"
    R("valid edge", ep, "8 items, 2 distractors", lambda: cluttered()[3],
      lambda r: True if tuple(r[0].shape) == (1, 40, 40) and 0 <= r[1] <= 9 and 0 <= float(r[0].min()) and float(r[0].max()) <= 1
      else f"got {tuple(r[0].shape)}, label {r[1]}")
    E("out of range", ep, "size 27", lambda: offline_cluttered(size=27), r"size")
    E("string for number", ep, "size '100'", lambda: offline_cluttered(size="100"), r"size")
    E("type", ep, "size 100.0", lambda: offline_cluttered(size=100.0), r"size")
    E("bool as int", ep, "n_distractors=True", lambda: offline_cluttered(n_distractors=True), r"n_distractors")
    E("zero/negative size", ep, "n_distractors -1", lambda: offline_cluttered(n_distractors=-1), r"n_distractors")
    E("huge size", ep, "n_distractors 10^6 (8 GB plan)", lambda: offline_cluttered(n_distractors=10**6), r"n_distractors")
    E("zero/negative size", ep, "distractor_size 0", lambda: offline_cluttered(distractor_size=0), r"distractor_size")
    E("out of range", ep, "distractor_size 29", lambda: offline_cluttered(distractor_size=29), r"distractor_size")
    E("zero/negative size", ep, "length 0", lambda: offline_cluttered(length=0), r"length")
    E("zero/negative size", ep, "length -5", lambda: offline_cluttered(length=-5), r"length")
    E("string for number", ep, "length '10'", lambda: offline_cluttered(length="10"), r"length")
    E("type", ep, "length 2.7 (would become 2)", lambda: offline_cluttered(length=2.7), r"length")
    E("bool as int", ep, "length=True", lambda: offline_cluttered(length=True), r"length")
    E("huge size", ep, "length 10^9 (plan of 300 GB)", lambda: offline_cluttered(length=10**9), r"length")
    E("bad choice", ep, "split 'validation'", lambda: offline_cluttered(split="validation"), r"split")
    E("bad choice", ep, "source 'web'", lambda: offline_cluttered(source="web"), r"source")
    E("string for number", ep, "seed '0'", lambda: offline_cluttered(seed="0"), r"seed")
    E("dtype", ep, "user digits float32", lambda: offline_cluttered(mnist=(torch.rand(5, 28, 28), torch.zeros(5, dtype=torch.long))),
      r"digit|uint8")
    E("zero/negative size", ep, "one user digit with distractors",
      lambda: offline_cluttered(mnist=(torch.zeros(1, 28, 28, dtype=torch.uint8), torch.zeros(1, dtype=torch.long))),
      r"digits|distractor")
    E("type", ep, "ds[1.7]", lambda: cluttered()[1.7], r"index", errors=(ValueError, TypeError))
    E("type", ep, "ds['1']", lambda: cluttered()["1"], r"index", errors=(ValueError, TypeError))
    E("bool as int", ep, "ds[True]", lambda: cluttered()[True], r"index", errors=(ValueError, TypeError))
    E("type", ep, "ds[torch.tensor(1.0)]", lambda: cluttered()[torch.tensor(1.0)], r"index", errors=(ValueError, TypeError))
    E("out of range", ep, "ds[8] of 8 items", lambda: cluttered()[8], r"index|range", errors=(ValueError, IndexError))
    R("valid edge", ep, "ds[-1] is the last item", lambda: (cluttered()[-1], cluttered()[7]),
      lambda r: True if torch.equal(r[0][0], r[1][0]) and r[0][1] == r[1][1] else "ds[-1] differs from ds[7]")
    R("valid edge", ep, "ds[np.int64(2)]", lambda: (cluttered()[np.int64(2)], cluttered()[2]),
      lambda r: True if torch.equal(r[0][0], r[1][0]) else "differs from ds[2]")
    E("type", ep, "batch([1.5])", lambda: cluttered().batch([1.5]), r"indices|index", errors=(ValueError, TypeError))
    E("type", ep, "batch('ab')", lambda: cluttered().batch("ab"), r"indices|index", errors=(ValueError, TypeError))
    E("out of range", ep, "batch([100])", lambda: cluttered().batch([100]), r"indices|range", errors=(ValueError, IndexError))
    R("empty batch", ep, "batch([])", lambda: cluttered().batch([]),
      lambda r: True if tuple(r[0].shape) == (0, 1, 40, 40) and tuple(r[1].shape) == (0,) else f"got {tuple(r[0].shape)}")
    E("type", ep, "render([0.5])", lambda: cluttered().render([0.5]), r"indices|index", errors=(ValueError, TypeError))
    E("type", ep, "layout(2.5)", lambda: cluttered().layout(2.5), r"index", errors=(ValueError, TypeError))

    foreign = tmp / "foreign.pt"
    torch.save({"something": torch.zeros(2)}, foreign)
    text = tmp / "text.pt"
    text.write_text("hello")
    a_dir = tmp / "a_dir"
    a_dir.mkdir()
    E("files/paths", ep, "materialise onto a foreign torch file", lambda: offline_cluttered().materialise(foreign, progress=False),
      r"cluttered-MNIST file|not a")
    E("files/paths", ep, "materialise onto a text file", lambda: offline_cluttered().materialise(text, progress=False),
      r"cluttered-MNIST file|not a")
    E("files/paths", ep, "materialise onto a folder", lambda: offline_cluttered().materialise(a_dir, progress=False),
      r"folder|director|path")
    E("zero/negative size", ep, "materialise(batch_size=0)",
      lambda: offline_cluttered().materialise(tmp / "m0.pt", batch_size=0, progress=False), r"batch_size")
    E("zero/negative size", ep, "materialise(batch_size=-1) (would save uninitialised images)",
      lambda: offline_cluttered().materialise(tmp / "m1.pt", batch_size=-1, progress=False), r"batch_size")

    def roundtrip():
        ds = offline_cluttered()
        path = ds.materialise(tmp / "ok.pt", progress=False)
        again = offline_cluttered()
        again.materialise(path, progress=False)
        return ds.batch([0, 5]), again.batch([0, 5]), offline_cluttered().batch([0, 5])
    R("files/paths", ep, "materialise, reload: same canvases as rendering", roundtrip,
      lambda r: True if torch.equal(r[0][0], r[1][0]) and torch.equal(r[0][0], r[2][0]) else "materialised canvases differ")

    ep = "data.SortingTask"

    def task(**kw):
        args = dict(n=4, split="test", source="offline")
        args.update(kw)
        return api("ashlib.data.SortingTask")(**args)

    def sample_ok(b, n=4, d=3):
        def check(r):
            images, numbers, perm = r
            if tuple(images.shape) != (b, n, d, 28, 28) or tuple(numbers.shape) != (b, n):
                return f"got {tuple(images.shape)}"
            if b and not torch.equal(numbers.gather(1, perm), numbers.sort(1).values):
                return "perm does not sort the numbers"
            return True
        return check
    R("valid edge", ep, "a batch of 3", lambda: task().sample(3), sample_ok(3))
    E("zero/negative size", ep, "n 0", lambda: task(n=0), r"\bn\b")
    E("string for number", ep, "n '4'", lambda: task(n="4"), r"\bn\b")
    E("bool as int", ep, "n=True", lambda: task(n=True), r"\bn\b")
    E("out of range", ep, "digits 19", lambda: task(digits=19), r"digits")
    E("out of range", ep, "distinct with n > 10^digits", lambda: task(n=20, digits=1, distinct=True), r"distinct|digits")
    E("bad choice", ep, "split 'val'", lambda: task(split="val"), r"split")
    E("zero/negative size", ep, "sample(0)", lambda: task().sample(0), r"batch_size")
    E("zero/negative size", ep, "sample(-1)", lambda: task().sample(-1), r"batch_size")
    E("type", ep, "sample(2.5)", lambda: task().sample(2.5), r"batch_size")
    E("string for number", ep, "sample('4')", lambda: task().sample("4"), r"batch_size")
    E("bool as int", ep, "sample(True)", lambda: task().sample(True), r"batch_size")
    E("huge size", ep, "sample(10^9) (37 TB of images)", lambda: task().sample(10**9), r"batch_size|GiB|memory")


# ------------------------------------------------------------------------------------- configs


def config_cases():
    def cfg(config, kw):
        module = {"IdentityConfig": "identity", "SortingConfig": "sorting", "AttentionConfig": "attention"}[config]
        return api(f"ashlib.experiments.{module}.{config}")(**kw)

    ep = "IdentityConfig"
    R("valid edge", ep, "defaults", lambda: cfg("IdentityConfig", {}), lambda c: True if c.n == 32 and c.lr > 0 else f"got {c}")
    for name, value, cls_, names in [
        ("n", 1, "zero/negative size", r"\bn\b"), ("n", "8", "string for number", r"\bn\b"),
        ("n", 8.0, "type", r"\bn\b"), ("n", True, "bool as int", r"\bn\b"),
        ("method", "dense", "bad choice", r"method"), ("baseline", "median", "bad choice", r"baseline"),
        ("values_init", "zeros", "bad choice", r"values_init"), ("values_lr_scale", 0, "zero/negative size", r"values_lr_scale"),
        ("values_lr_scale", "0.1", "string for number", r"values_lr_scale"),
        ("lr", -1.0, "zero/negative size", r"\blr\b"), ("lr", float("nan"), "NaN/inf", r"\blr\b"),
        ("lr", "0.01", "string for number", r"\blr\b"), ("lr", True, "bool as int", r"\blr\b"),
        ("iterations", 0, "zero/negative size", r"iterations"), ("iterations", "10", "string for number", r"iterations"),
        ("iterations", 2.5, "type", r"iterations"), ("batch_size", 0, "zero/negative size", r"batch_size"),
        ("batch_size", True, "bool as int", r"batch_size"),
        ("chunk_size", 3, "zero/negative size", r"chunk_size"), ("chunk_size", "2", "string for number", r"chunk_size"),
        ("a_local", -1, "zero/negative size", r"a_local"), ("a_global", 1.5, "type", r"a_global"),
        ("region", 0, "zero/negative size", r"region"), ("region", 64, "out of range", r"region"),
        ("eval_samples", 0, "zero/negative size", r"eval_samples"), ("eval_every", -1, "zero/negative size", r"eval_every"),
        ("device", "gpu0", "meta/device", r"device"), ("seed", "0", "string for number", r"seed"),
        ("seed", -1, "zero/negative size", r"seed"),
    ]:
        E(cls_, ep, f"{name}={value!r}", lambda kw={"n": 8, name: value}: cfg("IdentityConfig", kw), names)

    ep = "SortingConfig"
    R("valid edge", ep, "n = 5 (not a power of two: padded)", lambda: cfg("SortingConfig", {"n": 5}),
      lambda c: True if c.n == 5 else f"got {c}")
    for name, value, cls_, names in [
        ("n", 1, "zero/negative size", r"\bn\b"), ("n", "4", "string for number", r"\bn\b"),
        ("method", "bubblesort", "bad choice", r"method"), ("intermediate", True, "bad choice", r"intermediate"),
        ("C", 0.0, "zero/negative size", r"\bC\b"), ("C", float("inf"), "NaN/inf", r"\bC\b"),
        ("tau", -1.0, "zero/negative size", r"tau"), ("lr", float("nan"), "NaN/inf", r"\blr\b"),
        ("lr", True, "bool as int", r"\blr\b"), ("samples", -1, "zero/negative size", r"samples"),
        ("samples", True, "bool as int", r"samples"), ("local", True, "bool as int", r"local"),
        ("draws", 0, "zero/negative size", r"draws"), ("width", 0.0, "zero/negative size", r"width"),
        ("width", float("inf"), "NaN/inf", r"width"), ("batch_size", "64", "string for number", r"batch_size"),
        ("batch_size", True, "bool as int", r"batch_size"),
        ("iterations", 2.5, "type", r"iterations"), ("eval_instances", 0, "zero/negative size", r"eval_instances"),
        ("eval_every", 0, "zero/negative size", r"eval_every"), ("digits", 0, "zero/negative size", r"digits"),
        ("digits", 19, "out of range", r"digits"), ("source", "web", "bad choice", r"source"),
        ("lr_schedule", "step", "bad choice", r"lr_schedule"), ("device", "gpu0", "meta/device", r"device"),
        ("seed", "0", "string for number", r"seed"),
    ]:
        kw = {name: value}
        if name == "intermediate":
            kw["method"] = "neuralsort"
        E(cls_, ep, f"{name}={value!r}" + (" with neuralsort" if name == "intermediate" else ""),
          lambda kw=kw: cfg("SortingConfig", kw), names)
    E("bad choice", ep, "draws=2 with softsort", lambda: cfg("SortingConfig", {"method": "softsort", "draws": 2}), r"draws")

    ep = "AttentionConfig"
    R("valid edge", ep, "defaults", lambda: cfg("AttentionConfig", {}), lambda c: True if c.steps >= 1 else f"got {c}")
    for name, value, cls_, names in [
        ("model", "rnn", "bad choice", r"model"), ("head", "rnn", "bad choice", r"head"),
        ("init", "xavier", "bad choice", r"init"), ("init_box", "middle", "bad choice", r"init_box"),
        ("init_box", (0, 0, 1, 1), "out of range", r"init_box"), ("box_param", "centre", "bad choice", r"box_param"),
        ("scale_range", (0.6, 0.2), "out of range", r"scale_range"), ("n_glimpses", 0, "zero/negative size", r"n_glimpses"),
        ("canvas", 20, "out of range", r"canvas"), ("canvas", "100", "string for number", r"canvas"),
        ("glimpse_size", 200, "out of range", r"glimpse_size"), ("batch_size", True, "bool as int", r"batch_size"),
        ("lr", -1.0, "zero/negative size", r"\blr\b"), ("lr", True, "bool as int", r"\blr\b"),
        ("source_lr", "1e-3", "string for number", r"source_lr"), ("warmup", -1, "zero/negative size", r"warmup"),
        ("warmup", True, "bool as int", r"warmup"), ("eval_every", 0, "zero/negative size", r"eval_every"),
        ("n_distractors", -1, "zero/negative size", r"n_distractors"),
        ("n_distractors", 10**6, "huge size", r"n_distractors"), ("chunk_size", 5, "zero/negative size", r"chunk_size"),
        ("source", "web", "bad choice", r"source"), ("device", "gpu0", "meta/device", r"device"),
        ("seed", -1, "zero/negative size", r"seed"), ("train_size", True, "bool as int", r"train_size"),
        ("lr_schedule", "step", "bad choice", r"lr_schedule"),
    ]:
        E(cls_, ep, f"{name}={value!r}", lambda kw={name: value}: cfg("AttentionConfig", kw), names)


# ------------------------------------------------------------------------------------- pretrained, exercises


def pretrained_cases(tmp: Path):
    ep = "pretrained"
    R("valid edge", ep, "names()", lambda: api("ashlib.pretrained.names")(),
      lambda n: True if isinstance(n, list) and n and all(isinstance(s, str) for s in n) else f"got {n!r}")
    R("valid edge", ep, "load('sort-softsort-n4')", lambda: api("ashlib.pretrained.load")("sort-softsort-n4"),
      lambda m: True if hasattr(m, "config") and not m.training else "no config / not in eval mode")
    E("bad choice", ep, "load('nope')", lambda: api("ashlib.pretrained.load")("nope"), r"pretrained model|available")
    E("type", ep, "load(None)", lambda: api("ashlib.pretrained.load")(None), r"pretrained model|available|name")
    E("meta/device", ep, "load(..., device='gpu0')", lambda: api("ashlib.pretrained.load")("sort-softsort-n4", device="gpu0"),
      r"device")
    E("meta/device", ep, "load(..., device='cuda') without CUDA" if not torch.cuda.is_available() else "load(..., device='cuda:99')",
      lambda: api("ashlib.pretrained.load")("sort-softsort-n4", device="cuda" if not torch.cuda.is_available() else "cuda:99"),
      r"device|CUDA")
    E("files/paths", ep, "load_file of a missing path", lambda: api("ashlib.pretrained.load_file")(tmp / "missing"),
      r"no pretrained model|need")
    folder = api("ashlib.pretrained.folder")() if hasattr(importlib.import_module("ashlib.pretrained"), "folder") else None

    def copy_with(json_text=None, damage=False):
        import shutil

        target = tmp / f"copy{len(list(tmp.glob('copy*')))}"
        target.mkdir()
        shutil.copy(folder / "sort-softsort-n4.pt", target / "m.pt")
        shutil.copy(folder / "sort-softsort-n4.json", target / "m.json")
        if json_text is not None:
            (target / "m.json").write_text(json_text(json.loads((folder / "sort-softsort-n4.json").read_text())))
        if damage:
            with open(target / "m.pt", "r+b") as f:
                f.seek(100)
                f.write(b"\x00\x01\x02")
        return api("ashlib.pretrained.load_file")(target / "m")
    E("files/paths", ep, "load_file of a damaged .pt", lambda: copy_with(damage=True), r"SHA-256|damaged")
    E("files/paths", ep, "load_file of a .json that is not JSON", lambda: copy_with(lambda r: "{not json"), r"json|m\.json")
    E("files/paths", ep, "load_file of a .json without 'experiment'",
      lambda: copy_with(lambda r: json.dumps({k: v for k, v in r.items() if k != "experiment"})), r"experiment|m\.json")
    E("files/paths", ep, "load_file of a .json with experiment 'chess'",
      lambda: copy_with(lambda r: json.dumps({**r, "experiment": "chess"})), r"experiment")
    E("files/paths", ep, "load_file of a .json whose config has an unknown key",
      lambda: copy_with(lambda r: json.dumps({**r, "config": {**r["config"], "colour": "red"}})), r"config|colour|m\.json")
    E("bad choice", ep, "save(..., experiment='chess')",
      lambda: api("ashlib.pretrained.save")(nn.Linear(1, 1), tmp / "s", "chess", None, {}, ""), r"experiment")


def exercise_cases():
    ep = "exercises"

    def check(answer):
        with contextlib.redirect_stdout(io.StringIO()):
            return api("ashlib.exercises.check")(answer, quiet=True)

    def named(name, body):
        body.__name__ = name
        return body
    E("type", ep, "check(None)", lambda: check(None), r"exercise")
    E("type", ep, "check('corner_tuples') (a name, not the function)", lambda: check("corner_tuples"), r"exercise")
    E("bad choice", ep, "check of an unknown function", lambda: check(named("my_answer", lambda *a: 1)), r"exercise")
    R("valid edge", ep, "check of an empty stub (returns None): not yet", lambda: check(named("corner_tuples", lambda mean: None)),
      lambda ok: True if ok is False else f"returned {ok!r}")
    R("valid edge", ep, "check of a stub that raises: not yet", lambda: check(named("dense_matrix", lambda *a: 1 / 0)),
      lambda ok: True if ok is False else f"returned {ok!r}")
    R("valid edge", ep, "check of a wrong shape: not yet",
      lambda: check(named("proportions", lambda tuples, mean, sigma: torch.zeros(1))),
      lambda ok: True if ok is False else f"returned {ok!r}")
    R("valid edge", ep, "check of the reference solution: correct",
      lambda: check(api("ashlib.solutions.leave_one_out")), lambda ok: True if ok is True else f"returned {ok!r}")
    E("bad choice", ep, "exercise() of an unknown stub", lambda: api("ashlib.exercises.exercise")(named("nope", lambda: 0)),
      r"exercise")
    E("type", ep, "exercise(42)", lambda: api("ashlib.exercises.exercise")(42), r"exercise|stub")


# ------------------------------------------------------------------------------------- CLI


TINY_SORT = ["--iterations", "1", "--batch-size", "2", "--width", "0.1", "--eval-instances", "2", "--eval-every", "1",
             "--source", "offline"]
TINY_ATTENTION = ["--canvas", "40", "--glimpse-size", "4", "--train-size", "4", "--test-size", "4", "--epochs", "1",
                  "--batch-size", "2", "--distractors", "0", "--source-hidden", "8", "--source", "offline"]
TINY_IDENTITY = ["--size", "4", "--iterations", "1", "--eval-every", "1"]


def cli(args, cwd: Path, timeout=240):
    """Run ``python -m ashlib ARGS`` with the probed ashlib; a clean error raises CliError, a traceback CliCrash."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1", "ASHLIB_PROGRESS": "0", "ASHLIB_QUICK": "1"}

    def looser_memory_limit():
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        resource.setrlimit(resource.RLIMIT_AS, (min(8 * 2**30, hard) if hard != resource.RLIM_INFINITY else 8 * 2**30, hard))
    p = subprocess.run([sys.executable, "-m", "ashlib", *args], cwd=cwd, env=env, capture_output=True, text=True,
                       timeout=timeout, preexec_fn=looser_memory_limit)
    if p.returncode == 0:
        return p
    if "Traceback" in p.stderr:
        raise CliCrash(f"exit {p.returncode}, traceback: {p.stderr.strip().splitlines()[-1]}")
    lines = [line for line in p.stderr.strip().splitlines() if line.strip()]
    raise CliError(f"exit {p.returncode}: {lines[-1] if lines else '(no message)'}")


def cli_cases(tmp: Path):
    ep = "CLI"
    existing = tmp / "existing_file"
    existing.write_text("do not overwrite")
    below_file = existing / "run"

    def C(cls_, name, args, names):
        E(cls_, ep, name, lambda: cli(args, tmp), names)

    C("bad choice", "no experiment: 'python -m ashlib bogus'", ["bogus"], r"invalid choice")
    C("string for number", "identity --size abc", ["identity", "--size", "abc"], r"--size")
    C("zero/negative size", "identity --size 1", ["identity", "--size", "1"], r"\bn\b|--size|size")
    C("zero/negative size", "identity --lr -1", ["identity", *TINY_IDENTITY, "--lr", "-1"], r"\blr\b")
    C("NaN/inf", "identity --lr nan", ["identity", *TINY_IDENTITY, "--lr", "nan"], r"\blr\b")
    C("zero/negative size", "identity --iterations 0", ["identity", "--size", "4", "--iterations", "0"], r"iterations")
    C("zero/negative size", "identity --chunk-size 3 --size 8", ["identity", "--size", "8", "--chunk-size", "3"], r"chunk_size|chunk-size")
    C("zero/negative size", "identity --a-local -1", ["identity", *TINY_IDENTITY, "--a-local", "-1"], r"a_local|a-local")
    C("zero/negative size", "identity --eval-every 0", ["identity", "--size", "4", "--iterations", "1", "--eval-every", "0"],
      r"eval_every|eval-every")
    C("meta/device", "identity --device bogus", ["identity", *TINY_IDENTITY, "--device", "bogus"], r"device")
    C("meta/device", "identity --device cuda (no CUDA)" if not torch.cuda.is_available() else "identity --device cuda:99",
      ["identity", *TINY_IDENTITY, "--device", "cuda" if not torch.cuda.is_available() else "cuda:99"], r"device|CUDA")
    C("files/paths", "identity --out EXISTING_FILE", ["identity", *TINY_IDENTITY, "--out", str(existing)], r"--out|existing_file")
    C("files/paths", "identity --out FILE/run (parent is a file)", ["identity", *TINY_IDENTITY, "--out", str(below_file)],
      r"--out|existing_file")
    C("bad choice", "sort --method bubble", ["sort", "--method", "bubble"], r"--method|invalid choice")
    C("zero/negative size", "sort --n 1", ["sort", "--n", "1", *TINY_SORT], r"\bn\b|--n")
    C("zero/negative size", "sort --n -3", ["sort", "--n", "-3", *TINY_SORT], r"\bn\b|--n")
    C("string for number", "sort --n abc", ["sort", "--n", "abc"], r"--n")
    C("zero/negative size", "sort --C 0", ["sort", "--C", "0", *TINY_SORT], r"\bC\b")
    C("zero/negative size", "sort --C -1", ["sort", "--C", "-1", *TINY_SORT], r"\bC\b")
    C("zero/negative size", "sort --lr -1", ["sort", "--lr", "-1", *TINY_SORT], r"\blr\b")
    C("zero/negative size", "sort --tau 0 --method neuralsort", ["sort", "--method", "neuralsort", "--tau", "0", *TINY_SORT], r"tau")
    C("zero/negative size", "sort --samples -1", ["sort", "--samples", "-1", *TINY_SORT], r"samples")
    C("zero/negative size", "sort --batch-size 0", ["sort", *TINY_SORT, "--batch-size", "0"], r"batch_size|batch-size")
    C("zero/negative size", "sort --draws 0", ["sort", "--draws", "0", *TINY_SORT], r"draws")
    C("zero/negative size", "sort --width 0", ["sort", *TINY_SORT, "--width", "0"], r"width")
    C("zero/negative size", "sort --checkpoint-every -1 --out DIR",
      ["sort", *TINY_SORT, "--checkpoint-every", "-1", "--out", str(tmp / "ck")], r"checkpoint")
    C("meta/device", "sort --device bogus", ["sort", *TINY_SORT, "--device", "bogus"], r"device")
    C("files/paths", "sort --out EXISTING_FILE", ["sort", *TINY_SORT, "--out", str(existing)], r"--out|existing_file")
    C("files/paths", "sort --resume without --out", ["sort", *TINY_SORT, "--resume"], r"--resume|--out")
    C("files/paths", "sort --resume --out EMPTY_DIR (no checkpoint)", ["sort", *TINY_SORT, "--resume", "--out", str(tmp / "nockpt")],
      r"checkpoint|resume")
    C("zero/negative size", "attention --glimpses 0", ["attention", *TINY_ATTENTION, "--glimpses", "0"], r"n_glimpses|glimpses")
    C("out of range", "attention --canvas 20 (smaller than a digit)", ["attention", *TINY_ATTENTION, "--canvas", "20"],
      r"canvas|size")
    C("out of range", "attention --glimpse-size 200 --canvas 100",
      ["attention", *TINY_ATTENTION, "--canvas", "100", "--glimpse-size", "200"], r"glimpse_size|glimpse-size")
    C("zero/negative size", "attention --lr -1", ["attention", *TINY_ATTENTION, "--lr", "-1"], r"\blr\b")
    C("zero/negative size", "attention --warmup -1", ["attention", *TINY_ATTENTION, "--warmup", "-1"], r"warmup")
    C("zero/negative size", "attention --distractors -1", ["attention", *TINY_ATTENTION, "--distractors", "-1"],
      r"distractors")
    C("out of range", "attention --scale-range 0.6 0.2 --box-param centre_scale",
      ["attention", *TINY_ATTENTION, "--box-param", "centre_scale", "--scale-range", "0.6", "0.2"], r"scale_range|scale-range")
    C("meta/device", "attention --device bogus", ["attention", *TINY_ATTENTION, "--device", "bogus"], r"device")
    C("files/paths", "attention --out EXISTING_FILE", ["attention", *TINY_ATTENTION, "--out", str(existing)],
      r"--out|existing_file")
    C("bad choice", "data --source web", ["data", "--source", "web"], r"--source|invalid choice")

    def help_without_experiment():
        p = subprocess.run([sys.executable, "-m", "ashlib"], cwd=tmp, capture_output=True, text=True, timeout=120,
                           env={**os.environ, "PYTHONPATH": str(ROOT)})
        return p
    R("valid edge", ep, "no arguments: prints the help, exit 2", help_without_experiment,
      lambda p: True if p.returncode == 2 and "usage" in p.stdout + p.stderr and "Traceback" not in p.stderr
      else f"exit {p.returncode}: {p.stderr[-200:]}")

    def tiny_run():
        out = tmp / "new" / "nested" / "run"
        p = cli(["identity", "--size", "4", "--iterations", "2", "--eval-every", "1", "--out", str(out)], tmp)
        return p, out
    R("files/paths", ep, "identity, 2 batches, --out a new nested folder (created)", tiny_run,
      lambda r: True if (r[1] / "summary.json").is_file() and (r[1] / "curves.csv").is_file() else
      f"no summary.json in {r[1]}: {sorted(p.name for p in r[1].glob('*')) if r[1].exists() else 'folder missing'}")


# ------------------------------------------------------------------------------------- running


class _Timeout(Exception):
    pass


@contextlib.contextmanager
def time_limit(seconds):
    def handler(signum, frame):
        raise _Timeout(f"took longer than {seconds} s")
    previous = signal.signal(signal.SIGALRM, handler)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def short(text: str, n: int = 110) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[: n - 3] + "..."


def judge(case: Case) -> tuple[str, str]:
    try:
        with time_limit(CASE_SECONDS), warnings.catch_warnings(), \
                contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            result = case.run()
    except Missing as missing:
        return "n/a", f"{missing} does not exist"
    except Exception as error:  # noqa: BLE001 - classifying every failure is the point
        message = f"{type(error).__name__}: {error}"
        if isinstance(error, CliCrash):
            return "wrong", short(str(error))
        if isinstance(error, case.errors) and case.names and re.search(case.names, str(error)):
            return "clear", short(str(error))
        if isinstance(error, case.errors) and case.names:
            return "wrong", short("message does not name the argument: " + message)
        return "wrong", short(message)
    if case.check is None:
        return "wrong", "accepted without complaint (no error)"
    try:
        verdict = case.check(result)
    except Exception as error:  # noqa: BLE001
        verdict = f"result unusable: {type(error).__name__}: {error}"
    if verdict is True:
        return "correct", case.note or "as expected"
    return "wrong", short(verdict)


def cap_memory(extra_gib: float = 3.0) -> None:
    """Cap the address space a few GiB above what is mapped now: a huge allocation fails fast."""
    with open("/proc/self/status") as f:
        vm = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (int(vm + extra_gib * 2**30), hard))


def build_cases(tmp: Path, only: str | None = None, skip_cli: bool = False) -> list[Case]:
    sample_cases()
    contract_cases()
    to_dense_cases()
    indexing_cases()
    sparse_layer_cases()
    hyper_layer_cases()
    reinforce_cases()
    quicksort_cases()
    baseline_cases()
    attention_cases()
    data_cases(tmp)
    config_cases()
    pretrained_cases(tmp)
    exercise_cases()
    if not skip_cli:
        cli_cases(tmp)
    return [c for c in CASES if only is None or re.search(only, f"{c.entry} {c.name}")]


def run_all(cases: list[Case], verbose: bool = True) -> list[dict]:
    rows = []
    for i, case in enumerate(cases, 1):
        start = time.perf_counter()
        outcome, message = judge(case)
        rows.append({"class": case.cls, "entry": case.entry, "case": case.name, "outcome": outcome, "message": message,
                     "seconds": round(time.perf_counter() - start, 2)})
        if verbose:
            print(f"[{i:3d}/{len(cases)}] {outcome:8s} {case.entry} | {case.name} | {message}", file=sys.stderr, flush=True)
    return rows


def counts_by_class(rows) -> dict:
    table = {}
    for row in rows:
        table.setdefault(row["class"], Counter())[row["outcome"]] += 1
    return dict(sorted(table.items()))


def describe_root() -> str:
    """The probed checkout: its path and git commit (and whether it has uncommitted changes)."""
    try:
        commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, timeout=30).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "ashlib"], capture_output=True,
                               text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return str(ROOT)
    return f"{ROOT} (commit {commit}{' + uncommitted changes to ashlib/' if dirty else ''})" if commit else str(ROOT)


def md_escape(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def markdown(rows, title: str) -> str:
    lines = [f"# {title}", "", f"ashlib from `{describe_root()}`; {len(rows)} cases.", "", "## Counts per class", "",
             "| class | " + " | ".join(OUTCOMES) + " | total |", "|---|" + "---:|" * (len(OUTCOMES) + 1)]
    totals = Counter()
    for cls_, counter in counts_by_class(rows).items():
        totals.update(counter)
        lines.append(f"| {cls_} | " + " | ".join(str(counter.get(o, 0)) for o in OUTCOMES) + f" | {sum(counter.values())} |")
    lines.append("| **all** | " + " | ".join(f"**{totals.get(o, 0)}**" for o in OUTCOMES) + f" | **{sum(totals.values())}** |")
    lines += ["", "## Cases", "", "| class | entry point | case | outcome | message |", "|---|---|---|---|---|"]
    for row in sorted(rows, key=lambda r: (r["class"], r["entry"], r["case"])):
        lines.append(f"| {md_escape(row['class'])} | {md_escape(row['entry'])} | {md_escape(row['case'])} | "
                     f"{row['outcome']} | {md_escape(row['message'])} |")
    return "\n".join(lines) + "\n"


def compare(before_path: Path, after_path: Path) -> str:
    before, after = json.loads(before_path.read_text()), json.loads(after_path.read_text())
    key = lambda r: (r["entry"], r["case"])  # noqa: E731
    b_rows = {key(r): r for r in before["rows"]}
    a_rows = {key(r): r for r in after["rows"]}
    b_counts, a_counts = counts_by_class(before["rows"]), counts_by_class(after["rows"])
    lines = ["# Bad input: before and after issue 13", "",
             f"Before: ashlib from `{before['root']}` ({len(b_rows)} cases, {before['seconds']:.0f} s). "
             f"After: `{after['root']}` ({len(a_rows)} cases, {after['seconds']:.0f} s). Produced by "
             "`scripts/probe_bad_input.py`; `n/a`: the entry point does not exist in that checkout.", "",
             "## Counts per class (before -> after)", "",
             "| class | clear | correct | wrong | n/a | total |", "|---|---:|---:|---:|---:|---:|"]
    tb, ta = Counter(), Counter()
    for cls_ in sorted(set(b_counts) | set(a_counts)):
        cb, ca = b_counts.get(cls_, Counter()), a_counts.get(cls_, Counter())
        tb.update(cb)
        ta.update(ca)
        lines.append(f"| {cls_} | " + " | ".join(f"{cb.get(o, 0)} -> {ca.get(o, 0)}" for o in OUTCOMES)
                     + f" | {sum(ca.values())} |")
    lines.append("| **all** | " + " | ".join(f"**{tb.get(o, 0)} -> {ta.get(o, 0)}**" for o in OUTCOMES)
                 + f" | **{sum(ta.values())}** |")
    changed = Counter((b_rows[k]["outcome"] if k in b_rows else "-", a_rows[k]["outcome"]) for k in a_rows)
    lines += ["", "## Transitions", "", "| before | after | cases |", "|---|---|---:|"]
    lines += [f"| {b} | {a} | {n} |" for (b, a), n in sorted(changed.items())]
    still = [a_rows[k] for k in sorted(a_rows) if a_rows[k]["outcome"] == "wrong"]
    lines += ["", f"## Still wrong after ({len(still)})", "", "| entry point | case | message |", "|---|---|---|"]
    lines += [f"| {md_escape(r['entry'])} | {md_escape(r['case'])} | {md_escape(r['message'])} |" for r in still]
    lines += ["", "## Every case (before -> after)", "", "| class | entry point | case | before | after | after: message |",
              "|---|---|---|---|---|---|"]
    for k in sorted(a_rows, key=lambda k: (a_rows[k]["class"], k)):
        a = a_rows[k]
        b = b_rows.get(k, {"outcome": "-"})
        lines.append(f"| {md_escape(a['class'])} | {md_escape(a['entry'])} | {md_escape(a['case'])} | {b['outcome']} | "
                     f"{a['outcome']} | {md_escape(a['message'])} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--markdown", type=Path, help="write the table (or, with --compare, the comparison) as Markdown")
    parser.add_argument("--json", type=Path, help="write the rows as JSON (input of --compare)")
    parser.add_argument("--compare", nargs=2, type=Path, metavar=("BEFORE_JSON", "AFTER_JSON"),
                        help="combine two --json outputs into a before -> after table; runs no case")
    parser.add_argument("--only", help="run only cases whose 'entry case' matches this regex")
    parser.add_argument("--no-cli", action="store_true", help="skip the command-line cases (subprocesses)")
    parser.add_argument("--title", default="Bad and edge-case inputs")
    args = parser.parse_args(argv)
    if args.compare:
        text = compare(*args.compare)
        if args.markdown:
            args.markdown.parent.mkdir(parents=True, exist_ok=True)
            args.markdown.write_text(text)
        print(text)
        return 0
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="ashlib-probe-") as tmp:
        cases = build_cases(Path(tmp), args.only, args.no_cli)
        cap_memory()
        rows = run_all(cases)
    seconds = time.perf_counter() - start
    width = max(len(r["entry"]) for r in rows)
    for row in rows:
        print(f"{row['class']:20s} {row['entry']:{width}s} {row['outcome']:8s} {short(row['case'], 60):60s} "
              f"{short(row['message'], 90)}")
    print()
    print(f"{'class':20s} " + " ".join(f"{o:>8s}" for o in OUTCOMES))
    totals = Counter()
    for cls_, counter in counts_by_class(rows).items():
        totals.update(counter)
        print(f"{cls_:20s} " + " ".join(f"{counter.get(o, 0):8d}" for o in OUTCOMES))
    print(f"{'all':20s} " + " ".join(f"{totals.get(o, 0):8d}" for o in OUTCOMES) + f"   ({len(rows)} cases, {seconds:.0f} s)")
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(markdown(rows, args.title))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"root": describe_root(), "seconds": seconds, "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
