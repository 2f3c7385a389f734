"""``python -m ashlib <experiment> ...``: see :mod:`ashlib.cli`."""

from .cli import main

raise SystemExit(main())
