"""Batches until the identity layer converges (eval MSE < 0.01, >= 95 % diagonal), per size and seed.

    python studies/identity/identity_convergence.py --sizes 8 16 32 --seeds 0 1 2 3 4 [--learned-values]

Runs many seeds and sizes in one go with the experiment's defaults (for learned values: start at 1,
values 10x slower); prints one line per run. For a single run with curves and a figure use
``python -m ashlib identity``.
"""

import argparse

from ashlib.experiments.identity import IdentityConfig, train


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[8, 16, 32])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--learned-values", action="store_true")
    parser.add_argument("--eval-every", type=int, default=100)
    parser.add_argument("--shared-draws", type=int, default=None, help="draws per batch (default: one per instance)")
    parser.add_argument("--chunk-size", type=int, default=None)
    args = parser.parse_args()
    for n in args.sizes:
        for seed in args.seeds:
            config = IdentityConfig(n=n, seed=seed, fix_values=not args.learned_values, eval_every=args.eval_every,
                                    eval_samples=10_000, stop_when_converged=True,
                                    shared_draws=args.shared_draws, chunk_size=args.chunk_size)
            r = train(config, progress=False)
            its = len(r.losses)
            print(f"n={n:3d} seed={seed} values={'learned' if args.learned_values else 'fixed'} "
                  f"converged_at={r.converged_at} budget={config.iterations} final_eval_mse={r.eval_mse[-1]:.4f} "
                  f"diagonal={r.eval_diagonal[-1]:.2f} shared_draws={args.shared_draws} chunk={args.chunk_size} "
                  f"seconds={r.seconds:.1f} ms_per_batch={1e3 * r.seconds / its:.1f}",
                  flush=True)


if __name__ == "__main__":
    main()
