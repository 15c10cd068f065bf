"""The explorer's alert queue and case work: the queue, alerts, decisions, assignments, the audit log, case bundles."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from datetime import datetime, timezone

import pandas as pd

from app.entity_queries import entity, neighbourhood, timeline
from app.query_values import iso_text, shown_properties
from graph.schema import ENTITY_KEYS
from graph.vocabulary import OPEN_STATUSES, STATUSES

__all__ = ["queue_page", "queue_options", "queue_summary", "last_run", "alert_evidence", "audit_log", "audit_options",
           "alert", "audit_trail", "decide", "assign", "case_bundle"]

_FILTER = """
MATCH (a:Alert)
WHERE ($kind IS NULL OR a.kind = $kind) AND ($severity IS NULL OR a.severity = $severity)
  AND ($status IS NULL OR a.status = $status) AND ($assignee IS NULL OR a.assignee = $assignee)
  AND ($since IS NULL OR a.created_at >= $since) AND ($until IS NULL OR a.created_at < $until)
  AND ($new_since IS NULL OR a.first_raised_at >= $new_since)
  AND ($active_only = false OR a.active)
"""
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
}


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
    return {"run_id": rows[0]["run_id"], "at": iso_text(rows[0]["at"])} if rows else None


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
    return shown_properties(rows[0]["a"]) if rows else None


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

