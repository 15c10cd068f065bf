"""The cloned-card kernel equals its plain-Python reference (tests/graph/reference.py) on edge cases."""

from __future__ import annotations

import numpy as np
import pytest

from graph.kernels.cloned import NO_TIME, cloned_card_evidence, evidence_csr
from graph.kernels.cloned_combine import combined_tail
from graph.kernels.geo import haversine_km

from graph.references import cloned as reference, significance as tails

PARAMS = dict(max_speed_kmh=1000.0, min_distance_km=100.0, slack_s=15 * 60, parallel_km=300.0,
              parallel_window_s=72 * 3600, parallel_min_switches=3, fallback_far_km=300.0, offline_delay_s=72 * 3600,
              burst_window_s=72 * 3600, burst_min=3)
SH, BJ, GZ = (31.23, 121.47), (39.90, 116.41), (23.13, 113.26)  # SH-BJ 1,067 km, SH-GZ 1,213 km
D = 86400


def _arrays(cards):
    """cards: list of lists of (ts, place or None, entry, atc or -1, atc_ok[, amount[, merchant[, type]]]); amount 10,
    merchant -1 (unknown) and type 0 (purchase) by default."""
    indptr = np.zeros(len(cards) + 1, dtype=np.int64)
    rows = []
    for c, txns in enumerate(cards):
        rows.extend(sorted(txns, key=lambda r: r[0]))
        indptr[c + 1] = len(rows)
    ts = np.array([r[0] for r in rows], dtype=np.int64)
    lat = np.array([r[1][0] if r[1] else np.nan for r in rows], dtype=np.float64)
    lon = np.array([r[1][1] if r[1] else np.nan for r in rows], dtype=np.float64)
    entry = np.array([r[2] for r in rows], dtype=np.int8)
    atc = np.array([r[3] for r in rows], dtype=np.int64)
    atc_ok = np.array([r[4] and r[3] >= 0 for r in rows], dtype=np.bool_)
    located = np.isfinite(lat) & (entry != 4)
    amount = np.array([r[5] if len(r) > 5 else 10.0 for r in rows], dtype=np.float64)
    merchant = np.array([r[6] if len(r) > 6 else -1 for r in rows], dtype=np.int64)
    ttype = np.array([r[7] if len(r) > 7 else 0 for r in rows], dtype=np.int8)
    return indptr, ts, lat, lon, located, entry, atc, atc_ok, amount, merchant, ttype


def _check(cards, **over):
    params = {**PARAMS, **over}
    args = _arrays(cards)
    counts, first, evidence, travel_km, travel_s, burst_p, amount_p, new_p = cloned_card_evidence(*args, **params)
    ref_counts, ref_first, ref_evidence, ref_travel, ref_burst, ref_amount, ref_new = \
        reference.cloned_card_evidence(*args, **params)
    assert burst_p.tolist() == pytest.approx(ref_burst, rel=1e-9)
    assert new_p.tolist() == pytest.approx(ref_new, rel=1e-9)
    assert amount_p.tolist() == pytest.approx(ref_amount, rel=1e-9)
    assert counts.tolist() == ref_counts
    assert [[None if v == NO_TIME else v for v in row] for row in first.tolist()] == ref_first
    assert [{r for r in range(8) if b >> r & 1} for b in evidence.tolist()] == ref_evidence
    travel = [None if s < 0 else (pytest.approx(k), s) for k, s in zip(travel_km.tolist(), travel_s.tolist())]
    assert travel == ref_travel
    assert np.isnan(travel_km[travel_s < 0]).all()
    indptr, indices = evidence_csr(args[0], evidence)
    assert indptr[-1] == len(indices) and all(evidence[i] for i in indices)
    return counts


H = 3600
CASES = {
    "empty": [],
    "one card no evidence": [[(0, SH, 0, 1, True), (H, SH, 0, 2, True)]],
    "flight sh-bj 2.5h is fine": [[(0, SH, 0, 1, True), (int(2.5 * H), BJ, 0, 2, True)]],
    "sh-bj in 30 min": [[(0, SH, 0, 1, True), (30 * 60, BJ, 2, -1, False)]],
    "zero elapsed far": [[(0, SH, 0, 1, True), (0, BJ, 0, 2, True)]],
    "zero elapsed near": [[(0, SH, 0, 1, True), (0, (31.3, 121.5), 0, 2, True)]],
    "missing position skipped": [[(0, SH, 0, 1, True), (60, None, 0, 2, True), (120, BJ, 0, 3, True)]],
    "manual not located": [[(0, SH, 4, -1, False), (60, BJ, 0, 1, True)]],
    "atc replay": [[(0, SH, 0, 5, True), (H, SH, 0, 6, True), (2 * H, SH, 0, 5, True), (3 * H, SH, 0, 5, True)]],
    "atc regression": [[(0, SH, 0, 10, True), (4 * D, SH, 0, 11, True), (8 * D, SH, 1, 3, True),
                        (9 * D, SH, 0, 12, True)]],
    "offline atc arrives late": [[(0, SH, 0, 10, True), (H, SH, 0, 12, True), (2 * H, SH, 0, 13, True),
                                  (5 * H, SH, 0, 11, True), (6 * H, SH, 0, 14, True)]],
    "replay inside the offline delay": [[(0, SH, 0, 5, True), (H, SH, 0, 6, True), (2 * H, BJ, 0, 5, True)]],
    "regression just past the delay": [[(0, SH, 0, 9, True), (72 * H + 1, SH, 0, 8, True)]],
    "sh-gz 3h plausible": [[(0, SH, 0, 1, True), (3 * H, GZ, 0, 2, True)]],
    "sh-gz 20 min impossible": [[(0, SH, 0, 1, True), (20 * 60, GZ, 0, 2, True), (20 * 60 + 60, GZ, 0, 3, True)]],
    "sh-bj 50 min within slack": [[(0, SH, 0, 1, True), (50 * 60, BJ, 0, 2, True)]],
    "fallback burst": [[(d * D, SH, 0, d, True) for d in range(30)]
                       + [(20 * D + k * 5 * H, SH, 2 + k % 2, -1, False) for k in range(5)]
                       + [(2 * D + 1, SH, 2, -1, False), (11 * D + 1, SH, 3, -1, False)]],
    "fallbacks spread out": [[(d * D, SH, 0, d, True) for d in range(30)]
                             + [(k * 6 * D + 1, SH, 2, -1, False) for k in range(5)]],
    "burst ties in one second": [[(0, SH, 0, 1, True), (H, SH, 2, -1, False), (H, SH, 2, -1, False),
                                  (H, SH, 3, -1, False), (2 * H, SH, 0, 2, True)]],
    "large swipes": [[(d * D, SH, 0, d, True, 20.0 + d) for d in range(20)]
                     + [(30 * D, SH, 2, -1, False, 900.0), (31 * D, SH, 3, -1, False, 25.0),
                        (32 * D, SH, 2, -1, False, 700.0)]],
    "swipe amounts tie and missing": [[(0, SH, 0, 1, True, 50.0), (H // 4, SH, 0, 4, True, 50.0),
                                       (H // 2, SH, 1, 5, True, 50.0), (H, SH, 2, -1, False, 50.0),
                                       (2 * H, SH, 0, 2, True, float("nan")), (3 * H, SH, 3, -1, False, float("nan")),
                                       (4 * H, SH, 0, 3, True, 5.0)]],
    "worst pair kept": [[(0, SH, 0, 1, True), (40 * 60, BJ, 0, 2, True), (50 * 60, SH, 0, 3, True),
                         (2 * H, GZ, 0, 4, True)]],
    "atc ties in time not regression": [[(0, SH, 0, 10, True), (0, SH, 0, 9, True), (H, SH, 0, 11, True)]],
    "atc missing values": [[(0, SH, 0, -1, False), (H, SH, 0, 5, True), (2 * H, SH, 0, -1, False), (3 * H, SH, 0, 4, True)]],
    "atc not ok ignored": [[(0, SH, 0, 5, True), (H, SH, 0, 5, False)]],
    "fallback after chip": [[(0, SH, 0, 1, True), (H, SH, 3, -1, False), (2 * H, SH, 2, -1, False)]],
    "fallback far after chip": [[(0, SH, 0, 1, True), (H, None, 0, 2, True), (9 * H, BJ, 2, -1, False),
                                 (10 * H, GZ, 3, -1, False), (11 * H, SH, 1, 3, True), (12 * H, SH, 2, -1, False)]],
    "swipe on a trip, chip later there": [[(0, SH, 0, 1, True), (D, BJ, 2, -1, False), (D + 2 * H, BJ, 0, 2, True),
                                           (3 * D, SH, 0, 3, True)]],
    "swipe where the chip was used before": [[(0, BJ, 0, 1, True), (D, SH, 0, 2, True), (2 * D, BJ, 3, -1, False)]],
    "magstripe before chip fine": [[(0, SH, 2, -1, False), (H, SH, 0, 1, True)]],
    "fallback same second as chip": [[(0, SH, 0, 1, True), (0, SH, 3, -1, False)]],
    "parallel use sh-gz": [[(k * 6 * H, SH if k % 2 == 0 else GZ, 0, k, True) for k in range(8)]],
    "ordinary trip": [[(0, SH, 0, 1, True), (3 * H, BJ, 0, 2, True), (48 * H, BJ, 0, 3, True),
                       (52 * H, SH, 0, 4, True)]],
    "two cards": [[(0, SH, 0, 1, True), (0, BJ, 0, 1, True)], [(5, GZ, 2, -1, False), (6, GZ, 0, 1, True)]],
    # chip at merchants 1 (twice) and 2 (once: 1 single of 3 uses, r = 2 / 5); swipes at 1, 7, 8 and a completion
    # at 9 (no card presented): 2 new of 3
    "swipes at new merchants": [[(0, SH, 0, 1, True, 10.0, 1), (D, SH, 0, 2, True, 10.0, 1),
                                 (2 * D, SH, 1, 3, True, 10.0, 2), (3 * D, SH, 2, -1, False, 10.0, 1),
                                 (4 * D, SH, 3, -1, False, 10.0, 7), (5 * D, SH, 2, -1, False, 10.0, 8),
                                 (6 * D, SH, 2, -1, False, 10.0, 9, 4)]],
}


@pytest.mark.parametrize("name", list(CASES))
def test_kernel_equals_reference(name):
    _check(CASES[name])


def test_expected_flags():
    assert _check(CASES["flight sh-bj 2.5h is fine"]).sum() == 0
    assert _check(CASES["ordinary trip"]).sum() == 0
    assert _check(CASES["sh-bj in 30 min"])[0, 0] == 1
    assert _check(CASES["zero elapsed far"])[0, 0] == 1
    assert _check(CASES["zero elapsed near"]).sum() == 0
    assert _check(CASES["atc replay"])[0, 1] == 2
    assert _check(CASES["atc replay"])[0, 2] == 0  # a replay is not counted again as a regression
    assert _check(CASES["atc regression"])[0, 2] == 1
    assert _check(CASES["atc regression"], offline_delay_s=0)[0, 2] == 1
    assert _check(CASES["atc ties in time not regression"], offline_delay_s=0)[0, 2] == 0
    assert _check(CASES["offline atc arrives late"]).sum() == 0
    assert _check(CASES["offline atc arrives late"], offline_delay_s=0)[0, 2] == 1  # the delay is what spares it
    assert _check(CASES["replay inside the offline delay"])[0, 1] == 1
    assert _check(CASES["regression just past the delay"])[0, 2] == 1
    assert _check(CASES["fallback after chip"])[0, 3] == 2
    assert _check(CASES["fallback after chip"])[0, 5] == 0
    assert _check(CASES["fallback far after chip"])[0, 3] == 1  # near and far fallbacks are exclusive
    assert _check(CASES["fallback far after chip"])[0, 5] == 2
    # far from the latest chip use but near another chip use of the card (after or before): not far
    assert _check(CASES["swipe on a trip, chip later there"])[0, [3, 5]].tolist() == [1, 0]
    assert _check(CASES["swipe where the chip was used before"])[0, [3, 5]].tolist() == [1, 0]
    assert _check(CASES["sh-gz 3h plausible"]).sum() == 0
    assert _check(CASES["sh-gz 20 min impossible"])[0, 0] == 1
    assert _check(CASES["sh-bj 50 min within slack"]).sum() == 0
    assert _check(CASES["sh-bj 50 min within slack"], slack_s=0)[0, 0] == 1
    assert _check(CASES["fallback burst"])[0, 6] == 5  # the five swipes within 20 h, not the two lone ones
    assert _check(CASES["fallbacks spread out"])[0, 6] == 0
    assert _check(CASES["burst ties in one second"])[0, 6] == 3
    assert _check(CASES["fallback burst"], burst_min=0)[0, 6] == 0  # off
    assert _check(CASES["large swipes"])[0, 7] == 2  # 900 and 700 are the card's two largest of three swipes
    assert _check(CASES["swipe amounts tie and missing"])[0, 7] == 0  # ties ranked against the swipes
    assert _check(CASES["swipes at new merchants"])[0, 8] == 2
    assert _check(CASES["fallback after chip"])[0, 8] == 0  # merchants unknown: never new


def test_new_merchant_p_value():
    *_, new_p = cloned_card_evidence(*_arrays(CASES["swipes at new merchants"]), **PARAMS)
    r = 2 / 5
    assert new_p[0] == pytest.approx(3 * r ** 2 * (1 - r) + r ** 3, rel=1e-12)


def test_burst_p_value():
    args = _arrays(CASES["fallback burst"])
    *_, burst_p, _, _ = cloned_card_evidence(*args, **PARAMS)
    # 36 uses after the first chip use, 7 swipes; the best 72 h window holds 5 swipes and 2 chip uses (days 21,
    # 22); 7 windows tried
    want = 7 * float(tails.hypergeom_sf(5, 36, 7, 7))
    assert burst_p[0] == pytest.approx(want, rel=1e-9) and burst_p[0] < 0.01
    assert _check(CASES["parallel use sh-gz"])[0, 4] == 7
    assert 1060 < haversine_km(*SH, *BJ) < 1075


@pytest.mark.parametrize("seed", range(6))
def test_random_cards_equal_reference(seed):
    rng = np.random.default_rng(seed)
    places = [SH, BJ, GZ, (31.5, 121.0), None]
    cards = []
    for _ in range(rng.integers(1, 6)):
        txns = []
        for _ in range(rng.integers(0, 25)):
            atc = int(rng.integers(-1, 8))
            amount = [5.0, 10.0, 50.0, 400.0, float("nan")][rng.integers(5)]
            txns.append((int(rng.integers(0, 20)) * 1800, places[rng.integers(len(places))], int(rng.integers(0, 5)),
                         atc, bool(rng.random() < 0.8), amount, int(rng.integers(-1, 4)),
                         int(rng.choice([0, 2, 3, 4]))))
        cards.append(txns)
    _check(cards, parallel_min_switches=int(rng.integers(1, 4)), parallel_window_s=int(rng.integers(0, 5)) * 3600,
           offline_delay_s=int(rng.integers(0, 4)) * 1800, slack_s=int(rng.integers(0, 3)) * 900,
           burst_window_s=int(rng.integers(0, 6)) * 1800, burst_min=int(rng.integers(0, 4)))


def test_worst_pair_is_the_fastest():
    _, _, _, km, secs, _, _, _ = cloned_card_evidence(*_arrays(CASES["worst pair kept"]), **PARAMS)
    # SH->BJ in 40 min is impossible, BJ->SH in 10 min more so (1,067 km in 10 + 15 min); SH->GZ in 70 min is not
    assert secs.tolist() == [600] and 1060 < km[0] < 1075


@pytest.mark.parametrize("seed", range(4))
def test_combined_tail_equals_full_enumeration(seed):
    rng = np.random.default_rng(seed)
    n, widths = 40, np.array([4, 4, 2, 4, 2, 3], dtype=np.int64)
    tails = np.ones((n, len(widths), 5))
    for r, w in enumerate(widths):  # decreasing tails per reason, 0 past the last level; some reasons certain
        steps = np.sort(rng.uniform(1e-6, 1.0, (n, w - 1)) ** 3, axis=1)[:, ::-1]
        tails[:, r, 1:w] = np.where(rng.random((n, 1)) < 0.1, 1.0, steps)
        tails[:, r, w:] = 0.0
    levels = np.column_stack([rng.integers(0, w, n) for w in widths]).astype(np.int64)
    levels[0] = 0  # nothing observed: 1
    got = combined_tail(tails, levels, widths, np.arange(n, dtype=np.int64))
    assert got.tolist() == pytest.approx(reference.combined_tail(tails, levels, widths), rel=1e-9, abs=1e-15)
    assert got[0] == 1.0
