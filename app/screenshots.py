"""Screenshots of the explorer's main pages (the README's), taken in headless Chromium at 1440x900.

``posguard screenshots --out docs/screenshots`` serves the explorer over the configured database in this
process, signs in as a throw-away read-only user (disabled afterwards), opens one real page of each kind
(``app.samples``), waits until it is visible (``app.pagetimes.VISIBLE_JS``) and saves ``<name>.png``.
"""

from __future__ import annotations

import logging
from pathlib import Path

from app import live, pagetimes, samples
from app.explorer import create_app

__all__ = ["SHOT_KINDS", "shot_names", "take_screenshots"]

log = logging.getLogger("posguard.app")



# The main pages (kinds of app.samples.page_samples) shown in the README.
SHOT_KINDS = ("queue", "alert:skimming_point", "alert:compromised_terminal", "alert:cloned_card", "exposed_cards",
              "card", "terminal", "merchant", "ring", "portfolio", "audit")


def shot_names(pages: dict[str, list[str]]) -> dict[str, str]:
    """File name (no extension) -> path: the first page of each of ``SHOT_KINDS`` present in ``pages``
    (``app.samples.page_samples``; ``alert-<kind>`` for alerts; the exposed-card list is on a
    point-of-compromise alert's page, shown once)."""
    shots = {kind.replace(":", "-").replace("_", "-"): pages[kind][0] for kind in SHOT_KINDS if pages.get(kind)}
    exposed = shots.pop("exposed-cards", None)
    if exposed is not None and exposed not in shots.values():
        shots["exposed-cards"] = exposed
    return shots


def take_screenshots(db, out: Path, *, token_key: bytes | None = None, user: str = "screenshots",
                     timeout: float = 120.0) -> dict[str, Path]:
    """Save a PNG of the first page of each kind the database has (``shot_names``: at least the queue, the
    portfolio and the audit log) under ``out``; returns name -> file.

    Parameters
    ----------
    db : graph.db.Database
        A loaded and scored database (read only, but for the throw-away user ``user``).
    out : Path
        Folder for the PNGs (created).
    token_key : bytes, optional
        Passed to the explorer (PAN search); nothing here uses it.
    user : str
        The throw-away analyst the browser signs in as.
    timeout : float
        Seconds to wait for a page to be visible.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    shots = shot_names(samples.page_samples(db, n=1))
    written: dict[str, Path] = {}
    with live.temporary_user(db, user) as (name, password), live.serving(create_app(db, token_key=token_key)) as base:
        driver = pagetimes.open_browser()
        try:
            pagetimes.sign_in(driver, base, name, password)
            for shot, page in shots.items():
                pagetimes.time_page(driver, base + page, timeout=timeout, settle=0.5)
                driver.execute_script("window.scrollTo(0, 0);")
                path = out / f"{shot}.png"
                driver.save_screenshot(str(path))
                written[shot] = path
        finally:
            driver.quit()
    log.info("screenshots: %d pages written to %s", len(written), out)
    return written
