"""Where several glimpses look, and how they share the digit (issue 32).

Scores a glimpse model on cluttered canvases drawn with a seed of their own (default 2: the
shipped models train on seed 0 and are tested on seed 1) and reports, beside the test error:

- ``near_digit``: the share of canvases where some glimpse's box centre lies within 4 px of the
  digit's centre (the issue's target: at least 0.9);
- per glimpse: the mean distance of its centre from the digit's centre, the share of canvases on
  which it is the nearest, its mean side, and the share of the digit's ink inside its box;
- ``ink_covered``: the share of the digit's ink inside at least one box.

    python studies/attention/multi_glimpse.py --model attention-sparse-multi
    python studies/attention/multi_glimpse.py --run RUN_FOLDER          # a run's checkpoint.pt
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from ashlib import pretrained
from ashlib.data import ClutteredMNIST, load_mnist
from ashlib.experiments.attention import NEAR_PIXELS, AttentionConfig, build_model, scores
from ashlib.experiments.loop import read_checkpoint

RESULTS = Path(__file__).parent / "results" / "multi_glimpse"


def load(model_name: str | None, run: str | None):
    """(model, config) from a shipped model's name or a run folder's checkpoint."""
    if run:
        state = read_checkpoint(Path(run) / "checkpoint.pt")
        config = AttentionConfig(**state["config"])
        model = build_model(config)
        model.load_state_dict(state["model"])
        return model.eval(), config, f"{run} (batch {state['step']:,})"
    model = pretrained.load(model_name)
    config = pretrained.recipe(model_name)
    return model.eval(), config, model_name


def digit_ink(canvases: ClutteredMNIST, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Ink (n, 28, 28) of each canvas's digit and the pixel (y, x) of its top-left corner."""
    ink = canvases.digits.images[canvases.digit_index[:n]].double()
    return ink, canvases.digit_yx[:n].double()


def share_of_ink(corners: torch.Tensor, ink: torch.Tensor, top_left: torch.Tensor) -> torch.Tensor:
    """(n, g) share of each digit's ink whose pixel lies inside glimpse g's box (either corner order)."""
    r = torch.arange(28, dtype=torch.float64)
    ys = top_left[:, 0, None] + r  # (n, 28)
    xs = top_left[:, 1, None] + r
    lo_y = torch.minimum(corners[..., 0], corners[..., 2])[..., None]  # (n, g, 1)
    hi_y = torch.maximum(corners[..., 0], corners[..., 2])[..., None]
    lo_x = torch.minimum(corners[..., 1], corners[..., 3])[..., None]
    hi_x = torch.maximum(corners[..., 1], corners[..., 3])[..., None]
    in_y = (ys[:, None] >= lo_y - 0.5) & (ys[:, None] <= hi_y + 0.5)  # (n, g, 28): a pixel read by the grid
    in_x = (xs[:, None] >= lo_x - 0.5) & (xs[:, None] <= hi_x + 0.5)
    inside = (in_y[..., :, None] & in_x[..., None, :]).double()  # (n, g, 28, 28)
    total = ink.sum(dim=(-1, -2))[:, None]
    per_glimpse = (inside * ink[:, None]).sum(dim=(-1, -2)) / total
    union = (inside.amax(dim=1) * ink).sum(dim=(-1, -2)) / total[:, 0]
    return per_glimpse, union


@torch.no_grad()
def measure(model, config: AttentionConfig, canvas_seed: int, n: int) -> dict:
    mnist = load_mnist("test", source=config.source)
    canvases = ClutteredMNIST("test", size=config.canvas, n_distractors=config.n_distractors, seed=canvas_seed,
                              length=n, mnist=mnist)
    images, labels = canvases.batch(range(n))
    ink, top_left = digit_ink(canvases, n)
    centres = top_left + 13.5
    out = scores(model, images, labels, centres, seed=config.seed)
    generator = torch.Generator().manual_seed(10_007 + config.seed)
    corners = torch.cat([model.glimpse(images[i:i + 500], generator=generator)[0]
                         for i in range(0, n, 500)]).double()  # (n, g, 4)
    box_centres = torch.stack([(corners[..., 0] + corners[..., 2]) / 2, (corners[..., 1] + corners[..., 3]) / 2], -1)
    distance = (box_centres - centres[:, None]).norm(dim=-1)  # (n, g)
    nearest = distance.argmin(dim=1)
    per_glimpse, union = share_of_ink(corners, ink, top_left)
    side = ((corners[..., 2] - corners[..., 0]).abs() + (corners[..., 3] - corners[..., 1]).abs()) / 2
    offset = box_centres - centres[:, None]  # (n, g, 2): where each glimpse sits relative to the digit
    glimpses = [{"glimpse": g, "distance": float(distance[:, g].mean()),
                 "within_4px": float((distance[:, g] <= NEAR_PIXELS).double().mean()),
                 "nearest": float((nearest == g).double().mean()), "side": float(side[:, g].mean()),
                 "ink_share": float(per_glimpse[:, g].mean()),
                 "offset_yx": [float(offset[:, g, 0].mean()), float(offset[:, g, 1].mean())]}
                for g in range(corners.shape[1])]
    return {"canvas_seed": canvas_seed, "canvases": n, "test_error": out["test_error"],
            "near_digit": float((distance.min(dim=1).values <= NEAR_PIXELS).double().mean()),
            "nearest_distance": float(distance.min(dim=1).values.mean()),
            "ink_covered": float(union.mean()), "glimpses": glimpses}


def table(result: dict) -> str:
    lines = [f"test error {result['test_error']:.2%}, some box within 4 px of the digit on "
             f"{result['near_digit']:.1%} of {result['canvases']:,} canvases (seed {result['canvas_seed']}), "
             f"ink inside some box {result['ink_covered']:.1%}", "",
             "| glimpse | centre offset from the digit (y, x) px | distance px | within 4 px | nearest | side px | ink inside |",
             "|---|---|---|---|---|---|---|"]
    for g in result["glimpses"]:
        lines.append(f"| {g['glimpse']} | ({g['offset_yx'][0]:+.1f}, {g['offset_yx'][1]:+.1f}) | {g['distance']:.1f} | "
                     f"{g['within_4px']:.1%} | {g['nearest']:.1%} | {g['side']:.1f} | {g['ink_share']:.1%} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    which = ap.add_mutually_exclusive_group(required=True)
    which.add_argument("--model", help="a shipped model's name")
    which.add_argument("--run", help="a run folder holding checkpoint.pt")
    ap.add_argument("--canvas-seed", type=int, default=2)
    ap.add_argument("--canvases", type=int, default=10_000)
    ap.add_argument("--out", help="JSON file for the numbers (default: print only)")
    a = ap.parse_args(argv)
    model, config, what = load(a.model, a.run)
    result = {"model": what, **measure(model, config, a.canvas_seed, a.canvases)}
    print(what)
    print(table(result))
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
