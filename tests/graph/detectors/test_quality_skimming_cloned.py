"""Quality on generated drops (no ETL, no Neo4j): planted skimmers in the top 5; cloned cards precise at k on
200k-transaction drops, and no card at q <= 0.01 on a clean one; the same for cloned cards on drops of the
adversarial generator (clones swiped once or twice, travellers who swipe, fallback at home)."""

from __future__ import annotations

import pandas as pd
import pytest

from etl.adversary.core import generate_adversarial
from etl.generate import generate
from graph.detectors.cloned import ClonedCardDetector
from graph.detectors.skimming import SkimmingDetector
from graph.detectors.significance import REPORT_Q
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
    points = SkimmingDetector().fit(p).result_
    top = points.head(5).set_index("terminal_id")
    for _, truth in skimmers.iterrows():
        assert truth["terminal_id"] in top.index, f"skimmer {truth['terminal_id']} not in the top 5"
        got = top.loc[truth["terminal_id"]]
        assert got["window_start"] <= pd.Timestamp(truth["window_end"]).tz_convert("UTC")
        assert got["window_end"] >= pd.Timestamp(truth["window_start"]).tz_convert("UTC")
        assert got["p_value"] < 1e-3


@pytest.fixture(scope="module", params=[5, 6, 7])
def clone_drop(request, tmp_path_factory):
    out = tmp_path_factory.mktemp(f"clones{request.param}")
    generate(out, seed=request.param, txns=200_000)
    clones = set(tokenize_pan(pd.read_parquet(out / "truth" / "cloned_cards.parquet")["pan"], KEY))
    return projection_from_drop(out, KEY), clones


def test_cloned_cards_precision_at_k(clone_drop):
    p, clones = clone_drop
    cards = ClonedCardDetector().fit(p).result_
    assert len(clones) >= 50
    assert precision_at_k(cards["card_token"], clones) >= 0.9  # k = number planted; only q <= 0.05 are listed
    assert (cards["q_value"] <= REPORT_Q).all() and cards["q_value"].is_monotonic_increasing
    top = cards.head(len(clones))
    assert top["evidence_txn_ids"].map(len).gt(0).all() and top["first_evidence_at"].notna().all()


def test_clean_drop_raises_no_card_at_q_001(tmp_path):
    generate(tmp_path / "clean", seed=5, txns=200_000, plant=False)
    det = ClonedCardDetector().fit(projection_from_drop(tmp_path / "clean", KEY))
    assert det.n_scored_ > 10_000
    assert not (det.result_["q_value"] <= 0.01).any()
    assert len(det.result_) <= 5  # a false-discovery rule at 5% over nothing true: hardly any medium alert


@pytest.mark.parametrize("seed", [5, 6])
def test_cloned_cards_on_adversarial_drops(seed, tmp_path):
    # most of these clones show one or two swipes only (3 in 5 before the base rates left out the reported
    # cards and fallback_far meant "far from every chip use": precision@k 0.53 on both seeds); the cards
    # reported beyond k are mostly cards whose bought data a colluding merchant swiped (not "cloned" in truth)
    # (0.932 and 0.925 with one look at all cards; with the second look at the cards exposed at the accepted
    # skimming points 0.943 and 0.972)
    generate_adversarial(tmp_path, seed=seed, txns=120_000)
    clones = set(tokenize_pan(pd.read_parquet(tmp_path / "truth" / "cloned_cards.parquet")["pan"], KEY))
    p = projection_from_drop(tmp_path, KEY)
    one_look = ClonedCardDetector().fit(p).result_
    cards = ClonedCardDetector().fit(p, SkimmingDetector().fit(p).exposed_).result_
    assert len(clones) >= 50
    assert precision_at_k(cards["card_token"], clones) >= 0.9
    assert precision_at_k(cards["card_token"], clones) > precision_at_k(one_look["card_token"], clones)
    assert cards["exposed_at"].notna().mean() > 0.5  # most clones were skimmed at an accepted point
    clean = tmp_path / "clean"
    generate_adversarial(clean, seed=seed, txns=120_000, plant=False)
    assert not (ClonedCardDetector().fit(projection_from_drop(clean, KEY)).result_["q_value"] <= 0.01).any()


def test_reporting_rate_curve_on_a_drop(drop):
    p, skimmers, clones = drop
    curve = reporting_rate_curve(p, skimmers, clones, rates=(0.5, 1.0))
    assert curve["reported"].is_monotonic_increasing
    assert curve["recall_top"].iloc[-1] == 1.0
