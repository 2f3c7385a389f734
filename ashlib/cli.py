"""The command line: ``python -m ashlib <experiment> [options]``.

Each experiment is a thin wrapper around its module in :mod:`ashlib.experiments` (the same
code the notebooks call): parse options, train with a progress bar, print the final metrics,
write curves, a summary and a figure into ``--out``.
"""

from __future__ import annotations

import argparse
import os
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
    p.add_argument("--shared-draws", type=int, default=None,
                   help="draws of tuples per batch, shared by its instances in turn (default: one per "
                        "instance, as in the paper); fewer draws make a batch cheaper")
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
        a_global=args.a_global, chunk_size=args.chunk_size, shared_draws=args.shared_draws,
        eval_every=args.eval_every, stop_when_converged=args.stop_when_converged, device=args.device,
    )
    _prepare_out(args.out, False)
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
    p.add_argument("--lr-schedule", choices=["constant", "cosine"], default="constant",
                   help="constant (the paper's) or cosine: anneal the rate(s) to 0 over the run")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--width", type=float, default=1.0, help="key network channels relative to the paper's")
    p.add_argument("--key-network", choices=["conv", "mlp"], default="conv",
                   help="per-digit ConvNet (table 3, the paper's) or a cheaper MLP for quick comparisons")
    p.add_argument("--straight-through", action="store_true",
                   help="quicksort: the forward pass is the hard sort, the gradient that of the sparse mixture")
    p.add_argument("--samples", type=int, default=None, help="quicksort: random half-permutations per round (default n)")
    p.add_argument("--local", type=int, default=0,
                   help="quicksort: proposals per round one swap away from the hard split (default 0, the paper's)")
    p.add_argument("--neighbours", action="store_true",
                   help="quicksort: add every half-permutation one swap away from the hard split, each round "
                        "(exhaustive; not the paper's sampler)")
    p.add_argument("--draws", type=int, default=1,
                   help="quicksort: independent sorts of each batch, losses averaged (the key network runs once)")
    p.add_argument("--C", type=float, default=10.0, help="quicksort: sharpness of the soft buckets")
    p.add_argument("--C-final", type=float, default=None,
                   help="quicksort: raise C geometrically from --C to this over the run (not the paper's)")
    p.add_argument("--standardise-keys", action="store_true",
                   help="quicksort: sort (key - mean) / std of each instance, so the key network cannot undo C "
                        "by rescaling its keys (not the paper's)")
    p.add_argument("--tau", type=float, default=1.0, help="NeuralSort/SoftSort temperature")
    p.add_argument("--start-from", default=None, metavar="MODEL",
                   help="start from a trained key network: a shipped model's name (ashlib.pretrained) or a path "
                        "written by --save-model, e.g. one trained at a smaller n (a curriculum; not the paper's)")
    p.add_argument("--eval-every", type=int, default=1000)
    p.add_argument("--eval-instances", type=int, default=None, help="test instances (default 10,000; 1,000 quick)")
    p.add_argument("--source", choices=["auto", "full", "offline"], default="auto", help="MNIST source")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default=None,
                   help="directory for curves.csv, evaluation.csv, summary.json, sorting.png, checkpoint.pt")
    p.add_argument("--checkpoint-every", type=int, default=500,
                   help="with --out: write OUT/checkpoint.pt every N batches (and on Ctrl-C)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint.pt")
    p.add_argument("--save-model", default=None, help="write the trained key network as PATH.pt + PATH.json")
    p.set_defaults(run=_run_sort)


def _run_sort(args) -> int:
    from .experiments import sorting

    config = sorting.SortingConfig(
        n=args.n, method=args.method, intermediate=args.intermediate, iterations=args.iterations, lr=args.lr,
        lr_schedule=args.lr_schedule,
        batch_size=args.batch_size, width=args.width, key_network=args.key_network,
        straight_through=args.straight_through, samples=args.samples, local=args.local, neighbours=args.neighbours, draws=args.draws, C=args.C,
        C_final=args.C_final, standardise_keys=args.standardise_keys, tau=args.tau, start_from=args.start_from,
        eval_every=args.eval_every, eval_instances=args.eval_instances, source=args.source, seed=args.seed,
        device=args.device,
    )
    _prepare_out(args.out, args.resume)
    mode = "quick mode" if quick_mode() else "full mode"
    print(f"sort n={config.n} method={config.method} intermediate={config.intermediate} lr={config.lr} "
          f"batches={config.iterations} width={config.width} draws={config.draws} seed={config.seed}"
          + (f" local={config.local} neighbours={config.neighbours} C={config.C}"
             + (f"->{config.C_final}" if config.C_final is not None else "")
             + (" standardised keys" if config.standardise_keys else "") if config.method == "quicksort" else "")
          + (f" start_from={config.start_from}" if config.start_from else "") + f" ({mode})")
    from pathlib import Path

    checkpoint = Path(args.out) / "checkpoint.pt" if args.out else None
    result = sorting.train(config, progress=True, checkpoint=checkpoint, checkpoint_every=args.checkpoint_every,
                           resume=args.resume)
    s = sorting.summary(result)
    print(f"data: {s['data']}")
    if result.stopped_early:
        print(f"stopped early: {result.stopped_early}; continue with the same command and --resume"
              + (f" (checkpoint {checkpoint})" if checkpoint else " (no --out, nothing saved)"))
    if s["final_error"] is not None:
        print(f"final test error {s['final_error']:.2%} (best {s['best_error']:.2%}) | element error "
              f"{s['final_element_error']:.2%} | {config.eval_instances:,} test instances | {s['batches']} batches "
              f"in {s['seconds']:.0f} s")
    return _finish(args, "sorting", sorting, result, result.net, config, s)


def _attention_parser(sub):
    p = sub.add_parser(
        "attention", help="classify cluttered MNIST through learned sparse glimpses, against baselines (paper 3.2)",
        description="Train the sparse-glimpse model (or the spatial-transformer / plain ConvNet baselines) on "
                    "cluttered MNIST. Unset sizes take the paper's values (quick mode: small ones); the training "
                    "recipe (He init, standardised input, centre start box, separate source learning rate, "
                    "fresh canvases) is explained in ashlib.experiments.attention.",
    )
    p.add_argument("--model", choices=["sparse", "stn", "convnet"], default="sparse")
    p.add_argument("--glimpses", type=int, default=1, help="number of glimpses (paper: 1 or 8)")
    p.add_argument("--glimpse-size", type=int, default=None, help="s (paper: 32 for 1 glimpse, 12 for 8)")
    p.add_argument("--canvas", type=int, default=None, help="canvas side (paper: 100)")
    p.add_argument("--distractors", type=int, default=None, help="8 x 8 clutter fragments (paper: 8)")
    p.add_argument("--train-size", type=int, default=None, help="training canvases per epoch (paper: 60,000)")
    p.add_argument("--test-size", type=int, default=None, help="test canvases (paper: 10,000)")
    p.add_argument("--epochs", type=int, default=None, help="paper: 70")
    p.add_argument("--batch-size", type=int, default=None, help="paper: 128 (quick: 32)")
    p.add_argument("--lr", type=float, default=None, help="learning rate of the head (default 1e-3; paper: 1e-4)")
    p.add_argument("--lr-schedule", choices=["constant", "cosine"], default="constant",
                   help="constant (the paper's) or cosine: anneal the rate(s) to 0 over the run")
    p.add_argument("--source-lr", type=float, default=None,
                   help="learning rate of the source network (default: lr/10 sparse, lr/30 stn)")
    p.add_argument("--warmup", type=int, default=0, help="batches of linear warm-up for the source learning rate")
    p.add_argument("--head", choices=["mlp", "conv", "convnet"], default="mlp",
                   help="classifier on the glimpses (paper: mlp; convnet: the ConvNet baseline on the glimpse)")
    p.add_argument("--init", choices=["he", "pytorch"], default="he",
                   help="source network initialisation (pytorch: the paper's default; its boxes barely see the image)")
    p.add_argument("--init-box", choices=["centre", "canvas", "none"], default="centre",
                   help="start box: central digit-sized (the authors' offset), the whole canvas, or none")
    p.add_argument("--paper-init", action="store_true", help="shorthand for --init pytorch --init-box none")
    p.add_argument("--box-param", choices=["corners", "centre_scale"], default="corners",
                   help="raw box numbers as two corners (paper) or centre + bounded size (cannot flip or collapse)")
    p.add_argument("--scale-range", type=float, nargs=2, default=(0.2, 0.6), metavar=("MIN", "MAX"),
                   help="centre_scale: smallest and largest box side as fractions of the canvas")
    p.add_argument("--aux-mlp-weight", type=float, default=0.0,
                   help="conv heads: add the paper's MLP head on the same glimpses, its loss times this weight "
                        "(it pulls the box onto the digit; the conv head still predicts)")
    p.add_argument("--source-hidden", type=int, default=512, help="hidden units of table 2's two dense layers")
    p.add_argument("--same-canvases", action="store_true",
                   help="reuse the same train canvases every epoch (default: fresh canvases each epoch)")
    p.add_argument("--eval-every", type=int, default=None, help="batches between test evaluations (default: an epoch)")
    p.add_argument("--checkpoint-every", type=int, default=500,
                   help="with --out: write OUT/checkpoint.pt every N batches (and on Ctrl-C)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint.pt")
    p.add_argument("--save-model", default=None, help="write the trained model as PATH.pt + PATH.json (ashlib.pretrained)")
    p.add_argument("--source", choices=["auto", "full", "offline"], default="auto", help="MNIST source")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default=None, help="directory for curves.csv, summary.json, glimpses.png, checkpoint.pt")
    p.set_defaults(run=_run_attention)


def _prepare_out(out, resume: bool) -> None:
    """Create --out before training (so a finished run cannot be lost to a bad path)."""
    from pathlib import Path

    if resume and not out:
        raise ValueError("--resume needs --out (the folder of the run to continue)")
    if out:
        path = Path(out)
        if path.exists() and not path.is_dir():
            raise ValueError(f"--out {out} exists and is not a folder")
        path.mkdir(parents=True, exist_ok=True)
        if not os.access(path, os.W_OK):
            raise ValueError(f"--out {out} is not writable")


def _run_attention(args) -> int:
    from pathlib import Path

    from .experiments import attention

    init, init_box = ("pytorch", None) if args.paper_init else (args.init, None if args.init_box == "none" else args.init_box)
    config = attention.AttentionConfig(
        model=args.model, n_glimpses=args.glimpses, glimpse_size=args.glimpse_size, canvas=args.canvas,
        n_distractors=args.distractors, train_size=args.train_size, test_size=args.test_size, epochs=args.epochs,
        batch_size=args.batch_size, lr=args.lr, source_lr=args.source_lr, warmup=args.warmup, init=init,
        lr_schedule=args.lr_schedule,
        init_box=init_box, head=args.head, aux_mlp_weight=args.aux_mlp_weight, box_param=args.box_param,
        scale_range=tuple(args.scale_range), source_hidden=args.source_hidden, fresh_canvases=not args.same_canvases,
        eval_every=args.eval_every, source=args.source, seed=args.seed, device=args.device,
    )
    _prepare_out(args.out, args.resume)
    mode = "quick mode" if quick_mode() else "full mode"
    print(f"attention model={config.model} head={config.head} glimpses={config.n_glimpses}x{config.glimpse_size}x"
          f"{config.glimpse_size} canvas={config.canvas} canvases={config.train_size}x{config.epochs} epochs "
          f"batches={config.steps} lr={config.lr} source_lr={config.source_lr} ({mode})")
    checkpoint = Path(args.out) / "checkpoint.pt" if args.out else None
    result = attention.train(config, progress=True, checkpoint=checkpoint, checkpoint_every=args.checkpoint_every,
                             resume=args.resume)
    s = attention.summary(result)
    print(f"data: {s['data']}")
    if result.stopped_early:
        print(f"stopped early: {result.stopped_early}; continue with the same command and --resume"
              + (f" (checkpoint {checkpoint})" if checkpoint else " (no --out, nothing saved)"))
    if s["final_test_error"] is not None:
        near = f" | box centre within 4 px of the digit on {s['final_near_digit']:.1%}" \
            if s.get("final_near_digit") is not None else ""
        print(f"final test error {s['final_test_error']:.2%} (best {s['best_test_error']:.2%}){near} | "
              f"{s['batches']} batches in {s['seconds']:.0f} s (+{s['eval_seconds']:.0f} s evaluation)")
    if s["collapse"]:
        print(f"warning: {s['collapse']}")
    return _finish(args, "attention", attention, result, result.model, config, s)


def _finish(args, experiment: str, module, result, model, config, summary: dict) -> int:
    """Save the model (--save-model, finished runs only) and the run's files (--out); 130 if interrupted."""
    from . import pretrained

    if args.save_model and not result.stopped_early:
        summary["command"] = _command_line()
        for path in pretrained.save(model, args.save_model, experiment, config, summary, summary["command"]):
            print(f"wrote {path}")
    code = _save(module.save_result, result, args.out)
    return 130 if result.stopped_early else code


def _command_line() -> str:
    """The command that trains this model from scratch (a --resume that finished it is left out)."""
    import shlex

    return "python -m ashlib " + " ".join(shlex.quote(a) for a in sys.argv[1:] if a != "--resume")


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


def _interrupt_on_signals() -> None:
    """Turn SIGTERM (and SIGINT, which a shell ignores for background jobs) into KeyboardInterrupt,
    so a run stopped by ``kill`` saves its checkpoint and curves like one stopped by Ctrl-C."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGINT, signal.default_int_handler)
    if hasattr(signal, "SIGTERM"):
        signal.signal(signal.SIGTERM, interrupt)


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help()
        return 2
    previous = _signal_handlers()
    _interrupt_on_signals()
    try:
        if getattr(args, "device", None) is not None:
            from .config import check_device

            check_device(args.device)  # before any data is loaded or any model trained
        return args.run(args)
    except ValueError as error:  # bad settings: say what was wrong without a traceback
        print(f"error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # a file could not be read or written
        print(f"error: {error}", file=sys.stderr)
        return 1
    finally:
        _restore_signal_handlers(previous)


def _signal_handlers() -> dict:
    import signal

    return {s: signal.getsignal(s) for s in (signal.SIGINT, getattr(signal, "SIGTERM", None)) if s is not None}


def _restore_signal_handlers(handlers: dict) -> None:
    import signal
    import threading

    if threading.current_thread() is threading.main_thread():
        for s, handler in handlers.items():
            if handler is not None:
                signal.signal(s, handler)
