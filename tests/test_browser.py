"""The explorers in a real browser: JupyterLab and Voila, driven by Playwright with the system Chromium.

nbval runs the notebooks' code, but not the widgets' front end: a slider whose callback no longer
redraws, or a figure that never reaches the page, passes nbval. These tests start JupyterLab
(and Voila) on 127.0.0.1, open a notebook, run it through the Run menu, drag a slider of an
explorer and check that both the slider's readout and the figure image change.

* notebook 01 as it is, in JupyterLab and as a Voila app page;
* one explorer each from notebooks 02, 04 and 05, in a small notebook that builds just that
  explorer (the full notebooks train for minutes first).

They skip, saying why, when the ``playwright`` package or a Chromium binary is missing
(``pip install -e ".[browser]"`` and Debian's ``chromium`` package; ``.ci/run`` installs both).
Chromium is the system one (``ASHLIB_CHROMIUM`` or ``chromium`` on the PATH): no
``playwright install``. Every server runs in its own process group and is stopped in a ``finally``.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e '.[browser]')")


def _chromium() -> str | None:
    for candidate in (os.environ.get("ASHLIB_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if candidate and shutil.which(candidate):
            return shutil.which(candidate)
    return None


CHROMIUM = _chromium()
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium binary (apt-get install chromium, or set ASHLIB_CHROMIUM)")

# Small notebooks that build one explorer each (the full notebooks train for minutes first).
EXPLORERS = {
    "02_snapshot_slider": [
        "import ashlib\nfrom ashlib.experiments.identity import IdentityConfig, train\n"
        "from ashlib.widgets import identity_snapshot_slider\n"
        "result = train(IdentityConfig(n=8, iterations=300, eval_every=50), progress=False)",
        "identity_snapshot_slider(result)",
    ],
    "04_glimpse_browser": [
        "from ashlib import pretrained\nfrom ashlib.experiments.attention import AttentionConfig, load_data\n"
        "from ashlib.widgets import glimpse_browser\n"
        "model = pretrained.load('attention-sparse')\n"
        "data = load_data(AttentionConfig(**{**vars(model.config), 'train_size': 64, 'test_size': 20, 'source': 'offline'}))",
        "glimpse_browser(model, data.test_images, data.test_labels)",
    ],
    "05_quicksort_explorer": [
        "from ashlib.widgets import quicksort_explorer",
        "quicksort_explorer(8)",
    ],
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_http(url: str, process: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before answering {url}")
        try:
            with urllib.request.urlopen(url, timeout=5):
                return
        except urllib.error.HTTPError:
            return  # the server answered (a 404 for a probe path is an answer)
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"no answer from {url} within {timeout} s")


@contextmanager
def _server(argv: list[str], url: str, cwd: Path, log: Path):
    """Start a server in its own process group; yield; stop the whole group."""
    env = {**os.environ, "ASHLIB_QUICK": "1", "ASHLIB_SOLUTIONS": "1", "ASHLIB_PROGRESS": "0",
           "OMP_NUM_THREADS": "1", "JUPYTER_PLATFORM_DIRS": "1"}
    with open(log, "w") as out:
        process = subprocess.Popen(argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            _wait_http(url, process)
            yield
        finally:
            try:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(timeout=20)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass


def _write_notebook(path: Path, cells: list[str]) -> None:
    import nbformat

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A folder with notebook 01 (copied as is) and the small explorer notebooks."""
    folder = tmp_path_factory.mktemp("browser")
    shutil.copy(ROOT / "notebooks" / "01_sampling.ipynb", folder / "01_sampling.ipynb")
    for name, cells in EXPLORERS.items():
        _write_notebook(folder / f"{name}.ipynb", cells)
    return folder


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"])
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(scope="module")
def lab(workdir):
    port, token = _free_port(), secrets.token_hex(16)
    argv = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
            f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={workdir}",
            "--ServerApp.disable_check_xsrf=True", "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        argv.append("--allow-root")
    with _server(argv, f"http://127.0.0.1:{port}/api/status?token={token}", workdir, workdir / "lab.log"):
        yield f"http://127.0.0.1:{port}", token


def _drag_first_slider_and_compare(page, scope: str = "", timeout_ms: int = 180_000) -> tuple[str, str]:
    """In the first explorer on the page (inside ``scope``): drag its first slider; return the
    readout before and after. Fails unless the readout changes and then the figure image too.
    """
    explorer = page.locator(f"{scope} .widget-interact".strip()).first
    explorer.wait_for(state="visible", timeout=timeout_ms)
    images = explorer.locator(".widget-output img")
    images.first.wait_for(state="visible", timeout=60_000)

    def figure() -> tuple:
        return tuple(images.nth(i).get_attribute("src") for i in range(images.count()))

    before_src, stable_since = figure(), time.time()
    while time.time() - stable_since < 2.0:  # let the first drawing settle
        page.wait_for_timeout(250)
        if figure() != before_src:
            before_src, stable_since = figure(), time.time()
    readout = explorer.locator(".widget-readout").first
    before_text = readout.inner_text()
    handle = explorer.locator(".noUi-handle").first
    handle.scroll_into_view_if_needed()
    page.wait_for_timeout(300)
    box = handle.bounding_box()
    track = explorer.locator(".noUi-target").first.bounding_box()
    assert box and track, "the explorer's slider is not on the page"
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    target = track["x"] + track["width"] * (0.85 if x < track["x"] + track["width"] / 2 else 0.15)
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(target, y, steps=8)
    page.mouse.up()
    deadline = time.time() + 30
    while readout.inner_text() == before_text and time.time() < deadline:
        page.wait_for_timeout(200)
    after_text = readout.inner_text()
    assert after_text != before_text, f"the slider's readout did not change (still {before_text!r})"
    deadline = time.time() + 30
    after_src = figure()
    while (not after_src or after_src == before_src) and time.time() < deadline:
        page.wait_for_timeout(250)
        after_src = figure()
    assert after_src and after_src != before_src, \
        f"the figure did not redraw after the slider moved from {before_text} to {after_text}"
    return before_text, after_text


VISIBLE_NOTEBOOK = ".jp-NotebookPanel:not(.lm-mod-hidden)"


def _run_all_in_lab(page, base: str, token: str, name: str, n_code_cells: int) -> None:
    # ?reset: a fresh workspace, so notebooks opened by earlier tests are not restored alongside
    page.goto(f"{base}/lab/tree/{name}?reset&token={token}", wait_until="domcontentloaded")
    cells = page.locator(f"{VISIBLE_NOTEBOOK} .jp-CodeCell")
    deadline = time.time() + 120
    while cells.count() < n_code_cells and time.time() < deadline:  # the notebook model is loaded lazily
        page.wait_for_timeout(250)
    assert cells.count() >= n_code_cells, f"{name}: only {cells.count()} of {n_code_cells} code cells appeared"
    # Run All before the kernel is connected can be dropped: wait for "Idle", then check it started
    page.get_by_text(re.compile(r"\| Idle")).first.wait_for(timeout=120_000)
    # Lab renders only the cells near the viewport: look for any prompt with a count or a star
    started = page.locator(f"{VISIBLE_NOTEBOOK} .jp-InputPrompt").filter(has_text=re.compile(r"\[[\d*]+\]"))
    for _ in range(3):
        page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
        page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
        deadline = time.time() + 20
        while started.count() == 0 and time.time() < deadline:
            page.wait_for_timeout(250)
        if started.count():
            return
    raise AssertionError(f"{name}: Run > Run All Cells did not start the notebook")


def _code_cells(path: Path) -> int:
    return sum(1 for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code")


@pytest.mark.parametrize("name", ["01_sampling"] + list(EXPLORERS))
def test_explorer_redraws_in_jupyterlab(name, workdir, lab, browser):
    base, token = lab
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        _run_all_in_lab(page, base, token, f"{name}.ipynb", _code_cells(workdir / f"{name}.ipynb"))
        _drag_first_slider_and_compare(page, VISIBLE_NOTEBOOK)
    except Exception:
        page.screenshot(path=str(workdir / f"{name}-failure.png"))  # kept with pytest's tmp folders
        raise
    finally:
        page.close()


def test_sampling_explorer_redraws_as_a_voila_app(workdir, browser):
    port = _free_port()
    argv = [sys.executable, "-m", "voila", str(workdir / "01_sampling.ipynb"), "--no-browser", f"--port={port}",
            "--Voila.ip=127.0.0.1"]
    # probe a path that renders nothing: a GET of "/" would run the notebook in a kernel of its own,
    # beside the page's, and under a loaded machine the page then timed out
    with _server(argv, f"http://127.0.0.1:{port}/voila/static/probe", workdir, workdir / "voila.log"):
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        try:
            page.goto(f"http://127.0.0.1:{port}/", wait_until="domcontentloaded", timeout=180_000)
            _drag_first_slider_and_compare(page)
        finally:
            page.close()
