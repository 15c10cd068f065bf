"""Cash-out rings: suspicion of a transaction, ring assembly, quality on generated drops."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from etl.generate import generate
from graph.detectors.collusion import RING_COLUMNS, RingDetector, suspicion
from graph.evaluation import projection_from_drop, tokenize_pan
from graph.projection import Projection
from tests.graph.conftest import T0, make_txns

KEY = "posguard-test-key-not-a-secret"


def test_suspicion_counts_small_hours_and_round_or_near_limit_amounts():
    night = int((T0 + pd.Timedelta(hours=2)).timestamp()) - 8 * 3600  # 02:00 at UTC+8
    noon = night + 10 * 3600
    amount = np.array([5000.0, 9999.0, 49990.0, 1234.5, 5000.0, 999.0, 20000.0])
    ts = np.array([noon, noon, noon, noon, night, night, night])
    assert suspicion(amount, ts).tolist() == [1, 1, 1, 0, 2, 1, 2]


def _ring_rows(cards, merchants, seed, start=0):
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(start, start + 120):
        rows.append({"hours": 18.0 + 24 * (i % 40) + rng.random(), "card_token": rng.choice(cards),
                     "merchant_id": rng.choice(merchants), "terminal_id": "T-" + rng.choice(merchants),
                     "amount": float(rng.choice([5000.0, 9999.0, 19999.0]))})
    return rows


def test_two_rings_are_two_rings_and_camouflage_does_not_hide_them():
    ring_a = _ring_rows([f"a{i}" for i in range(8)], ["MA1", "MA2", "MA3"], 1)
    ring_b = _ring_rows([f"b{i}" for i in range(8)], ["MB1", "MB2"], 2)
    rng = np.random.default_rng(3)
    ordinary = [{"hours": 10.0 + 24 * d, "card_token": f"o{i}", "merchant_id": f"M{rng.integers(0, 30)}",
                 "terminal_id": "T", "amount": float(rng.integers(10, 300))} for i in range(200) for d in range(3)]
    camouflage = [{"hours": 12.0, "card_token": f"a{i}", "merchant_id": "SUPERMARKET", "terminal_id": "TS",
                   "amount": 5000.0} for i in range(8)]
    camouflage += [{"hours": 12.5, "card_token": f"o{i}", "merchant_id": "SUPERMARKET", "terminal_id": "TS",
                    "amount": 1000.0} for i in range(150)]
    p = Projection.from_frames(make_txns(ring_a + ring_b + ordinary + camouflage))
    rings = RingDetector().fit(p).rings_
    groups = {frozenset(g["member_id"]) for _, g in rings[rings["member_type"] != "terminal"].groupby("ring_id")}
    assert frozenset([f"a{i}" for i in range(8)] + ["MA1", "MA2", "MA3"]) in groups
    assert frozenset([f"b{i}" for i in range(8)] + ["MB1", "MB2"]) in groups
    assert set(rings.loc[rings["member_type"] == "terminal", "member_id"]) == {"T-MA1", "T-MA2", "T-MA3", "T-MB1",
                                                                              "T-MB2"}
    assert (rings["score"] > 0.75).all() and list(rings.columns) == RING_COLUMNS


def test_output_columns_follow_the_contract_when_nothing_is_found():
    from graph.scoring import OUTPUT_SCHEMAS

    p = Projection.from_frames(make_txns([{"hours": 10, "amount": 12.0}]))
    rings = RingDetector().fit(p).rings_
    assert len(rings) == 0 and list(rings.columns) == RING_COLUMNS
    assert RING_COLUMNS[:5] == OUTPUT_SCHEMAS["rings"].names


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_planted_cash_out_rings_found_with_jaccard_over_0_7(seed, tmp_path):
    generate(tmp_path, seed=seed, scale="small")
    rings = RingDetector().fit(projection_from_drop(tmp_path, KEY)).rings_
    truth = pd.read_parquet(tmp_path / "truth" / "rings.parquet")
    truth = truth[(truth["kind"] == "cash_out") & (truth["member_type"] != "terminal")]
    assert truth["ring_id"].nunique() >= 2
    found = [set(g["member_id"]) for _, g in rings[rings["member_type"] != "terminal"].groupby("ring_id")]
    for ring_id, g in truth.groupby("ring_id"):
        members = set(g.loc[g["member_type"] == "merchant", "member_id"])
        members |= set(tokenize_pan(g.loc[g["member_type"] == "card", "member_id"], KEY))
        best = max(len(members & f) / len(members | f) for f in found)
        assert best >= 0.7, ring_id


def test_nothing_planted_gives_no_confident_ring(tmp_path):
    generate(tmp_path, seed=6, scale="small", plant=False)
    rings = RingDetector().fit(projection_from_drop(tmp_path, KEY)).rings_
    assert not (rings["score"] >= 0.5).any(), rings.drop_duplicates("ring_id").to_string()
