"""Is a sparse glimpse model's error sampling noise? Average its predictions over K independent draws.

A sparse glimpse samples new input pixels on every call, so one prediction uses one random draw.
This loads a trained model (a shipped name, or ``NAME.pt``/``NAME.json`` saved with
``--save-model``), glimpses its own configuration's 10,000 test canvases (offline digits) K times
with independent draws, and prints the error of the class probabilities averaged over the first
k draws, for each requested k. If averaging lowers the error, sampling noise costs accuracy; if
not, the errors come from where the box is.

    python studies/attention/attention_draw_averaging.py attention-sparse-conv --draws 1 2 4 8
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from ashlib import pretrained  # noqa: E402
from ashlib.experiments import attention  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model", help="a shipped model's name, or the path of a saved model (without .pt)")
    parser.add_argument("--draws", type=int, nargs="+", default=[1, 2, 4, 8], help="numbers of draws to average")
    parser.add_argument("--seed", type=int, default=0, help="seed of the draws")
    args = parser.parse_args(argv)
    if min(args.draws) < 1:
        parser.error("--draws must be positive")
    torch.set_num_threads(1)
    model = pretrained.load(args.model) if args.model in pretrained.names() else pretrained.load_file(args.model)
    if model.config.model != "sparse":
        parser.error(f"{args.model} has no sparse glimpse (model={model.config.model!r})")
    data = attention.load_data(replace(model.config, source="offline"))
    images, labels = data.test_images, data.test_labels
    generator = torch.Generator().manual_seed(args.seed)
    print(f"{args.model}: recorded test error {model.summary['final_test_error']:.2%}; {len(images):,} test canvases")
    probabilities, start = [], time.perf_counter()
    with torch.no_grad():
        for k in range(1, max(args.draws) + 1):
            draw = torch.cat([model.mlp(model.glimpse(images[i:i + 500], generator=generator)[1]).softmax(1)
                              for i in range(0, len(images), 500)])
            probabilities.append(draw)
            if k in args.draws:
                mean = torch.stack(probabilities).mean(0)
                error = (mean.argmax(1) != labels).double().mean().item()
                alone = (draw.argmax(1) != labels).double().mean().item()
                print(f"  {k} draw(s) averaged: error {error:.2%}  (draw {k} alone: {alone:.2%})  "
                      f"{time.perf_counter() - start:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
