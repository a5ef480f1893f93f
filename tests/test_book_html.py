"""The rendered book, seen in a real browser (headless Chromium through ChromeDriver).

Builds the HTML book the way `make book` does (every chapter executed at its small defaults, with
`-W` so a failing cell or a broken reference fails the build), serves it on localhost and loads
every page: it must show its title, no execution error, and only images that actually loaded.
A screenshot of each page is kept in `_build/screenshots/`.

`test_page_reads_well` then checks what a reader sees at 1366x768 on every page: nothing wider
than its container (code cells may scroll, outputs, tables and formulas may not), no console
error, no request leaving the machine, no table over 15 rows, no absolute path in the text, and
figures a reader can read: no PNG shrunk to fit the text column, and no figure text below
`figstyle.MIN_TEXT_PX` (9 pt = 12 CSS px) as shown. The text size comes from the record that
`cswm_lib.figstyle` writes into every matplotlib PNG (smallest font in pt, dpi): shown text px =
pt * dpi / 72 * shown width / natural width. A PNG without that record fails (its text size is
unknown); a figure without text records "none" and is checked for width only.
"""

from __future__ import annotations

import base64
import functools
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import jupytext
import pytest

from cswm_lib.book import toc_chapters
from cswm_lib.figstyle import image_problems
from cswm_lib.utils import project_root

ROOT = project_root()
HTML = ROOT / "_build" / "html"
SHOTS = ROOT / "_build" / "screenshots"

pytestmark = pytest.mark.slow


def _need_browser() -> None:
    if shutil.which("chromium") and shutil.which("chromedriver"):
        return
    message = "chromium and chromedriver are needed (Debian: apt-get install chromium chromium-driver)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module")
def site():
    _need_browser()
    jb = Path(sys.executable).with_name("jupyter-book")
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}  # Agg would drop inline figures
    proc = subprocess.run(
        [str(jb), "build", "-W", "-n", "--keep-going", str(ROOT)],
        capture_output=True,
        text=True,
        timeout=3000,
        env=env,
    )
    assert proc.returncode == 0, "book build failed:\n" + (proc.stdout + proc.stderr)[-4000:]
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(HTML))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture(scope="module")
def browser():
    _need_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for arg in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-quic",
        "--window-size=1366,768",
    ):
        options.add_argument(arg)
    # console messages and the network events of every page (read back in test_page_reads_well)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def _pages() -> list[tuple[str, str, bool]]:
    """(relative html path, expected title, expects a figure) for the intro and every toc entry."""
    pages = [("book/intro.html", "Negative sampling in Contrastive Structured World Models", False)]
    for chapter in toc_chapters():
        rel = chapter.relative_to(ROOT).with_suffix(".html").as_posix()
        if chapter.suffix == ".py":
            nb = jupytext.read(chapter)
            title = re.search(r"^# (.+)$", nb.cells[0].source, re.M).group(1).strip()
            figure = any("plt.show()" in c.source for c in nb.cells if c.cell_type == "code")
        else:
            title = re.search(r"^# (.+)$", chapter.read_text(), re.M).group(1).strip()
            figure = False
        pages.append((rel, title, figure))
    return pages


@pytest.mark.parametrize(("rel", "title", "figure"), _pages(), ids=lambda v: str(v)[:40])
def test_page_renders_in_chromium(site, browser, rel, title, figure):
    from selenium.webdriver.common.by import By

    browser.get(f"{site}/{rel}")
    plain_title = re.sub(r"[`*]", "", title)
    assert plain_title in browser.title, f"{rel}: title {browser.title!r}"
    h1 = browser.execute_script("return document.querySelector('main h1').textContent;")
    assert plain_title in h1
    body = browser.execute_script("return document.body.textContent;")
    assert "Traceback" not in body, f"{rel} shows an execution error"
    assert not browser.find_elements(By.CSS_SELECTOR, ".output.error, .output.traceback")
    images = browser.execute_script(
        "return Array.from(document.querySelectorAll('main img'))"
        ".map(i => [i.src, i.complete && i.naturalWidth > 0]);"
    )
    broken = [src for src, ok in images if not ok]
    assert not broken, f"{rel}: images that did not load: {broken}"
    if browser.execute_script("return document.querySelector('main .math') !== null;"):
        typeset = browser.execute_script(
            "return (window.MathJax && MathJax.startup) ? MathJax.startup.promise.then("
            "() => document.querySelectorAll('main mjx-container').length) : 0;"
        )
        assert typeset, f"{rel}: formulas were not typeset (MathJax did not load)"
    raw_table = browser.execute_script(
        "return Array.from(document.querySelectorAll('main p'))"
        ".some(p => /\\|\\s*[-\\u2013\\u2014]+\\s*\\|/.test(p.textContent));"
    )
    assert not raw_table, f"{rel}: a markdown table was rendered as plain text"
    if figure:
        outputs = browser.find_elements(By.CSS_SELECTOR, "main .cell_output img")
        assert outputs, f"{rel}: the chapter draws figures but none is on the page"
    SHOTS.mkdir(parents=True, exist_ok=True)
    # the whole page, not just the first screen (kept as a build artefact)
    shot = browser.execute_cdp_cmd("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
    (SHOTS / (Path(rel).stem + ".png")).write_bytes(base64.b64decode(shot["data"]))


MAX_TABLE_ROWS = 15
# what a reader should never see: a path of the machine that built the book
ABSOLUTE_PATH = re.compile(
    r"(?<![\w.~])/(?:home|work|tmp|root|Users|usr|opt|var|mnt|srv)/[\w.-]+|PosixPath\("
)

# Every element of the article that sticks out of it, and every element that clips or scrolls
# its content sideways, except code cells' input (long code lines may scroll) and the scroll boxes
# of printed output and wide tables (they scroll; nothing is cut off).
OVERFLOW_JS = """
const article = document.querySelector('article.bd-article') || document.querySelector('main');
const right = article.getBoundingClientRect().right + 2;
// (inside a formula only the formula's own box counts: MathJax's stretchy parts clip by design)
const skip = el => el.closest('.cell_input, span.math, mjx-assistive-mml, .headerlink, .toggle-details')
    || (el.closest('mjx-container') && el.tagName !== 'MJX-CONTAINER')
    || (el.closest('div.highlight') && !el.closest('.cell_output'));
const bad = [], seen = new Set();
for (const el of article.querySelectorAll('*')) {
  if (skip(el)) continue;
  let p = el.parentElement, inside = false;
  while (p && p !== article) { if (seen.has(p)) { inside = true; break; } p = p.parentElement; }
  if (inside) continue;
  const r = el.getBoundingClientRect();
  if (r.width === 0 || r.height === 0) continue;
  const style = getComputedStyle(el), ox = style.overflowX;
  let why = null;
  if (r.right > right) why = `sticks out ${Math.round(r.right - right)} px`;
  // (overflow does nothing on inline elements, whose clientWidth is 0)
  else if (ox !== 'visible' && style.display !== 'inline' && el.scrollWidth > el.clientWidth + 2) {
    // printed output and tables must fit too; only code input may scroll (skipped above)
    const clips = ox === 'hidden' || ox === 'clip';
    why = `${clips ? 'clips' : 'scrolls'} ${el.scrollWidth - el.clientWidth} px`;
  }
  if (why) {
    seen.add(el);
    const text = (el.textContent || '').trim().replace(/\\s+/g, ' ').slice(0, 60);
    bad.push(`<${el.tagName.toLowerCase()} class="${el.className}"> ${why}: ${text}`);
  }
}
return bad;
"""

TABLES_JS = """
return Array.from(document.querySelectorAll('main table')).map(t => [
  t.querySelectorAll('tbody tr').length || t.querySelectorAll('tr').length,
  (t.textContent || '').trim().replace(/\\s+/g, ' ').slice(0, 60)]);
"""


IMAGES_JS = """
return Array.from(document.querySelectorAll('main img')).map(i => [
  i.getAttribute('src'), i.src, i.naturalWidth, i.getBoundingClientRect().width]);
"""


def _png_bytes(src: str, url: str, site: str) -> bytes | None:
    """The bytes of a page's PNG (inline data or a file of the built site); None for other images."""
    if src.startswith("data:image/png;base64,"):
        return base64.b64decode(src.split(",", 1)[1])
    if url.startswith(site) and url.split("?")[0].lower().endswith(".png"):
        return (HTML / url[len(site):].split("?")[0].lstrip("/")).read_bytes()
    return None


def figure_problems(images: list, site: str) -> list[str]:
    """Every PNG of a page checked by `figstyle.image_problems` (width and shown text size)."""
    problems = []
    for src, url, natural, shown in images:
        png = _png_bytes(src or "", url, site)
        if png is None or not natural or not shown:
            continue
        name = Path(url.split("?")[0]).name if not src.startswith("data:") else "inline PNG"
        problems += [f"figure {name}: {p}" for p in image_problems(png, natural, shown)]
    return problems


def _requests_and_errors(browser, site: str) -> tuple[list[str], list[str]]:
    """URLs requested off this machine, and console errors, since the last call."""
    outside = []
    for entry in browser.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message.get("method") != "Network.requestWillBeSent":
            continue
        url = message["params"]["request"]["url"]
        if not url.startswith((site, "data:", "blob:", "about:", "chrome-extension:")):
            outside.append(url)
    errors = [e["message"][:300] for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    return outside, errors


@pytest.mark.parametrize(("rel", "title", "figure"), _pages(), ids=lambda v: str(v)[:40])
def test_page_reads_well(site, browser, rel, title, figure):
    """What a reader sees at 1366x768: fits the column, loads nothing remote, no console error,
    short tables, no build-machine path."""
    _requests_and_errors(browser, site)  # forget the previous page's
    browser.get(f"{site}/{rel}")
    browser.execute_script(
        "return (window.MathJax && MathJax.startup) ? MathJax.startup.promise : null;"
    )
    width = browser.execute_script("return window.innerWidth;")
    assert width == 1366, f"viewport is {width} px wide, not 1366"
    problems = [f"wider than its container: {b}" for b in browser.execute_script(OVERFLOW_JS)]
    for rows, text in browser.execute_script(TABLES_JS):
        if rows > MAX_TABLE_ROWS:
            problems.append(f"table of {rows} rows (> {MAX_TABLE_ROWS}): {text}")
    text = browser.execute_script("return document.querySelector('main').innerText;")
    problems += [f"absolute path in the text: {m.group(0)}" for m in ABSOLUTE_PATH.finditer(text)]
    problems += figure_problems(browser.execute_script(IMAGES_JS), site)
    outside, errors = _requests_and_errors(browser, site)
    problems += [f"request leaving the machine: {u}" for u in outside]
    problems += [f"console error: {e}" for e in errors]
    assert not problems, f"{rel}: {len(problems)} problems a reader sees:\n" + "\n".join(problems[:25])
