"""The live explorer as its users run it: chapter 11 opened in JupyterLab, in headless Chromium.

Starts JupyterLab (token-less, on localhost, with its configuration in a temporary folder plus the
repository's `.jupyter/labconfig`, as `make lab` does), opens `book/chapters/11_explorer.py` -- which
jupytext turns into a notebook --, runs every cell, moves the explorer's episode slider and checks
that the figure the widget shows changes (its PNG bytes differ). Budget: about 90 s on 2 cores.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import jupytext
import pytest

from cswm_lib.utils import project_root

ROOT = project_root()
CHAPTER = "book/chapters/11_explorer.py"

pytestmark = pytest.mark.slow

# a digest of the image the explorer widget shows (its blob: URL fetched back as bytes)
IMAGE_DIGEST = """
const done = arguments[arguments.length - 1];
const imgs = document.querySelectorAll('.jp-NotebookPanel img.widget-image');
if (!imgs.length) { done(null); return; }
fetch(imgs[imgs.length - 1].src).then(r => r.arrayBuffer()).then(buf => {
  let h = 2166136261; const b = new Uint8Array(buf);
  for (let i = 0; i < b.length; i++) { h ^= b[i]; h = Math.imul(h, 16777619) >>> 0; }
  done(b.length + ':' + h);
}).catch(e => done('error ' + e));
"""


def _need(tools: list[str]) -> None:
    missing = [t for t in tools if not shutil.which(t)]
    try:
        import jupyterlab  # noqa: F401
    except ImportError:
        missing.append("jupyterlab (make lab / pip install -e '.[lab]')")
    if not missing:
        return
    message = f"the JupyterLab browser test needs: {', '.join(missing)}"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    _need(["chromium", "chromedriver"])
    tmp = tmp_path_factory.mktemp("lab")
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    env.update(
        JUPYTER_CONFIG_DIR=str(tmp / "config"),
        JUPYTER_CONFIG_PATH=str(ROOT / ".jupyter"),
        JUPYTER_RUNTIME_DIR=str(tmp / "runtime"),
        JUPYTERLAB_SETTINGS_DIR=str(tmp / "settings"),
        JUPYTERLAB_WORKSPACES_DIR=str(tmp / "workspaces"),
        # fresh models and results (datasets are deterministic and shared with the other tests)
        CSWM_CHECKPOINTS=str(tmp / "checkpoints"),
        CSWM_RESULTS=str(tmp / "results"),
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])),
    )
    cmd = [
        sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}",
        "--ServerApp.ip=127.0.0.1", "--IdentityProvider.token=", f"--ServerApp.root_dir={ROOT}",
        "--LabApp.expose_app_in_browser=True", "--LabApp.news_url=None",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:  # CI containers run as root
        cmd.append("--allow-root")
    log = open(tmp / "lab.log", "w")  # noqa: SIM115 -- closed below
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{url}/api/status", timeout=2).read()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("JupyterLab did not start:\n" + (tmp / "lab.log").read_text()[-3000:])
                time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture(scope="module")
def browser():
    _need(["chromium", "chromedriver"])
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--no-first-run", "--window-size=1366,900"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    driver.set_script_timeout(30)
    yield driver
    driver.quit()


def _wait(what: str, predicate, timeout: float, every: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")


def test_explorer_slider_changes_the_figure_in_jupyterlab(lab, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    t0 = time.monotonic()
    browser.get(f"{lab}/lab/tree/{CHAPTER}")
    js = browser.execute_script
    # jupytext opens the .py chapter as a notebook (the factory set in .jupyter/labconfig)
    _wait("the chapter to open as a notebook", lambda: js(
        "return !!window.jupyterapp && document.querySelectorAll("
        "'.jp-NotebookPanel .jp-CodeCell').length > 10;"), 60)
    _wait("the kernel", lambda: js(
        "const w = jupyterapp.shell.currentWidget; const k = w && w.sessionContext"
        " && w.sessionContext.session && w.sessionContext.session.kernel;"
        "return !!k && k.status === 'idle';"), 60)
    js("jupyterapp.commands.execute('notebook:run-all-cells');")
    # every code cell of the chapter (JupyterLab renders cells lazily: the DOM may hold fewer at first)
    n_cells = sum(c.cell_type == "code" for c in jupytext.read(ROOT / CHAPTER).cells)

    def finished() -> bool:
        error = js("const e = document.querySelector('.jp-NotebookPanel "
                   "[data-mime-type=\"application/vnd.jupyter.stderr\"]');"
                   "return e && /Error|Traceback/.test(e.textContent) ? e.textContent : null;")
        assert not error, f"a cell failed in JupyterLab:\n{error[-2000:]}"
        prompts = js("return Array.from(document.querySelectorAll("
                     "'.jp-NotebookPanel .jp-CodeCell .jp-InputPrompt')).map(p => p.textContent);")
        return len(prompts) == n_cells and all(p.strip() not in ("[ ]:", "[*]:", "") for p in prompts)

    _wait("every cell to run", finished, 300, every=1)

    before = _wait("the explorer's figure", lambda: browser.execute_async_script(IMAGE_DIGEST), 30)
    assert not before.startswith("error"), before
    # move the episode slider with the keyboard, as a reader would (focus its handle, press ->)
    handle = browser.find_elements(By.CSS_SELECTOR, ".jp-NotebookPanel .widget-slider .noUi-handle")[0]
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'});", handle)
    handle.click()
    handle.send_keys(Keys.ARROW_RIGHT)
    after = _wait("the figure to change after the slider moved",
                  lambda: (d := browser.execute_async_script(IMAGE_DIGEST)) != before and d, 30)
    assert not after.startswith("error"), after
    print(f"lab explorer test: {time.monotonic() - t0:.0f} s, image {before} -> {after}")
