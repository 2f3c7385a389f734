"""Where does a trained glimpse model err? Test error split by how far the box lands from the digit.

Loads shipped models (``ashlib.pretrained``), glimpses the first ``--canvases`` test canvases of
their own configuration (offline digits, the evaluation's fixed sampling seed) and prints, per
band of distance between the first box's centre and the digit's centre, the share of canvases
and the error there. Separates "the box missed" from "the head misread a well-placed glimpse".

    python studies/attention/attention_error_by_distance.py attention-sparse-conv attention-sparse
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from ashlib import pretrained  # noqa: E402
from ashlib.experiments import attention  # noqa: E402

BANDS = ((0, 2), (2, 4), (4, 6), (6, float("inf")))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="+", help="pretrained glimpse models, e.g. attention-sparse-conv")
    parser.add_argument("--canvases", type=int, default=3000)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    for name in args.names:
        model = pretrained.load(name)
        data = attention.load_data(replace(model.config, test_size=args.canvases, source="offline"))
        with torch.no_grad():
            box, glimpses = model.glimpse(data.test_images, generator=attention._eval_generator(0))
            wrong = model.mlp(glimpses).argmax(1) != data.test_labels
        distance = attention.centre_distances(box, data.test_digit_centres)
        print(f"{name}: {wrong.double().mean():.1%} wrong on {args.canvases:,} test canvases")
        for low, high in BANDS:
            band = (distance >= low) & (distance < high)
            error = f"{wrong[band].double().mean():.1%}" if band.any() else "-"
            print(f"  box centre {low}-{high} px from the digit: {band.double().mean():6.1%} of canvases, error {error}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
