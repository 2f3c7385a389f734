"""The package version, on its own so that any module (config.py) can import it without the package root.

Keep it equal to ``version`` in pyproject.toml.
"""

__version__ = "0.1.0"
