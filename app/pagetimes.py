"""Time until a page's content is visible in headless Chromium (1440x900), and screenshots of pages.

"Visible" means: the routed page has a heading, every section it loads is filled, every Plotly figure on it
has drawn its SVG (a map: its land outlines), every data grid has drawn its rows (or says it has none) and its
count (``*-total``) is written, the
neighbourhood graph (if any) has nodes, nothing is still loading, and the browser's main thread answers (the
check is a script the page runs, so a page frozen while drawing counts as not visible yet).

Used by ``posguard bench`` (``app.bench``), ``posguard screenshots`` (``app.screenshots``) and the browser tests.
Needs Debian's ``chromium`` and ``chromium-driver`` (selenium is a dependency).

Usage (a running explorer, a user of it)::

    python -m app.pagetimes http://127.0.0.1:8050 USER PASSWORD /terminal/T1 /ring/R1 --reps 3 [--shots DIR]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

__all__ = ["VISIBLE_JS", "browser_available", "open_browser", "sign_in", "time_page", "summarise", "shot_name", "main"]

# True when the page is drawn: a heading, every plot drawn, every grid's rows drawn, graph nodes present,
# nothing loading.
VISIBLE_JS = """
const root = document.querySelector('#_pages_content') || document.querySelector('#page');
if (!root || !root.querySelector('h1, h2, h3, h4')) return false;
if (document.querySelector('[data-dash-is-loading="true"], .dash-spinner, .dash-loading')) return false;
for (const box of root.querySelectorAll('[id$="-box"]')) { if (!box.firstElementChild) return false; }
for (const t of root.querySelectorAll('[id$="-total"]')) { if (!t.textContent.trim()) return false; }
for (const p of root.querySelectorAll('.js-plotly-plot')) { if (!p.querySelector('.main-svg')) return false; }
for (const g of root.querySelectorAll('g.geo')) { if (!g.querySelector('.layer.land path')) return false; }
for (const grid of root.querySelectorAll('.ag-root-wrapper')) {
  if (!grid.querySelector('.ag-center-cols-container .ag-row, .ag-overlay-no-rows-center')) return false;
}
const graphs = root.querySelectorAll('[id$="graph"]');
for (const g of graphs) { if (!g._cyreg || g._cyreg.cy.nodes().length === 0) return false; }
if (root.querySelector('[data-expect-graph="yes"]') && graphs.length === 0) return false;
return true;
"""


def browser_available() -> bool:
    """Whether Debian's chromium and chromium-driver are installed."""
    return bool((shutil.which("chromium") or shutil.which("chromium-browser")) and shutil.which("chromedriver"))


def open_browser(width: int = 1440, height: int = 900, profile: str | None = None) -> webdriver.Chrome:
    """Debian's headless Chromium through chromedriver, at ``width`` x ``height``."""
    binary, driver_path = (shutil.which("chromium") or shutil.which("chromium-browser"), shutil.which("chromedriver"))
    if not binary or not driver_path:
        raise RuntimeError("needs Debian's chromium and chromium-driver (make system-deps)")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", f"--window-size={width},{height}"):
        options.add_argument(arg)
    if profile:
        options.add_argument(f"--user-data-dir={profile}")
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.set_page_load_timeout(120)
    # The page itself (not the window around it) is width x height: screenshots come out at that size.
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})
    return driver


def sign_in(driver, base: str, user: str, password: str, timeout: float = 30.0) -> None:
    """Sign in through the login form (and wait until the session cookie is set)."""
    driver.get(base + "/login")
    driver.find_element("id", "username").send_keys(user)
    driver.find_element("id", "password").send_keys(password)
    driver.find_element("id", "login-button").click()
    started = time.perf_counter()
    while not driver.get_cookie("posguard_session"):
        if time.perf_counter() - started > timeout:
            raise RuntimeError(f"{user} could not sign in")
        time.sleep(0.05)


# Navigate inside the running app as its links do (no page load: the bundles stay parsed).
_PUSH_JS = """
window.history.pushState({}, '', arguments[0]);
window.dispatchEvent(new CustomEvent('_dashprivate_pushstate'));
window.scrollTo(0, 0);
"""
# The page that stands between two in-app navigations (its marker must be gone before the next is visible).
_BETWEEN = ("/no-match", "no-match")


def _wait_for(driver, script: str, timeout: float, what: str) -> None:
    started = time.perf_counter()
    while not driver.execute_script(script):
        if time.perf_counter() - started > timeout:
            raise TimeoutError(f"{what} not visible within {timeout} s")
        time.sleep(0.05)


def time_page(driver, url: str, timeout: float = 120.0, settle: float = 0.3, in_app: bool = False) -> float:
    """Seconds from navigation to ``url`` until VISIBLE_JS holds (and still holds ``settle`` s later).

    ``in_app``: navigate as a click on a link of the explorer does (the app already loaded in ``driver``, at
    its ``/no-match`` page first so that nothing of the previous page counts), instead of loading the URL.
    """
    check = VISIBLE_JS
    if in_app:
        parts = url.split("/", 3)
        path, base = "/" + (parts[3] if len(parts) > 3 else ""), "/".join(parts[:3])
        if not driver.current_url.startswith(base):
            driver.get(base + _BETWEEN[0])
        else:
            driver.execute_script(_PUSH_JS, _BETWEEN[0])
        _wait_for(driver, f"return !!document.getElementById('{_BETWEEN[1]}');", timeout, _BETWEEN[0])
        check = f"if (document.getElementById('{_BETWEEN[1]}')) return false;\n" + VISIBLE_JS
    started = time.perf_counter()
    if in_app:
        driver.execute_script(_PUSH_JS, path)
    else:
        driver.get(url)
    while True:
        if driver.execute_script(check):
            seen = time.perf_counter()
            time.sleep(settle)
            if driver.execute_script(check):
                return seen - started
        if time.perf_counter() - started > timeout:
            raise TimeoutError(f"{url} not visible within {timeout} s")
        time.sleep(0.05)


def summarise(seconds: list[float]) -> dict:
    """n, p50, p95 and max (milliseconds) of page times."""
    ms = np.asarray(seconds, dtype=float) * 1000
    if not len(ms):
        return {"n": 0, "p50_ms": None, "p95_ms": None, "max_ms": None}
    return {"n": len(ms), "p50_ms": round(float(np.percentile(ms, 50)), 1),
            "p95_ms": round(float(np.percentile(ms, 95)), 1), "max_ms": round(float(ms.max()), 1)}


def shot_name(path: str) -> str:
    """A file name (without extension) for the screenshot of ``path``."""
    return path.strip("/").replace("/", "-")[:40] or "queue"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("base")
    parser.add_argument("user")
    parser.add_argument("password")
    parser.add_argument("paths", nargs="+")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--shots", help="folder for a 1440x900 screenshot of each path")
    args = parser.parse_args(argv)
    driver = open_browser()
    try:
        sign_in(driver, args.base, args.user, args.password)
        out = {}
        for path in args.paths:
            seconds = [time_page(driver, args.base + path) for _ in range(args.reps)]
            out[path] = {"median_s": round(statistics.median(seconds), 2), "max_s": round(max(seconds), 2),
                         "runs": [round(s, 2) for s in seconds]}
            if args.shots:
                Path(args.shots).mkdir(parents=True, exist_ok=True)
                driver.save_screenshot(str(Path(args.shots) / f"{shot_name(path)}.png"))
        print(json.dumps(out, indent=1))
    finally:
        driver.quit()
    return 0


if __name__ == "__main__":
    sys.exit(main())
