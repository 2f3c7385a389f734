"""Data for the attention and sorting experiments: MNIST, cluttered MNIST, sorting tasks.

One module per job: :mod:`.paths` (where files live), :mod:`.mnist` (download, verification,
the offline subset, :func:`load_mnist`), :mod:`.cluttered` (:class:`ClutteredMNIST`),
:mod:`.sorting_task` (:class:`SortingTask`) and :mod:`.command` (``python -m ashlib data``).
The public names are re-exported here: ``from ashlib.data import load_mnist``.
"""

from .cluttered import MAX_DISTRACTORS, PAPER_LENGTH, ClutteredMNIST, ClutterLayout
from .command import data_command
from .mnist import (MIRRORS, MNIST, MNIST_FILES, OFFLINE_SHA256, DownloadError, download_mnist, fetch_url,
                    full_mnist_cached, load_mnist, offline_file)
from .paths import OFFLINE_FILE, cache_dir, data_root, shipped_data
from .sorting_task import SortingTask

__all__ = [
    "MAX_DISTRACTORS",
    "MIRRORS",
    "MNIST",
    "MNIST_FILES",
    "OFFLINE_FILE",
    "OFFLINE_SHA256",
    "PAPER_LENGTH",
    "ClutterLayout",
    "ClutteredMNIST",
    "DownloadError",
    "SortingTask",
    "cache_dir",
    "data_command",
    "data_root",
    "download_mnist",
    "fetch_url",
    "full_mnist_cached",
    "load_mnist",
    "offline_file",
    "shipped_data",
]
