"""SparseLayer against a dense layer, and ashlib.contract against torch.sparse.mm.

    python benchmarks/bench_sparse.py            # n = 2^6 ... 2^16 (several minutes on 2 cores)
    python benchmarks/bench_sparse.py --quick    # n = 2^6 ... 2^12, under a minute

Part 1: one training step (forward + backward) of a vector n -> n layer, batch 64, k = n
Gaussians, against a dense n x n weight matrix (no bias) on the same input. Part 2: the
contraction alone, forward + backward, on the very tuples and values the sparse layer sampled,
with ashlib's gather + index_add against a block-diagonal torch.sparse.mm. Both sides run in
this one process; times are medians over repeats. Memory is what the step holds (see step_memory). On a shared CPU read the
ratios, not the absolute times.
"""

from __future__ import annotations

import argparse
import math
import re
import statistics
import time

import torch

import ashlib

BATCH = 64


def step_memory(forward, params, device):
    """MiB one training step holds: on CUDA the allocator's peak above the start; on CPU the
    parameters, their gradients and every tensor autograd keeps for backward (distinct storages
    counted once). The CPU figure leaves out short-lived temporaries, for both sides alike."""
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        forward().backward()
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - base) / 2**20
    storages = {}

    def keep(t):
        storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    for p in params:
        keep(p)
    with torch.autograd.graph.saved_tensors_hooks(keep, lambda t: t):
        loss = forward()
    loss.backward()
    grads = sum(p.grad.numel() * p.grad.element_size() for p in params if p.grad is not None)
    return (sum(storages.values()) + grads) / 2**20


def timed(step, device, repeats):
    """Median seconds of ``step()`` over repeats, after one warm-up."""
    step()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def available_bytes(device):
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    with open("/proc/meminfo") as f:
        return int(re.search(r"MemAvailable:\s+(\d+) kB", f.read()).group(1)) * 1024


def sparse_settings(n):
    """The paper's identity-style settings, stretched to any n: a_local + a_global < 2 log2 n."""
    log_n = int(math.log2(n))
    return dict(a_local=2, a_global=max(2, log_n - 4), region=min(log_n, n))


def bench_layers(n, device, repeats, chunk_size):
    x = torch.randn(BATCH, n, device=device)
    layer = ashlib.SparseLayer(n, n, n, chunk_size=chunk_size, **sparse_settings(n)).to(device)
    sparse_loss = lambda: layer(x).pow(2).mean()  # noqa: E731

    def sparse_step():
        layer.zero_grad(set_to_none=True)
        sparse_loss().backward()

    sparse = (timed(sparse_step, device, repeats), step_memory(sparse_loss, list(layer.parameters()), device))
    layer.zero_grad(set_to_none=True)

    dense_bytes = 3 * n * n * 4  # weight, its gradient, one temporary of the same size
    if dense_bytes > 0.7 * available_bytes(device):
        return sparse, None, f"needs ~{dense_bytes / 2**30:.0f} GiB", layer, x
    weight = torch.randn(n, n, device=device).div_(math.sqrt(n)).requires_grad_(True)
    dense_loss = lambda: (x @ weight.T).pow(2).mean()  # noqa: E731

    def dense_step():
        weight.grad = None
        dense_loss().backward()

    dense = (timed(dense_step, device, repeats), None)
    weight.grad = None
    dense = (dense[0], step_memory(dense_loss, [weight], device))
    del weight
    return sparse, dense, "", layer, x


def bench_contract(layer, x, device, repeats):
    """index_add contraction vs block-diagonal torch.sparse.mm on one sampled set of tuples.

    Returns times for forward + backward with respect to x only, and with respect to x and the
    values. torch.sparse.mm's gradient for the sparse operand goes through a dense
    (b n) x (b n) product, so that column is only timed while it needs at most 1 GiB.
    """
    b, n = x.shape
    with torch.no_grad():
        indices, weights = layer.sample_weights(*layer.batch_parameters(b))
    m = indices.shape[1]
    offsets = (torch.arange(b, device=device) * n).unsqueeze(1)
    coo = torch.stack([(indices[..., 0] + offsets).reshape(-1), (indices[..., 1] + offsets).reshape(-1)])
    xg = x.clone().requires_grad_(True)

    def ours(w):
        return ashlib.contract(indices, w, xg, (n,), validate=False)

    def theirs(w):
        W = torch.sparse_coo_tensor(coo, w.reshape(-1), (b * n, b * n), check_invariants=False)
        return torch.sparse.mm(W, xg.reshape(b * n, 1)).view(b, n)

    torch.testing.assert_close(ours(weights), theirs(weights), rtol=1e-4, atol=1e-4)  # same numbers

    def step(fn, w):
        def run():
            xg.grad = w.grad = None
            fn(w).pow(2).sum().backward()
        return run

    wv = weights.clone().requires_grad_(True)
    result = {"m": m, "x": (timed(step(ours, weights), device, repeats),
                            timed(step(theirs, weights), device, repeats))}
    dense_grad_bytes = (b * n) ** 2 * 4
    ours_both = timed(step(ours, wv), device, repeats)
    theirs_both = timed(step(theirs, wv), device, repeats) if dense_grad_bytes <= 2**30 else None
    result["both"] = (ours_both, theirs_both, dense_grad_bytes)
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="n up to 2^12, 3 repeats")
    parser.add_argument("--max-log2", type=int, default=None, help="largest n as a power of two (default 16)")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--chunk-size", type=int, default=1,
                        help="Gaussians per pool in the sparse layer (default 1: memory linear in k)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    top = args.max_log2 or (12 if args.quick else 16)
    repeats = args.repeats or (3 if args.quick else 5)
    torch.manual_seed(0)
    threads = torch.get_num_threads() if device.type == "cpu" else "-"
    print(f"device {device} ({threads} threads) | torch {torch.__version__} | batch {BATCH} | k = n | "
          f"chunk_size {args.chunk_size} | median of {repeats}")

    print("\nforward + backward, vector n -> n")
    head = f"{'n':>7} {'S':>3} {'sparse ms':>10} {'sparse MiB*':>11} {'dense ms':>10} {'dense MiB*':>10} {'dense/sparse time':>18}"
    print(head)
    print("-" * len(head))
    last_both, contract_rows = None, []
    for p in range(6, top + 1):
        n = 2**p
        chunk = min(args.chunk_size, n)
        (s_t, s_m), dense, note, layer, x = bench_layers(n, device, repeats, chunk)
        S = ashlib.samples_per_gaussian(2, layer.a_local, layer.a_global)
        if dense is None:
            print(f"{n:>7} {S:>3} {s_t * 1e3:>10.2f} {s_m:>11.1f} {'-':>10} {'-':>10} {'dense: ' + note:>18}")
        else:
            d_t, d_m = dense
            print(f"{n:>7} {S:>3} {s_t * 1e3:>10.2f} {s_m:>11.1f} {d_t * 1e3:>10.2f} {d_m:>10.1f} {d_t / s_t:>18.2f}")
            last_both = (n, d_t / s_t, d_m / max(s_m, 1e-9))
        contract_rows.append((n, bench_contract(layer, x, device, repeats)))
        del layer, x

    mem_note = ("allocator peak" if device.type == "cuda" else
                "parameters + gradients + tensors kept for backward")
    print(f"* MiB: {mem_note}")
    print("\ncontraction only (the same sampled tuples), forward + backward")
    head = (f"{'n':>7} {'tuples/inst':>12} {'index_add ms':>13} {'sparse.mm ms':>13} {'ratio':>7}   "
            f"{'+values: index_add ms':>22} {'sparse.mm ms':>13}")
    print(head)
    print("-" * len(head))
    for n, r in contract_rows:
        (o_x, t_x), (o_b, t_b, need) = r["x"], r["both"]
        theirs = f"{t_b * 1e3:>13.2f}" if t_b is not None else f"{'dense ' + format(need / 2**30, '.0f') + ' GiB':>13}"
        print(f"{n:>7} {r['m']:>12} {o_x * 1e3:>13.2f} {t_x * 1e3:>13.2f} {t_x / o_x:>7.2f}   {o_b * 1e3:>22.2f} {theirs}")
    print("(ratio = sparse.mm / index_add, gradient for x only; '+values' also differentiates the values)")

    n_c, r = contract_rows[-1]
    if last_both:
        n_b, time_ratio, mem_ratio = last_both
        print(f"\nratio at n = {n_b} (largest n where both layers ran): dense/sparse time {time_ratio:.2f}x, "
              f"dense/sparse peak memory {mem_ratio:.2f}x; contract at n = {n_c}: "
              f"torch.sparse.mm/index_add time {r['x'][1] / r['x'][0]:.2f}x")


if __name__ == "__main__":
    main()
