"""The alert queue: ids stable across runs, thresholds and severities per detector, contract columns."""

from __future__ import annotations

from datetime import datetime, timezone

import pandas as pd
import pytest

from graph.detectors.queue import ALERT_COLUMNS, alert_id, build_alerts, severity_of

AT = datetime(2026, 5, 1, tzinfo=timezone.utc)
TS = pd.Timestamp("2026-03-01", tz="UTC")


def _points(rows):
    base = {"merchant_id": "M", "score": 1.0, "p_value": 1e-3, "cards_seen": 50, "window_start": TS,
            "window_end": TS + pd.Timedelta(days=9)}
    return pd.DataFrame([{**base, **r} for r in rows])


def _cards(rows):
    base = {"reasons": "impossible_travel;parallel_use", "first_evidence_at": TS, "evidence_txn_ids": [["x1"]]}
    return pd.DataFrame([{**base, **r} for r in rows])


EMPTY_POINTS = _points([{"terminal_id": "T", "rank": 1, "p_value_adjusted": 1.0, "compromised_cards": 1}]).iloc[:0]
EMPTY_CARDS = _cards([{"card_token": "c", "score": 0.0}]).iloc[:0]
EMPTY_RINGS = pd.DataFrame(columns=["ring_id", "kind", "score", "member_type", "member_id"])
EMPTY_FINDINGS = pd.DataFrame(columns=["terminal_id", "merchant_id", "kind", "score", "details", "first_seen",
                                       "last_seen"])


def test_alert_id_is_stable_and_differs_by_entity_and_kind():
    assert alert_id("card", "c1", "cloned_card") == alert_id("card", "c1", "cloned_card")
    assert len({alert_id("card", "c1", "cloned_card"), alert_id("card", "c2", "cloned_card"),
                alert_id("terminal", "c1", "cloned_card"), alert_id("card", "c1", "trace_gap")}) == 4


def test_empty_inputs_give_an_empty_queue_with_the_contract_columns():
    alerts = build_alerts(EMPTY_POINTS, EMPTY_CARDS, EMPTY_RINGS, EMPTY_FINDINGS, AT)
    assert list(alerts.columns) == ALERT_COLUMNS and len(alerts) == 0


def test_skimming_points_alert_by_adjusted_p_value():
    points = _points([{"terminal_id": "T1", "rank": 1, "p_value_adjusted": 1e-9, "compromised_cards": 12},
                      {"terminal_id": "T2", "rank": 2, "p_value_adjusted": 1e-4, "compromised_cards": 3},
                      {"terminal_id": "T3", "rank": 3, "p_value_adjusted": 0.005, "compromised_cards": 2},
                      {"terminal_id": "T4", "rank": 4, "p_value_adjusted": 0.2, "compromised_cards": 1}])
    alerts = build_alerts(points, EMPTY_CARDS, EMPTY_RINGS, EMPTY_FINDINGS, AT).set_index("entity_id")
    assert alerts["severity"].to_dict() == {"T1": "critical", "T2": "high", "T3": "medium"}
    assert set(alerts["kind"]) == {"skimming_point"} and set(alerts["entity_type"]) == {"terminal"}
    assert "12 compromised cards of 50 seen" in alerts.loc["T1", "summary"]
    assert alerts.loc["T1", "score"] > alerts.loc["T2", "score"] > alerts.loc["T3", "score"]


def test_cloned_cards_below_the_floor_raise_nothing_and_the_rest_by_score():
    cards = _cards([{"card_token": "a", "score": 0.995}, {"card_token": "b", "score": 0.7},
                    {"card_token": "c", "score": 0.2}])
    alerts = build_alerts(EMPTY_POINTS, cards, EMPTY_RINGS, EMPTY_FINDINGS, AT)
    assert alerts["entity_id"].tolist() == ["a", "b"]
    assert alerts["severity"].tolist() == ["critical", "medium"]
    assert "impossible_travel, parallel_use" in alerts["summary"].iloc[0]


def test_one_alert_per_ring_and_per_finding():
    rings = pd.DataFrame({"ring_id": ["r1"] * 4 + ["n1"] * 2, "kind": ["cash_out"] * 4 + ["merchant_network"] * 2,
                          "score": [0.95] * 4 + [0.6] * 2,
                          "member_type": ["card", "card", "merchant", "terminal", "merchant", "merchant"],
                          "member_id": ["c1", "c2", "M1", "T1", "M2", "M3"]})
    findings = pd.DataFrame({"terminal_id": ["T1", "T1"], "merchant_id": ["M1", "M1"],
                             "kind": ["trace_gap", "unapproved_firmware"], "score": [0.97, 0.9],
                             "details": ["3 STAN gaps hide 40 messages of 300", "firmware abc"],
                             "first_seen": [TS, TS], "last_seen": [TS, TS]})
    alerts = build_alerts(EMPTY_POINTS, EMPTY_CARDS, rings, findings, AT)
    got = alerts.set_index(["entity_id", "kind"])
    assert got.loc[("r1", "cash_out"), "summary"] == "cash-out ring: 2 cards, 1 merchants, 1 terminals"
    assert got.loc[("r1", "cash_out"), "severity"] == "critical"
    assert got.loc[("n1", "merchant_network"), "severity"] == "medium"
    assert got.loc[("T1", "trace_gap"), "severity"] == "critical"
    assert got.loc[("T1", "unapproved_firmware"), "severity"] == "high"
    assert len(alerts) == 4 and alerts["alert_id"].is_unique
    assert (alerts["created_at"] == pd.Timestamp(AT)).all()
    order = alerts["severity"].map({"low": 0, "medium": 1, "high": 2, "critical": 3}).tolist()
    assert order == sorted(order, reverse=True)


@pytest.mark.parametrize("kind,score,expected", [("cloned_card", 0.59, "low"), ("cloned_card", 0.6, "medium"),
                                                 ("void_spike", 1.0, "high"), ("unknown_kind", 0.96, "critical")])
def test_severity_thresholds(kind, score, expected):
    assert severity_of(kind, [score]).tolist() == [expected]
