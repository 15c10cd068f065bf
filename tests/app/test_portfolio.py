"""The merchant portfolio: trends per merchant and agent, currency, reference date, flags, clickable rows."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from app import portfolio_queries
from app.pages import portfolio as page
from tests.app.callbacks import call
from tests.app.conftest import PASSWORDS, WAIT

pytestmark = pytest.mark.neo4j


def _reference(db, weeks: int):
    """Weekly volume per merchant over the last ``weeks`` weeks, recomputed slowly from every transaction."""
    txns = pd.DataFrame(db.read("MATCH (:Card)-[r:TXN]->(t:Terminal)-[:INSTALLED_AT {current: true}]->(m:Merchant) "
                                "RETURN m.merchant_id AS merchant_id, r.ts.epochMillis AS ms, r.amount AS amount, "
                                "r.currency AS currency"))
    latest = db.read("MATCH ()-[r:TXN]->() RETURN max(r.ts).epochMillis AS ms")[0]["ms"]
    start = latest - weeks * 7 * 86_400_000
    inside = txns[txns["ms"] >= start]
    week = np.minimum((inside["ms"] - start) // (7 * 86_400_000), weeks - 1)
    table = inside.groupby([inside["merchant_id"], week])["amount"].sum().unstack(fill_value=0.0)
    return table.reindex(columns=range(weeks), fill_value=0.0), txns


def test_portfolio_trends_match_a_slow_reference(app_db):
    merchants, agents = portfolio_queries.portfolio(app_db)
    weeks = portfolio_queries.TREND_WEEKS
    expected, txns = _reference(app_db, weeks)
    trends = merchants.set_index("merchant_id")["trend"]
    assert all(len(t) == weeks for t in trends)
    assert (merchants["volume"] > 0).sum() >= 10  # the sample has active merchants
    for merchant_id, trend in trends.items():
        want = expected.loc[merchant_id].to_numpy() if merchant_id in expected.index else np.zeros(weeks)
        np.testing.assert_allclose(trend, want, rtol=1e-9, atol=0.011, err_msg=merchant_id)
    # an agent's trend is the sum of its merchants'
    for row in agents.itertuples():
        mine = merchants[merchants["agent_id"].isna()] if pd.isna(row.agent_id) else \
            merchants[merchants["agent_id"] == row.agent_id]
        np.testing.assert_allclose(row.trend, np.sum(np.stack(list(mine["trend"])), axis=0), atol=0.02)
    # the currency of the amounts (the sample's one currency), none for a merchant without transactions
    currencies = set(txns["currency"].dropna())
    assert len(currencies) == 1
    active = merchants["txns"] > 0
    assert set(merchants.loc[active, "currency"]) == currencies
    assert merchants.loc[~active, "currency"].isna().all()


def test_the_grid_opens_with_flagged_merchants_first_and_at_most_its_cap(monkeypatch):
    merchants = pd.DataFrame({"merchant_id": ["a", "b", "c", "d"], "volume": [5.0, 1.0, 9.0, 3.0],
                              "flag": [False, True, False, True]})
    monkeypatch.setattr(page, "MERCHANT_ROWS", 3)
    assert list(page.first_merchants(merchants)["merchant_id"]) == ["d", "b", "c"]


def test_currency_of_amounts():
    assert portfolio_queries._currency(["CNY", "CNY", None, float("nan")]) == "CNY"
    assert portfolio_queries._currency(["CNY", "EUR"]) == "mixed"
    assert portfolio_queries._currency([None]) is None


def test_portfolio_page_states_its_reference_date_and_draws_trends(client, app_db):
    response = client.post("/_dash-update-component", content_type="application/json", data=json.dumps({
        "output": "..\u005fpages_content.children..._pages_store.data..",
        "outputs": [{"id": "_pages_content", "property": "children"}, {"id": "_pages_store", "property": "data"}],
        "inputs": [{"id": "_pages_location", "property": "pathname", "value": "/portfolio"},
                   {"id": "_pages_location", "property": "search", "value": ""}],
        "changedPropIds": ["_pages_location.pathname"]}))
    assert response.status_code == 200
    text = response.get_data(as_text=True)
    latest = portfolio_queries.latest_transaction(app_db)
    assert "Reference date" in text and latest[:10] in text
    assert len(re.findall(r'"cellRenderer":\s*"Sparkline"', text)) == 2  # per agent and per merchant
    assert "params.data.currency" in text  # amounts shown in their currency


def test_an_agent_click_lists_its_merchants_and_a_merchant_click_opens_it(client, app_db):
    merchants, agents = portfolio_queries.portfolio(app_db)
    agent = agents.dropna(subset=["agent_id"]).iloc[0]["agent_id"]
    status, out = call(client, [("portfolio-merchants", "rowData"), ("portfolio-merchants-of", "children")],
                       [("portfolio-agents", "cellClicked", {"rowId": agent, "colId": "agent_id"}),
                        ("portfolio-all", "n_clicks", None)])
    assert status == 200
    shown = {r["merchant_id"] for r in out["portfolio-merchants.rowData"]}
    assert shown == set(merchants.loc[merchants["agent_id"] == agent, "merchant_id"]) and shown
    assert agent in out["portfolio-merchants-of.children"]
    status, out = call(client, [("portfolio-merchants", "rowData"), ("portfolio-merchants-of", "children")],
                       [("portfolio-agents", "cellClicked", {"rowId": agent}), ("portfolio-all", "n_clicks", 1)],
                       changed="portfolio-all.n_clicks")
    assert len(out["portfolio-merchants.rowData"]) == min(len(merchants), page.MERCHANT_ROWS)
    first = merchants.iloc[0]["merchant_id"]
    status, out = call(client, [("url", "pathname")],
                       [("portfolio-merchants", "cellClicked", {"rowId": first, "colId": "volume"})])
    assert status == 200 and out["url.pathname"] == f"/merchant/{first}"


def test_portfolio_in_the_browser_highlights_flags_and_opens_a_merchant(browser, live_url, app_db):
    browser.get(live_url + "/login")
    browser.find_element(By.ID, "username").send_keys("ann")
    browser.find_element(By.ID, "password").send_keys(PASSWORDS["ann"][1])
    browser.find_element(By.ID, "login-button").click()
    browser.get(live_url + "/portfolio")
    wait = WebDriverWait(browser, WAIT)
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#portfolio-merchants svg.pg-sparkline polyline"))
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#portfolio-agents svg.pg-sparkline polyline"))
    merchants, _ = portfolio_queries.portfolio(app_db)
    if merchants["flag"].any():
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#portfolio-merchants .ag-row.pg-flagged"))
    amount = browser.find_element(By.CSS_SELECTOR, "#portfolio-merchants .ag-row [col-id='volume']").text
    assert re.fullmatch(merchants["currency"].dropna().iloc[0] + r" \d{1,3}(,\d{3})*", amount), amount
    name_cell = browser.find_element(By.CSS_SELECTOR, "#portfolio-merchants .ag-row[row-index='0'] [col-id='name']")
    name_cell.click()
    wait.until(lambda d: "/merchant/" in d.current_url)
    wait.until(lambda d: d.find_elements(By.ID, "merchant-title"))


def test_growth_is_flagged_against_the_network_s_growth_not_a_constant():
    """A network that doubled as a whole flags no merchant for doubling; one that grew far beyond it is flagged."""
    rng = np.random.default_rng(3)
    previous = rng.integers(80, 120, 200)
    recent = rng.binomial(previous * 3, 2 / 3)  # every merchant about doubled: the network's growth
    recent[0], previous[0] = 400, 50  # eight times
    recent[1], previous[1] = 0, 0  # no transactions: nothing to test
    q = portfolio_queries._growth_q(recent, previous)
    assert q[0] <= 0.05 and q[1] == 1.0
    assert (q[2:] > 0.05).all()  # doubling is normal here; a constant "more than doubled" would flag about half
    assert ((recent[2:] / previous[2:]) > 2.0).sum() > 40
