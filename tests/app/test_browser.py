"""The explorer in a real headless Chromium: sign in, work an alert, expand the graph, decide, re-score, search,
the audit log, and nothing fetched from anywhere but the explorer itself."""

from __future__ import annotations

import json
import os
from pathlib import Path
from urllib.parse import urlsplit

from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from app.figures import GEO_RESOLUTION
from tests.app.conftest import PASSWORDS, WAIT
from tests.helpers import posguard


def _wait(driver, condition, timeout=WAIT):
    # A section drawn again while it is read (a figure replaced by its loaded version) is read again.
    return WebDriverWait(driver, timeout, ignored_exceptions=(StaleElementReferenceException,)).until(condition)


def _sign_in(driver, url, name, password):
    driver.get(url + "/")
    _wait(driver, ec.presence_of_element_located((By.ID, "login-form")))
    driver.find_element(By.ID, "username").send_keys(name)
    driver.find_element(By.ID, "password").send_keys(password)
    driver.find_element(By.ID, "login-button").click()


def _cy_nodes(driver, graph_id: str) -> int:
    return driver.execute_script(f"const g = document.querySelector('#{graph_id}');"
                                 "return g && g._cyreg ? g._cyreg.cy.nodes().length : -1;")


def _cy_elements(driver, graph_id: str) -> int:
    return driver.execute_script(f"const g = document.querySelector('#{graph_id}');"
                                 "return g && g._cyreg ? g._cyreg.cy.elements().length : -1;")


def _requested_urls(driver) -> list[str]:
    """Every URL the browser requested since the last call (Chromium's performance log)."""
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def _off_loopback(urls: list[str]) -> list[str]:
    """The URLs that went over the network to anywhere but this machine (the browser's own chrome:// pages,
    data: and blob: URLs never do)."""
    return [u for u in urls if urlsplit(u).scheme in ("http", "https", "ws", "wss", "ftp")
            and urlsplit(u).hostname not in ("127.0.0.1", "localhost", "::1")]


def _console_errors(driver) -> list[str]:
    """Errors the page logged since the last call (failed requests, uncaught exceptions, blocked fetches)."""
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def _choose(driver, dropdown_id: str, value: str):
    """Pick ``value`` in a dcc.Dropdown as a user does: bring it to the middle of the window (sections load
    above it and move it), open it, click the option."""
    dropdown = driver.find_element(By.ID, dropdown_id)
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", dropdown)
    dropdown.click()
    option = _wait(driver, ec.element_to_be_clickable(
        (By.XPATH, f"//label[@role='option'][.//input[@value='{value}']]")))
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", option)
    option.click()
    _wait(driver, lambda d: d.find_element(By.ID, f"{dropdown_id}-value").text == value)


def test_wrong_password_is_refused_in_the_browser(browser, live_url):
    _sign_in(browser, live_url, "ivy", "not-her-password")
    error = _wait(browser, ec.presence_of_element_located((By.ID, "login-error")))
    assert "Wrong user name or password" in error.text
    browser.get(live_url + "/portfolio")
    _wait(browser, ec.presence_of_element_located((By.ID, "login-form")))
    assert "/login" in browser.current_url


def test_investigator_works_an_alert_end_to_end(browser, live_url, app_env, app_db, raw_pans, tmp_path):
    _sign_in(browser, live_url, "ivy", PASSWORDS["ivy"][1])
    # The queue (severity, impact, score); open the top cloned-card alert through its link.
    _wait(browser, ec.presence_of_element_located((By.CSS_SELECTOR, "#queue-grid a[href^='/alert/']")))
    assert "ivy (investigator)" in browser.find_element(By.ID, "whoami").text
    top = app_db.read("MATCH (a:Alert {active: true, kind: 'cloned_card'}) RETURN a.alert_id AS id, "
                      "a.entity_id AS card ORDER BY a.score DESC LIMIT 1")[0]
    browser.save_screenshot(str(tmp_path / "1-queue.png"))
    browser.get(f"{live_url}/alert/{top['id']}")
    link = _wait(browser, ec.element_to_be_clickable((By.ID, "alert-entity-link")))
    assert top["card"] in link.text

    # The card's page: the neighbourhood graph grows when a node is clicked.
    link.click()
    _wait(browser, lambda d: _cy_nodes(d, "card-graph") > 1)
    before = _cy_nodes(browser, "card-graph")
    browser.save_screenshot(str(tmp_path / "2-card.png"))
    browser.execute_script("const cy = document.querySelector('#card-graph')._cyreg.cy;"
                           "cy.nodes().filter(n => n.data('kind') === 'Terminal')[0].emit('tap');")
    _wait(browser, lambda d: _cy_nodes(d, "card-graph") > before)
    assert "elements drawn" in browser.find_element(By.ID, "card-graph-note").text
    browser.find_element(By.ID, "card-graph").screenshot(str(tmp_path / "3-expanded-graph.png"))
    assert not _console_errors(browser)  # e.g. a map that fetches outlines from a CDN the machine cannot reach

    # Decide the case: confirmed, with a comment; the audit trail shows it.
    browser.get(f"{live_url}/alert/{top['id']}")
    _wait(browser, ec.element_to_be_clickable((By.ID, "alert-save")))
    _choose(browser, "alert-decision", "confirmed")
    browser.find_element(By.ID, "alert-comment").send_keys("card reissued")
    browser.find_element(By.ID, "alert-save").click()
    _wait(browser, ec.text_to_be_present_in_element((By.ID, "alert-message"), "saved"))
    _wait(browser, ec.text_to_be_present_in_element((By.ID, "alert-audit"), "card reissued"))
    assert browser.find_element(By.ID, "alert-comment").get_attribute("value") == ""  # cleared once saved
    browser.save_screenshot(str(tmp_path / "4-decided.png"))

    # Re-score: the decision stays on the alert and in the audit trail.
    result = posguard("score", "--out", str(tmp_path / "rescored"), "--quiet", env=app_env)
    assert result.returncode == 0, result.stderr
    browser.refresh()
    status = _wait(browser, ec.presence_of_element_located((By.ID, "alert-status")))
    assert status.text == "confirmed"
    _wait(browser, ec.text_to_be_present_in_element((By.ID, "alert-audit"), "card reissued"))

    # Search by a raw PAN: the server tokenizes it, the page shows only the last four digits.
    pan = sorted(raw_pans)[0]
    box = browser.find_element(By.ID, "search")
    box.send_keys(pan, Keys.ENTER)
    _wait(browser, ec.url_contains("/card/"))
    _wait(browser, lambda d: _cy_nodes(d, "card-graph") > 1)
    assert f"**** {pan[-4:]}" in browser.find_element(By.ID, "_pages_content").text
    assert browser.find_element(By.ID, "search").get_attribute("value") == ""
    assert pan not in browser.page_source
    browser.save_screenshot(str(tmp_path / "5-search.png"))

    # A search that matches nothing: a "no match" page, and the previous card is no longer on screen.
    browser.find_element(By.ID, "search").send_keys("T-no-such-terminal", Keys.ENTER)
    _wait(browser, ec.url_contains("/no-match"))
    _wait(browser, ec.presence_of_element_located((By.ID, "no-match")))
    assert f"**** {pan[-4:]}" not in browser.find_element(By.ID, "_pages_content").text
    assert not browser.find_elements(By.ID, "card-title")

    # A skimming point's page: window, victims' later use on a base map, cards grouped; nothing from elsewhere.
    terminal = app_db.read("MATCH (t:Terminal) WHERE t.skim_window_start IS NOT NULL "
                           "RETURN t.terminal_id AS id ORDER BY t.skim_score DESC LIMIT 1")[0]["id"]
    browser.get(f"{live_url}/terminal/{terminal}")
    _wait(browser, lambda d: _cy_nodes(d, "terminal-graph") > 1)
    _wait(browser, ec.text_to_be_present_in_element((By.ID, "terminal-map"), "victims"))
    _wait(browser, lambda d: d.execute_script(
        "const p = document.querySelector('#terminal-map g.layer.land path');"
        "return p ? (p.getAttribute('d') || '').length : 0;") > 500)  # land outlines drawn
    browser.find_element(By.ID, "terminal-map").screenshot(str(tmp_path / "6-skimming-map.png"))
    drawn = _cy_elements(browser, "terminal-graph")
    assert 1 < drawn <= 150
    browser.execute_script("const cy = document.querySelector('#terminal-graph')._cyreg.cy;"
                           "cy.nodes().filter(n => n.data('kind') === 'Group')[0].emit('tap');")
    _wait(browser, lambda d: _cy_elements(d, "terminal-graph") > drawn)
    assert _cy_elements(browser, "terminal-graph") <= 150
    assert browser.execute_script("return document.querySelector('#terminal-graph')._cyreg.cy"
                                  ".nodes(':child').length") > 0
    assert not _console_errors(browser)

    # The audit log of every alert shows the decision.
    browser.get(f"{live_url}/audit")
    _wait(browser, ec.text_to_be_present_in_element((By.ID, "audit-grid"), "card reissued"))
    browser.save_screenshot(str(tmp_path / "7-audit.png"))

    # Nothing the browser fetched in this whole walk left the machine; the base map came from the explorer.
    urls = _requested_urls(browser)
    assert any(urlsplit(u).path == f"/assets/world_{GEO_RESOLUTION}m.json" for u in urls)
    assert len([u for u in urls if urlsplit(u).hostname == "127.0.0.1"]) > 20
    assert not _off_loopback(urls), _off_loopback(urls)
    assert _off_loopback(["https://cdn.plot.ly/un/world_50m.json", "http://127.0.0.1:1/x", "data:,x"]) == [
        "https://cdn.plot.ly/un/world_50m.json"]


def test_analyst_cannot_decide_in_the_browser(browser, live_url, app_db):
    _sign_in(browser, live_url, "ann", PASSWORDS["ann"][1])
    _wait(browser, ec.presence_of_element_located((By.ID, "queue-grid")))
    alert_id = app_db.read("MATCH (a:Alert) RETURN a.alert_id AS id ORDER BY a.score DESC LIMIT 1")[0]["id"]
    browser.get(f"{live_url}/alert/{alert_id}")
    save = _wait(browser, ec.presence_of_element_located((By.ID, "alert-save")))
    assert not save.is_enabled()
    browser.find_element(By.ID, "logout").click()
    _wait(browser, ec.presence_of_element_located((By.ID, "login-form")))
    browser.get(f"{live_url}/alert/{alert_id}")
    _wait(browser, ec.presence_of_element_located((By.ID, "login-form")))


def _shot(driver, tmp_path, name: str) -> None:
    """A full-window screenshot into the test's folder, and into ``$POSGUARD_SCREENSHOTS`` when set."""
    driver.save_screenshot(str(tmp_path / name))
    if os.environ.get("POSGUARD_SCREENSHOTS"):
        Path(os.environ["POSGUARD_SCREENSHOTS"]).mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(Path(os.environ["POSGUARD_SCREENSHOTS"]) / name))


def _grid_rows(driver, grid_id: str) -> list:
    return driver.find_elements(By.CSS_SELECTOR, f"#{grid_id} .ag-center-cols-container .ag-row")


def test_investigator_finishes_a_skimming_case_and_sees_a_clones_evidence(browser, live_url, app_db, tmp_path):
    browser.set_window_size(1440, 900)
    _sign_in(browser, live_url, "ivy", PASSWORDS["ivy"][1])
    _wait(browser, ec.presence_of_element_located((By.ID, "queue-grid")))
    point = app_db.read("MATCH (a:Alert {active: true, kind: 'skimming_point'})-[:ABOUT]->(t:Terminal)"
                        "<-[e:EXPOSED_AT {mode: 'skimming'}]-(:Card) RETURN a.alert_id AS id, t.terminal_id AS "
                        "terminal, count(e) AS n ORDER BY n DESC LIMIT 1")[0]

    # The skimming alert opens with why, in words, then its victims over time, then the cards at risk.
    browser.get(f"{live_url}/alert/{point['id']}")
    why = _wait(browser, ec.presence_of_element_located((By.ID, "alert-explanation")))
    assert "shared skimming point" in why.text and "Written at scoring time by detector skimming" in why.text
    _wait(browser, lambda d: len(_grid_rows(d, "alert-exposed-grid")) > 5)
    _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#alert-evidence-chart .bars path"))
    assert f"{point['n']:,} cards exposed at {point['terminal']}" in browser.find_element(
        By.ID, "alert-exposed-intro").text
    _shot(browser, tmp_path, "skimming-alert.png")

    # Choose two undecided cards with their checkboxes, reissue them in one click.
    undecided = [r for r in _grid_rows(browser, "alert-exposed-grid")
                 if not r.find_element(By.CSS_SELECTOR, "[col-id='decision']").text.strip()][:2]
    last4 = [r.find_element(By.CSS_SELECTOR, "[col-id='card']").text for r in undecided]
    reissued_before = sum(r.find_element(By.CSS_SELECTOR, "[col-id='decision']").text.strip() == "reissue"
                          for r in _grid_rows(browser, "alert-exposed-grid"))
    for row in undecided:
        row.find_element(By.CSS_SELECTOR, ".ag-selection-checkbox input").click()
    browser.find_element(By.ID, "alert-cards-reissue").click()
    _wait(browser, ec.text_to_be_present_in_element((By.ID, "alert-cards-message"), "reissue: 2 cards recorded"))
    _wait(browser, ec.text_to_be_present_in_element((By.ID, "alert-audit"), "card reissue"))
    for card in last4:
        assert card in browser.find_element(By.ID, "alert-audit").text
    decided = [r.find_element(By.CSS_SELECTOR, "[col-id='card']").text for r in _grid_rows(browser, "alert-exposed-grid")
               if r.find_element(By.CSS_SELECTOR, "[col-id='decision']").text.strip() == "reissue"]
    assert set(last4) <= set(decided) and len(decided) == reissued_before + 2
    _shot(browser, tmp_path, "skimming-alert-decided.png")

    # The audit log of every alert shows the decision per card.
    browser.get(f"{live_url}/audit")
    _wait(browser, ec.text_to_be_present_in_element((By.ID, "audit-grid"), "card reissue"))
    assert all(card in browser.find_element(By.ID, "audit-grid").text for card in last4)

    # A cloned card's alert: why, the evidence highlighted on timeline and map, the travel pair, the ATC.
    clone = app_db.read("MATCH (a:Alert {active: true, kind: 'cloned_card'})-[:ABOUT]->(c:Card) "
                        "WHERE c.clone_reasons CONTAINS 'impossible_travel' RETURN a.alert_id AS id "
                        "ORDER BY a.score DESC, a.alert_id LIMIT 1")[0]
    browser.get(f"{live_url}/alert/{clone['id']}")
    why = _wait(browser, ec.presence_of_element_located((By.ID, "alert-explanation")))
    assert "looks cloned" in why.text and "impossible travel" in why.text
    travel = _wait(browser, ec.presence_of_element_located((By.ID, "alert-travel")))
    assert "km/h" in travel.text and " km" in travel.text and " min" in travel.text
    _wait(browser, lambda d: "evidence" in d.find_element(By.ID, "alert-evidence-chart").text)
    _wait(browser, lambda d: d.execute_script(
        "const p = document.querySelector('#alert-evidence-map g.layer.land path');"
        "return p ? (p.getAttribute('d') || '').length : 0;") > 500)
    _wait(browser, lambda d: "ATC" in d.find_element(By.ID, "alert-atc-chart").text)
    _shot(browser, tmp_path, "clone-alert.png")
    browser.execute_script("document.getElementById('alert-evidence-chart').scrollIntoView();")
    _shot(browser, tmp_path, "clone-alert-evidence.png")
    assert not _console_errors(browser)
    assert not _off_loopback(_requested_urls(browser))
