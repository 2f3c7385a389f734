"""One module per experiment of the paper: a config dataclass, ``train(config)`` and ``evaluate``.

Notebooks and the command line both call these, so no training loop is written twice.
"""
