"""`posguard screenshots`: a PNG of each main page of the explorer, taken in headless Chromium."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from app.samples import page_samples
from app.screenshots import shot_names
from app.users import list_users
from tests.helpers import posguard

pytestmark = pytest.mark.neo4j

MAIN_PAGES = {"queue", "card", "terminal", "merchant", "ring", "portfolio", "audit", "alert-cloned-card",
              "alert-skimming-point"}


def test_shot_names_show_each_page_kind_once():
    pages = {"queue": ["/"], "alert:skimming_point": ["/alert/a1", "/alert/a2"], "card": ["/card/c"],
             "exposed_cards": ["/alert/a1"], "alert:void_spike": ["/alert/v1"]}
    assert shot_names(pages) == {"queue": "/", "alert-skimming-point": "/alert/a1", "card": "/card/c"}
    pages["exposed_cards"] = ["/alert/a9"]  # a point with more exposed cards than the strongest alert
    assert shot_names(pages)["exposed-cards"] == "/alert/a9"


def test_screenshots_command_writes_a_drawn_png_of_every_main_page(app_env, app_db, tmp_path):
    out = tmp_path / "shots"
    result = posguard("screenshots", "--out", str(out), env=app_env)
    assert result.returncode == 0, result.stderr
    expected = set(shot_names(page_samples(app_db, n=1)))
    assert MAIN_PAGES <= expected
    written = {Path(line).stem for line in result.stdout.split()}
    assert written == expected == {p.stem for p in out.glob("*.png")}
    for name in expected:
        image = Image.open(out / f"{name}.png")
        assert image.size == (1440, 900), name
        # drawn, not a blank or a bare frame: many colours (charts, badges, grids) in the page
        assert len(image.convert("RGB").getcolors(1440 * 900)) > 200, name
    # the throw-away user the browser signed in as can no longer sign in
    assert [u["disabled"] for u in list_users(app_db) if u["name"] == "screenshots"] == [True]
