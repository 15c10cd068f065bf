"""The explorer's speed: p50/p95 of its main queries, of whole pages over HTTP, and under concurrent sessions.

Run by `posguard bench` on its temporary, loaded and scored database (never on a real one: it adds
synthetic alerts to reach a queue of ``alerts``).
"""

from __future__ import annotations

import http.cookiejar
import json
import logging
import secrets
import threading
import time
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from waitress.server import create_server

from app import queries, users
from app.explorer import create_app
from graph.schema import ENTITY_KEYS
from graph.vocabulary import SEVERITIES

__all__ = ["bench_app"]

log = logging.getLogger("posguard.bench")

_KINDS = ("cloned_card", "skimming_point", "terminal_integrity", "ring")


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
CREATE (:Alert {alert_id: row.id, kind: row.kind, severity: row.severity, score: row.score, status: row.status,
                entity_type: 'card', entity_id: row.entity_id, active: true, summary: 'synthetic (bench)',
                created_at: datetime() - duration({days: row.days})})""", rows, batch_size=10_000)
    return missing


def _samples(db, entity_type: str, n: int) -> list[str]:
    """The ``n`` busiest entities of a type; label and key come from the schema's ENTITY_KEYS only."""
    label, key = ENTITY_KEYS[entity_type]
    rows = db.read(f"MATCH (x:{label})-[r]-() WITH x, count(r) AS d ORDER BY d DESC LIMIT $n RETURN x.{key} AS id",
                   n=n)
    return [r["id"] for r in rows]


_SECTIONS = {"card": (("timeline", "map"),), "terminal": (("timeline", "map"),), "merchant": (("timeline", "map"),),
             "ring": (("members",),)}  # outputs of each section callback of an entity page


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
    page and its neighbourhood graph."""
    bodies = [_callback_body([("_pages_content", "children"), ("_pages_store", "data")],
                             [("_pages_location", "pathname", path), ("_pages_location", "search", "")])]
    prefix, _, key = path.strip("/").partition("/")
    for names in _SECTIONS.get(prefix, ()):
        bodies.append(_callback_body([(f"{prefix}-{name}-box", "children") for name in names],
                                     [(f"{prefix}-key", "data", key)]))
    if prefix in _SECTIONS:
        bodies.append(_callback_body([(f"{prefix}-graph", "elements"), (f"{prefix}-graph-note", "children")],
                                     [(f"{prefix}-key", "data", key), (f"{prefix}-graph", "tapNodeData", None)],
                                     [(f"{prefix}-graph", "elements", [])]))
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


def bench_app(db, token_key: bytes, *, alerts: int = 100_000, sessions: int = 20, pages_per_session: int = 15,
              reps: int = 20) -> dict:
    """Measure the explorer on ``db`` (loaded and scored): queries, pages over HTTP, concurrent sessions.

    Parameters
    ----------
    db : graph.db.Database
        A throw-away database: synthetic alerts are added to reach ``alerts``.
    token_key : bytes
    alerts : queue size to measure the queue at
    sessions : concurrent signed-in sessions of the load test (each its own thread and cookie)
    pages_per_session : pages each session requests
    reps : repetitions of each single query

    Returns
    -------
    dict: ``queries`` (p50/p95 per query), ``pages`` (one session), ``concurrent`` (all sessions at once).
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
        "card_entity": _timed(lambda: queries.entity(db, "card", next(it["card"])), reps),
        "card_timeline": _timed(lambda: queries.timeline(db, "card", next(it["card"])), reps),
        "terminal_timeline": _timed(lambda: queries.timeline(db, "terminal", next(it["terminal"])), reps),
        "terminal_neighbourhood": _timed(lambda: queries.neighbourhood(db, "terminal", next(it["terminal"])), reps),
        "merchant_timeline": _timed(lambda: queries.timeline(db, "merchant", next(it["merchant"])), reps),
    }
    password = secrets.token_urlsafe(16)
    users.add_user(db, "bench", "analyst", password)
    app = create_app(db, token_key=token_key)
    server = create_server(app.server, host="127.0.0.1", port=0, threads=8)
    base = f"http://127.0.0.1:{server.effective_port}"
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)  # "task queue depth" is expected under load here
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        paths = (["/"] + [f"/card/{c}" for c in cards] + [f"/terminal/{t}" for t in terminals]
                 + [f"/merchant/{m}" for m in merchants] + [f"/alert/{top_alert}"])
        opener = _session(base, "bench", password)
        for path in paths[:3]:
            _get_page(opener, base, path)  # warm-up
        out["pages"] = {"queue": _percentiles([_get_page(opener, base, "/") for _ in range(reps)])}
        for kind in ("card", "terminal", "merchant"):
            out["pages"][kind] = _percentiles([_get_page(opener, base, p) for p in paths
                                               if p.startswith(f"/{kind}/")])

        def one_session(i: int) -> list[float]:
            rng = np.random.default_rng(i)
            mine = _session(base, "bench", password)
            return [_get_page(mine, base, paths[int(rng.integers(len(paths)))]) for _ in range(pages_per_session)]

        started = time.perf_counter()
        with ThreadPoolExecutor(sessions) as pool:
            latencies = [s for result in pool.map(one_session, range(sessions)) for s in result]
        wall = time.perf_counter() - started
        out["concurrent"] = {"sessions": sessions, **_percentiles(latencies),
                             "pages_per_s": round(len(latencies) / wall, 1)}
    finally:
        server.close()
        thread.join(10)
        users.set_disabled(db, "bench", True)
    log.info("explorer: card page p50 %.0f ms, p95 %.0f ms; %d sessions p95 %.0f ms",
             out["pages"]["card"]["p50_ms"], out["pages"]["card"]["p95_ms"], sessions, out["concurrent"]["p95_ms"])
    return out
