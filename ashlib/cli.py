"""The command line: ``python -m ashlib <experiment> [options]``.

Each experiment is a thin wrapper around its module in :mod:`ashlib.experiments` (the same
code the notebooks call): parse options, train with a progress bar, print the final metrics,
write curves, a summary and a figure into ``--out``.
"""

from __future__ import annotations

import argparse
import sys

from .config import quick_mode


def _save(save_result, result, out) -> int:
    """Write a run's files into ``out`` (if given) with the experiment's ``save_result``; list them."""
    if out:
        for path in save_result(result, out):
            print(f"wrote {path}")
    return 0


def _identity_parser(sub):
    p = sub.add_parser(
        "identity", help="learn the n x n identity with a sparse layer or the REINFORCE baseline (paper 3.1)",
        description="Learn W = I from x -> x, x ~ N(0, I) (paper section 3.1, Figures 2 and 3). "
                    "Unset options take the paper's settings for this size.",
    )
    p.add_argument("--size", type=int, default=32, help="n, the size of the identity (default 32)")
    p.add_argument("--method", choices=["sparse", "reinforce"], default="sparse")
    p.add_argument("--iterations", type=int, default=None,
                   help="batches (default: the paper's budget, 10k/20k/40k for n = 8/16/32; less in quick mode)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="directory for curves.csv, evaluation.csv, summary.json, identity.png")
    p.add_argument("--lr", type=float, default=None, help="Adam learning rate (default: the paper's)")
    p.add_argument("--learned-values", action="store_true", help="learn the values too (default: fixed to 1)")
    p.add_argument("--baseline", choices=["moving_average", "leave_one_out", "none"], default="moving_average",
                   help="REINFORCE only: what is subtracted from the loss")
    p.add_argument("--a-local", type=int, default=None)
    p.add_argument("--a-global", type=int, default=None)
    p.add_argument("--chunk-size", type=int, default=None,
                   help="Gaussians per pool (default: all n, as in the paper)")
    p.add_argument("--eval-every", type=int, default=500)
    p.add_argument("--stop-when-converged", action="store_true",
                   help="stop at the first evaluation with MSE < 0.01 and >= 95%% of the diagonal")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.set_defaults(run=_run_identity)


def _run_identity(args) -> int:
    from .experiments import identity

    config = identity.IdentityConfig(
        n=args.size, method=args.method, iterations=args.iterations, seed=args.seed, lr=args.lr,
        fix_values=not args.learned_values, baseline=args.baseline, a_local=args.a_local,
        a_global=args.a_global, chunk_size=args.chunk_size, eval_every=args.eval_every,
        stop_when_converged=args.stop_when_converged, device=args.device,
    )
    mode = "quick mode" if quick_mode() else "full mode"
    print(f"identity n={config.n} method={config.method} values={'fixed' if config.fix_values else 'learned'} "
          f"lr={config.lr} batches={config.iterations} seed={config.seed} ({mode})")
    result = identity.train(config, progress=True)
    s = identity.summary(result)
    print(f"final eval MSE {s['final_eval_mse']:.5f} | diagonal recovered {s['final_diagonal']:.2%} | "
          f"converged at batch {s['converged_at']} | {s['batches']} batches in {s['seconds']:.1f} s "
          f"({s['ms_per_batch']:.2f} ms/batch)")
    return _save(identity.save_result, result, args.out)


def _data_parser(sub):
    p = sub.add_parser(
        "data", help="prepare and check the data: MNIST (full download or the offline subset), cluttered MNIST",
        description="Download and verify full MNIST (--source full), check the committed offline subset of real "
                    "MNIST digits (--source offline), or take full when it can be had (auto); print a summary "
                    "saying which data and how many digits. See data/README.md.",
    )
    p.add_argument("--source", choices=["auto", "full", "offline"], default="auto",
                   help="full: download once into data/cache/ (SHA-256 verified); offline: the committed subset")
    p.add_argument("--root", default=None, help="data directory (default: the checkout's data/, else ~/.cache/ashlib)")
    p.add_argument("--cluttered", action="store_true",
                   help="also materialise cluttered MNIST (the paper's 60,000 train / 10,000 test, 100 x 100, "
                        "8 distractors, seed 0) into the cache")

    def run(args) -> int:
        from .data import data_command

        return data_command(source=args.source, root=args.root, cluttered=args.cluttered)

    p.set_defaults(run=run)


def _sort_parser(sub):
    p = sub.add_parser(
        "sort", help="learn keys for MNIST numbers through a differentiable sort (paper 3.3)",
        description="Sort n numbers of 3 MNIST digits by keys from the paper's key network, trained through "
                    "quicksort (sparse half-permutations), NeuralSort or SoftSort; report the paper's error.",
    )
    p.add_argument("--n", type=int, default=4, help="numbers per instance (default 4)")
    p.add_argument("--method", choices=["quicksort", "neuralsort", "softsort"], default="quicksort")
    p.add_argument("--intermediate", action="store_true", help="quicksort: add the intermediate loss")
    p.add_argument("--iterations", type=int, default=None, help="batches (default 50,000; 300 in quick mode)")
    p.add_argument("--lr", type=float, default=5e-5, help="Adam learning rate (paper: 5e-5)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--width", type=float, default=1.0, help="key network channels relative to the paper's")
    p.add_argument("--samples", type=int, default=None, help="quicksort: random half-permutations per round (default n)")
    p.add_argument("--C", type=float, default=10.0, help="quicksort: sharpness of the soft buckets")
    p.add_argument("--tau", type=float, default=1.0, help="NeuralSort/SoftSort temperature")
    p.add_argument("--eval-every", type=int, default=1000)
    p.add_argument("--eval-instances", type=int, default=None, help="test instances (default 10,000; 1,000 quick)")
    p.add_argument("--source", choices=["auto", "full", "offline"], default="auto", help="MNIST source")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default=None, help="directory for curves.csv, evaluation.csv, summary.json, sorting.png")
    p.set_defaults(run=_run_sort)


def _run_sort(args) -> int:
    from .experiments import sorting

    config = sorting.SortingConfig(
        n=args.n, method=args.method, intermediate=args.intermediate, iterations=args.iterations, lr=args.lr,
        batch_size=args.batch_size, width=args.width, samples=args.samples, C=args.C, tau=args.tau,
        eval_every=args.eval_every, eval_instances=args.eval_instances, source=args.source, seed=args.seed,
        device=args.device,
    )
    mode = "quick mode" if quick_mode() else "full mode"
    print(f"sort n={config.n} method={config.method} intermediate={config.intermediate} lr={config.lr} "
          f"batches={config.iterations} width={config.width} seed={config.seed} ({mode})")
    result = sorting.train(config, progress=True)
    s = sorting.summary(result)
    print(f"data: {s['data']}")
    print(f"final test error {s['final_error']:.2%} (best {s['best_error']:.2%}) | element error "
          f"{s['final_element_error']:.2%} | {config.eval_instances:,} test instances | {s['batches']} batches in "
          f"{s['seconds']:.0f} s")
    return _save(sorting.save_result, result, args.out)


def _attention_parser(sub):
    p = sub.add_parser(
        "attention", help="classify cluttered MNIST through learned sparse glimpses, against baselines (paper 3.2)",
        description="Train the sparse-glimpse model (or the spatial-transformer / plain ConvNet baselines) on "
                    "cluttered MNIST. Unset sizes take the paper's values (quick mode: small ones).",
    )
    p.add_argument("--model", choices=["sparse", "stn", "convnet"], default="sparse")
    p.add_argument("--glimpses", type=int, default=1, help="number of glimpses (paper: 1 or 8)")
    p.add_argument("--glimpse-size", type=int, default=None, help="s (paper: 32 for 1 glimpse, 12 for 8)")
    p.add_argument("--canvas", type=int, default=None, help="canvas side (paper: 100)")
    p.add_argument("--distractors", type=int, default=None, help="8 x 8 clutter fragments (paper: 8)")
    p.add_argument("--train-size", type=int, default=None, help="training images (paper: 60,000)")
    p.add_argument("--test-size", type=int, default=None, help="test images (paper: 10,000)")
    p.add_argument("--epochs", type=int, default=None, help="paper: 70")
    p.add_argument("--batch-size", type=int, default=None, help="paper: 128 (quick: 32)")
    p.add_argument("--lr", type=float, default=None, help="paper: 1e-4 (quick: 1e-3)")
    p.add_argument("--paper-init", action="store_true",
                   help="start the boxes from the default initialisation (can saturate) instead of the whole canvas")
    p.add_argument("--source", choices=["auto", "full", "offline"], default="auto", help="MNIST source")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default=None, help="directory for curves.csv, summary.json, glimpses.png")
    p.set_defaults(run=_run_attention)


def _run_attention(args) -> int:
    from .experiments import attention

    config = attention.AttentionConfig(
        model=args.model, n_glimpses=args.glimpses, glimpse_size=args.glimpse_size, canvas=args.canvas,
        n_distractors=args.distractors, train_size=args.train_size, test_size=args.test_size, epochs=args.epochs,
        batch_size=args.batch_size, lr=args.lr, init_box=None if args.paper_init else (0.05, 0.05, 0.95, 0.95),
        source=args.source, seed=args.seed, device=args.device,
    )
    mode = "quick mode" if quick_mode() else "full mode"
    print(f"attention model={config.model} glimpses={config.n_glimpses}x{config.glimpse_size}x{config.glimpse_size} "
          f"canvas={config.canvas} train={config.train_size} test={config.test_size} epochs={config.epochs} "
          f"lr={config.lr} ({mode})")
    result = attention.train(config, progress=True)
    s = attention.summary(result)
    print(f"data: {s['data']}")
    print(f"final test error {s['final_test_error']:.2%} (best {s['best_test_error']:.2%}) | "
          f"{s['batches']} batches in {s['seconds']:.0f} s")
    return _save(attention.save_result, result, args.out)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ashlib",
        description="Experiments of 'Learning sparse transformations through backpropagation' (Bloem 2018). "
                    "Set ASHLIB_QUICK=1 for the quick (laptop CPU) versions.",
    )
    sub = parser.add_subparsers(title="experiments", metavar="<experiment>", dest="experiment")
    _identity_parser(sub)
    _data_parser(sub)
    _sort_parser(sub)
    _attention_parser(sub)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help()
        return 2
    try:
        return args.run(args)
    except ValueError as error:  # bad settings: say what was wrong without a traceback
        print(f"error: {error}", file=sys.stderr)
        return 2
