"""The explorer's entity pages: properties and alerts, timelines, a busy entity's activity, neighbours, ring members."""

from __future__ import annotations

import pandas as pd

from app.query_values import shown_properties
from graph.schema import BROWSABLE_KEYS as _LABEL_KEYS, ENTITY_KEYS

__all__ = ["entity", "timeline", "daily_activity", "latest_transactions", "activity_positions", "can_expand",
           "neighbourhood", "ring_members"]

# A busy terminal's or merchant's transactions (up to ~20,000) are not shipped to the browser: their page
# reads a per-day aggregate (UTC days), the latest few transactions and the distinct positions, each in Cypher.
# The transactions of a terminal or a merchant (its terminals): c the card, r the TXN, t the terminal.
_ACTIVITY_MATCH = {
    "terminal": "MATCH (t:Terminal {terminal_id: $id}) MATCH (c:Card)-[r:TXN]->(t)",
    "merchant": "MATCH (t:Terminal)-[:INSTALLED_AT]->(:Merchant {merchant_id: $id}) MATCH (c:Card)-[r:TXN]->(t)",
}
_ACTIVITY = {
    "daily": """
WITH date(r.ts) AS day, r, c, c:Reported AS reported
RETURN toString(day) AS day, count(r) AS txns, sum(r.amount) AS amount, count(DISTINCT c) AS cards,
       count(CASE WHEN reported THEN 1 END) AS reported_txns, count(DISTINCT CASE WHEN reported THEN c END)
       AS reported_cards
ORDER BY day""",
    "latest": """
RETURN r.txn_id AS txn_id, toString(r.ts) AS ts, r.amount AS amount, r.currency AS currency,
       r.entry_mode AS entry_mode, r.txn_type AS txn_type, c.token AS card, c.pan_last4 AS last4,
       t.terminal_id AS terminal_id, c:Reported AS reported
ORDER BY r.ts DESC, r.txn_id DESC LIMIT $limit""",
    "distinct_positions": """
WHERE r.lat IS NOT NULL AND r.lon IS NOT NULL
WITH DISTINCT round(r.lat, 4) AS lat, round(r.lon, 4) AS lon
RETURN lat, lon LIMIT $limit""",
}
CYPHER = {
    # {label} and {key} come from ENTITY_KEYS only (labels cannot be parameters); the id is a parameter.
    "entity": "MATCH (n:{label} {{{key}: $id}}) "
              "OPTIONAL MATCH (a:Alert)-[:ABOUT]->(n) "
              "RETURN properties(n) AS props, labels(n) AS labels, "
              "collect(a {{.alert_id, .kind, .severity, .score, .status, .summary}}) AS alerts",
    # a merchant's alerts: about it, about its current terminals and about the rings it is a member of
    "entity_merchant": """
MATCH (n:Merchant {merchant_id: $id})
CALL (n) {
  CALL (n) {
    MATCH (a:Alert)-[:ABOUT]->(n) RETURN a
    UNION
    MATCH (a:Alert)-[:ABOUT]->(:Terminal)-[:INSTALLED_AT {current: true}]->(n) RETURN a
    UNION
    MATCH (a:Alert)-[:ABOUT]->(:Ring)<-[:MEMBER_OF]-(n) RETURN a
  }
  RETURN collect(a {.alert_id, .kind, .severity, .score, .status, .summary}) AS alerts
}
RETURN properties(n) AS props, labels(n) AS labels, alerts""",
    # a card's transactions with their ATC; positions fall back to the terminal's registered one (as the
    # cloned-card detector's travel test does by default)
    "timeline_card": "MATCH (:Card {token: $id})-[r:TXN]->(t:Terminal) RETURN r.txn_id AS txn_id, "
                     "toString(r.ts) AS ts, r.amount AS amount, r.entry_mode AS entry_mode, r.txn_type AS "
                     "txn_type, t.terminal_id AS counterpart, coalesce(r.lat, t.lat) AS lat, "
                     "coalesce(r.lon, t.lon) AS lon, r.atc AS atc ORDER BY r.ts, r.txn_id LIMIT $limit",
    "timeline_terminal": "MATCH (c:Card)-[r:TXN]->(:Terminal {terminal_id: $id}) RETURN r.txn_id AS txn_id, "
                         "toString(r.ts) AS ts, r.amount AS amount, r.entry_mode AS entry_mode, r.txn_type AS "
                         "txn_type, c.token AS counterpart, r.lat AS lat, r.lon AS lon, c:Reported AS reported "
                         "ORDER BY r.ts LIMIT $limit",
    "timeline_merchant": "MATCH (t:Terminal)-[:INSTALLED_AT]->(:Merchant {merchant_id: $id}) "
                         "MATCH (c:Card)-[r:TXN]->(t) RETURN r.txn_id AS txn_id, toString(r.ts) AS ts, "
                         "r.amount AS amount, r.entry_mode AS entry_mode, r.txn_type AS txn_type, "
                         "t.terminal_id AS counterpart, r.lat AS lat, r.lon AS lon ORDER BY r.ts LIMIT $limit",
    # {label} and {key} come from _LABEL_KEYS only (labels cannot be parameters); the id is a parameter.
    "neighbours": "MATCH (n:{label} {{{key}: $id}}) "
                  "MATCH (n)-[r]-(m) WHERE NOT m:Session AND NOT m:User AND NOT m:CaseEvent "
                  "WITH n, type(r) AS rel, startNode(r) = n AS outgoing, m, count(r) AS times "
                  "RETURN rel, outgoing, labels(m)[0] AS label, "
                  "coalesce(m.token, m.terminal_id, m.merchant_id, m.ring_id, m.alert_id, m.agent_id, m.hash, "
                  "m.run_id, m.case_id, m.name) AS id, "
                  "coalesce(m.pan_last4, m.kind, m.name, m.model) AS caption, m:Reported AS reported, times "
                  "ORDER BY times DESC, id LIMIT $limit",
    "neighbour_count": "MATCH (n:{label} {{{key}: $id}}) RETURN COUNT {{ (n)--() }} AS n",
    "ring_members": "MATCH (m)-[:MEMBER_OF]->(r:Ring {ring_id: $id}) RETURN labels(m)[0] AS type, "
                    "coalesce(m.token, m.terminal_id, m.merchant_id) AS id, m.pan_last4 AS last4, m.name AS name, "
                    "m.agent_id AS agent_id ORDER BY type, id",
    "ring_shared": "MATCH (m:Merchant)-[:MEMBER_OF]->(:Ring {ring_id: $id}) MATCH (m)-[r]->(x) "
                   "WHERE x:Owner OR x:Phone OR x:BankAccount OR x:Agent "
                   "WITH labels(x)[0] AS kind, coalesce(x.token, x.agent_id) AS shared, collect(m.merchant_id) AS ms "
                   "WHERE size(ms) > 1 RETURN kind, shared, ms ORDER BY kind, shared",
    "ring_txns": "MATCH (c:Card)-[:MEMBER_OF]->(:Ring {ring_id: $id}) MATCH (m:Merchant)-[:MEMBER_OF]->(:Ring "
                 "{ring_id: $id}) MATCH (c)-[r:TXN]->(:Terminal)-[:INSTALLED_AT]->(m) RETURN c.token AS card, "
                 "m.merchant_id AS merchant, toString(r.ts) AS ts, r.amount AS amount LIMIT $limit",
}

CYPHER.update({f"{name}_{entity_type}": match + body for name, body in _ACTIVITY.items()
               for entity_type, match in _ACTIVITY_MATCH.items()})


def entity(db, entity_type: str, entity_id: str) -> dict | None:
    """Properties, labels and alerts of a card, terminal, merchant or ring; None if absent. A merchant's
    alerts are also those about its current terminals and its rings (an investigator on a merchant page sees
    that one of its terminals is a point of compromise)."""
    label, key = ENTITY_KEYS[entity_type]
    query = CYPHER["entity_merchant"] if entity_type == "merchant" else CYPHER["entity"].format(label=label, key=key)
    rows = db.read(query, id=entity_id)
    if not rows:
        return None
    return {"props": shown_properties(rows[0]["props"]), "labels": rows[0]["labels"], "alerts": rows[0]["alerts"]}


def timeline(db, entity_type: str, entity_id: str, limit: int = 5_000) -> pd.DataFrame:
    """Transactions of a card, terminal or merchant in time order (at most ``limit``)."""
    query = CYPHER.get(f"timeline_{entity_type}")
    if query is None:
        return pd.DataFrame()
    frame = pd.DataFrame(db.read(query, id=entity_id, limit=limit))
    if len(frame):
        frame["ts"] = pd.to_datetime(frame["ts"], utc=True, format="ISO8601")
    return frame


def daily_activity(db, entity_type: str, entity_id: str) -> pd.DataFrame:
    """A terminal's or merchant's transactions per UTC day: ``day`` (Timestamp), ``txns``, ``amount``,
    ``cards`` (distinct), ``reported_txns`` and ``reported_cards`` (of cards reported as fraud victims)."""
    frame = pd.DataFrame(db.read(CYPHER[f"daily_{entity_type}"], id=entity_id),
                         columns=["day", "txns", "amount", "cards", "reported_txns", "reported_cards"])
    frame["day"] = pd.to_datetime(frame["day"], utc=True)
    return frame


def latest_transactions(db, entity_type: str, entity_id: str, limit: int = 100) -> list[dict]:
    """A terminal's or merchant's newest ``limit`` transactions, newest first (card token and last four only)."""
    return db.read(CYPHER[f"latest_{entity_type}"], id=entity_id, limit=int(limit))


def activity_positions(db, entity_type: str, entity_id: str, limit: int = 2_000) -> list[list]:
    """The distinct positions (to 1e-4 degree, about 10 m) a terminal's or merchant's transactions reported,
    at most ``limit``, as ``[lat, lon, None]`` (what ``figures.map_figure`` draws)."""
    rows = db.read(CYPHER[f"distinct_positions_{entity_type}"], id=entity_id, limit=int(limit))
    return [[r["lat"], r["lon"], None] for r in rows]


def can_expand(label: str | None) -> bool:
    """Whether the neighbourhood graph can expand a node with this label."""
    return label in _LABEL_KEYS


def neighbourhood(db, entity_type_or_label: str, entity_id: str, limit: int = 300) -> tuple[list[dict], int]:
    """Neighbours of one node (at most ``limit``, busiest first) and how many relationships it has in all."""
    label, key = ENTITY_KEYS.get(entity_type_or_label, (entity_type_or_label, None))
    if label not in _LABEL_KEYS:
        raise ValueError(f"no neighbourhood for node label {label!r}")
    key = _LABEL_KEYS[label]
    rows = db.read(CYPHER["neighbours"].format(label=label, key=key), id=entity_id, limit=int(limit))
    total = db.read(CYPHER["neighbour_count"].format(label=label, key=key), id=entity_id)
    return rows, (total[0]["n"] if total else 0)


def ring_members(db, ring_id: str, limit: int = 2_000) -> dict:
    """A ring's members, the identifiers its merchants share, and its transactions."""
    return {"members": db.read(CYPHER["ring_members"], id=ring_id),
            "shared": db.read(CYPHER["ring_shared"], id=ring_id),
            "txns": pd.DataFrame(db.read(CYPHER["ring_txns"], id=ring_id, limit=limit))}

