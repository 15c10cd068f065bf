"""Alerts explained in words at scoring time: evidence, comparison with normal, strength, detector version."""

from __future__ import annotations

from datetime import datetime, timezone

import pandas as pd

from graph import explain
from graph.kernels.cloned import REASONS as CLONED_REASONS
from graph.queue import build_alerts
from tests.graph.test_queue import EMPTY_CARDS, EMPTY_FINDINGS, EMPTY_POINTS, EMPTY_RINGS, TS, _cards, _points

AT = datetime(2026, 5, 1, tzinfo=timezone.utc)


def test_q_in_words_states_the_share_expected_false():
    assert explain.q_in_words(2e-4).startswith("fewer than 1 in 1,000 such alerts is expected to be false")
    assert explain.q_in_words(0.004).startswith("fewer than 1 in 100 ")
    assert explain.q_in_words(0.02).startswith("fewer than 1 in 20 ")
    assert explain.q_in_words(1e-40).startswith("fewer than 1 in 1,000,000 ")
    assert explain.q_in_words(0.3).startswith("more than 1 in 20")


def test_a_skimming_alert_says_what_was_seen_against_normal_how_strongly_and_by_which_detector():
    points = _points([{"terminal_id": "T1", "rank": 1, "q_value": 2e-4, "p_value": 3e-6, "compromised_cards": 12,
                       "cards_seen": 48, "mode": "skimming"}])
    alert = build_alerts(points, EMPTY_CARDS, EMPTY_RINGS, EMPTY_FINDINGS, AT).iloc[0]
    words, stamp = alert["explanation"].rsplit("\n", 1)
    assert "Terminal T1" in words and "12 cards later reported" in words and "48 cards" in words
    assert "between 2026-03-01 and 2026-03-10" in words  # the window
    assert "probability 3e-06" in words  # the comparison with the null
    assert "fewer than 1 in 1,000 such alerts is expected to be false" in words
    assert stamp == explain.stamp("skimming_point") and explain.detector_version("skimming_point") in stamp
    assert alert["explanation_key"] == explain.explanation_key(words)


def test_the_explanation_key_follows_the_evidence_not_the_run_or_the_version():
    one = _points([{"terminal_id": "T1", "rank": 1, "q_value": 2e-4, "compromised_cards": 12, "mode": "skimming"}])
    more = one.assign(compromised_cards=13)
    first = build_alerts(one, EMPTY_CARDS, EMPTY_RINGS, EMPTY_FINDINGS, AT).iloc[0]
    later = build_alerts(one, EMPTY_CARDS, EMPTY_RINGS, EMPTY_FINDINGS, datetime(2026, 6, 1, tzinfo=timezone.utc))
    changed = build_alerts(more, EMPTY_CARDS, EMPTY_RINGS, EMPTY_FINDINGS, AT).iloc[0]
    assert later.iloc[0]["explanation_key"] == first["explanation_key"]
    assert changed["explanation_key"] != first["explanation_key"]


def test_a_cloned_card_alert_names_each_reason_its_count_and_the_travel_pair():
    cards = _cards([{"card_token": "c1", "score": 1.0, "q_value": 3e-3, "reasons": "impossible_travel:strong;"
                     "fallback_after_chip:weak", "n_impossible_travel": 2, "n_fallback_after_chip": 1,
                     "evidence_txn_ids": ["a", "b", "c"], "travel": "1,334 km in 21 min (3,738 km/h)"}])
    text = build_alerts(EMPTY_POINTS, cards, EMPTY_RINGS, EMPTY_FINDINGS, AT).iloc[0]["explanation"]
    assert "impossible travel" in text and "2 times, strong" in text and "1 time, weak" in text
    assert "3 evidence transactions" in text and "1,334 km in 21 min (3,738 km/h)" in text
    assert "fewer than 1 in 100 such alerts" in text and "detector cloned " in text
    assert "exposed at skimming point" not in text
    exposed = build_alerts(EMPTY_POINTS, cards.assign(exposed_at="T0042"), EMPTY_RINGS, EMPTY_FINDINGS, AT)
    assert "Its data was exposed at skimming point T0042" in exposed.iloc[0]["explanation"]


def test_every_kind_of_alert_is_explained():
    rings = pd.DataFrame([{"ring_id": "r1", "kind": "cash_out", "score": 0.5, "member_type": m, "member_id": i,
                           "q_value": 1e-3, "txns": 40.0, "amount": 9000.0}
                          for m, i in (("card", "c1"), ("card", "c2"), ("merchant", "m1"), ("terminal", "t1"))])
    findings = pd.DataFrame([{"terminal_id": "T9", "merchant_id": "M9", "kind": "void_spike", "score": 1.0,
                              "details": "18 voids among 27 messages (usual rate 7%)", "first_seen": TS,
                              "last_seen": TS, "q_value": 1e-5}])
    alerts = build_alerts(EMPTY_POINTS, EMPTY_CARDS, rings, findings, AT).set_index("kind")
    assert "2 cards trade with 1 merchants" in alerts.loc["cash_out", "explanation"]
    assert "(40 transactions for 9,000) more densely" in alerts.loc["cash_out", "explanation"]
    assert "randomised" in alerts.loc["cash_out", "explanation"]
    assert "usual rate 7%" in alerts.loc["void_spike", "explanation"]
    assert alerts.loc["void_spike", "explanation"].endswith(explain.stamp("void_spike"))
    assert "integrity" in explain.stamp("void_spike") and "rings" in explain.stamp("cash_out")


def test_every_reason_the_cloned_detector_gives_has_words():
    missing = [r for r in (*CLONED_REASONS, "reported_counterfeit") if r not in explain.REASON_WORDS]
    assert not missing, missing
    text = explain._reasons("fallback_new_merchant:strong;reported_counterfeit:weak", {"fallback_new_merchant": 3})
    words = "magnetic-stripe uses near home at shops where the card is never used with its chip 3 times"
    assert text[0].startswith(words)
    assert "fallback_new_merchant" not in " ".join(text) and "reported counterfeit" not in " ".join(text)


def test_the_version_hashes_every_module_of_the_family_detector_and_kernel_parts_included():
    names = {p.relative_to(explain._GRAPH).as_posix() for p in explain.code_files(("cloned",))}
    assert {"detectors/cloned.py", "detectors/cloned_sites.py", "detectors/cloned_exposure.py",
            "detectors/cloned_tables.py", "kernels/cloned.py", "kernels/cloned_combine.py",
            "detectors/significance.py"} <= names
    assert not any("skimming" in n or "rings" in n for n in names)
    skimming = {p.name for p in explain.code_files(("skimming", "compromise"))}
    assert {"skimming_windows.py", "skimming_explain.py", "compromise.py"} <= skimming


def test_an_edit_to_any_part_of_a_family_changes_its_version(tmp_path, monkeypatch):
    for folder in ("detectors", "kernels"):
        (tmp_path / folder).mkdir()
        for path in (explain._GRAPH / folder).glob("*.py"):
            (tmp_path / folder / path.name).write_bytes(path.read_bytes())
    monkeypatch.setattr(explain, "_GRAPH", tmp_path)
    explain._code_hash.cache_clear()
    before = {kind: explain.detector_version(kind) for kind in ("cloned_card", "cash_out", "trace_gap")}
    with (tmp_path / "kernels" / "rings_nulls.py").open("a") as f:
        f.write("# an edit\n")
    explain._code_hash.cache_clear()
    after = {kind: explain.detector_version(kind) for kind in before}
    explain._code_hash.cache_clear()
    assert after["cash_out"] != before["cash_out"]
    assert after["cloned_card"] == before["cloned_card"] and after["trace_gap"] == before["trace_gap"]
