"""The quality measures behind BENCHMARKS.md's detection figures, on small hand-made outputs and truths."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from graph.quality import _ring_quality, average_precision, queue_truth


def test_average_precision_by_hand():
    assert average_precision(["a", "b", "x"], {"a", "b"}) == 1.0
    assert average_precision(["x", "a", "y", "b"], {"a", "b"}) == pytest.approx((1 / 2 + 2 / 4) / 2)
    assert average_precision(["x"], {"a"}) == 0.0
    assert np.isnan(average_precision(["a"], set()))


def test_queue_truth_per_kind():
    truth = {"skimmers": pd.DataFrame({"terminal_id": ["T1"]}),
             "compromise_points": pd.DataFrame({"terminal_id": ["T2"], "mode": ["at_terminal"]}),
             "cloned_cards": pd.DataFrame({"card_token": ["c1"]}),
             "fraud_txns": pd.DataFrame({"card_token": ["c3", "c4"], "kind": ["at_terminal", "ring"]}),
             "terminal_cases": pd.DataFrame({"terminal_id": ["T3"], "kind": ["trace_gap"]}),
             "rings": pd.DataFrame({"ring_id": "R", "kind": "cash_out", "member_type": "merchant",
                                    "member_id": ["M1", "M2"]})}
    rings = pd.DataFrame({"ring_id": ["r1", "r1", "r2"], "kind": "cash_out", "score": 0.9, "member_type": "merchant",
                          "member_id": ["M1", "M2", "M9"]})
    alerts = pd.DataFrame({"kind": ["skimming_point", "compromised_terminal", "skimming_point", "cloned_card",
                                    "cloned_card", "cash_out", "cash_out", "trace_gap", "tamper_event", "void_spike",
                                    "cloned_card", "cloned_card"],
                           "entity_id": ["T1", "T2", "T9", "c1", "c2", "r1", "r2", "T3", "T2", "T8", "c3", "c4"]})
    assert queue_truth(alerts, rings, truth).tolist() == [True, True, False, True, False, True, False, True, True,
                                                          False, True, False]


def test_ring_jaccard_counts_only_the_planted_member_types():
    planted = pd.DataFrame({"ring_id": "R", "member_type": ["card", "card", "merchant"], "member_id": ["a", "b", "M"]})
    found = pd.DataFrame({"ring_id": "r", "member_type": ["card", "card", "merchant", "terminal", "terminal"],
                          "member_id": ["a", "x", "M", "T1", "T2"]})
    got = _ring_quality(found, planted)
    assert got["ring_jaccard_min"] == pytest.approx(2 / 4)
    assert got["largest_ring_members"] == 5 and got["rings_reported"] == 1 and got["rings_planted"] == 1
    assert _ring_quality(found.iloc[:0], planted)["ring_jaccard_min"] == 0.0
