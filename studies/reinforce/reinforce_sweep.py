"""The paper's learning-rate sweep for the REINFORCE identity baseline, then the best rate over seeds.

    python studies/reinforce/reinforce_sweep.py --sizes 4 8 16 --baselines moving_average leave_one_out \
        --seeds 0 1 2 3 4 --out studies/reinforce/results/reinforce_sweep.json

Stage 1 trains every (size, baseline, learning rate) once (seed 0) on the paper's budget
(10k batches for n <= 8, 20k for n = 16, unless --iterations) and ranks the rates by the mean
evaluation MSE over the last quarter of the run. Stage 2 reruns the best rate with every seed.
Values are fixed to 1, as in the sparse-layer runs it is compared with. Prints one line per run.
"""

import argparse
import json
import statistics

import torch

from ashlib.experiments.identity import PAPER_BUDGETS, REINFORCE_LEARNING_RATES, IdentityConfig, train


def run(n, baseline, lr, seed, iterations, eval_every):
    config = IdentityConfig(n=n, method="reinforce", baseline=baseline, lr=lr, seed=seed, iterations=iterations,
                            eval_every=eval_every)
    r = train(config, progress=False)
    tail = r.eval_mse[-max(1, len(r.eval_mse) // 4):]
    line = {"n": n, "baseline": baseline, "lr": lr, "seed": seed, "batches": len(r.losses),
            "converged_at": r.converged_at, "final_eval_mse": r.eval_mse[-1], "tail_eval_mse": statistics.fmean(tail),
            "final_diagonal": r.eval_diagonal[-1], "ms_per_batch": r.ms_per_batch,
            "eval_iterations": r.eval_iterations, "eval_mse": r.eval_mse}
    print(f"n={n:3d} baseline={baseline:14s} lr={lr:<8g} seed={seed} converged_at={r.converged_at} "
          f"final_eval_mse={r.eval_mse[-1]:.4f} tail_mse={line['tail_eval_mse']:.4f} "
          f"diagonal={r.eval_diagonal[-1]:.2f} ms_per_batch={r.ms_per_batch:.2f}", flush=True)
    return line


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[4, 8, 16])
    parser.add_argument("--baselines", nargs="+", default=["moving_average", "leave_one_out"])
    parser.add_argument("--lrs", type=float, nargs="+", default=list(REINFORCE_LEARNING_RATES))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--iterations", type=int, default=None)
    parser.add_argument("--eval-every", type=int, default=250)
    parser.add_argument("--out", default=None, help="JSON file for every run's curves")
    args = parser.parse_args()
    torch.set_num_threads(1)
    sweep, best_runs, best = [], [], {}
    for n in args.sizes:
        iterations = args.iterations or PAPER_BUDGETS.get(n, 10_000)
        for baseline in args.baselines:
            lines = [run(n, baseline, lr, args.seeds[0], iterations, args.eval_every) for lr in args.lrs]
            sweep += lines
            top = min(lines, key=lambda l: (l["tail_eval_mse"], l["converged_at"] or 10**9))
            best[f"{n}/{baseline}"] = top["lr"]
            print(f"# best lr for n={n} {baseline}: {top['lr']:g}", flush=True)
            runs = [top] + [run(n, baseline, top["lr"], s, iterations, args.eval_every) for s in args.seeds[1:]]
            best_runs += runs
            done = [r["converged_at"] for r in runs if r["converged_at"] is not None]
            print(f"# n={n} {baseline} lr={top['lr']:g}: converged {len(done)}/{len(runs)} seeds "
                  f"(batches {sorted(done)}), final eval MSE mean {statistics.fmean(r['final_eval_mse'] for r in runs):.4f}",
                  flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"sweep": sweep, "best_lr": best, "best_runs": best_runs}, f)


if __name__ == "__main__":
    main()
