"""graph.writeback against the real Neo4j: scores, alerts and rings written, replaced on re-scoring,
investigator decisions kept."""

from __future__ import annotations

from datetime import datetime, timezone

import pandas as pd

from graph.writeback import write_back

NOW = datetime(2026, 5, 1, tzinfo=timezone.utc)


def frames(cards=("c1", "c2"), ring_members=("c1", "c2"), alert_cards=("c1", "c2")) -> dict[str, pd.DataFrame]:
    ts = pd.Timestamp("2026-03-05", tz="UTC")
    return {
        "skimming_points": pd.DataFrame({"terminal_id": ["T1"], "merchant_id": ["M1"], "rank": [1], "score": [12.5],
                                         "p_value": [1e-12], "compromised_cards": [9], "cards_seen": [120],
                                         "window_start": [ts], "window_end": [ts + pd.Timedelta(days=6)]}),
        "cloned_cards": pd.DataFrame({"card_token": list(cards), "score": [0.9] * len(cards),
                                      "reasons": ["impossible_travel"] * len(cards),
                                      "first_evidence_at": [ts] * len(cards),
                                      "evidence_txn_ids": [["X1", "X2"]] * len(cards)}),
        "rings": pd.DataFrame({"ring_id": ["ring-1"] * (len(ring_members) + 1), "kind": ["cash_out"] * (
            len(ring_members) + 1), "score": [3.0] * (len(ring_members) + 1),
            "member_type": ["card"] * len(ring_members) + ["merchant"],
            "member_id": list(ring_members) + ["M1"]}),
        "terminal_findings": pd.DataFrame({"terminal_id": ["T1", "T1"], "merchant_id": ["M1", "M1"],
                                           "kind": ["trace_gap", "clock_skew"], "score": [0.8, 0.4],
                                           "details": ["12 STANs missing", "clock back 2h"],
                                           "first_seen": [ts, ts], "last_seen": [ts, ts]}),
        "alerts": pd.DataFrame({"alert_id": [f"a-{c}" for c in alert_cards] + ["a-T1"],
                                "entity_type": ["card"] * len(alert_cards) + ["terminal"],
                                "entity_id": list(alert_cards) + ["T1"],
                                "kind": ["cloned_card"] * len(alert_cards) + ["skimming_point"],
                                "score": [0.9] * len(alert_cards) + [12.5],
                                "severity": ["high"] * len(alert_cards) + ["critical"],
                                "created_at": [NOW] * (len(alert_cards) + 1),
                                "summary": ["card cloned"] * len(alert_cards) + ["skimmer"]}),
    }


def seed(db):
    db.run("UNWIND ['c1','c2','c3'] AS t MERGE (:Card {token: t}) "
           "MERGE (m:Merchant {merchant_id: 'M1'}) MERGE (:Terminal {terminal_id: 'T1'})-[:INSTALLED_AT]->(m)")


def test_scores_alerts_and_rings_are_written(db):
    seed(db)
    counts = write_back(db, frames(), "s1", NOW)
    assert counts["alerts"] == 3 and counts["ring_members"] == 3
    t = db.run("MATCH (t:Terminal {terminal_id: 'T1'}) RETURN t.skim_rank AS rank, t.integrity_kinds AS kinds")
    assert t == [{"rank": 1, "kinds": ["clock_skew", "trace_gap"]}]
    assert db.run("MATCH (c:Card {token: 'c1'}) RETURN c.clone_evidence_txn_ids AS ev") == [{"ev": ["X1", "X2"]}]
    about = db.run("MATCH (a:Alert)-[:ABOUT]->(e) RETURN a.alert_id AS id, labels(e)[0] AS label ORDER BY id")
    assert about == [{"id": "a-T1", "label": "Terminal"}, {"id": "a-c1", "label": "Card"},
                     {"id": "a-c2", "label": "Card"}]
    members = db.run("MATCH (m)-[:MEMBER_OF]->(:Ring {ring_id: 'ring-1'}) RETURN count(m) AS n")
    assert members == [{"n": 3}]


def test_rescoring_replaces_scores_but_keeps_decisions(db):
    seed(db)
    write_back(db, frames(), "s1", NOW)
    before = db.run("MATCH (n) WHERE NOT n:ScoreRun RETURN count(n) AS n")
    write_back(db, frames(), "s1-again", NOW)  # same results again: nothing added
    assert db.run("MATCH (n) WHERE NOT n:ScoreRun RETURN count(n) AS n")[0]["n"] == before[0]["n"]

    # an investigator confirms the alert on c1 and assigns c2's
    db.run("MATCH (a:Alert {alert_id: 'a-c1'}) SET a.status = 'confirmed'")
    db.run("MATCH (a:Alert {alert_id: 'a-c2'}) SET a.assignee = 'ann'")
    # the next run no longer flags c2, flags c3, and drops c2 from the ring
    write_back(db, frames(cards=("c1", "c3"), ring_members=("c1", "c3"), alert_cards=("c1", "c3")), "s2", NOW)
    alerts = db.run("MATCH (a:Alert) RETURN a.alert_id AS id, a.status AS status, a.active AS active, "
                    "a.assignee AS who ORDER BY id")
    assert alerts == [
        {"id": "a-T1", "status": "open", "active": True, "who": None},
        {"id": "a-c1", "status": "confirmed", "active": True, "who": None},   # decision kept, re-raised
        {"id": "a-c2", "status": "open", "active": False, "who": "ann"},      # touched: kept, inactive
        {"id": "a-c3", "status": "open", "active": True, "who": None},
    ]
    scored = db.run("MATCH (c:Card) WHERE c.clone_score IS NOT NULL RETURN c.token AS t ORDER BY t")
    assert scored == [{"t": "c1"}, {"t": "c3"}]
    ring = db.run("MATCH (m:Card)-[:MEMBER_OF]->(:Ring {ring_id: 'ring-1'}) RETURN m.token AS t ORDER BY t")
    assert ring == [{"t": "c1"}, {"t": "c3"}]

    # a run that raises nothing at all on c3 removes its untouched alert
    write_back(db, frames(cards=("c1",), ring_members=("c1",), alert_cards=("c1",)), "s3", NOW)
    ids = [r["id"] for r in db.run("MATCH (a:Alert) RETURN a.alert_id AS id ORDER BY id")]
    assert ids == ["a-T1", "a-c1", "a-c2"]


def exposed(rows) -> pd.DataFrame:
    ts = pd.Timestamp("2026-03-06", tz="UTC")
    return pd.DataFrame({"card_token": [r[0] for r in rows], "terminal_id": "T1", "mode": [r[1] for r in rows],
                         "first_exposed_at": ts, "p_compromised": [r[2] for r in rows],
                         "reported": [r[2] == 1.0 for r in rows],
                         "recommended_action": ["reissue" if r[2] >= 0.5 else "watch" for r in rows],
                         "point_rank": 1, "window_start": ts, "window_end": ts + pd.Timedelta(days=6)})


def test_exposed_cards_become_exposed_at_relationships_idempotently(db):
    seed(db)
    query = ("MATCH (c:Card)-[e:EXPOSED_AT]->(t:Terminal) RETURN c.token AS card, t.terminal_id AS t, e.mode AS mode, "
             "e.p_compromised AS p, e.recommended_action AS action, e.reported AS reported ORDER BY card, mode")
    rows = [("c1", "skimming", 1.0), ("c2", "skimming", 0.7), ("c2", "at_terminal", 0.2), ("nobody", "skimming", 0.9)]
    first = write_back(db, {**frames(), "exposed_cards": exposed(rows)}, "s1", NOW)
    got = db.run(query)
    assert got == [{"card": "c1", "t": "T1", "mode": "skimming", "p": 1.0, "action": "reissue", "reported": True},
                   {"card": "c2", "t": "T1", "mode": "at_terminal", "p": 0.2, "action": "watch", "reported": False},
                   {"card": "c2", "t": "T1", "mode": "skimming", "p": 0.7, "action": "reissue", "reported": False}]
    assert first["exposed"] == 4  # rows sent; the unknown card matched nothing and created nothing
    assert db.run("MATCH (c:Card {token: 'nobody'}) RETURN count(c) AS n") == [{"n": 0}]
    write_back(db, {**frames(), "exposed_cards": exposed(rows)}, "s1-again", NOW)
    assert db.run(query) == got  # MERGE: the same run again adds nothing
    # the next run exposes c3 only: the others' relationships go; a run without the output clears them all
    write_back(db, {**frames(), "exposed_cards": exposed([("c3", "skimming", 0.6)])}, "s2", NOW)
    assert [r["card"] for r in db.run(query)] == ["c3"]
    write_back(db, frames(), "s3", NOW)
    assert db.run(query) == []
    t = db.run("MATCH (t:Terminal {terminal_id: 'T1'}) RETURN t.skim_rank AS rank, t.skim_mode AS mode")
    assert t == [{"rank": 1, "mode": None}]


def test_queue_key_orders_alerts_by_severity_then_impact_then_score(db):
    """The stored queue_key sorts as the queue's documented order (severity, impact descending, score
    descending, alert id), also for scores above 1 and alerts without an impact; an index serves it."""
    db.run("UNWIND ['k1','k2','k3','k4','k5','k6'] AS t MERGE (:Card {token: t})")
    rows = [("k1", "high", 1, 0.5), ("k2", "critical", 1, 0.2), ("k3", "high", 120, 0.1),
            ("k4", "high", 1, 0.9), ("k5", "medium", None, 1.0), ("k6", "high", 1, 12.5)]
    f = frames()
    f["alerts"] = pd.DataFrame({"alert_id": [f"a-{r[0]}" for r in rows], "entity_type": "card",
                                "entity_id": [r[0] for r in rows], "kind": "cloned_card",
                                "score": [r[3] for r in rows], "severity": [r[1] for r in rows],
                                "created_at": NOW, "summary": "s", "impact": [r[2] for r in rows]})
    write_back(db, f, "s1", NOW)
    got = [r["id"] for r in db.run("MATCH (a:Alert) RETURN a.alert_id AS id ORDER BY a.queue_key")]
    rank = {"critical": 0, "high": 1, "medium": 2}
    expected = [f"a-{r[0]}" for r in sorted(rows, key=lambda r: (rank[r[1]], -(r[2] or 0), -r[3], r[0]))]
    assert got == expected == ["a-k2", "a-k3", "a-k6", "a-k4", "a-k1", "a-k5"]
    indexes = db.run("SHOW INDEXES YIELD labelsOrTypes, properties, type WHERE type = 'RANGE' "
                     "RETURN labelsOrTypes AS l, properties AS p")
    assert {"l": ["Alert"], "p": ["queue_key"]} in indexes
    # an alert written before queue_key existed gets one at the next write-back
    db.run("MATCH (a:Alert {alert_id: 'a-k1'}) SET a.status = 'confirmed' REMOVE a.queue_key")
    f["alerts"] = f["alerts"][f["alerts"]["alert_id"] != "a-k1"]
    write_back(db, f, "s2", NOW)
    assert db.run("MATCH (a:Alert {alert_id: 'a-k1'}) RETURN a.queue_key STARTS WITH '1|' AS ok") == [{"ok": True}]
