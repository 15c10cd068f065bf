"""ClonedCardDetector on hand-built frames: clones found without reports, ordinary travel left alone."""

from __future__ import annotations

import pandas as pd
import pytest

from graph.detectors.cloned import CARD_COLUMNS, ClonedCardDetector
from graph.projection import Projection

from tests.graph.conftest import make_txns

SH, BJ, GZ = dict(lat=31.23, lon=121.47), dict(lat=39.90, lon=116.41), dict(lat=23.13, lon=113.26)


def _fit(rows, **params):
    return ClonedCardDetector(**params).fit(Projection.from_frames(make_txns(rows))).cards_


def test_traveller_not_flagged_clone_flagged():
    rows = [
        # an ordinary traveller: Shanghai, a 2.5 h flight to Beijing, a week there, back
        dict(card_token="traveller", hours=0, atc=1, **SH),
        dict(card_token="traveller", hours=2.5, atc=2, **BJ),
        dict(card_token="traveller", hours=30, atc=3, **BJ),
        dict(card_token="traveller", hours=170, atc=4, **SH),
        # a clone: chip at home, 40 minutes later magstripe in Guangzhou, ATC replayed
        dict(card_token="victim", hours=0, atc=7, **SH),
        dict(card_token="victim", hours=0.66, entry_mode="magstripe", **GZ),
        dict(card_token="victim", hours=5, atc=8, **SH),
        dict(card_token="victim", hours=6, atc=8, **SH),
    ]
    cards = _fit(rows)
    assert list(cards.columns) == CARD_COLUMNS
    assert cards["card_token"].tolist() == ["victim"]
    row = cards.iloc[0]
    assert set(row["reasons"].split(";")) == {"impossible_travel", "fallback_after_chip", "atc_replay"}
    assert 0.9 < row["score"] < 1.0 and row["rank"] == 1
    assert row["first_evidence_at"] == pd.Timestamp("2026-03-01T00:39:36Z")
    assert row["evidence_txn_ids"] == ["x000004", "x000005", "x000006", "x000007"]


def test_parallel_use_without_impossible_hops():
    # alternating Shanghai / Guangzhou every 8 h (each hop plausible by plane), for three days
    rows = [dict(card_token="c", hours=8 * k, **(SH if k % 2 == 0 else GZ)) for k in range(9)]
    cards = _fit(rows)
    assert cards["reasons"].tolist() == ["parallel_use"]
    assert cards["n_parallel_use"].iloc[0] == 8


def test_terminal_position_fallback_and_manual():
    terminals = pd.DataFrame({"terminal_id": ["TS", "TB"], "merchant_id": ["M0", "M0"],
                              "lat": [SH["lat"], BJ["lat"]], "lon": [SH["lon"], BJ["lon"]]})
    tx = make_txns([dict(card_token="c", terminal_id="TS", hours=0, lat=None, lon=None),
                    dict(card_token="c", terminal_id="TB", hours=0.5, lat=None, lon=None)])
    p = Projection.from_frames(tx, terminals)
    assert ClonedCardDetector().fit(p).cards_["reasons"].tolist() == ["impossible_travel"]
    assert ClonedCardDetector(use_terminal_position=False).fit(p).cards_.empty
    manual = make_txns([dict(card_token="c", hours=0, **SH), dict(card_token="c", hours=0.5, entry_mode="manual", **BJ)])
    assert ClonedCardDetector().fit(Projection.from_frames(manual)).cards_.empty


def test_empty_and_bad_params():
    empty = Projection.from_frames(make_txns([]))
    cards = ClonedCardDetector().fit(empty).cards_
    assert cards.empty and list(cards.columns) == CARD_COLUMNS
    with pytest.raises(ValueError, match="unknown reason"):
        ClonedCardDetector(weights={"teleport": 0.5}).fit(empty)
    with pytest.raises(ValueError):
        ClonedCardDetector(max_speed_kmh=0).fit(empty)
