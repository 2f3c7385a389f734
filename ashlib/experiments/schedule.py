"""Learning-rate schedules shared by the experiments.

A constant rate (the paper's) leaves the last evaluations of a run noisy: with Adam at 1e-3 the
test error of one key network jumps by several points between evaluations 1,000 batches apart.
Annealing the rate to zero over the run (cosine) removes most of that noise, so two methods can
be compared on their final numbers rather than on where the noise left them.
"""

from __future__ import annotations

import math

SCHEDULES = ("constant", "cosine")


def check_schedule(schedule: str) -> str:
    if schedule not in SCHEDULES:
        raise ValueError(f"lr_schedule must be one of {SCHEDULES}, got {schedule!r}")
    return schedule


def lr_factor(schedule: str, step: int, total: int) -> float:
    """Multiplier of the base learning rate for batch ``step`` (0-based) of ``total``.

    ``constant``: 1. ``cosine``: 0.5 (1 + cos(pi step / total)), from 1 at the first batch down
    towards 0 at the last.
    """
    check_schedule(schedule)
    if schedule == "constant":
        return 1.0
    return 0.5 * (1.0 + math.cos(math.pi * min(max(step, 0), total) / total))


def set_lr(optimiser, base_lrs: dict, factor: float) -> None:
    """Set every param group's rate to its base rate (by group name, '' if unnamed) times factor."""
    for group in optimiser.param_groups:
        group["lr"] = base_lrs[group.get("name", "")] * factor
