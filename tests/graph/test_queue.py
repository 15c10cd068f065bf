"""The alert queue: ids stable across runs, one q-value rule for every detector's severity, contract columns."""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pandas as pd
import pytest

from graph.queue import ALERT_COLUMNS, EXTRA_COLUMNS, alert_id, build_alerts, q_values_of

AT = datetime(2026, 5, 1, tzinfo=timezone.utc)
TS = pd.Timestamp("2026-03-01", tz="UTC")


def _points(rows):
    base = {"merchant_id": "M", "score": 1.0, "p_value": 1e-3, "cards_seen": 50, "window_start": TS,
            "window_end": TS + pd.Timedelta(days=9)}
    return pd.DataFrame([{**base, **r} for r in rows])


def _cards(rows):
    base = {"reasons": "impossible_travel;parallel_use", "first_evidence_at": TS, "evidence_txn_ids": [["x1"]]}
    return pd.DataFrame([{**base, **r} for r in rows])


EMPTY_POINTS = _points([{"terminal_id": "T", "rank": 1, "q_value": 1.0, "compromised_cards": 1}]).iloc[:0]
EMPTY_CARDS = _cards([{"card_token": "c", "score": 0.0, "q_value": 1.0}]).iloc[:0]
EMPTY_RINGS = pd.DataFrame(columns=["ring_id", "kind", "score", "member_type", "member_id", "q_value"])
EMPTY_FINDINGS = pd.DataFrame(columns=["terminal_id", "merchant_id", "kind", "score", "details", "first_seen",
                                       "last_seen", "q_value"])


def test_alert_id_is_stable_and_differs_by_entity_and_kind():
    assert alert_id("card", "c1", "cloned_card") == alert_id("card", "c1", "cloned_card")
    assert len({alert_id("card", "c1", "cloned_card"), alert_id("card", "c2", "cloned_card"),
                alert_id("terminal", "c1", "cloned_card"), alert_id("card", "c1", "trace_gap")}) == 4


def test_empty_inputs_give_an_empty_queue_with_the_contract_columns():
    alerts = build_alerts(EMPTY_POINTS, EMPTY_CARDS, EMPTY_RINGS, EMPTY_FINDINGS, AT)
    assert list(alerts.columns) == ALERT_COLUMNS + EXTRA_COLUMNS and len(alerts) == 0
    assert str(alerts["created_at"].dtype) == "datetime64[us, UTC]"


def test_skimming_points_alert_by_q_value():
    points = _points([{"terminal_id": "T1", "rank": 1, "q_value": 1e-9, "compromised_cards": 12},
                      {"terminal_id": "T2", "rank": 2, "q_value": 1e-3, "compromised_cards": 3},
                      {"terminal_id": "T3", "rank": 3, "q_value": 0.03, "compromised_cards": 2},
                      {"terminal_id": "T4", "rank": 4, "q_value": 0.2, "compromised_cards": 1}])
    alerts = build_alerts(points, EMPTY_CARDS, EMPTY_RINGS, EMPTY_FINDINGS, AT).set_index("entity_id")
    assert alerts["severity"].to_dict() == {"T1": "critical", "T2": "critical", "T3": "medium"}
    assert set(alerts["kind"]) == {"skimming_point"} and set(alerts["entity_type"]) == {"terminal"}
    assert "12 compromised cards of 50 seen" in alerts.loc["T1", "summary"]
    assert alerts.loc["T1", "evidence_at"] == TS + pd.Timedelta(days=9)  # the evidence's date, not the run's


def test_the_same_q_value_gives_the_same_severity_in_every_detector():
    q = [1e-4, 5e-3, 0.04, 0.06]
    points = _points([{"terminal_id": f"T{i}", "rank": i, "q_value": v, "compromised_cards": 3}
                      for i, v in enumerate(q)])
    cards = _cards([{"card_token": f"c{i}", "score": 0.5, "q_value": v} for i, v in enumerate(q)])
    rings = pd.DataFrame({"ring_id": [f"r{i}" for i in range(4)], "kind": "cash_out", "score": 0.5,
                          "member_type": "card", "member_id": [f"c{i}" for i in range(4)], "q_value": q})
    findings = pd.DataFrame({"terminal_id": [f"T{i}" for i in range(4)], "merchant_id": "M", "kind": "trace_gap",
                             "score": 0.5, "details": "gap", "first_seen": TS, "last_seen": TS, "q_value": q})
    alerts = build_alerts(points, cards, rings, findings, AT)
    by_kind = alerts.groupby("kind")["severity"].apply(lambda s: sorted(s)).to_dict()
    assert by_kind == {k: ["critical", "high", "medium"] for k in
                       ("skimming_point", "cloned_card", "cash_out", "trace_gap")}


def test_a_points_cards_at_risk_are_its_exposed_cards():
    points = _points([{"terminal_id": "T1", "rank": 1, "q_value": 1e-4, "compromised_cards": 5, "cards_seen": 400,
                       "mode": "skimming", "accepted": True},
                      {"terminal_id": "T2", "rank": 2, "q_value": 1e-3, "compromised_cards": 3, "cards_seen": 300,
                       "mode": "at_terminal", "accepted": True}])
    exposed = pd.DataFrame({"terminal_id": ["T1"] * 3 + ["T2"] * 2, "card_token": ["a", "b", "b", "c", "d"]})
    alone = build_alerts(points, EMPTY_CARDS, EMPTY_RINGS, EMPTY_FINDINGS, AT).set_index("entity_id")
    assert alone["impact"].to_dict() == {"T1": 400, "T2": 300}  # without the lists: every card seen
    listed = build_alerts(points, EMPTY_CARDS, EMPTY_RINGS, EMPTY_FINDINGS, AT, exposed).set_index("entity_id")
    assert listed["impact"].to_dict() == {"T1": 2, "T2": 2}  # the distinct cards on each point's list


def test_cloned_cards_without_q_value_are_adjusted_over_what_was_given():
    cards = _cards([{"card_token": "a", "score": 0.9, "p_value": 1e-6}, {"card_token": "b", "score": 0.7,
                                                                          "p_value": 0.02},
                    {"card_token": "c", "score": 0.2, "p_value": 0.5}])
    assert np.allclose(q_values_of(cards), [3e-6, 0.03, 0.5])
    alerts = build_alerts(EMPTY_POINTS, cards, EMPTY_RINGS, EMPTY_FINDINGS, AT)
    assert alerts["entity_id"].tolist() == ["a", "b"] and alerts["severity"].tolist() == ["critical", "medium"]
    assert "impossible_travel, parallel_use" in alerts["summary"].iloc[0]
    with pytest.raises(ValueError, match="no q_value or p_value"):
        q_values_of(cards.drop(columns="p_value"))


def test_one_alert_per_ring_and_per_finding_ordered_by_severity_then_impact():
    rings = pd.DataFrame({"ring_id": ["r1"] * 4 + ["n1"] * 2, "kind": ["cash_out"] * 4 + ["merchant_network"] * 2,
                          "score": [0.95] * 4 + [0.6] * 2, "q_value": [1e-5] * 4 + [0.02] * 2,
                          "member_type": ["card", "card", "merchant", "terminal", "merchant", "merchant"],
                          "member_id": ["c1", "c2", "M1", "T1", "M2", "M3"]})
    findings = pd.DataFrame({"terminal_id": ["T1", "T1"], "merchant_id": ["M1", "M1"],
                             "kind": ["trace_gap", "unapproved_firmware"], "score": [0.97, 0.9],
                             "q_value": [1e-4, 5e-3],
                             "details": ["3 STAN gaps hide 40 messages of 300", "firmware abc"],
                             "first_seen": [TS, TS], "last_seen": [TS, TS]})
    alerts = build_alerts(EMPTY_POINTS, EMPTY_CARDS, rings, findings, AT)
    got = alerts.set_index(["entity_id", "kind"])
    assert got["evidence_at"].isna().sum() == 2  # rings without first_seen: no evidence date
    seen = rings.assign(first_seen=[TS] * 4 + [pd.NaT] * 2)  # a cash-out ring's first transaction
    dated = build_alerts(EMPTY_POINTS, EMPTY_CARDS, seen, findings, AT).set_index(["entity_id", "kind"])
    assert dated.loc[("r1", "cash_out"), "evidence_at"] == TS
    assert pd.isna(dated.loc[("n1", "merchant_network"), "evidence_at"])
    assert got.loc[("r1", "cash_out"), "summary"].startswith("cash-out ring: 2 cards, 1 merchants, 1 terminals")
    assert got.loc[("r1", "cash_out"), "severity"] == "critical"
    assert got.loc[("n1", "merchant_network"), "severity"] == "medium"
    assert got.loc[("T1", "trace_gap"), "severity"] == "critical"
    assert got.loc[("T1", "unapproved_firmware"), "severity"] == "high"
    assert len(alerts) == 4 and alerts["alert_id"].is_unique
    assert (alerts["created_at"] == pd.Timestamp(AT)).all()
    # both criticals: the ring with 2 cards at risk before the terminal finding
    assert alerts["entity_id"].tolist()[:2] == ["r1", "T1"]
    order = alerts["severity"].map({"medium": 1, "high": 2, "critical": 3}).tolist()
    assert order == sorted(order, reverse=True)
