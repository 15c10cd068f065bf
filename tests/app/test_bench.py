"""The explorer's benchmark (app.bench, run by `posguard bench`): the pages it opens and how it times them."""

from __future__ import annotations

import json

import pytest

from app import bench, pagetimes
from app.samples import PAGE_KINDS, page_samples
from tests.app.conftest import PASSWORDS

pytestmark = pytest.mark.neo4j


def test_page_samples_cover_every_page_kind_and_alert_kind(app_db):
    pages = page_samples(app_db, n=3)
    kinds = {r["kind"] for r in app_db.read("MATCH (a:Alert)-[:ABOUT]->() RETURN DISTINCT a.kind AS kind")}
    assert set(pages) == set(PAGE_KINDS) | {f"alert:{k}" for k in kinds}
    assert all(1 <= len(paths) <= 3 for paths in pages.values())
    busiest = app_db.read("MATCH (t:Terminal) RETURN t.terminal_id AS id ORDER BY COUNT { (t)<-[:TXN]-() } DESC "
                          "LIMIT 1")[0]["id"]
    assert pages["terminal"][0] == f"/terminal/{busiest}"  # the worst case first


def test_page_requests_are_the_ones_the_pages_answer(client, app_db):
    """Every callback request the load test sends for a page is answered with data (200, not "no update"),
    so the concurrent figures measure the pages' real work."""
    for kind, paths in page_samples(app_db, n=1).items():
        bodies = bench._page_bodies(paths[0])
        assert len(bodies) >= (1 if kind == "portfolio" else 2), kind
        for body in bodies:
            response = client.post("/_dash-update-component", data=body, content_type="application/json")
            assert response.status_code == 200, (kind, json.loads(body)["output"])
            assert json.loads(response.data)["response"], kind


def test_browser_times_every_page_kind_until_visible(live_url, app_db):
    pages = page_samples(app_db, n=2)
    times = bench._browser_times(live_url, "ann", PASSWORDS["ann"][1], pages, reps=2)
    assert set(times) == set(pages)
    for kind, t in times.items():
        for way in ("load", "link"):
            assert t[way]["n"] == 2 and 0 < t[way]["p50_ms"] <= t[way]["p95_ms"] <= t[way]["max_ms"] < 60_000, kind


def test_a_page_opened_by_a_link_is_timed_until_its_own_content_is_drawn(live_url, app_db, browser):
    """In-app navigation: the previous page on screen does not count as the next one being visible."""
    pagetimes.sign_in(browser, live_url, "ann", PASSWORDS["ann"][1])
    terminal = page_samples(app_db, n=1)["terminal"][0]
    pagetimes.time_page(browser, live_url + terminal)
    seconds = pagetimes.time_page(browser, live_url + terminal, in_app=True)
    assert seconds > 0 and browser.current_url.endswith(terminal)
    assert browser.execute_script(pagetimes.VISIBLE_JS)
    assert browser.find_elements("id", "terminal-graph") and not browser.find_elements("id", "no-match")
