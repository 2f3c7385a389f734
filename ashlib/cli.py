"""The command line: ``python -m ashlib <experiment> [options]``.

Each experiment is a thin wrapper around its module in :mod:`ashlib.experiments` (the same
code the notebooks call): build the config, train with a progress bar through the one loop
(:mod:`ashlib.experiments.loop`: checkpoints, ``--resume``, Ctrl-C), print the final metrics,
write curves, a summary and a figure into ``--out``.

Every experiment takes the same run options: ``--seed``, ``--device``, ``--out``, ``--resume``,
``--overwrite``, ``--checkpoint-every``, ``--save-model``, ``--recipe NAME|FILE.json`` (retrain a
shipped model, or one's own, with its recorded settings) and ``--set FIELD=VALUE`` (any other
field of the experiment's config). Options given beside ``--recipe`` override its settings.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import typing
from dataclasses import fields

from .config import quick_mode

SUPPRESS = argparse.SUPPRESS

# ------------------------------------------------------------------ shared options


def _run_options(p, out_files: str) -> None:
    """The options every experiment shares (9 of its at most 16)."""
    p.add_argument("--seed", type=int, default=SUPPRESS, help="random seed (default 0)")
    p.add_argument("--device", default=SUPPRESS, help="cpu (default) or cuda")
    p.add_argument("--out", default=None, metavar="DIR",
                   help=f"folder for checkpoint.pt and, at the end, {out_files}")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint.pt")
    p.add_argument("--overwrite", action="store_true", help="start afresh in an --out that holds another run")
    p.add_argument("--checkpoint-every", type=int, default=500, metavar="N",
                   help="with --out: write the checkpoint every N batches (and at the end, and on Ctrl-C)")
    p.add_argument("--save-model", default=None, metavar="PATH",
                   help="write the trained model as PATH.pt, PATH.json (its record and recipe) and PATH.curves.csv")
    p.add_argument("--recipe", default=None, metavar="NAME|FILE.json",
                   help="start from the settings of a shipped model (e.g. sort-quicksort-n4) or of a JSON file (a "
                        "--save-model record or config fields); options given beside it override them")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", dest="settings",
                   help="any other setting of the experiment's config (repeatable), e.g. --set eval_every=100")


def _field_types(config_class) -> dict:
    from . import experiments  # noqa: F401 - the config modules are imported by now

    return typing.get_type_hints(config_class)


def _parse_value(name: str, text: str, kind):
    """``text`` as a value of type ``kind`` (from the config's annotations)."""
    options = typing.get_args(kind) or (kind,)
    lowered = text.strip().lower()
    if type(None) in options and lowered in ("none", "null", ""):
        return None
    for option in options:
        if option is type(None):
            continue
        if option is bool:
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
        elif option is int:
            try:
                return int(text)
            except ValueError:
                pass
        elif option is float:
            try:
                return float(text)
            except ValueError:
                pass
        elif option is tuple:
            if "," in text:
                try:
                    return tuple(float(v) for v in text.split(","))
                except ValueError:
                    pass
        elif option is str:
            return text
    wanted = " or ".join("None" if o is type(None) else getattr(o, "__name__", str(o)) for o in options)
    raise ValueError(f"--set {name}={text}: not a value of type {wanted}"
                     + (" (give a tuple as comma-separated numbers)" if tuple in options else ""))


def parse_settings(config_class, settings: list[str]) -> dict:
    """``--set FIELD=VALUE`` options as ``{field: value}``, each parsed by the field's type."""
    types = _field_types(config_class)
    known = [f.name for f in fields(config_class)]
    out = {}
    for item in settings:
        name, sep, text = item.partition("=")
        name = name.strip().replace("-", "_")
        if not sep or not name:
            raise ValueError(f"--set takes FIELD=VALUE, got {item!r}")
        if name not in known:
            raise ValueError(f"--set {name}: {config_class.__name__} has no such setting; its settings: "
                             f"{', '.join(known)}")
        out[name] = _parse_value(name, text, types[name])
    return out


def _config(args, kind: str, config_class, option_fields: tuple[str, ...]):
    """The run's config: the recipe's settings (if any), then ``--set``, then the options given."""
    given = {name: getattr(args, name) for name in option_fields if hasattr(args, name)}
    for name in ("seed", "device"):
        if hasattr(args, name):
            given[name] = getattr(args, name)
    overrides = {**parse_settings(config_class, args.settings), **given}
    if args.recipe:
        from . import pretrained

        return pretrained.recipe(args.recipe, kind, overrides)
    return config_class(**overrides)


def _prepare(args, config) -> None:
    """Check every output path before the first batch (contract 5)."""
    from .config import check_device
    from .experiments import loop
    from .experiments.checks import check_int

    check_device(config.device)  # a recipe's device too, before any data is loaded
    check_int("checkpoint_every", args.checkpoint_every, 0)
    loop.check_out(args.out, resume=args.resume, overwrite=args.overwrite)
    if args.save_model:
        from .model_files import check_writable_target

        check_writable_target(args.save_model)


_ARGV: list[str] = []  # the arguments main() was given


def _command_line() -> str:
    """The command that trains this model from scratch (--resume / --overwrite left out)."""
    return "python -m ashlib " + " ".join(shlex.quote(a) for a in _ARGV if a not in ("--resume", "--overwrite"))


def _train(module, config, args):
    return module.train(config, progress=True, out=args.out, resume=args.resume, overwrite=args.overwrite,
                        checkpoint_every=args.checkpoint_every)


def _finish(args, experiment: str, module, result, summary: dict) -> int:
    """After a run: on an interrupt, one line saying how to resume (130); else save the model
    (--save-model) and the run's files (--out)."""
    if result.stopped_early:
        where = result.checkpoint
        if where is None:
            print(f"{result.stopped_early}; nothing saved (no --out)", file=sys.stderr)
        elif result.checkpoint_step is None:
            print(f"{result.stopped_early}; the checkpoint could not be written, nothing to resume", file=sys.stderr)
        elif result.checkpoint_step < len(result.losses):
            print(f"{result.stopped_early}; it could not be saved, but {where} holds batch "
                  f"{result.checkpoint_step:,}; continue from there with: {_command_line()} --resume", file=sys.stderr)
        else:
            print(f"{result.stopped_early}; saved {where}; continue with: {_command_line()} --resume",
                  file=sys.stderr)
        return 130
    if args.save_model:
        summary["command"] = _command_line()
        from . import pretrained

        for path in pretrained.save(result.model, args.save_model, experiment, result.config, summary,
                                    summary["command"], result.evaluations):
            print(f"wrote {path}")
    if args.out:
        for path in module.save_result(result, args.out):
            print(f"wrote {path}")
    return 0


# ------------------------------------------------------------------ identity

IDENTITY_OPTIONS = ("n", "method", "iterations", "batch_size", "lr", "fix_values", "eval_every")


def _identity_parser(sub):
    p = sub.add_parser(
        "identity", help="learn the n x n identity with a sparse layer or the REINFORCE baseline (paper 3.1)",
        description="Learn W = I from x -> x, x ~ N(0, I) (paper section 3.1, Figures 2 and 3). "
                    "Unset options take the paper's settings for this size; other settings of IdentityConfig "
                    "(baseline, a_local, a_global, region, chunk_size, shared_draws, eval_samples, "
                    "stop_when_converged, ...) with --set.",
    )
    p.add_argument("--size", type=int, dest="n", default=SUPPRESS, help="n, the size of the identity (default 32)")
    p.add_argument("--method", choices=["sparse", "reinforce"], default=SUPPRESS, help="default sparse")
    p.add_argument("--iterations", type=int, default=SUPPRESS,
                   help="batches (default: the paper's budget, 10k/20k/40k for n = 8/16/32; less in quick mode)")
    p.add_argument("--batch-size", type=int, default=SUPPRESS, help="default 64")
    p.add_argument("--lr", type=float, default=SUPPRESS, help="Adam learning rate (default: the paper's)")
    p.add_argument("--learned-values", action="store_false", dest="fix_values", default=SUPPRESS,
                   help="learn the values too (default: fixed to 1)")
    p.add_argument("--eval-every", type=int, default=SUPPRESS, help="batches between evaluations (default 500)")
    _run_options(p, "curves.csv, evaluation.csv, summary.json, identity.png")
    p.set_defaults(run=_run_identity)


def _run_identity(args) -> int:
    from .experiments import identity

    config = _config(args, "identity", identity.IdentityConfig, IDENTITY_OPTIONS)
    _prepare(args, config)
    mode = "quick mode" if quick_mode() else "full mode"
    print(f"identity n={config.n} method={config.method} values={'fixed' if config.fix_values else 'learned'} "
          f"lr={config.lr} batches={config.iterations} seed={config.seed} ({mode})", flush=True)
    result = _train(identity, config, args)
    s = identity.summary(result)
    if s["final_eval_mse"] is not None and not result.stopped_early:
        print(f"final eval MSE {s['final_eval_mse']:.5f} | diagonal recovered {s['final_diagonal']:.2%} | "
              f"converged at batch {s['converged_at']} | {s['batches']} batches in {s['seconds']:.1f} s "
              f"({s['ms_per_batch']:.2f} ms/batch)")
    return _finish(args, "identity", identity, result, s)


# ------------------------------------------------------------------ data


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


# ------------------------------------------------------------------ sort

SORT_OPTIONS = ("n", "method", "intermediate", "iterations", "lr", "batch_size", "eval_every")


def _sort_parser(sub):
    p = sub.add_parser(
        "sort", help="learn keys for MNIST numbers through a differentiable sort (paper 3.3)",
        description="Sort n numbers of 3 MNIST digits by keys from the paper's key network, trained through "
                    "quicksort (sparse half-permutations), NeuralSort or SoftSort; report the paper's error. "
                    "Other settings of SortingConfig (digits, width, lr_schedule, samples, local, draws, C, tau, "
                    "eval_instances, source) with --set; e.g. --recipe sort-quicksort-n4 retrains a shipped model.",
    )
    p.add_argument("--n", type=int, default=SUPPRESS, help="numbers per instance (default 4)")
    p.add_argument("--method", choices=["quicksort", "neuralsort", "softsort"], default=SUPPRESS,
                   help="default quicksort")
    p.add_argument("--intermediate", action="store_true", default=SUPPRESS, help="quicksort: add the intermediate loss")
    p.add_argument("--iterations", type=int, default=SUPPRESS,
                   help="batches (default 50,000, our full-mode default: the paper gives no count; 300 in quick mode)")
    p.add_argument("--lr", type=float, default=SUPPRESS, help="Adam learning rate (paper: 5e-5)")
    p.add_argument("--batch-size", type=int, default=SUPPRESS, help="default 64 (the paper's)")
    p.add_argument("--eval-every", type=int, default=SUPPRESS, help="batches between evaluations (default 1,000)")
    _run_options(p, "curves.csv, evaluation.csv, summary.json, sorting.png")
    p.set_defaults(run=_run_sort)


def _run_sort(args) -> int:
    from .experiments import sorting

    config = _config(args, "sorting", sorting.SortingConfig, SORT_OPTIONS)
    _prepare(args, config)
    mode = "quick mode" if quick_mode() else "full mode"
    print(f"sort n={config.n} method={config.method} intermediate={config.intermediate} lr={config.lr} "
          f"({config.lr_schedule}) batches={config.iterations} width={config.width} seed={config.seed}"
          + (f" samples={config.samples} local={config.local} draws={config.draws} C={config.C}"
             if config.method == "quicksort" else f" tau={config.tau}") + f" ({mode})", flush=True)
    result = _train(sorting, config, args)
    s = sorting.summary(result)
    print(f"data: {s['data']}")
    if s["final_error"] is not None and not result.stopped_early:
        print(f"final test error {s['final_error']:.2%} (best {s['best_error']:.2%}) | element error "
              f"{s['final_element_error']:.2%} | {config.eval_instances:,} test instances | {s['batches']} batches "
              f"in {s['seconds']:.0f} s")
    return _finish(args, "sorting", sorting, result, s)


# ------------------------------------------------------------------ attention

ATTENTION_OPTIONS = ("model", "n_glimpses", "head", "epochs", "batch_size", "lr", "eval_every")


def _attention_parser(sub):
    p = sub.add_parser(
        "attention", help="classify cluttered MNIST through learned sparse glimpses, against baselines (paper 3.2)",
        description="Train the sparse-glimpse model (or the spatial-transformer / plain ConvNet baselines) on "
                    "cluttered MNIST. Unset sizes take the paper's values (quick mode: small ones); the training "
                    "recipe (He init, standardised input, centre start box, separate source learning rate, "
                    "fresh canvases) is explained in ashlib.experiments.attention. Other settings of "
                    "AttentionConfig (glimpse_size, canvas, n_distractors, train_size, test_size, source_lr, "
                    "warmup, lr_schedule, init, init_box, box_param, fresh_canvases, source, ...) with --set; "
                    "the paper's initialisation is --set init=pytorch --set init_box=none.",
    )
    p.add_argument("--model", choices=["sparse", "stn", "convnet"], default=SUPPRESS, help="default sparse")
    p.add_argument("--glimpses", type=int, dest="n_glimpses", default=SUPPRESS, help="number of glimpses (paper: 1 or 8)")
    p.add_argument("--head", choices=["mlp", "conv", "convnet"], default=SUPPRESS,
                   help="classifier on the glimpses (paper: mlp; convnet: the ConvNet baseline on the glimpse)")
    p.add_argument("--epochs", type=int, default=SUPPRESS, help="paper: 70")
    p.add_argument("--batch-size", type=int, default=SUPPRESS, help="paper: 128 (quick: 32)")
    p.add_argument("--lr", type=float, default=SUPPRESS, help="learning rate of the head (default 1e-3; paper: 1e-4)")
    p.add_argument("--eval-every", type=int, default=SUPPRESS, help="batches between test evaluations (default: an epoch)")
    _run_options(p, "curves.csv, summary.json, glimpses.png")
    p.set_defaults(run=_run_attention)


def _run_attention(args) -> int:
    from .experiments import attention

    config = _config(args, "attention", attention.AttentionConfig, ATTENTION_OPTIONS)
    _prepare(args, config)
    mode = "quick mode" if quick_mode() else "full mode"
    print(f"attention model={config.model} head={config.head} glimpses={config.n_glimpses}x{config.glimpse_size}x"
          f"{config.glimpse_size} canvas={config.canvas} canvases={config.train_size}x{config.epochs} epochs "
          f"batches={config.steps} lr={config.lr} source_lr={config.source_lr} ({mode})", flush=True)
    result = _train(attention, config, args)
    s = attention.summary(result)
    print(f"data: {s['data']}")
    if s["final_test_error"] is not None and not result.stopped_early:
        near = f" | box centre within 4 px of the digit on {s['final_near_digit']:.1%}" \
            if s.get("final_near_digit") is not None else ""
        print(f"final test error {s['final_test_error']:.2%} (best {s['best_test_error']:.2%}){near} | "
              f"{s['batches']} batches in {s['seconds']:.0f} s ({s['eval_seconds']:.0f} s of it evaluating)")
    if s["collapse"]:
        print(f"warning: {s['collapse']}")
    return _finish(args, "attention", attention, result, s)


# ------------------------------------------------------------------ main


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
    so a run stopped by ``kill`` before or after its loop ends like one stopped by Ctrl-C (the
    loop itself saves a checkpoint on either)."""
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
    argv = list(sys.argv[1:] if argv is None else argv)
    _ARGV[:] = argv
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
    except ValueError as error:  # bad settings or a damaged file: say what was wrong without a traceback
        print(f"error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # a file could not be read or written
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # before the first batch or after the last: nothing to resume
        print("interrupted outside the training loop; nothing was saved", file=sys.stderr)
        return 130
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

