"""SkimmingDetector on hand-built frames: skimmers beat a busy supermarket, windows match, contract columns."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from graph.detectors.skimming import MERCHANT_COLUMNS, POINT_COLUMNS, SkimmingDetector
from graph.evaluation import reporting_rate_curve
from graph.projection import Projection
from graph.references import skimming as reference
from graph.vocabulary import ENTRY_MANUAL
from tests.graph.conftest import busy_supermarket_scenario, make_txns


@pytest.fixture(scope="module", params=[0, 1, 2])
def scenario(request):
    tx, terminals, reports, truth = busy_supermarket_scenario(request.param)
    return Projection.from_frames(tx, terminals, None, reports), truth


def _seconds(ts: pd.Series) -> np.ndarray:
    return ((ts - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)).to_numpy(dtype=np.int64)


def test_skimmers_outrank_the_busy_supermarket(scenario):
    p, truth = scenario
    det = SkimmingDetector().fit(p)
    both = det.result_
    # the terminal where every counterfeit was cashed (T03, far away) is the top point of the other kind, and
    # it does not take the skimmers' victims: their fraud there was a counterfeit's use, not the card's
    assert both["terminal_id"].iloc[0] == "T03" and both["mode"].iloc[0] == "at_terminal"
    pts = both[both["mode"] == "skimming"].reset_index(drop=True)
    assert set(pts["terminal_id"].head(2)) == set(truth["skimmers"])
    assert (pts["score"].head(2) > 5).all() and (pts["p_value"].head(2) < 1e-5).all()
    assert (pts["q_value"].head(2) < 1e-4).all()
    supermarket = pts.set_index("terminal_id").loc[truth["supermarket"]]
    assert supermarket["rank"] > 3 and supermarket["compromised_cards"] > pts["compromised_cards"].head(2).max()
    for _, row in pts.head(2).iterrows():  # estimated window overlaps (here: nearly equals) the truth
        start, end = truth["skimmers"][row["terminal_id"]]
        assert row["window_start"] < end and row["window_end"] > start
        assert abs(row["window_start"] - start) < pd.Timedelta(days=3)
        assert abs(row["window_end"] - end) < pd.Timedelta(days=3)
        assert len(row["evidence_txn_ids"]) >= row["compromised_cards"]


def test_naive_baselines_rank_the_supermarket_first(scenario):
    """The baselines this detector has to beat: both put a busy or a fraud terminal first, not a skimmer."""
    p, truth = scenario
    det = SkimmingDetector().fit(p)
    cards = pd.Index(p.card_ids).get_indexer(det.windows_["card_token"])
    present = p.txn_entry != ENTRY_MANUAL
    visits = reference.exposure_visits(p.card_indptr, p.txn_ts, present, cards, _seconds(det.windows_["window_start"]),
                                   _seconds(det.windows_["window_end"]))
    in_window = reference.count_compromised_in_window(visits, p.txn_terminal, p.n_terminals)
    ever = reference.count_compromised_ever(p.card_indptr, p.txn_terminal, cards, p.n_terminals)
    assert p.terminal_ids[int(np.argmax(in_window))] == truth["supermarket"]
    assert p.terminal_ids[int(np.argmax(ever))] not in truth["skimmers"]
    # one skimming row per terminal any compromised card used inside its window, with the naive count
    # (at-terminal rows are the other kind of point in the same list)
    skim = det.result_[det.result_["mode"] == "skimming"]
    got = skim.set_index("terminal_id")["compromised_cards"].to_dict()
    assert got == {p.terminal_ids[t]: n for t, n in enumerate(in_window) if n > 0}


def test_span_null_and_no_explain_away_also_run(scenario):
    p, truth = scenario
    for params in (dict(explain_away=False), dict(null="span")):
        pts = SkimmingDetector(**params).fit(p).result_
        assert list(pts.columns) == POINT_COLUMNS
        assert pts["rank"].tolist() == list(range(1, len(pts) + 1))
        assert pts["score"].is_monotonic_decreasing


def test_explain_away_drops_covisited_terminal():
    """Victims of S1 all shop at X (a shop many others use too): X looks significant until S1 explains them."""
    rows = []
    day = 86400 / 3600
    for c in range(200):  # background: 20% of cards use X, 20% use S2, everyone uses filler terminals
        if c % 10 < 2:
            rows.append(dict(card_token=f"c{c:03d}", terminal_id="X", hours=(c % 50) * day))
        if c % 10 >= 8:
            rows.append(dict(card_token=f"c{c:03d}", terminal_id="S2", hours=(c % 50) * day))
        rows.append(dict(card_token=f"c{c:03d}", terminal_id=f"F{c % 20}", hours=(c % 40) * day))
    reports = []
    for v in range(10):  # S1's victims, all also X regulars
        tok = f"v1{v}"
        rows += [dict(card_token=tok, terminal_id="S1", hours=10 * day), dict(card_token=tok, terminal_id="X", hours=12 * day)]
        reports.append((tok, "2026-04-01T00:00:00Z", "2026-03-25T00:00:00Z"))
    for v in range(6):  # S2's victims
        tok = f"v2{v}"
        rows.append(dict(card_token=tok, terminal_id="S2", hours=20 * day))
        reports.append((tok, "2026-04-05T00:00:00Z", None))
    fr = pd.DataFrame(reports, columns=["card_token", "reported_at", "first_fraud_at"]).assign(fraud_type="counterfeit")
    p = Projection.from_frames(make_txns(rows), fraud_reports=fr)
    with_ea = SkimmingDetector().fit(p).result_["terminal_id"].tolist()
    without = SkimmingDetector(explain_away=False).fit(p).result_["terminal_id"].tolist()
    assert with_ea[:2] == ["S1", "S2"]
    assert without[:2] == ["S1", "X"]


def test_types_weights_and_empty():
    tx = make_txns([dict(card_token="a", terminal_id="T1"), dict(card_token="b", terminal_id="T1")])
    lost = pd.DataFrame({"card_token": ["a", "b"], "reported_at": ["2026-03-05"] * 2, "fraud_type": ["lost_stolen"] * 2})
    det = SkimmingDetector().fit(Projection.from_frames(tx, fraud_reports=lost))
    assert det.result_.empty and list(det.result_.columns) == POINT_COLUMNS
    assert det.merchants_.empty and list(det.merchants_.columns) == MERCHANT_COLUMNS
    det = SkimmingDetector(type_weights={"lost_stolen": 1.0}).fit(Projection.from_frames(tx, fraud_reports=lost))
    assert det.result_["terminal_id"].tolist() == ["T1"] and det.result_["compromised_cards"].tolist() == [2]
    assert SkimmingDetector().fit(Projection.from_frames(tx)).result_.empty
    with pytest.raises(ValueError):
        SkimmingDetector(exposure_days=0).fit(Projection.from_frames(tx, fraud_reports=lost))
    with pytest.raises(ValueError, match="null"):
        SkimmingDetector(null="nope", type_weights={"lost_stolen": 1.0}).fit(Projection.from_frames(tx, fraud_reports=lost))


def test_reporting_rate_curve(scenario):
    p, truth = scenario
    skimmers = pd.DataFrame([(t, a, b) for t, (a, b) in truth["skimmers"].items()],
                            columns=["terminal_id", "window_start", "window_end"])
    curve = reporting_rate_curve(p, skimmers, sorted(truth["victims"]), rates=(0.25, 1.0))
    assert curve["rate"].tolist() == [0.25, 1.0]
    assert curve["reported"].tolist() == [round(0.25 * len(truth["victims"])), len(truth["victims"])]
    assert (curve["precision_at_k"] == 1.0).all() and (curve["window_overlap"] == 1.0).all()
    assert curve["recall"].iloc[-1] == 1.0
