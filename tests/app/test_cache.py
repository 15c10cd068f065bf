"""The explorer's results cache: kept per database version, computed once for concurrent callers."""

from __future__ import annotations

import threading
import time

import pytest

from app import context, portfolio_queries, queries
from app.cache import ResultCache, data_version, without_case_work
from app.explorer import WARM_CALLS, create_app
from app.pages import portfolio
from tests.app.callbacks import call
from tests.app.conftest import sign_in


def test_a_result_is_computed_once_and_kept():
    cache, calls = ResultCache(), []
    assert cache.get("k", lambda: calls.append(1) or 41) == 41
    assert cache.get("k", lambda: calls.append(1) or 42) == 41
    assert calls == [1] and (cache.hits, cache.misses) == (1, 1)


def test_concurrent_callers_wait_for_one_computation():
    cache, calls, gate = ResultCache(), [], threading.Event()

    def slow():
        calls.append(1)
        gate.wait(5)
        return "done"

    results = []
    threads = [threading.Thread(target=lambda: results.append(cache.get("k", slow))) for _ in range(8)]
    for t in threads:
        t.start()
    time.sleep(0.2)
    gate.set()
    for t in threads:
        t.join(5)
    assert results == ["done"] * 8 and calls == [1]


def test_expired_and_least_recent_results_are_dropped():
    cache = ResultCache(max_items=2, ttl_s=0.05)
    cache.get("a", lambda: 1)
    time.sleep(0.1)
    assert cache.get("a", lambda: 2) == 2  # expired: computed again
    cache.get("b", lambda: 3)
    cache.get("c", lambda: 4)  # "a" is the least recently used of three
    assert cache.get("a", lambda: 5) == 5 and cache.get("c", lambda: 6) == 4


def test_an_error_reaches_the_caller_and_is_not_kept():
    cache = ResultCache()
    with pytest.raises(ZeroDivisionError):
        cache.get("k", lambda: 1 / 0)
    assert cache.get("k", lambda: 7) == 7


@pytest.mark.neo4j
def test_a_decision_makes_a_new_data_version(app_db):
    """A cached queue or page never outlives a change: a comment (a case event) changes the version."""

    class Investigator:
        name = "cache-test"

        @staticmethod
        def can(right):
            return True

    before = data_version(app_db)
    assert data_version(app_db) == before
    alert_id = app_db.read("MATCH (a:Alert) RETURN a.alert_id AS id ORDER BY a.score, a.alert_id LIMIT 1")[0]["id"]
    queries.decide(app_db, alert_id, None, Investigator(), "seen by the cache test")
    assert data_version(app_db) != before
    # ... but not the version of what case work cannot change (the portfolio is not computed again)
    assert without_case_work(data_version(app_db)) == without_case_work(before)



def test_a_warm_app_computes_the_portfolio_before_anyone_asks(app_db, app_settings):
    """With warm=True the portfolio's aggregate (and the queue's first rows) are computed in the background:
    the first request for the portfolio page finds them in the cache; an app without it computes on request."""
    warm = create_app(app_db, token_key=app_settings.token_key, warm=True)
    try:
        cache = warm.server.extensions["posguard"]["cache"]
        deadline = time.monotonic() + 120
        while cache.misses < len(WARM_CALLS) or cache._pending:
            assert time.monotonic() < deadline, "the warmer computed nothing"
            time.sleep(0.2)
        misses = cache.misses
        client = warm.server.test_client()
        sign_in(client, "ivy")
        status, out = call(client, [("_pages_content", "children"), ("_pages_store", "data")],
                           [("_pages_location", "pathname", "/portfolio"), ("_pages_location", "search", "")])
        assert status == 200 and "Merchant portfolio" in str(out)
        assert cache.misses == misses and cache.hits >= 1  # answered from what the warmer computed
    finally:
        warm.server.extensions["posguard_warm"].set()
    cold = create_app(app_db, token_key=app_settings.token_key)
    assert "posguard_warm" not in cold.server.extensions
    assert cold.server.extensions["posguard"]["cache"].misses == 0
    assert portfolio.DAYS == WARM_CALLS[0][2]["days"]


def test_refresh_keeps_a_result_past_its_time_to_live():
    cache = ResultCache(ttl_s=0.05)
    cache.get("k", lambda: 1)
    time.sleep(0.1)
    assert cache.refresh("k") and not cache.refresh("other")
    assert cache.get("k", lambda: 2) == 1  # refreshed: not computed again
    time.sleep(0.1)
    assert cache.get("k", lambda: 3) == 3  # not refreshed again: expired


@pytest.mark.neo4j
def test_case_work_keeps_the_portfolio_cached_and_renews_the_queue(app_db, app_settings):
    app = create_app(app_db, token_key=app_settings.token_key)
    cache = app.server.extensions["posguard"]["cache"]

    def read():
        with app.server.test_request_context("/"):  # a new request: the version is read again
            context.cached(portfolio_queries.portfolio, days=portfolio.DAYS)
            context.cached(queries.queue_options)

    class Investigator:
        name = "cache-test-2"

        @staticmethod
        def can(right):
            return True

    read()
    assert cache.misses == 2
    alert_id = app_db.read("MATCH (a:Alert) RETURN a.alert_id AS id ORDER BY a.alert_id LIMIT 1")[0]["id"]
    queries.decide(app_db, alert_id, None, Investigator(), "the portfolio does not change")
    read()
    assert cache.misses == 3 and cache.hits == 1  # the queue's options read again, the portfolio from the cache
