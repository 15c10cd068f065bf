"""The explorer's speed: p50/p95 of its main queries, of each page until visible in headless Chromium, of
whole pages' data over HTTP, and under concurrent sessions (investigators with think time, and without).

Run by `posguard bench` on its temporary, loaded and scored database (never on a real one: it adds
synthetic alerts to reach a queue of ``alerts``).
"""

from __future__ import annotations

import http.cookiejar
import json
import logging
import time
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from app import entity_queries, live, pagetimes, queries, samples
from app.explorer import create_app
from graph.schema import ENTITY_KEYS
from graph.vocabulary import SEVERITIES
from graph.writeback import QUEUE_KEY

__all__ = ["bench_app"]

log = logging.getLogger("posguard.bench")

_KINDS = ("cloned_card", "skimming_point", "terminal_integrity", "ring")
# The load model of the concurrent sessions: an investigator reads a page for 3 to 8 s (uniform) before
# opening the next one.
THINK_S = (3.0, 8.0)


def _percentiles(seconds: list[float]) -> dict:
    ms = np.asarray(seconds) * 1000
    return {"n": len(ms), "p50_ms": round(float(np.percentile(ms, 50)), 1),
            "p95_ms": round(float(np.percentile(ms, 95)), 1), "max_ms": round(float(ms.max()), 1)}


def _timed(func, reps: int) -> dict:
    seconds = []
    for _ in range(reps):
        started = time.perf_counter()
        func()
        seconds.append(time.perf_counter() - started)
    return _percentiles(seconds)


def _pad_alerts(db, target: int, seed: int = 7) -> int:
    """Add synthetic alerts (about nothing real) until the queue holds ``target``; returns how many were added."""
    have = db.read("MATCH (a:Alert) RETURN count(a) AS n")[0]["n"]
    missing = max(0, target - have)
    rng = np.random.default_rng(seed)
    levels = SEVERITIES
    rows = [{"id": f"bench-{i:08d}", "kind": _KINDS[i % 4], "severity": levels[int(rng.integers(len(levels)))],
             "score": float(rng.random()), "status": "open", "entity_id": f"bench-{i}",
             "days": int(rng.integers(60))} for i in range(missing)]
    db.write_batches("""
UNWIND $rows AS row
CREATE (a:Alert {alert_id: row.id, kind: row.kind, severity: row.severity, score: row.score, status: row.status,
                 entity_type: 'card', entity_id: row.entity_id, active: true, summary: 'synthetic (bench)',
                 impact: 0, created_at: datetime() - duration({days: row.days})})
SET a.queue_key = """ + QUEUE_KEY, rows, batch_size=10_000)
    return missing


def _samples(db, entity_type: str, n: int) -> list[str]:
    """The ``n`` busiest entities of a type; label and key come from the schema's ENTITY_KEYS only."""
    label, key = ENTITY_KEYS[entity_type]
    rows = db.read(f"MATCH (x:{label})-[r]-() WITH x, count(r) AS d ORDER BY d DESC LIMIT $n RETURN x.{key} AS id",
                   n=n)
    return [r["id"] for r in rows]


_SECTIONS = {"card": (("timeline", "map"),), "terminal": (("timeline", "map"),), "merchant": (("timeline", "map"),),
             "ring": (("members",),)}  # outputs of each section callback of an entity page
# The callbacks a list page makes after it is routed: outputs, inputs (all None: no filter).
_LIST_CALLBACKS = {
    "": ([("queue-grid", "rowData"), ("queue-total", "children"), ("queue-query", "data")],
         [("queue-kind", "value"), ("queue-severity", "value"), ("queue-status", "value"),
          ("queue-assignee", "value"), ("queue-dates", "start_date"), ("queue-dates", "end_date"),
          ("queue-new", "value"), ("queue-assign-message", "children")]),
    "audit": ([("audit-grid", "rowData"), ("audit-total", "children")],
              [("audit-user", "value"), ("audit-action", "value"), ("audit-dates", "start_date"),
               ("audit-dates", "end_date")]),
}


def _callback_body(outputs: list[tuple[str, str]], inputs: list[tuple[str, str, object]],
                   state: list[tuple[str, str, object]] = ()) -> bytes:
    if len(outputs) == 1:
        output, outs = f"{outputs[0][0]}.{outputs[0][1]}", {"id": outputs[0][0], "property": outputs[0][1]}
    else:
        output = ".." + "...".join(f"{i}.{p}" for i, p in outputs) + ".."
        outs = [{"id": i, "property": p} for i, p in outputs]
    return json.dumps({"output": output, "outputs": outs,
                       "inputs": [{"id": i, "property": p, "value": v} for i, p, v in inputs],
                       "changedPropIds": [f"{inputs[0][0]}.{inputs[0][1]}"],
                       "state": [{"id": i, "property": p, "value": v} for i, p, v in state]}).encode()


def _page_bodies(path: str) -> list[bytes]:
    """The callback requests the browser makes for ``path``: the routed page, then each section of an entity
    page and its neighbourhood graph, an alert's evidence, a list page's rows."""
    bodies = [_callback_body([("_pages_content", "children"), ("_pages_store", "data")],
                             [("_pages_location", "pathname", path), ("_pages_location", "search", "")])]
    prefix, _, key = path.strip("/").partition("/")
    key = urllib.parse.unquote(key)
    for names in _SECTIONS.get(prefix, ()):
        bodies.append(_callback_body([(f"{prefix}-{name}-box", "children") for name in names],
                                     [(f"{prefix}-key", "data", key)]))
    if prefix in _SECTIONS:
        bodies.append(_callback_body([(f"{prefix}-graph", "elements"), (f"{prefix}-graph-note", "children")],
                                     [(f"{prefix}-key", "data", key), (f"{prefix}-graph", "tapNodeData", None)],
                                     [(f"{prefix}-graph", "elements", [])]))
    if prefix == "alert":
        bodies.append(_callback_body([("alert-evidence-box", "children")], [("alert-id", "data", key)]))
    if prefix in _LIST_CALLBACKS:
        outputs, inputs = _LIST_CALLBACKS[prefix]
        bodies.append(_callback_body(outputs, [(i, p, None) for i, p in inputs]))
    return bodies


def _session(base: str, user: str, password: str):
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    opener.open(base + "/login", data=urllib.parse.urlencode({"username": user, "password": password}).encode(),
                timeout=60)
    if not any(c.name == "posguard_session" for c in jar):
        raise RuntimeError("bench user could not sign in")
    return opener


def _get_page(opener, base: str, path: str) -> float:
    """Seconds to answer every callback of ``path`` (one after the other: an upper bound of the browser's)."""
    started = time.perf_counter()
    for body in _page_bodies(path):
        request = urllib.request.Request(base + "/_dash-update-component", data=body,
                                         headers={"Content-Type": "application/json"})
        with opener.open(request, timeout=120) as response:
            response.read()
            if response.status != 200:
                raise RuntimeError(f"{path}: HTTP {response.status}")
    return time.perf_counter() - started


def _browser_times(base: str, user: str, password: str, pages: dict[str, list[str]], reps: int,
                   timeout: float = 60.0) -> dict:
    """p50/p95 per page kind of the time until the page is visible in headless Chromium (``app.pagetimes``),
    opened by its URL (``load``: a full page load, the bundles from the browser's cache) and by a link inside
    the explorer (``link``: no page load, as an investigator moves from page to page): one warm-up page of each
    kind (not counted), then ``reps`` pages of it (its sample pages in turn) each way. A page not visible
    within ``timeout`` counts as ``timeout`` seconds (and in ``not_visible``)."""
    driver = pagetimes.open_browser()

    def timed(url: str, in_app: bool) -> float | None:
        try:
            return pagetimes.time_page(driver, url, timeout=timeout, in_app=in_app)
        except TimeoutError:
            log.warning("browser: %s not visible within %.0f s", url, timeout)
            return None

    try:
        pagetimes.sign_in(driver, base, user, password)
        out = {}
        for kind, paths in pages.items():
            measured = paths[:-1] if len(paths) > 1 else paths
            timed(base + paths[-1], False)  # warm-up: bundles cached, the kind's first request
            out[kind] = {"distinct_pages": min(reps, len(measured))}
            for way, in_app in (("load", False), ("link", True)):
                seconds = [timed(base + measured[i % len(measured)], in_app) for i in range(reps)]
                out[kind][way] = {**pagetimes.summarise([timeout if s is None else s for s in seconds]),
                                  "not_visible": sum(s is None for s in seconds)}
            log.info("browser: %s page p95 %.0f ms (load), %.0f ms (link)", kind, out[kind]["load"]["p95_ms"],
                     out[kind]["link"]["p95_ms"])
        return out
    finally:
        driver.quit()


def _investigator(base: str, user: str, password: str, paths: list[str], pages: int, think_s: tuple, seed: int):
    """One investigator's session: signs in, then ``pages`` times opens a random page (all its callbacks) and
    reads it for a uniform random ``think_s`` (low, high) seconds. Returns the page-data times."""
    rng = np.random.default_rng(seed)
    opener = _session(base, user, password)
    time.sleep(rng.uniform(0, think_s[1]))  # the sessions start at different moments
    seconds = []
    for _ in range(pages):
        seconds.append(_get_page(opener, base, paths[int(rng.integers(len(paths)))]))
        time.sleep(rng.uniform(*think_s))
    return seconds


def _load(base: str, user: str, password: str, paths: list[str], sessions: int, pages: int,
          think_s: tuple) -> dict:
    started = time.perf_counter()
    with ThreadPoolExecutor(sessions) as pool:
        results = pool.map(lambda i: _investigator(base, user, password, paths, pages, think_s, i), range(sessions))
        latencies = [s for result in results for s in result]
    wall = time.perf_counter() - started
    return {"sessions": sessions, "think_s": list(think_s), **_percentiles(latencies),
            "pages_per_s": round(len(latencies) / wall, 1)}


def bench_app(db, token_key: bytes, *, alerts: int = 100_000, sessions: int = 20, pages_per_session: int = 15,
              reps: int = 20, browser_reps: int = 10, think_s: tuple = THINK_S) -> dict:
    """Measure the explorer on ``db`` (loaded and scored): queries, pages in a browser and over HTTP, and
    concurrent sessions.

    Parameters
    ----------
    db : graph.db.Database
        A throw-away database: synthetic alerts are added to reach ``alerts``.
    token_key : bytes
    alerts : queue size to measure the queue at
    sessions : concurrent signed-in sessions of the load tests (each its own thread and cookie)
    pages_per_session : pages each session opens
    reps : repetitions of each single query
    browser_reps : pages of each kind timed in headless Chromium (0: no browser)
    think_s : (low, high) seconds an investigator reads a page before opening the next one (uniform)

    Returns
    -------
    dict: ``queries`` (p50/p95 per query), ``browser`` (time until visible per page kind, headless Chromium),
    ``pages`` (page data over HTTP, one session), ``concurrent`` (``sessions`` investigators with think time:
    the target) and ``saturation`` (the same sessions without think time: the capacity).
    """
    added = _pad_alerts(db, alerts)
    db.run("CALL db.awaitIndexes(300)")
    cards, terminals, merchants = (_samples(db, t, reps) for t in ("card", "terminal", "merchant"))
    top_alert = queries.queue_page(db, size=1)[0][0]["alert_id"]
    it = {"card": iter(cards * 3), "terminal": iter(terminals * 3), "merchant": iter(merchants * 3)}
    out: dict = {"alerts_in_queue": db.read("MATCH (a:Alert) RETURN count(a) AS n")[0]["n"],
                 "synthetic_alerts_added": added}
    out["queries"] = {
        "queue_first_page": _timed(lambda: queries.queue_page(db), reps),
        "queue_critical_only": _timed(lambda: queries.queue_page(db, severity="critical"), reps),
        "queue_page_200": _timed(lambda: queries.queue_page(db, page=200), reps),
        "alert": _timed(lambda: queries.alert(db, top_alert), reps),
        "card_entity": _timed(lambda: entity_queries.entity(db, "card", next(it["card"])), reps),
        "card_timeline": _timed(lambda: entity_queries.timeline(db, "card", next(it["card"])), reps),
        "terminal_timeline": _timed(lambda: entity_queries.timeline(db, "terminal", next(it["terminal"])), reps),
        "terminal_neighbourhood": _timed(lambda: entity_queries.neighbourhood(db, "terminal", next(it["terminal"])),
                                         reps),
        "merchant_timeline": _timed(lambda: entity_queries.timeline(db, "merchant", next(it["merchant"])), reps),
    }
    pages = samples.page_samples(db, n=max(browser_reps, 5) + 1)
    app = create_app(db, token_key=token_key, warm=True)  # as `posguard app` serves it
    with live.temporary_user(db, "bench") as (user, password), live.serving(app) as base:
        if browser_reps and pagetimes.browser_available():
            out["browser"] = _browser_times(base, user, password, pages, browser_reps)
        elif browser_reps:
            log.warning("explorer: no chromium and chromium-driver (make system-deps): pages not timed in a browser")
            out["browser"] = "skipped: no chromium"
        paths = [p for kind_paths in pages.values() for p in kind_paths]
        opener = _session(base, user, password)
        for path in paths[:3]:
            _get_page(opener, base, path)  # warm-up
        out["pages"] = {kind: _percentiles([_get_page(opener, base, kind_paths[i % len(kind_paths)])
                                            for i in range(min(reps, 3 * len(kind_paths)))])
                        for kind, kind_paths in pages.items()}
        out["concurrent"] = _load(base, user, password, paths, sessions, pages_per_session, think_s)
        out["saturation"] = _load(base, user, password, paths, sessions, pages_per_session, (0.0, 0.0))
    app.server.extensions["posguard_warm"].set()
    log.info("explorer: %d sessions with think time p95 %.0f ms (without: %.0f ms)", sessions,
             out["concurrent"]["p95_ms"], out["saturation"]["p95_ms"])
    return out
