"""Cash-out rings: suspicion fitted to the run, significance against randomised graphs, ring assembly, quality
on generated drops."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from etl.generate import generate
from graph.catalog import OUTPUT_SCHEMAS
from graph.detectors.rings import RING_COLUMNS, RingDetector
from graph.detectors.rings_nulls import gumbel_sf, ordinary_visits, visit_pool
from graph.detectors.rings_suspicion import roundness, suspicion, suspicion_counts
from graph.evaluation import projection_from_drop, tokenize_pan
from graph.projection import Projection
from tests.graph.conftest import T0, make_txns

KEY = "posguard-test-key-not-a-secret"
DAY0 = int(T0.timestamp())
# a diurnal profile (UTC hours of a run somewhere): quiet nights, busy middays
PROFILE = np.array([0.3, 0.15, 0.1, 0.08, 0.08, 0.2, 0.6, 1.5, 2.5, 3.0, 3.5, 4.5, 5.5, 4.5, 3.5, 3.5, 4.0, 4.5,
                    5.0, 4.5, 3.5, 2.5, 1.5, 0.8])


def _frame(card, merchant, ts, amount) -> pd.DataFrame:
    n = len(card)
    return pd.DataFrame({"txn_id": [f"x{i:07d}" for i in range(n)],
                         "ts": pd.to_datetime(np.asarray(ts, np.int64), unit="s", utc=True),
                         "card_token": np.asarray(card, object), "terminal_id": ["T-" + m for m in merchant],
                         "merchant_id": np.asarray(merchant, object), "amount": np.asarray(amount, float),
                         "txn_type": "purchase", "entry_mode": "chip", "response_code": "00",
                         "atc": pd.array([None] * n, dtype="Int64"), "stan": pd.array([None] * n, dtype="Int64"),
                         "mcc": "5411", "lat": 31.23, "lon": 121.47})


def _background(seed, n_txns=40_000, n_cards=4000, n_merchants=600, popular=None):
    """A random bipartite graph with heavy-tailed card and merchant activity (Chung-Lu: each transaction
    picks its card and merchant independently by Pareto weights), diurnal hours, log-normal amounts."""
    rng = np.random.default_rng(seed)
    cw = rng.pareto(1.5, n_cards) + 1
    mw = rng.pareto(1.2, n_merchants) + 1
    if popular:  # a core of very popular merchants that every kind of card visits
        mw[:popular] = mw.sum() / popular
    card = rng.choice(n_cards, n_txns, p=cw / cw.sum())
    merchant = rng.choice(n_merchants, n_txns, p=mw / mw.sum())
    ts = DAY0 + rng.integers(0, 60, n_txns) * 86400 + rng.choice(24, n_txns, p=PROFILE / PROFILE.sum()) * 3600
    ts += rng.integers(0, 3600, n_txns)
    amount = np.round(np.exp(rng.normal(4.0, 1.0, n_txns)), 2)
    whole = rng.random(n_txns) < 0.05  # some whole-unit prices
    amount[whole] = np.round(amount[whole])
    return [f"c{i}" for i in card], [f"m{i}" for i in merchant], ts, amount


def _ring(seed, cards, merchants, per_card=10, hours=(1, 2, 3)):
    """Ring cards trading round amounts at night with the ring's merchants, each favouring two of them."""
    rng = np.random.default_rng(seed)
    out_c, out_m, out_t, out_a = [], [], [], []
    for c in cards:
        fav = rng.choice(merchants, size=min(2, len(merchants)), replace=False)
        for _ in range(per_card):
            out_c.append(c)
            out_m.append(str(rng.choice(fav) if rng.random() < 0.85 else rng.choice(merchants)))
            out_t.append(DAY0 + int(rng.integers(0, 60)) * 86400 + int(rng.choice(hours)) * 3600
                         + int(rng.integers(0, 3600)))
            out_a.append(float(rng.choice([5000.0, 9999.0, 20000.0, 4999.0])))
    return out_c, out_m, out_t, out_a


# evening and night-time places (UTC hours of the same run): busy from 18:00 to 02:00
NIGHT = np.array([3, 2, 1, 0.5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0.5, 1, 2, 3, 4, 4, 4], float)


def _regulars(seed, n_cards=28, n_merchants=6, habits=3, mean_visits=30):
    """A genuine community: regulars of night-time places, each going back, evening and night, to a few
    bars of its own (visits per card heavy-tailed), paying round sums half of the time."""
    rng = np.random.default_rng(seed)
    out = [], [], [], []
    for i in range(n_cards):
        fav = rng.choice(n_merchants, habits, replace=False)
        for _ in range(rng.poisson(mean_visits * rng.lognormal(0.0, 0.5))):
            out[0].append(f"n{i}")
            out[1].append(f"bar{int(rng.choice(fav))}")
            out[2].append(DAY0 + int(rng.integers(0, 60)) * 86400 + int(rng.choice(24, p=NIGHT / NIGHT.sum())) * 3600
                          + int(rng.integers(0, 3600)))
            out[3].append(float(np.round(np.exp(rng.normal(3.0, 0.6)), 2 * int(rng.random() < 0.5))))
    return out


def _join(*parts):
    return tuple(sum((list(p[i]) for p in parts), []) for i in range(4))


def _rings(frame):
    return {rid: set(g["member_id"]) for rid, g in frame[frame["member_type"] != "terminal"].groupby("ring_id")}


def _jaccard(truth: set, found: dict) -> float:
    return max([len(truth & f) / len(truth | f) for f in found.values()] or [0.0])


def _weak_ring(seed=11, n_weak=3, per_weak=3):
    """A ring of 20 cards and 4 merchants in a background of 80k transactions, and ``n_weak`` ring cards with
    ``per_weak`` transactions each at distinct ring merchants (too few for peeling to keep them)."""
    strong, weak = [f"r{i}" for i in range(20)], [f"w{i}" for i in range(n_weak)]
    merchants = [f"rm{i}" for i in range(4)]
    rng = np.random.default_rng(seed)
    weak_rows = ([c for c in weak for _ in range(per_weak)],
                 [m for _ in weak for m in rng.choice(merchants, per_weak, replace=False)],
                 [DAY0 + int(rng.integers(0, 60)) * 86400 + 2 * 3600 for _ in range(per_weak * len(weak))],
                 [5000.0] * (per_weak * len(weak)))
    background = _background(9, n_txns=80_000, n_cards=8000, n_merchants=1200)
    return strong, weak, merchants, _join(background, _ring(9, strong, merchants), weak_rows)


def test_roundness_levels():
    assert roundness(np.array([5000.0, 9999.0, 49990.0, 123.45, 12.0, 0.0, -50.0, np.nan])).tolist() == [
        5, 6, 6, 0, 2, 0, 0, 0]


def test_suspicion_follows_the_runs_base_rates_not_a_time_zone_or_currency():
    rng = np.random.default_rng(0)
    *_, ts, amount = _background(1, n_txns=5000)
    s = suspicion(amount, ts)
    # the same run five hours later (another time zone): the same weights
    assert np.allclose(suspicion(amount, ts + 5 * 3600), s)
    # the quiet hours of this run weigh more than its busy ones
    hour = (ts // 3600) % 24
    assert s[hour == 3].mean() > s[hour == 12].mean() + 2
    # in a currency where every amount is a multiple of 1000, roundness is no evidence
    whole = rng.choice([1000.0, 2000.0, 5000.0, 25000.0], len(ts))
    busy = ts - ts % 86400 + 12 * 3600
    assert np.allclose(suspicion(whole, busy), 0.0)
    # a round amount among cents-priced amounts is rare, hence heavy
    assert suspicion(np.r_[amount, 5000.0], np.r_[ts, ts[0]])[-1] > s[0] + 3


def test_gumbel_tail_gives_small_p_values_beyond_the_null_and_empirical_ones_inside():
    null = np.array([1.0, 1.1, 0.9, 1.05, 0.95, 1.2, 1.0, 0.98])
    p = gumbel_sf([0.5, 1.1, 3.0], null)
    assert p[0] == 1.0 and p[1] >= 3 / 9 and p[2] < 1e-10


def test_random_heavy_tailed_graph_gives_no_ring():
    for seed in (1, 2, 3):
        p = Projection.from_frames(_frame(*_background(seed)))
        det = RingDetector().fit(p)
        assert len(det.result_) == 0, det.result_.drop_duplicates("ring_id").to_string()
        assert len(det.blocks_) == 1 and det.blocks_[0][3] > 0.005  # stopped at the first block


def test_popular_merchant_core_is_not_a_ring():
    p = Projection.from_frames(_frame(*_background(4, popular=5)))
    assert len(RingDetector().fit(p).result_) == 0


def test_planted_block_in_a_random_graph_is_found_and_significant():
    cards, merchants = [f"r{i}" for i in range(20)], [f"rm{i}" for i in range(4)]
    p = Projection.from_frames(_frame(*_join(_background(5), _ring(5, cards, merchants))))
    rings = RingDetector().fit(p).result_
    assert rings["ring_id"].nunique() == 1
    assert _jaccard(set(cards + merchants), _rings(rings)) >= 0.9
    assert rings["q_value"].max() <= 1e-3 and rings["p_value"].max() <= rings["q_value"].max()
    assert (rings["score"] == rings["score"].iloc[0]).all() and rings["score"].iloc[0] >= 0.3
    assert set(rings.loc[rings["member_type"] == "terminal", "member_id"]) <= {"T-" + m for m in merchants}
    assert list(rings.columns) == RING_COLUMNS
    # the ring's first and last transaction: its 200 transactions fall on 60 days from DAY0, at night
    _, _, ts, _ = _ring(5, cards, merchants)
    assert rings["first_seen"].iloc[0] == pd.Timestamp(min(ts), unit="s", tz="UTC")
    assert rings["last_seen"].iloc[0] == pd.Timestamp(max(ts), unit="s", tz="UTC")


def test_two_rings_sharing_a_merchant_stay_two_rings():
    a, b = [f"a{i}" for i in range(12)], [f"b{i}" for i in range(12)]
    ma, mb = ["ma1", "ma2", "shared"], ["mb1", "mb2", "shared"]
    p = Projection.from_frames(_frame(*_join(_background(6), _ring(6, a, ma), _ring(7, b, mb))))
    found = _rings(RingDetector().fit(p).result_)
    assert len(found) == 2
    assert _jaccard(set(a + ma), found) >= 0.9 and _jaccard(set(b + mb), found) >= 0.9


def test_camouflaged_ring_cards_are_still_found():
    cards, merchants = [f"r{i}" for i in range(20)], [f"rm{i}" for i in range(3)]
    rng = np.random.default_rng(9)
    n = 40 * len(cards)  # every ring card also shops normally, mostly at the most popular merchants
    camo = ([cards[i % len(cards)] for i in range(n)], [f"m{int(k)}" for k in rng.integers(0, 5, n)],
            DAY0 + rng.integers(0, 60, n) * 86400 + rng.integers(9, 20, n) * 3600,
            np.round(np.exp(rng.normal(4.0, 1.0, n)), 2))
    p = Projection.from_frames(_frame(*_join(_background(9), _ring(9, cards, merchants), camo)))
    rings = RingDetector().fit(p).result_
    assert _jaccard(set(cards + merchants), _rings(rings)) >= 0.9 and rings["q_value"].max() <= 1e-3


def test_a_block_over_the_cap_is_not_a_ring():
    cards, merchants = [f"r{i}" for i in range(20)], [f"rm{i}" for i in range(4)]
    p = Projection.from_frames(_frame(*_join(_background(5), _ring(5, cards, merchants))))
    assert len(RingDetector(max_share=0.0, min_cap=10).fit(p).result_) == 0
    assert len(RingDetector(max_share=0.0, min_cap=20).fit(p).result_) > 0


@pytest.mark.parametrize("rows", [[], [{"hours": 10, "amount": 12.0}],
                                  [{"hours": 3, "amount": 5000.0, "card_token": f"c{i}"} for i in range(3)]])
def test_empty_and_tiny_projections_give_typed_empty_frames(rows):
    txns = make_txns(rows) if rows else make_txns([{"hours": 0}]).iloc[:0]
    rings = RingDetector().fit(Projection.from_frames(txns)).result_
    assert len(rings) == 0 and list(rings.columns) == RING_COLUMNS
    assert RING_COLUMNS[:5] == OUTPUT_SCHEMAS["rings"].names
    for col in ("score", "p_value", "q_value", "density", "amount"):
        assert rings[col].dtype == np.float64, col
    for col in ("cards", "merchants", "terminals", "txns"):
        assert rings[col].dtype == np.int64, col
    assert rings["first_seen"].dtype == rings["last_seen"].dtype == "datetime64[us, UTC]"


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_planted_cash_out_rings_found_with_jaccard_over_0_7(seed, tmp_path):
    generate(tmp_path, seed=seed, scale="small")
    rings = RingDetector().fit(projection_from_drop(tmp_path, KEY)).result_
    truth = pd.read_parquet(tmp_path / "truth" / "rings.parquet")
    truth = truth[(truth["kind"] == "cash_out") & (truth["member_type"] != "terminal")]
    assert truth["ring_id"].nunique() >= 2
    found = _rings(rings)
    for ring_id, g in truth.groupby("ring_id"):
        members = set(g.loc[g["member_type"] == "merchant", "member_id"])
        members |= set(tokenize_pan(g.loc[g["member_type"] == "card", "member_id"], KEY))
        assert _jaccard(members, found) >= 0.7, ring_id
    assert (rings["cards"] + rings["merchants"]).max() <= 100
    assert (rings["q_value"] <= 0.05).all()


@pytest.mark.parametrize("seed", [6, 7])
def test_nothing_planted_gives_no_ring(seed, tmp_path):
    generate(tmp_path, seed=seed, scale="small", plant=False)
    rings = RingDetector().fit(projection_from_drop(tmp_path, KEY)).result_
    assert len(rings) == 0, rings.drop_duplicates("ring_id").to_string()


def test_ring_cards_left_out_by_peeling_are_taken_back_and_neighbours_are_not():
    strong, weak, merchants, rows = _weak_ring()
    neighbours = ([f"n{i}" for i in range(10)], [merchants[i % 4] for i in range(10)],
                  [DAY0 + i * 86400 + 3 * 3600 for i in range(10)], [20000.0] * 10)
    p = Projection.from_frames(_frame(*_join(rows, neighbours)))
    det = RingDetector().fit(p)
    found = _rings(det.result_)
    assert len(found) == 1
    [ring] = found.values()
    first_block = set(p.card_ids[np.unique(det.edges(p)[0])[det.blocks_[0][0]]])
    assert not set(weak) & first_block  # left out by peeling ...
    assert set(weak) <= ring and not any(m.startswith("n") for m in ring)  # ... and taken back, one by one
    assert _jaccard(set(strong + weak + merchants), found) >= 0.9


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_regulars_of_night_time_places_are_no_ring_but_a_planted_ring_still_is(seed):
    cards, merchants = [f"r{i}" for i in range(20)], [f"rm{i}" for i in range(4)]
    p = Projection.from_frames(_frame(*_join(_background(seed), _regulars(seed), _ring(seed, cards, merchants))))
    det = RingDetector().fit(p)
    # the regulars form a block far denser than the configuration null allows (what the old test reported) ...
    bars = [b for b in det.blocks_ if any(p.merchant_ids[m].startswith("bar") for m in b[1])]
    assert bars and min(b[3] for b in bars) < 1e-4
    # ... which their habits explain: no reported ring holds a regular or a bar; the planted ring stands out
    found = _rings(det.result_)
    assert not any(m.startswith(("n", "bar")) for ring in found.values() for m in ring), found
    assert _jaccard(set(cards + merchants), found) >= 0.9 and det.result_["q_value"].max() <= 1e-3
    assert det.visit_null_.shape[1] == det.n_habit_null and len(det.null_) == det.n_null


def test_edges_and_ordinary_visits_by_id_give_the_rings_of_the_whole_projection():
    """What the Spark engine does: the projection of the edge transactions only, with the run's counts and
    ordinary visits (in any order) computed apart."""
    cards, merchants = [f"r{i}" for i in range(20)], [f"rm{i}" for i in range(4)]
    frame = _frame(*_join(_background(2), _regulars(2), _ring(2, cards, merchants)))
    p = Projection.from_frames(frame)
    whole = RingDetector().fit(p)
    _, _, _, mask = whole.edges(p)
    ordinary = ~mask & (p.txn_card >= 0) & (p.txn_merchant >= 0)
    visits = ordinary_visits(p.card_ids[p.txn_card[ordinary]], p.merchant_ids[p.txn_merchant[ordinary]])
    assert visits["n"].sum() == ordinary.sum()
    edges_only = Projection.from_frames(frame[frame["txn_id"].isin(p.txn_ids[mask])])
    split = RingDetector().fit(edges_only, counts=suspicion_counts(p.txn_amount, p.txn_ts),
                               visits=visits.sample(frac=1.0, random_state=0))
    assert len(whole.visit_null_) and np.array_equal(split.visit_null_, whole.visit_null_)
    pd.testing.assert_frame_equal(split.result_, whole.result_)
    # without the ordinary visits, the edges alone make another null
    alone = RingDetector().fit(edges_only, counts=suspicion_counts(p.txn_amount, p.txn_ts))
    assert not np.array_equal(alone.visit_null_, whole.visit_null_)


def test_visit_pool_sorts_visits_by_merchant_and_lends_a_region_s_visits_to_merchants_without_any():
    rows = np.array([4, 1, 2, 3, 0])
    cols = np.array([2, 0, 0, 2, 3])  # merchant 1 has no ordinary visit, nor has region 2 (merchant 4)
    counts = np.array([1, 2, 1, 3, 1])
    regions = np.array([0, 0, 1, 1, 2])
    pool_rows, lo, n = visit_pool(rows, cols, counts, regions, 5)
    pools = [pool_rows[a:a + b].tolist() for a, b in zip(lo, n)]
    assert pools[0] == [1, 1, 2] and pools[2] == [3, 3, 3, 4] and pools[3] == [0]
    assert pools[1] == pools[0]  # its region's visits
    assert sorted(pools[4]) == sorted(pool_rows.tolist()) and len(pool_rows) == counts.sum()  # everyone's


def test_a_ring_over_the_cap_with_its_attached_cards_is_cut_back_to_its_significant_block():
    """The old code dropped the whole ring when the cards attached to it passed the cap."""
    strong, weak, merchants, rows = _weak_ring()
    p = Projection.from_frames(_frame(*rows))
    free = RingDetector().fit(p)
    [ring] = _rings(free.result_).values()
    assert set(weak) <= ring  # taken back when the cap allows
    capped = RingDetector(max_share=0.0, min_cap=len(strong) + len(weak) - 1).fit(p)
    found = _rings(capped.result_)
    assert len(found) == 1 and not set(weak) & set().union(*found.values())
    assert _jaccard(set(strong + merchants), found) >= 0.85
    assert capped.result_["cards"].max() <= len(strong) + len(weak) - 1
    assert capped.result_["q_value"].max() == free.result_["q_value"].max()


def test_regulars_of_the_ring_s_merchants_are_not_attached_and_a_busy_place_of_its_cards_is_no_member():
    """Cards whose unusual transactions at the ring's merchants are what their own habits predict (they go
    there every week) are not ring cards, and a busy night-time place that the ring's cards also go to, as
    everyone does, is not a ring merchant: the old code attached the first and kept the second."""
    strong, weak, merchants, rows = _weak_ring()
    rng = np.random.default_rng(12)
    extra = [], [], [], []
    for i in range(12):  # regulars of two ring merchants: daytime habits there, and two night-time visits
        for k in range(16):
            extra[0].append(f"g{i}"), extra[1].append(merchants[k % 2])
            extra[2].append(DAY0 + int(rng.integers(0, 60)) * 86400 + int(rng.integers(10, 18)) * 3600)
            extra[3].append(float(np.round(np.exp(rng.normal(3.0, 0.5)), 2)))
        for m in merchants[:2]:
            extra[0].append(f"g{i}"), extra[1].append(m)
            extra[2].append(DAY0 + int(rng.integers(0, 60)) * 86400 + 2 * 3600), extra[3].append(5000.0)
    for i in range(150):  # a busy night-time place: its customers, by day and by night
        card = strong[i % len(strong)] if i < 40 else f"t{i}"
        for k in range(6):
            extra[0].append(card), extra[1].append("taxi")
            night = k % 2 == 0
            hour = 2 if night else int(rng.integers(10, 18))
            extra[2].append(DAY0 + int(rng.integers(0, 60)) * 86400 + hour * 3600)
            extra[3].append(float(rng.integers(2, 6)) * 10.0 if night else float(np.round(rng.uniform(8, 40), 2)))
    p = Projection.from_frames(_frame(*_join(rows, extra)))
    det = RingDetector().fit(p)
    found = _rings(det.result_)
    members = set().union(*found.values())
    assert not any(m.startswith("g") for m in members), sorted(members)
    assert "taxi" not in members
    assert _jaccard(set(strong + weak + merchants), found) >= 0.9
