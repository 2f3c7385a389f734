"""Sorting variants that studies need and the library does not: each one hooks into
``ashlib.experiments.sorting.train`` (a loss of its own, a model passed in), not a config field.

These were settings of ``SortingConfig`` / flags of ``python -m ashlib sort`` until issue 28:

===================  ===========================================  ==============================
old setting          what it does                                 here
===================  ===========================================  ==============================
``neighbours``       quicksort also mixes every half-permutation  ``variant_loss(neighbours=True)``
                     one swap away from the hard split
``C_final``          C rises geometrically from C to C_final      ``variant_loss(C_final=...)``
``standardise_keys`` sort (key - mean) / std of each instance     ``variant_loss(standardise_keys=True)``
``straight_through`` forward the hard sort, backpropagate the     ``variant_loss(straight_through=True)``
                     sparse mixture
``key_network``      ``"mlp"``: a per-digit MLP instead of table  ``build_key_network(config, "mlp")``
                     3's ConvNet
``start_from``       continue from a trained key network          ``load_start(name_or_path, config)``
===================  ===========================================  ==============================

:func:`train` puts them together with the same names, so an old study call
``sorting.train(SortingConfig(..., neighbours=True, key_network="mlp"))`` becomes
``variants.train(SortingConfig(...), neighbours=True, key_network="mlp")`` with the same results
(the same seeds give the same batches, draws and initial weights).

    >>> from ashlib.experiments.sorting import SortingConfig
    >>> config = SortingConfig(n=4, digits=1, width=0.125, batch_size=4, iterations=2, eval_every=2,
    ...                        eval_instances=8, source="offline", local=2)
    >>> run = train(config, neighbours=True, C_final=40.0, standardise_keys=True, key_network="mlp", progress=False)
    >>> len(run.losses), run.steps
    (2, [2])
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from ashlib import pretrained
from ashlib.config import seed_everything
from ashlib.experiments import sorting
from ashlib.experiments.sorting import KeyNetwork, SortingConfig
from ashlib.sort import intermediate_loss, quicksort

STUDY_SETTINGS = ("neighbours", "C_final", "standardise_keys", "straight_through", "key_network", "start_from")
"""The keyword arguments of :func:`train` that were SortingConfig fields."""

__all__ = ["STUDY_SETTINGS", "sharpness", "standardised", "variant_loss", "variant_sorting_loss", "build_key_network", "load_start",
           "network_from", "train"]


def sharpness(C: float, C_final: float | None, step: int | None, steps: int) -> float:
    """Quicksort's C at batch ``step`` (1-based) of ``steps``: C, or with ``C_final`` a geometric rise
    from C at the first batch to C_final at the last (``step`` None: the end value)."""
    if C_final is None:
        return C
    if step is None or steps <= 1:
        return C_final
    t = (min(max(step, 1), steps) - 1) / (steps - 1)
    return C * (C_final / C) ** t


def standardised(keys: torch.Tensor) -> torch.Tensor:
    """(keys - mean) / std within each instance (row): the order is kept, the scale is taken away."""
    centred = keys - keys.mean(dim=1, keepdim=True)
    return centred / centred.square().mean(dim=1, keepdim=True).add(1e-12).sqrt()


def variant_sorting_loss(config: SortingConfig, keys, items, target, generator=None, *, neighbours: bool = False,
                         C: float | None = None, standardise_keys: bool = False,
                         straight_through: bool = False) -> torch.Tensor:
    """:func:`ashlib.experiments.sorting.sorting_loss` with the variants switched on."""
    if not any((neighbours, standardise_keys, straight_through)) and C is None:
        return sorting.sorting_loss(config, keys, items, target, generator)
    if config.method != "quicksort":
        raise ValueError("neighbours, C_final, standardise_keys and straight_through exist only for quicksort")
    if straight_through and config.intermediate:
        raise ValueError("straight_through exists only without the intermediate loss")
    if config.draws > 1:
        k = config.draws
        keys, items, target = (t.repeat(k, *([1] * (t.dim() - 1))) for t in (keys, items, target))
    sort_keys = standardised(keys) if standardise_keys else keys
    result = quicksort(sort_keys, items, samples=config.samples, C=config.C if C is None else C, generator=generator,
                       local=config.local, neighbours=neighbours)
    if config.intermediate:
        return intermediate_loss(result, target)
    output = result.sorted
    if straight_through:  # the value of the hard sort, the gradient of the sparse mixture
        order = keys.detach().argsort(dim=1, stable=True)
        hard = items.gather(1, order.view(*order.shape, *([1] * (items.dim() - 2))).expand_as(items))
        output = hard.clamp(1e-4, 1 - 1e-4) + (output - output.detach())  # inside the BCE clamp: gradients pass
    return F.binary_cross_entropy(output.clamp(1e-6, 1 - 1e-6), target)


def variant_loss(*, neighbours: bool = False, C_final: float | None = None, standardise_keys: bool = False,
                 straight_through: bool = False):
    """A ``loss(state, batch)`` for ``sorting.train(..., loss=...)`` with these variants."""
    if C_final is not None and not C_final > 0:
        raise ValueError(f"C_final must be > 0, got {C_final!r}")

    def loss(state, batch):
        images, _, target = batch
        config = state.config
        C = sharpness(config.C, C_final, state.step + 1, state.steps) if C_final is not None else None
        return variant_sorting_loss(config, state.model(images), images, target, state.generators["sort"],
                                    neighbours=neighbours, C=C, standardise_keys=standardise_keys,
                                    straight_through=straight_through)

    return loss


def build_key_network(config: SortingConfig, arch: str = "conv") -> KeyNetwork:
    """The config's key network with another per-digit network (``"mlp"``: two hidden layers of
    256 x width units), initialised from ``config.seed`` as ``sorting.train`` would."""
    seed_everything(config.seed)
    return KeyNetwork(config.digits, config.width, arch)


def load_start(source, config: SortingConfig, arch: str = "conv") -> KeyNetwork:
    """A key network holding the weights of ``source`` (a shipped model's name or a path written
    by ``--save-model``), e.g. one trained at a smaller n: the key network does not depend on n.
    Its digits and width must be the config's."""
    net = build_key_network(config, arch)
    name = str(source)
    trained = pretrained.load(name) if name in pretrained.names() else pretrained.load_file(name)
    theirs = getattr(trained, "config", None)
    if not isinstance(theirs, SortingConfig):
        raise ValueError(f"start_from={name!r} is not a sorting key network")
    mismatch = [f"{k} {getattr(theirs, k)!r} != {getattr(config, k)!r}" for k in ("digits", "width")
                if getattr(theirs, k) != getattr(config, k)]
    if mismatch:
        raise ValueError(f"start_from={name!r} has another architecture ({'; '.join(mismatch)}); "
                         "set the same digits and width")
    try:
        net.load_state_dict(trained.state_dict())
    except RuntimeError as error:
        raise ValueError(f"start_from={name!r} does not fit a {arch} key network ({str(error).splitlines()[0]})") \
            from None
    return net


def network_from(model) -> tuple[KeyNetwork, SortingConfig]:
    """(key network in eval mode, its config) from a shipped model's name, a ``--save-model`` path
    or a run's ``checkpoint.pt`` (``python -m ashlib sort ... --out FOLDER``); the config's source
    is set to the offline digits, as the studies score on them."""
    from dataclasses import replace
    from pathlib import Path

    from ashlib.experiments import loop

    name = str(model)
    if name in pretrained.names():
        net = pretrained.load(name)
    elif Path(name).is_dir() or Path(name).name == loop.CHECKPOINT:
        name = str(Path(name) / loop.CHECKPOINT) if Path(name).is_dir() else name
        state = loop.read_checkpoint(name)
        config = SortingConfig(**sorting.upgrade_config(state["config"], name))
        net = sorting.build_model(config)
        net.load_state_dict(state["model"])
        return net.eval(), replace(config, source="offline")
    else:
        net = pretrained.load_file(name)
    return net, replace(net.config, source="offline")


def train(config: SortingConfig, *, neighbours: bool = False, C_final: float | None = None,
          standardise_keys: bool = False, straight_through: bool = False, key_network: str = "conv",
          start_from: str | None = None, **kwargs):
    """``sorting.train(config, **kwargs)`` with the old settings re-created through its hooks.

    Resuming (``resume=True``) needs the same variant settings: the checkpoint's config does not
    record them."""
    arch = key_network
    if arch not in sorting.KEY_NETWORKS:
        raise ValueError(f"key_network must be one of {sorting.KEY_NETWORKS}, got {arch!r}")
    if start_from is not None:
        model = load_start(start_from, config, arch)
    elif arch != "conv":
        model = build_key_network(config, arch)
    else:
        model = kwargs.pop("model", None)
    if any((neighbours, standardise_keys, straight_through)) or C_final is not None:
        kwargs["loss"] = variant_loss(neighbours=neighbours, C_final=C_final, standardise_keys=standardise_keys,
                                      straight_through=straight_through)
    return sorting.train(config, model=model, **kwargs)
