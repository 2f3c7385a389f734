"""Notebooks 04 and 05 run from an installed wheel, with no checkout on the path.

The notebooks may read nothing outside the installed package (no ``scripts/``, ``studies/`` or
``data/`` of a checkout). This test builds the wheel from a copy of the package's own files,
installs it (no dependencies) into a fresh virtual environment, and runs the two notebooks with
nbval in quick mode from a temporary folder with that environment's Python. Torch, nbval and the
rest come from this interpreter's site-packages through a ``.pth`` file; a ``.pth`` path entry does
not process the ``.pth`` files inside it, so an editable install of the checkout is not picked up
(the test checks that ``ashlib`` is imported from the new environment).
"""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ["04_attention.ipynb", "05_sorting.ipynb"]


def _copy_package_sources(dest: Path) -> None:
    """What the wheel is built from (pyproject's packages and package data), without data/cache."""
    dest.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, dest / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "cache", "*.part")
    shutil.copytree(ROOT / "ashlib", dest / "ashlib", ignore=ignore)
    shutil.copytree(ROOT / "data", dest / "data", ignore=ignore)


def _site_dirs() -> list[str]:
    """This interpreter's site-packages directories (never the checkout itself)."""
    dirs = list(site.getsitepackages()) + [site.getusersitepackages(), sysconfig.get_paths()["purelib"],
                                           sysconfig.get_paths()["platlib"]]
    out = []
    for d in dirs:
        if d and Path(d).is_dir() and Path(d).resolve() != ROOT and d not in out:
            out.append(d)
    return out


def test_notebooks_04_and_05_run_from_the_installed_wheel(tmp_path):
    pytest.importorskip("nbval")
    src, wheels, env_dir, work = tmp_path / "src", tmp_path / "wheels", tmp_path / "venv", tmp_path / "nb"
    _copy_package_sources(src)

    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(wheels), str(src)], capture_output=True, text=True)
    assert build.returncode == 0, build.stderr[-3000:]
    wheel = next(wheels.glob("ashlib-*.whl"))
    members = set(zipfile.ZipFile(wheel).namelist())
    # a non-editable install needs the offline digits and every shipped model, record and curve inside
    assert "ashlib/resources/mnist_offline.npz" in members
    from ashlib import pretrained

    for name in pretrained.names():
        for suffix in (".pt", ".json", ".curves.csv"):
            assert f"ashlib/resources/pretrained/{name}{suffix}" in members, f"the wheel lacks {name}{suffix}"

    # A fresh environment: no pip of its own; the wheel goes into its site-packages, dependencies
    # come from this interpreter's site-packages through a .pth file.
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)], check=True)
    python = env_dir / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    new_site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                   capture_output=True, text=True, check=True).stdout.strip())
    install = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q",
                              "--target", str(new_site), str(wheel)], capture_output=True, text=True)
    assert install.returncode == 0, install.stderr[-3000:]
    (new_site / "_ashlib_test_deps.pth").write_text("\n".join(_site_dirs()) + "\n")

    work.mkdir()
    for name in NOTEBOOKS:
        shutil.copy2(ROOT / "notebooks" / name, work / name)
    shutil.copy2(ROOT / "tests" / "nbval_sanitize.cfg", work / "nbval_sanitize.cfg")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP")}
    env.update(ASHLIB_QUICK="1", ASHLIB_SOLUTIONS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
               PYTHONNOUSERSITE="1")
    env.pop("MPLBACKEND", None)

    where = subprocess.run([str(python), "-c", "import ashlib; print(ashlib.__file__)"], cwd=work, env=env,
                           capture_output=True, text=True)
    assert where.returncode == 0, where.stderr[-3000:]
    ashlib_file = Path(where.stdout.strip()).resolve()
    assert env_dir.resolve() in ashlib_file.parents, f"ashlib came from {ashlib_file}, not the new environment"

    run = subprocess.run([str(python), "-m", "pytest", "-p", "no:cacheprovider", "-o", "addopts=", "-q",
                          "--rootdir", str(work), "--nbval-lax", "--nbval-current-env",
                          "--nbval-sanitize-with", "nbval_sanitize.cfg", "--nbval-cell-timeout=900",
                          "--nbval-kernel-startup-timeout=120", *NOTEBOOKS],
                         cwd=work, env=env, capture_output=True, text=True)
    assert run.returncode == 0, (run.stdout + run.stderr)[-6000:]
