"""ashlib: adaptive sparse hyperlayers (Bloem, "Learning sparse transformations through
backpropagation", 2018), as a small library for the tutorial notebooks.

The public API:

* :func:`sample` - Algorithm 1: Gaussians over index tuples -> integer tuples + proportions.
* :func:`contract` - batched sparse tensor contraction ``y = W . x`` from tuples and values.
* :class:`SparseLayer` - a layer whose sparse W (structure and values) is learned.
* :class:`HyperLayer` - the adaptive version: a source network gives each input its own W.
* :func:`quicksort` - differentiable quicksort from sparse half-permutations (``ashlib.sort``).
* :class:`ReinforceLayer` - the paper's baseline: one hard W per draw, score-function gradient.
"""

from ._version import __version__
from .config import quick_mode, seed_everything, setup_notebook
from .contract import contract
from .layers import HyperLayer, SparseLayer, SparseTransform, split_values
from .reinforce import ReinforceLayer
from .sort import quicksort
from .sampling import sample, samples_per_gaussian

__all__ = [
    "HyperLayer",
    "ReinforceLayer",
    "SparseLayer",
    "SparseTransform",
    "contract",
    "quick_mode",
    "quicksort",
    "sample",
    "samples_per_gaussian",
    "seed_everything",
    "setup_notebook",
    "split_values",
]
