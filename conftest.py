"""Test-suite settings shared by unit tests and notebooks (nbval kernels inherit the environment)."""

import os

# Every notebook and experiment runs in quick mode under the test suite (see ashlib.config).
os.environ.setdefault("ASHLIB_QUICK", "1")
# One thread per worker: two xdist workers on two cores, and reproducible notebook outputs.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
# Exercises: the reference solutions replace the stubs, and a failing self-check fails its cell.
os.environ.setdefault("ASHLIB_SOLUTIONS", "1")
