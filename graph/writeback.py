"""Write a scoring run back into Neo4j: scores as properties, Alert and Ring nodes; decisions survive."""

from __future__ import annotations

import math
from datetime import datetime

import pandas as pd

from graph.vocabulary import SEVERITIES

__all__ = ["write_back", "CYPHER", "QUEUE_KEY"]

# The queue's default order as one text property per alert (``queue_key``, range-indexed in graph.schema), so
# that the explorer's first page is an index-ordered LIMIT, not a sort of every alert: severity rank, then
# impact (cards at risk) descending, then score descending (to 1e-6, within [0, 1000]), then the alert id.
# A Cypher expression over an Alert ``a`` with ``a.severity``, ``a.impact``, ``a.score`` and ``a.alert_id`` set.
QUEUE_KEY = ("CASE a.severity " + " ".join(f"WHEN '{s}' THEN '{i}'" for i, s in enumerate(SEVERITIES))
             + f" ELSE '{len(SEVERITIES)}' END + '|' "
             "+ right('000000000' + toString(999999999 - coalesce(a.impact, 0)), 9) + '|' "
             "+ right('0000000000' + toString(toInteger(round((1000.0 - CASE WHEN coalesce(a.score, 0.0) > 1000.0 "
             "THEN 1000.0 WHEN coalesce(a.score, 0.0) < 0.0 THEN 0.0 ELSE coalesce(a.score, 0.0) END) * 1000000))), "
             "10) + '|' + a.alert_id")

# Every query is parameterised and idempotent; `score_run` marks what the current run wrote, so that what
# an earlier run wrote and this one did not can be removed afterwards.
CYPHER = {
    "skimming": """
UNWIND $rows AS row
MATCH (t:Terminal {terminal_id: row.terminal_id})
SET t.skim_rank = row.rank, t.skim_score = row.score, t.skim_p_value = row.p_value,
    t.skim_compromised_cards = row.compromised_cards, t.skim_cards_seen = row.cards_seen,
    t.skim_window_start = row.window_start, t.skim_window_end = row.window_end, t.skim_mode = row.mode,
    t.skim_q_value = row.q_value, t.skim_run = $run
""",
    "skimming_clear": """
MATCH (t:Terminal) WHERE t.skim_run IS NOT NULL AND t.skim_run <> $run
REMOVE t.skim_rank, t.skim_score, t.skim_p_value, t.skim_compromised_cards, t.skim_cards_seen,
       t.skim_window_start, t.skim_window_end, t.skim_mode, t.skim_q_value, t.skim_run
""",
    # one relationship per card, terminal and mode of compromise (the emergency response's list)
    "exposed": """
UNWIND $rows AS row
MATCH (c:Card {token: row.card_token})
MATCH (t:Terminal {terminal_id: row.terminal_id})
MERGE (c)-[e:EXPOSED_AT {mode: row.mode}]->(t)
SET e.first_exposed_at = row.first_exposed_at, e.p_compromised = row.p_compromised, e.reported = row.reported,
    e.recommended_action = row.recommended_action, e.point_rank = row.point_rank,
    e.window_start = row.window_start, e.window_end = row.window_end, e.score_run = $run
""",
    "exposed_clear": """
MATCH (:Card)-[e:EXPOSED_AT]->(:Terminal) WHERE e.score_run <> $run
DELETE e
""",
    "cloned": """
UNWIND $rows AS row
MATCH (c:Card {token: row.card_token})
SET c.clone_score = row.score, c.clone_reasons = row.reasons, c.clone_first_evidence_at = row.first_evidence_at,
    c.clone_evidence_txn_ids = row.evidence_txn_ids, c.clone_run = $run
""",
    "cloned_clear": """
MATCH (c:Card) WHERE c.clone_run IS NOT NULL AND c.clone_run <> $run
CALL (c) { REMOVE c.clone_score, c.clone_reasons, c.clone_first_evidence_at, c.clone_evidence_txn_ids,
           c.clone_run } IN TRANSACTIONS OF 10000 ROWS
""",
    "findings": """
UNWIND $rows AS row
MATCH (t:Terminal {terminal_id: row.terminal_id})
SET t.integrity_kinds = row.kinds, t.integrity_score = row.score, t.integrity_details = row.details,
    t.integrity_run = $run
""",
    "findings_clear": """
MATCH (t:Terminal) WHERE t.integrity_run IS NOT NULL AND t.integrity_run <> $run
REMOVE t.integrity_kinds, t.integrity_score, t.integrity_details, t.integrity_run
""",
    "rings": """
UNWIND $rows AS row
MERGE (r:Ring {ring_id: row.ring_id})
SET r.kind = row.kind, r.score = row.score, r.size = row.size, r.score_run = $run
""",
    "ring_members": """
UNWIND $rows AS row
MATCH (r:Ring {ring_id: row.ring_id})
CALL (r, row) {
  WITH r, row WHERE row.member_type = 'card'
  MATCH (m:Card {token: row.member_id}) MERGE (m)-[e:MEMBER_OF]->(r) SET e.score_run = $run
}
CALL (r, row) {
  WITH r, row WHERE row.member_type = 'terminal'
  MATCH (m:Terminal {terminal_id: row.member_id}) MERGE (m)-[e:MEMBER_OF]->(r) SET e.score_run = $run
}
CALL (r, row) {
  WITH r, row WHERE row.member_type = 'merchant'
  MATCH (m:Merchant {merchant_id: row.member_id}) MERGE (m)-[e:MEMBER_OF]->(r) SET e.score_run = $run
}
""",
    "rings_clear": """
MATCH (r:Ring)
OPTIONAL MATCH (r)<-[e:MEMBER_OF]-() WHERE e.score_run <> $run
DELETE e
WITH DISTINCT r WHERE r.score_run <> $run AND NOT EXISTS { (r)<-[:ABOUT]-(:Alert) }
DETACH DELETE r
""",
    "alerts": """
UNWIND $rows AS row
MERGE (a:Alert {alert_id: row.alert_id})
  ON CREATE SET a.status = 'open', a.first_raised_at = row.created_at
SET a.entity_type = row.entity_type, a.entity_id = row.entity_id, a.kind = row.kind, a.score = row.score,
    a.severity = row.severity, a.created_at = row.created_at, a.summary = row.summary, a.score_run = $run,
    a.q_value = row.q_value, a.evidence_at = row.evidence_at, a.impact = row.impact, a.active = true
SET a.queue_key = """ + QUEUE_KEY + """
WITH a, row, row.explanation IS NOT NULL AND coalesce(a.explanation_key, '') <> row.explanation_key AS new_words
SET a.explanations_before = CASE WHEN new_words AND a.explanation IS NOT NULL
                                 THEN coalesce(a.explanations_before, []) + [a.explanation]
                                 ELSE a.explanations_before END,
    a.explanation = CASE WHEN new_words THEN row.explanation ELSE a.explanation END,
    a.explained_at = CASE WHEN new_words THEN row.created_at ELSE a.explained_at END,
    a.explanation_key = CASE WHEN new_words THEN row.explanation_key ELSE a.explanation_key END
WITH a, row
CALL (a, row) {
  WITH a, row WHERE row.entity_type = 'card'
  MATCH (e:Card {token: row.entity_id}) MERGE (a)-[:ABOUT]->(e)
}
CALL (a, row) {
  WITH a, row WHERE row.entity_type = 'terminal'
  MATCH (e:Terminal {terminal_id: row.entity_id}) MERGE (a)-[:ABOUT]->(e)
}
CALL (a, row) {
  WITH a, row WHERE row.entity_type = 'merchant'
  MATCH (e:Merchant {merchant_id: row.entity_id}) MERGE (a)-[:ABOUT]->(e)
}
CALL (a, row) {
  WITH a, row WHERE row.entity_type = 'ring'
  MATCH (e:Ring {ring_id: row.entity_id}) MERGE (a)-[:ABOUT]->(e)
}
""",
    # An alert this run did not raise goes away, unless an investigator touched it: then it stays, inactive,
    # with its decision and audit trail.
    "alerts_retire": """
MATCH (a:Alert) WHERE a.score_run <> $run
WITH a, (a.status <> 'open' OR a.assignee IS NOT NULL OR EXISTS { (a)<-[:CONCERNS]-(:CaseEvent) }) AS touched
CALL (a, touched) {
  WITH a WHERE touched
  SET a.active = false
}
CALL (a, touched) {
  WITH a WHERE NOT touched
  DETACH DELETE a
}
""",
    # alerts kept from before queue_key existed (inactive, touched by an investigator) get theirs
    "queue_keys": "MATCH (a:Alert) WHERE a.queue_key IS NULL SET a.queue_key = " + QUEUE_KEY,
    "run": """
MERGE (s:ScoreRun {run_id: $run})
SET s.created_at = $created_at, s += $counts
""",
}


def _records(frame: pd.DataFrame, columns: list[str]) -> list[dict]:
    """DataFrame rows as dicts of plain Python values (NaN/NaT -> None, numpy scalars -> Python)."""
    out = []
    for row in frame[columns].itertuples(index=False, name=None):
        record = {}
        for name, value in zip(columns, row):
            if value is None or value is pd.NaT or (isinstance(value, float) and math.isnan(value)):
                value = None
            elif isinstance(value, pd.Timestamp):
                value = value.to_pydatetime()
            elif hasattr(value, "tolist"):
                value = value.tolist()
            elif hasattr(value, "item"):
                value = value.item()
            record[name] = value
        out.append(record)
    return out


def write_back(db, frames: dict[str, pd.DataFrame], run_id: str, created_at: datetime) -> dict[str, int]:
    """Write one scoring run's results into Neo4j and retire what the previous run wrote.

    Investigator decisions live on Alert nodes (status, assignee) and CaseEvent nodes; an alert id is a
    hash of entity and kind, so a re-raised alert keeps its decision; an alert not raised again is
    kept (inactive) if anyone touched it, otherwise deleted. Decisions on exposed cards live on the
    ``EXPOSED_AT`` relationships (``decision``, ``decided_by``, ``decided_at``, set by the explorer), which a
    re-run merges without touching them.

    An alert's ``explanation`` (written at scoring time, ``graph.explain``) is kept as it was first
    written while its ``explanation_key`` (the evidence in words, without the detector's version stamp) stays
    the same: a re-run on the same evidence, even by newer code, never rewrites it. New evidence writes the new
    words (``explained_at`` is that run's time) and keeps the replaced ones in ``explanations_before``.

    Returns
    -------
    dict
        Rows written per kind.
    """
    counts = {}
    points = frames["skimming_points"]  # a terminal holds its best-ranked point (of either mode)
    points = points.assign(**{c: None for c in ("mode", "q_value") if c not in points.columns})
    points = points.sort_values("rank", kind="stable").drop_duplicates("terminal_id")
    counts["skimming"] = db.write_batches(CYPHER["skimming"], _records(points, [
        "terminal_id", "rank", "score", "p_value", "compromised_cards", "cards_seen", "window_start",
        "window_end", "mode", "q_value"]), params={"run": run_id})
    exposed = frames.get("exposed_cards")
    if exposed is not None and len(exposed):
        exposed = exposed.assign(**{c: None for c in ("point_rank", "window_start", "window_end")
                                    if c not in exposed.columns})
        counts["exposed"] = db.write_batches(CYPHER["exposed"], _records(exposed, [
            "card_token", "terminal_id", "mode", "first_exposed_at", "p_compromised", "reported",
            "recommended_action", "point_rank", "window_start", "window_end"]), params={"run": run_id})
    else:
        counts["exposed"] = 0
    cloned = frames["cloned_cards"]
    counts["cloned"] = db.write_batches(CYPHER["cloned"], _records(cloned, [
        "card_token", "score", "reasons", "first_evidence_at", "evidence_txn_ids"]), params={"run": run_id})
    findings = frames["terminal_findings"]
    per_terminal = (findings.groupby("terminal_id", sort=True)
                    .agg(kinds=("kind", lambda s: sorted(set(s))), score=("score", "max"),
                         details=("details", lambda s: " | ".join(s)))
                    .reset_index()) if len(findings) else pd.DataFrame(columns=["terminal_id", "kinds", "score",
                                                                                "details"])
    counts["findings"] = db.write_batches(CYPHER["findings"], _records(per_terminal, list(per_terminal.columns)),
                                          params={"run": run_id})
    rings = frames["rings"]
    ring_nodes = (rings.groupby(["ring_id", "kind"], sort=True)
                  .agg(score=("score", "max"), size=("member_id", "size")).reset_index()) if len(rings) else \
        pd.DataFrame(columns=["ring_id", "kind", "score", "size"])
    counts["rings"] = db.write_batches(CYPHER["rings"], _records(ring_nodes, list(ring_nodes.columns)),
                                       params={"run": run_id})
    counts["ring_members"] = db.write_batches(CYPHER["ring_members"], _records(
        rings, ["ring_id", "member_type", "member_id"]), params={"run": run_id})
    alert_columns = ["alert_id", "entity_type", "entity_id", "kind", "score", "severity", "created_at", "summary",
                     "q_value", "evidence_at", "impact", "explanation", "explanation_key"]
    alerts = frames["alerts"].reindex(columns=alert_columns)  # the queue's extra columns may be absent
    counts["alerts"] = db.write_batches(CYPHER["alerts"], _records(alerts, alert_columns),
        params={"run": run_id}, batch_size=2_000)
    for step in ("skimming_clear", "exposed_clear", "findings_clear", "alerts_retire", "rings_clear", "queue_keys"):
        db.run(CYPHER[step], run=run_id)
    db.run_autocommit(CYPHER["cloned_clear"], run=run_id)
    db.run(CYPHER["run"], run=run_id, created_at=created_at, counts={f"rows_{k}": v for k, v in counts.items()})
    return counts
