"""Checks the experiment configs share, so a bad setting fails when the config is made, not
minutes into a run (issue 13): ints that are not bools or strings, finite positive numbers,
seeds NumPy accepts, device names torch can parse."""

from __future__ import annotations


import torch

from ..config import is_finite_positive

SOURCES = ("auto", "full", "offline")


def check_int(name: str, value, minimum: int = 1, *, optional: bool = False):
    """``value`` as an int >= minimum (None too if optional); bools, floats and strings are refused."""
    if optional and value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be {'None or ' if optional else ''}an int >= {minimum}, got {value!r}")
    return value


def check_positive(name: str, value) -> float:
    """A finite number > 0 (not a bool or a string)."""
    if not is_finite_positive(value):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return value


def check_seed(seed) -> int:
    """An int in [0, 2**32): every generator the runs seed (Python, NumPy, torch) accepts it."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise ValueError(f"seed must be an int in [0, 2**32), got {seed!r}")
    return seed


def check_device_name(device) -> str:
    """A device name torch can parse ('cpu', 'cuda', 'cuda:1', ...); whether it exists here is
    checked when a run starts (a config saved on a GPU machine must still load on a CPU)."""
    try:
        torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ValueError(f"device {device!r} is not a device torch knows (try 'cpu' or 'cuda'): {error}") from None
    return device


def check_source(source) -> str:
    if source not in SOURCES:
        raise ValueError(f"source (of the MNIST digits) must be one of {SOURCES}, got {source!r}")
    return source


def drop_removed(saved: dict, removed: dict, where: str = "the saved config") -> dict:
    """``saved`` without the settings an experiment no longer has (``removed``: name -> the value
    that meant "off"). One at that value is dropped (it changed nothing); another is refused,
    since this version cannot reproduce that run."""
    out = dict(saved)
    for name, off in removed.items():
        if name in out:
            value = out.pop(name)
            if value != off:
                raise ValueError(f"{where} sets {name}={value!r}, a setting this version of ashlib no longer has "
                                 f"(it moved to the studies: see studies/README.md)")
    return out
