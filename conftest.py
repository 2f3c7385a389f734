"""Test-suite settings shared by unit tests and notebooks (nbval kernels inherit the environment)."""

import os

# Every notebook and experiment runs in quick mode under the test suite (see ashlib.config).
os.environ.setdefault("ASHLIB_QUICK", "1")
# One thread per worker: two xdist workers on two cores, and reproducible notebook outputs.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
# Exercises: the notebooks run as a student's first Run All, with every stub still empty, so each
# self-check must say "not done yet" and every later cell must still run. The reference solutions
# are checked against their self-checks in tests/test_exercises.py (tools/run_notebooks.py swaps them
# in for the stored outputs).
os.environ.setdefault("ASHLIB_SOLUTIONS", "0")
