"""Quality on generated drops (no ETL, no Neo4j): planted skimmers in the top 5, cloned cards precise at k."""

from __future__ import annotations

import pandas as pd
import pytest

from etl.generate import generate
from graph.detectors.cloned import ClonedCardDetector
from graph.detectors.skimming import SkimmingDetector
from graph.evaluation import precision_at_k, projection_from_drop, reporting_rate_curve, tokenize_pan

KEY = "posguard-test-key-not-a-secret"


@pytest.fixture(scope="module", params=[0, 1, 2, 3])
def drop(request, tmp_path_factory):
    out = tmp_path_factory.mktemp(f"drop{request.param}")
    generate(out, seed=request.param, scale="small")
    skimmers = pd.read_parquet(out / "truth" / "skimmers.parquet")
    clones = set(tokenize_pan(pd.read_parquet(out / "truth" / "cloned_cards.parquet")["pan"], KEY))
    return projection_from_drop(out, KEY), skimmers, clones


def test_every_planted_skimmer_in_top5_with_overlapping_window(drop):
    p, skimmers, _ = drop
    assert len(skimmers) >= 1
    points = SkimmingDetector().fit(p).points_
    top = points.head(5).set_index("terminal_id")
    for _, truth in skimmers.iterrows():
        assert truth["terminal_id"] in top.index, f"skimmer {truth['terminal_id']} not in the top 5"
        got = top.loc[truth["terminal_id"]]
        assert got["window_start"] <= pd.Timestamp(truth["window_end"]).tz_convert("UTC")
        assert got["window_end"] >= pd.Timestamp(truth["window_start"]).tz_convert("UTC")
        assert got["p_value"] < 1e-3


def test_cloned_cards_precision_at_k(drop):
    p, _, clones = drop
    cards = ClonedCardDetector().fit(p).cards_
    assert len(clones) >= 5
    assert precision_at_k(cards["card_token"], clones) >= 0.9
    top = cards.head(len(clones))
    assert top["evidence_txn_ids"].map(len).gt(0).all() and top["first_evidence_at"].notna().all()


def test_reporting_rate_curve_on_a_drop(drop):
    p, skimmers, clones = drop
    curve = reporting_rate_curve(p, skimmers, clones, rates=(0.5, 1.0))
    assert curve["reported"].is_monotonic_increasing
    assert curve["recall_top"].iloc[-1] == 1.0
