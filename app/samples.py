"""Which pages to open to time or to show the explorer: a few real pages of each kind, read from the database
(the busiest or strongest first: the worst case of a page, not a flattering one)."""

from __future__ import annotations

from urllib.parse import quote

from graph.schema import ENTITY_KEYS

__all__ = ["page_samples", "PAGE_KINDS", "CYPHER"]

# The pages of the explorer, as `posguard bench` reports them (an alert page per alert kind besides these).
PAGE_KINDS = ("queue", "card", "terminal", "merchant", "ring", "audit", "portfolio", "exposed_cards")

CYPHER = {
    # real alerts only (synthetic benchmark alerts are about nothing), strongest first
    "alert_kinds": "MATCH (a:Alert)-[:ABOUT]->() RETURN DISTINCT a.kind AS kind ORDER BY kind",
    "alerts": "MATCH (a:Alert {kind: $kind})-[:ABOUT]->() RETURN a.alert_id AS id "
              "ORDER BY a.score DESC, a.alert_id LIMIT $n",
    # the points of compromise with the longest exposed-card lists
    "exposed": "MATCH (a:Alert)-[:ABOUT]->(t:Terminal) WHERE a.kind IN ['skimming_point', 'compromised_terminal'] "
               "RETURN a.alert_id AS id, COUNT { (t)<-[:EXPOSED_AT]-() } AS n ORDER BY n DESC, id LIMIT $n",
    "rings": "MATCH (r:Ring) RETURN r.ring_id AS id ORDER BY r.size DESC, r.ring_id LIMIT $n",
    # {label} and {key} come from ENTITY_KEYS only
    "busiest": "MATCH (x:{label}) WITH x ORDER BY COUNT {{ (x)-[:TXN]-() }} DESC LIMIT $n RETURN x.{key} AS id",
    "busiest_merchants": "MATCH (m:Merchant)<-[:INSTALLED_AT]-(t:Terminal) WITH m, sum(COUNT { (t)<-[:TXN]-() }) "
                         "AS n ORDER BY n DESC LIMIT $n RETURN m.merchant_id AS id",
}


def _ids(db, query: str, n: int, **params) -> list[str]:
    return [r["id"] for r in db.read(query, n=int(n), **params)]


def page_samples(db, n: int = 5) -> dict[str, list[str]]:
    """Up to ``n`` paths per page kind: ``queue``, ``alert:<kind>`` for every alert kind present, ``card`` and
    ``terminal`` (the busiest), ``merchant`` (the busiest), ``ring`` (the largest), ``audit``, ``portfolio`` and
    ``exposed_cards`` (the point-of-compromise alerts with the longest exposed-card lists). Kinds with nothing
    to show are left out."""
    out: dict[str, list[str]] = {"queue": ["/"]}
    for kind in [r["kind"] for r in db.read(CYPHER["alert_kinds"])]:
        out[f"alert:{kind}"] = [f"/alert/{quote(i)}" for i in _ids(db, CYPHER["alerts"], n, kind=kind)]
    for entity_type in ("card", "terminal"):
        label, key = ENTITY_KEYS[entity_type]
        out[entity_type] = [f"/{entity_type}/{quote(i)}"
                            for i in _ids(db, CYPHER["busiest"].format(label=label, key=key), n)]
    out["merchant"] = [f"/merchant/{quote(i)}" for i in _ids(db, CYPHER["busiest_merchants"], n)]
    out["ring"] = [f"/ring/{quote(i)}" for i in _ids(db, CYPHER["rings"], n)]
    out["audit"] = ["/audit"]
    out["portfolio"] = ["/portfolio"]
    out["exposed_cards"] = [f"/alert/{quote(i)}" for i in _ids(db, CYPHER["exposed"], n)]
    return {kind: paths for kind, paths in out.items() if paths}
