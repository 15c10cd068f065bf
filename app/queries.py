"""The explorer's reads and writes: named, parameterised Cypher and the functions that run it."""

from __future__ import annotations

import csv
import io
import json
import math
import zipfile
from datetime import datetime, timezone

import numpy as np
import pandas as pd

from graph.detectors.significance import REPORT_Q, bh_qvalues
from graph.kernels.tails import log_binom_sf
from graph.schema import BROWSABLE_KEYS as _LABEL_KEYS, ENTITY_KEYS
from graph.vocabulary import CARD_DECISIONS, OPEN_STATUSES, POINT_KIND_OF_MODE, STATUSES

__all__ = ["queue_page", "queue_options", "queue_summary", "last_run",
           "audit_log", "audit_options", "alert", "alert_evidence", "entity",
           "timeline", "can_expand", "neighbourhood", "positions", "audit_trail", "decide", "assign", "case_bundle",
           "portfolio", "latest_transaction", "daily_activity", "latest_transactions", "activity_positions",
           "ring_members", "skimming_victims", "exposed_cards", "decide_cards",
           "card_exposures", "terminal_exposures", "exposure_window", "exposed_csv", "EXPOSURE_MODE",
           "EXPOSED_CSV_COLUMNS", "TREND_WEEKS", "CASE_FREE"]

TREND_WEEKS = 12  # the portfolio's trend: weekly volume over the last 12 weeks
# The exposure mode behind each point-of-compromise alert kind (EXPOSED_AT.mode).
EXPOSURE_MODE = {kind: mode for mode, kind in POINT_KIND_OF_MODE.items()}
# Properties never shown or exported (none is SECRET: tokens only; these are just noise for investigators).
_HIDDEN = {"run_id", "score_run", "skim_run", "clone_run", "integrity_run"}

_FILTER = """
MATCH (a:Alert)
WHERE ($kind IS NULL OR a.kind = $kind) AND ($severity IS NULL OR a.severity = $severity)
  AND ($status IS NULL OR a.status = $status) AND ($assignee IS NULL OR a.assignee = $assignee)
  AND ($since IS NULL OR a.created_at >= $since) AND ($until IS NULL OR a.created_at < $until)
  AND ($new_since IS NULL OR a.first_raised_at >= $new_since)
  AND ($active_only = false OR a.active)
"""
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
# The queue's default order: severity first, then impact (how many cards are at risk: a point of compromise's
# exposed cards, those that used it inside its window, the members of a ring, the one card of a cloned-card
# alert; 0 for a terminal finding), then score: the order of ``queue_key``, which the scoring run's write-back stores on every alert
# (graph.writeback.QUEUE_KEY) with a range index, so a page is read in index order (no sort of every alert).
# ``impact`` and ``evidence_at`` (the first cloning evidence of a card, the end of a point's window, a
# finding's first sighting, a cash-out ring's first transaction) are stored by the same write-back (graph.queue); alerts without an evidence
# date show the time they were first raised.
CYPHER = {
    "queue": _FILTER + """  AND a.queue_key IS NOT NULL
RETURN a.alert_id AS alert_id, a.severity AS severity, a.kind AS kind, a.entity_type AS entity_type,
       a.entity_id AS entity_id, a.score AS score, a.status AS status, a.assignee AS assignee,
       toString(a.created_at) AS created_at, toString(a.evidence_at) AS evidence_at,
       toString(a.first_raised_at) AS first_raised_at, coalesce(a.impact, 0) AS impact, a.summary AS summary
ORDER BY a.queue_key SKIP $skip LIMIT $limit""",
    "queue_count": _FILTER + "RETURN count(a) AS n",
    "alert_evidence": "MATCH (a:Alert {alert_id: $id}) "
                      "RETURN toString(a.evidence_at) AS evidence_at, coalesce(a.impact, 0) AS impact",
    "options": "MATCH (a:Alert) RETURN collect(DISTINCT a.kind) AS kinds, collect(DISTINCT a.assignee) AS assignees",
    "last_run": "MATCH (r:ScoreRun) RETURN r.run_id AS run_id, r.created_at AS at ORDER BY r.created_at DESC LIMIT 1",
    "summary": """
MATCH (a:Alert) WHERE a.active AND a.status IN $open_statuses
RETURN a.kind AS kind, a.severity AS severity, count(a) AS n,
       count(CASE WHEN $new_since IS NOT NULL AND a.first_raised_at >= $new_since THEN 1 END) AS new,
       count(CASE WHEN a.assignee = $user THEN 1 END) AS mine
ORDER BY kind, severity""",
    "audit_log": """
MATCH (e:CaseEvent)-[:CONCERNS]->(a:Alert)
WHERE ($user IS NULL OR e.user = $user) AND ($action IS NULL OR e.action = $action)
  AND ($since IS NULL OR e.at >= $since) AND ($until IS NULL OR e.at < $until)
RETURN toString(e.at) AS at, e.user AS user, e.action AS action, a.alert_id AS alert_id, a.kind AS kind,
       e.before AS before, e.after AS after, e.comment AS comment, e.last4 AS card
ORDER BY e.at DESC, e.seq DESC LIMIT $limit""",
    "audit_options": "MATCH (e:CaseEvent) RETURN collect(DISTINCT e.user) AS users, collect(DISTINCT e.action) AS actions",
    "alert": "MATCH (a:Alert {alert_id: $id}) RETURN properties(a) AS a",
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
    "positions": "MATCH (t:Terminal {terminal_id: $id}) OPTIONAL MATCH (:Card)-[r:TXN]->(t) "
                 "WHERE r.lat IS NOT NULL RETURN t.lat AS reg_lat, t.lon AS reg_lon, "
                 "collect([r.lat, r.lon, toString(r.ts)])[..$limit] AS seen",
    "audit": "MATCH (e:CaseEvent)-[:CONCERNS]->(:Alert {alert_id: $id}) RETURN toString(e.at) AS at, e.user AS user, "
             "e.action AS action, e.before AS before, e.after AS after, e.comment AS comment, e.last4 AS card "
             "ORDER BY e.at, e.seq",
    "decide": """
MATCH (a:Alert {alert_id: $id})
WITH a, a.status AS before
SET a.status = $status, a.decided_by = $user, a.decided_at = datetime()
CREATE (e:CaseEvent {at: datetime(), seq: timestamp(), user: $user, action: 'status', before: before,
                     after: $status, comment: $comment})-[:CONCERNS]->(a)
RETURN before""",
    "comment": """
MATCH (a:Alert {alert_id: $id})
CREATE (e:CaseEvent {at: datetime(), seq: timestamp(), user: $user, action: 'comment', comment: $comment})
       -[:CONCERNS]->(a)""",
    "assign": """
UNWIND $ids AS id
MATCH (a:Alert {alert_id: id})
WITH a, a.assignee AS before
SET a.assignee = $assignee
CREATE (e:CaseEvent {at: datetime(), seq: timestamp(), user: $user, action: 'assign', before: before,
                     after: $assignee, comment: null})-[:CONCERNS]->(a)
RETURN count(a) AS n""",
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
    # One pass over the transactions per merchant; week: of the trend (0 = oldest; null before the trend).
    "portfolio": """
MATCH (m:Merchant)
OPTIONAL MATCH (m)-[:SIGNED_BY]->(ag:Agent)
OPTIONAL MATCH (t:Terminal)-[:INSTALLED_AT {current: true}]->(m)
OPTIONAL MATCH ()-[r:TXN]->(t)
WITH m, ag, t, r, CASE WHEN r.ts >= $trend_start THEN (r.ts.epochMillis - $trend_ms) / 604800000 END AS week
WITH m, ag, count(DISTINCT t) AS terminals, count(r) AS txns, sum(r.amount) AS volume,
     sum(CASE WHEN r.ts >= $recent THEN r.amount ELSE 0 END) AS recent,
     sum(CASE WHEN r.ts >= $previous AND r.ts < $recent THEN r.amount ELSE 0 END) AS previous,
     count(CASE WHEN r.ts >= $recent THEN 1 END) AS recent_n,
     count(CASE WHEN r.ts >= $previous AND r.ts < $recent THEN 1 END) AS previous_n,
     collect(DISTINCT r.currency) AS currencies, """ + ", ".join(
        f"sum(CASE WHEN week {'>=' if w == TREND_WEEKS - 1 else '='} {w} THEN r.amount ELSE 0 END) AS w{w}"
        for w in range(TREND_WEEKS)) + """
RETURN m.merchant_id AS merchant_id, m.name AS name, m.mcc AS mcc, ag.agent_id AS agent_id, terminals, txns,
       volume, recent, previous, recent_n, previous_n, currencies,
       [""" + ", ".join(f"w{w}" for w in range(TREND_WEEKS)) + """] AS trend,
       EXISTS { (m)-[:MEMBER_OF]->(:Ring) } AS in_ring
ORDER BY volume DESC, merchant_id""",
    "latest_txn": "MATCH ()-[r:TXN]->() RETURN max(r.ts) AS latest",
    "exposed": """
MATCH (c:Card)-[e:EXPOSED_AT]->(:Terminal {terminal_id: $id}) WHERE ($mode IS NULL OR e.mode = $mode)
  AND ($cards IS NULL OR c.token IN $cards)
CALL (c) { MATCH (c)-[r:TXN]->() RETURN max(r.ts) AS last }
RETURN c.token AS card, c.pan_last4 AS last4, e.mode AS mode, e.p_compromised AS p_compromised,
       e.reported AS reported, e.recommended_action AS recommended_action,
       toString(e.first_exposed_at) AS first_exposed_at, toString(last) AS last_activity,
       e.decision AS decision, e.decided_by AS decided_by, toString(e.decided_at) AS decided_at
ORDER BY coalesce(e.reported, false), e.p_compromised DESC, c.token""",
    # Only cards exposed at the alert's own terminal in the alert's mode can be decided through it.
    "decide_cards": """
MATCH (a:Alert {alert_id: $id})-[:ABOUT]->(t:Terminal)
UNWIND $cards AS token
MATCH (c:Card {token: token})-[e:EXPOSED_AT {mode: $mode}]->(t)
WITH a, c, e, e.decision AS before
SET e.decision = $decision, e.decided_by = $user, e.decided_at = datetime()
CREATE (ev:CaseEvent {at: datetime(), seq: timestamp(), user: $user, action: 'card ' + $decision, before: before,
                      after: $decision, card: c.token, last4: c.pan_last4, comment: $comment})-[:CONCERNS]->(a)
RETURN count(ev) AS n""",
    "exposure_window": "MATCH (:Card)-[e:EXPOSED_AT {mode: $mode}]->(:Terminal {terminal_id: $id}) "
                       "RETURN toString(min(e.window_start)) AS start, toString(max(e.window_end)) AS end",
    "terminal_exposures": """
MATCH (:Card)-[e:EXPOSED_AT]->(t:Terminal {terminal_id: $id})
WITH t, e.mode AS mode, count(e) AS cards, count(CASE WHEN e.reported THEN 1 END) AS reported,
     count(e.decision) AS decided
OPTIONAL MATCH (a:Alert)-[:ABOUT]->(t) WHERE a.kind = CASE mode WHEN 'at_terminal' THEN 'compromised_terminal'
                                                      ELSE 'skimming_point' END
RETURN mode, cards, reported, decided, a.alert_id AS alert_id ORDER BY mode""",
    "card_exposures": """
MATCH (:Card {token: $id})-[e:EXPOSED_AT]->(t:Terminal)
OPTIONAL MATCH (a:Alert)-[:ABOUT]->(t) WHERE a.kind = CASE e.mode WHEN 'at_terminal' THEN 'compromised_terminal'
                                                           ELSE 'skimming_point' END
RETURN t.terminal_id AS terminal_id, e.mode AS mode, toString(e.window_start) AS window_start,
       toString(e.window_end) AS window_end, toString(e.first_exposed_at) AS first_exposed_at,
       e.p_compromised AS p_compromised, e.reported AS reported, e.recommended_action AS recommended_action,
       e.decision AS decision, a.alert_id AS alert_id ORDER BY e.first_exposed_at""",
    "skim_victims": "MATCH (c:Card:Reported)-[v:TXN]->(:Terminal {terminal_id: $id}) "
                    "WHERE v.ts >= datetime($start) AND v.ts <= datetime($end) WITH DISTINCT c "
                    "OPTIONAL MATCH (c)-[r:TXN]->(o) WHERE r.ts > datetime($end) AND o.terminal_id <> $id "
                    "RETURN c.token AS card, c.pan_last4 AS last4, toString(c.reported_at) AS reported_at, "
                    "collect([coalesce(r.lat, o.lat), coalesce(r.lon, o.lon)])[..50] AS later ORDER BY card",
}

CYPHER.update({f"{name}_{entity_type}": match + body for name, body in _ACTIVITY.items()
               for entity_type, match in _ACTIVITY_MATCH.items()})


def _iso(value) -> str:
    """A timestamp (Neo4j, Python or already a string) as ISO 8601 text, for Cypher's datetime()."""
    if hasattr(value, "iso_format"):
        return value.iso_format()
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def _clean(props: dict) -> dict:
    return {k: (v.iso_format() if hasattr(v, "iso_format") else v) for k, v in sorted(props.items())
            if k not in _HIDDEN and k != "pw_hash"}


def _since(value):
    if not value:
        return None
    stamp = pd.Timestamp(value)
    return (stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")).to_pydatetime()


def queue_page(db, *, page: int = 0, size: int = 25, kind=None, severity=None, status=None, assignee=None,
               since=None, until=None, new_since=None, active_only: bool = True) -> tuple[list[dict], int]:
    """One page of the alert queue in its default order (severity, then impact, then score: ``queue_key``)
    and how many alerts match the filters. ``new_since``: only alerts first raised at or after it."""
    params = {"kind": kind or None, "severity": severity or None, "status": status or None,
              "assignee": assignee or None, "since": _since(since), "until": _since(until),
              "new_since": _since(new_since), "active_only": active_only}
    rows = db.read(CYPHER["queue"], params, skip=int(page) * int(size), limit=int(size))
    total = db.read(CYPHER["queue_count"], params)[0]["n"]
    return rows, total


def queue_options(db) -> dict:
    """Distinct alert kinds and assignees, for the filters."""
    row = db.read(CYPHER["options"])[0]
    return {"kinds": sorted(row["kinds"]), "assignees": sorted(a for a in row["assignees"] if a)}


def alert_evidence(db, alert_id: str) -> dict:
    """An alert's evidence date (ISO text or None) and impact (cards at risk), as the queue orders them."""
    rows = db.read(CYPHER["alert_evidence"], id=alert_id)
    return rows[0] if rows else {"evidence_at": None, "impact": 0}


def last_run(db) -> dict | None:
    """The newest scoring run: ``run_id`` and ``at`` (ISO text), or None before any run."""
    rows = db.read(CYPHER["last_run"])
    return {"run_id": rows[0]["run_id"], "at": _iso(rows[0]["at"])} if rows else None


def queue_summary(db, user_name: str | None) -> dict:
    """The queue's first screen: open alerts (open or in progress, still raised) by kind and severity, how
    many were first raised by the newest scoring run, and how many are assigned to ``user_name``.

    Returns ``{"cells": [{kind, severity, n, new, mine}], "total", "new", "mine", "last_run"}``.
    """
    run = last_run(db)
    cells = db.read(CYPHER["summary"], open_statuses=list(OPEN_STATUSES), user=user_name,
                    new_since=_since(run["at"]) if run else None)
    return {"cells": cells, "total": sum(c["n"] for c in cells), "new": sum(c["new"] for c in cells),
            "mine": sum(c["mine"] for c in cells), "last_run": run}


def audit_log(db, *, user=None, action=None, since=None, until=None, limit: int = 1_000) -> list[dict]:
    """Case events of every alert, newest first, filtered by user, action and date (``until`` excluded)."""
    return db.read(CYPHER["audit_log"], user=user or None, action=action or None, since=_since(since),
                   until=_since(until), limit=int(limit))


def audit_options(db) -> dict:
    """Users and actions that appear in the audit log, for its filters."""
    row = db.read(CYPHER["audit_options"])[0]
    return {"users": sorted(u for u in row["users"] if u), "actions": sorted(a for a in row["actions"] if a)}


def alert(db, alert_id: str) -> dict | None:
    """An alert's properties, or None."""
    rows = db.read(CYPHER["alert"], id=alert_id)
    return _clean(rows[0]["a"]) if rows else None


def entity(db, entity_type: str, entity_id: str) -> dict | None:
    """Properties, labels and alerts of a card, terminal, merchant or ring; None if absent. A merchant's
    alerts are also those about its current terminals and its rings (an investigator on a merchant page sees
    that one of its terminals is a point of compromise)."""
    label, key = ENTITY_KEYS[entity_type]
    query = CYPHER["entity_merchant"] if entity_type == "merchant" else CYPHER["entity"].format(label=label, key=key)
    rows = db.read(query, id=entity_id)
    if not rows:
        return None
    return {"props": _clean(rows[0]["props"]), "labels": rows[0]["labels"], "alerts": rows[0]["alerts"]}


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


def positions(db, terminal_id: str, limit: int = 2_000) -> dict:
    """Registered position of a terminal and the positions its transactions reported."""
    rows = db.read(CYPHER["positions"], id=terminal_id, limit=limit)
    return rows[0] if rows else {"reg_lat": None, "reg_lon": None, "seen": []}


def audit_trail(db, alert_id: str) -> list[dict]:
    """Every case event of an alert, oldest first."""
    return db.read(CYPHER["audit"], id=alert_id)


def decide(db, alert_id: str, status: str | None, user, comment: str | None = None) -> None:
    """Set an alert's status and/or add a comment (investigators and admins), recorded with user and time."""
    if not user.can("decide"):
        raise PermissionError(f"{user.name} ({user.role}) may not decide cases")
    if status is not None and status not in STATUSES:
        raise ValueError(f"status must be one of {STATUSES}")
    if alert(db, alert_id) is None:
        raise LookupError(f"no alert {alert_id}")
    if status is not None:
        db.run(CYPHER["decide"], id=alert_id, status=status, user=user.name, comment=comment or None)
    elif comment:
        db.run(CYPHER["comment"], id=alert_id, user=user.name, comment=comment)


def assign(db, alert_ids: list[str], assignee: str | None, user) -> int:
    """Assign alerts (bulk) to an investigator; returns how many were assigned."""
    if not user.can("decide"):
        raise PermissionError(f"{user.name} ({user.role}) may not assign cases")
    return db.run(CYPHER["assign"], ids=list(alert_ids), assignee=assignee or None, user=user.name)[0]["n"]


def ring_members(db, ring_id: str, limit: int = 2_000) -> dict:
    """A ring's members, the identifiers its merchants share, and its transactions."""
    return {"members": db.read(CYPHER["ring_members"], id=ring_id),
            "shared": db.read(CYPHER["ring_shared"], id=ring_id),
            "txns": pd.DataFrame(db.read(CYPHER["ring_txns"], id=ring_id, limit=limit))}


def skimming_victims(db, terminal_id: str, start, end) -> list[dict]:
    """Reported cards that used a skimming point inside its window, with where each was used afterwards."""
    start, end = (_iso(v) for v in (start, end))
    rows = db.read(CYPHER["skim_victims"], id=terminal_id, start=start, end=end)
    for row in rows:
        row["later"] = [p for p in row["later"] if p[0] is not None and p[1] is not None]
    return rows


def latest_transaction(db):
    """Time of the newest transaction (ISO text), or None: the reference date of the portfolio."""
    latest = db.read(CYPHER["latest_txn"])[0]["latest"]
    return _iso(latest) if latest is not None else None


def _currency(codes) -> str | None:
    """The one currency of some amounts, "mixed" when there are several, None when there are none."""
    codes = {c for c in codes if isinstance(c, str) and c}
    return codes.pop() if len(codes) == 1 else ("mixed" if codes else None)


def portfolio(db, days: int = 30) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per merchant and per acquiring agent: terminals, transactions, volume (and its currency, "mixed" when
    several), the last ``days`` against the ``days`` before and the weekly volume of the last ``TREND_WEEKS``
    weeks (``trend``, oldest first), all relative to the newest transaction (``latest_transaction``).

    A merchant is flagged when it is in a ring found by the detectors or when its transactions grew faster
    than the network's (``growth_q``: ``growth_p`` is ``P(Binomial(n, s) >= k)`` for its ``k`` transactions of
    the last ``days`` among the ``n`` of the last two periods, ``s`` being the network's share of the last
    period; Benjamini-Hochberg over the merchants with transactions, flagged at q <= 0.05)."""
    latest = db.read(CYPHER["latest_txn"])[0]["latest"]
    latest = latest.to_native() if latest is not None else datetime.now(timezone.utc)
    recent = latest - pd.Timedelta(days=days)
    previous = recent - pd.Timedelta(days=days)
    trend_start = latest - pd.Timedelta(weeks=TREND_WEEKS)
    merchants = pd.DataFrame(db.read(CYPHER["portfolio"], recent=recent, previous=previous,
                                     trend_start=trend_start, trend_ms=int(trend_start.timestamp() * 1000)))
    if not len(merchants):
        return merchants, merchants
    merchants["currency"] = [_currency(codes) for codes in merchants.pop("currencies")]
    merchants["trend"] = [[round(float(v), 2) for v in trend] for trend in merchants["trend"]]
    merchants["growth"] = (merchants["recent"] - merchants["previous"]) / merchants["previous"].where(
        merchants["previous"] > 0)
    merchants["growth_q"] = _growth_q(merchants.pop("recent_n").to_numpy(np.int64),
                                      merchants.pop("previous_n").to_numpy(np.int64))
    merchants["flag"] = merchants["in_ring"] | (merchants["growth_q"] <= REPORT_Q)
    grouped = merchants.groupby("agent_id", dropna=False, sort=False)
    agents = grouped.agg(
        merchants=("merchant_id", "size"), terminals=("terminals", "sum"), txns=("txns", "sum"),
        volume=("volume", "sum"), recent=("recent", "sum"), previous=("previous", "sum"),
        flagged=("flag", "sum"), currency=("currency", _currency),
        trend=("trend", lambda t: [round(float(v), 2) for v in np.sum(np.stack(list(t)), axis=0)])).reset_index()
    return merchants, agents.sort_values("volume", ascending=False, kind="stable").reset_index(drop=True)


def _growth_q(recent: np.ndarray, previous: np.ndarray) -> np.ndarray:
    """BH q-values of each merchant's growth against the network's (see ``portfolio``; 1 without transactions)."""
    n = recent + previous
    q = np.ones(len(n))
    active = n > 0
    if active.any():
        share = recent[active].sum() / n[active].sum()
        p = [math.exp(log_binom_sf(float(k), float(m), share)) for k, m in zip(recent[active], n[active])]
        q[active] = bh_qvalues(np.asarray(p))
    return q


def case_bundle(db, alert_id: str) -> bytes:
    """A zip for the response team: ``case.csv`` (the alert and its audit trail) and ``evidence.json``
    (the alert, its entity, the entity's transactions and neighbours)."""
    a = alert(db, alert_id)
    if a is None:
        raise LookupError(f"no alert {alert_id}")
    trail = audit_trail(db, alert_id)
    ent = entity(db, a["entity_type"], a["entity_id"]) if a.get("entity_type") in ENTITY_KEYS else None
    txns = timeline(db, a["entity_type"], a["entity_id"], limit=10_000)
    neighbours, _ = neighbourhood(db, a["entity_type"], a["entity_id"])
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["alert_id", "kind", "entity_type", "entity_id", "severity", "score", "status", "assignee",
                     "summary"])
    writer.writerow([a.get(k) for k in ("alert_id", "kind", "entity_type", "entity_id", "severity", "score",
                                        "status", "assignee", "summary")])
    writer.writerow([])
    writer.writerow(["at", "user", "action", "before", "after", "comment"])
    for e in trail:
        writer.writerow([e["at"], e["user"], e["action"], e["before"], e["after"], e["comment"]])
    evidence = {"alert": a, "entity": ent, "audit": trail, "neighbours": neighbours,
                "transactions": json.loads(txns.to_json(orient="records", date_format="iso")) if len(txns) else [],
                "exported_at": datetime.now(timezone.utc).isoformat()}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("case.csv", out.getvalue())
        zf.writestr("evidence.json", json.dumps(evidence, indent=2, default=str))
    return buffer.getvalue()


def exposed_cards(db, terminal_id: str, mode: str | None = None, cards: list[str] | None = None) -> list[dict]:
    """The cards exposed at a point of compromise (``EXPOSED_AT``), the cards at risk (not yet reported) first,
    each group most probably compromised first: last four
    digits, probability, reported or not, first exposure, last activity, recommended action and the decision
    taken (if any). ``mode``: one mode of compromise; ``cards``: only these tokens."""
    return db.read(CYPHER["exposed"], id=terminal_id, mode=mode, cards=list(cards) if cards is not None else None)


def decide_cards(db, alert_id: str, cards: list[str], decision: str, user, comment: str | None = None) -> int:
    """Record ``decision`` (reissue, watch, dismiss) for cards exposed at a point-of-compromise alert's terminal:
    on each ``EXPOSED_AT`` relationship and as one CaseEvent per card in the alert's audit trail (investigators
    and admins). Cards not exposed there are ignored. Returns how many cards were decided."""
    if not user.can("decide"):
        raise PermissionError(f"{user.name} ({user.role}) may not decide cases")
    if decision not in CARD_DECISIONS:
        raise ValueError(f"decision must be one of {CARD_DECISIONS}")
    a = alert(db, alert_id)
    if a is None or a.get("kind") not in EXPOSURE_MODE:
        raise LookupError(f"no point-of-compromise alert {alert_id}")
    if not cards:
        return 0
    return db.run(CYPHER["decide_cards"], id=alert_id, cards=list(cards), mode=EXPOSURE_MODE[a["kind"]],
                  decision=decision, user=user.name, comment=(comment or "").strip() or None)[0]["n"]


def card_exposures(db, token: str) -> list[dict]:
    """The points of compromise a card was exposed at, with the window, the probability and the decision."""
    return db.read(CYPHER["card_exposures"], id=token)


def exposure_window(db, terminal_id: str, mode: str) -> tuple:
    """The compromise window of a point in one mode (from its exposed cards), or (None, None)."""
    rows = db.read(CYPHER["exposure_window"], id=terminal_id, mode=mode)
    return (rows[0]["start"], rows[0]["end"]) if rows else (None, None)


def terminal_exposures(db, terminal_id: str) -> list[dict]:
    """Per mode of compromise at a terminal: how many cards were exposed, reported, decided, and the alert."""
    return db.read(CYPHER["terminal_exposures"], id=terminal_id)


EXPOSED_CSV_COLUMNS = ["card_token", "pan_last4", "terminal_id", "mode", "p_compromised", "reported",
                       "recommended_action", "decision", "first_exposed_at", "last_activity"]


def exposed_csv(db, terminal_id: str, mode: str | None, cards: list[str]) -> str:
    """The chosen exposed cards as CSV for the card-management system: card tokens and last four digits only
    (never a PAN), read back from the database (only cards exposed at ``terminal_id``)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(EXPOSED_CSV_COLUMNS)
    for r in exposed_cards(db, terminal_id, mode, cards):
        writer.writerow([r["card"], r["last4"], terminal_id, r["mode"], r["p_compromised"], r["reported"],
                         r["recommended_action"], r["decision"] or "", r["first_exposed_at"], r["last_activity"]])
    return out.getvalue()


# Reads that case work (decisions, comments, assignments) cannot change: cached across it (app.cache).
CASE_FREE = frozenset({portfolio, latest_transaction})
