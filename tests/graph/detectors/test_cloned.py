"""ClonedCardDetector on hand-built runs: reasons weighed by how rare they are among the run's cards, physics
for travel, offline ATC spared, typed output even when nothing is reported."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from graph.catalog import output_table
from graph.detectors.cloned import CARD_COLUMNS, ClonedCardDetector, EVIDENCE_COLUMNS
from graph.detectors.cloned_pvalues import calibrated, exact_tail
from graph.detectors.cloned_sites import binom_tail_small_k, site_tails, terminal_prior
from graph.detectors.significance import REPORT_Q
from graph.projection import Projection
from graph.references import cloned as reference, significance as tails
from tests.graph.conftest import T0, make_txns

SH, BJ, GZ = dict(lat=31.23, lon=121.47), dict(lat=39.90, lon=116.41), dict(lat=23.13, lon=113.26)
SH_GZ_KM = reference.haversine_km(SH["lat"], SH["lon"], GZ["lat"], GZ["lon"])  # 1,213 km
# with the default prior (1) one event of a reason no other card shows weighs about 1 / cards, never enough
# alone (test_one_unique_event_is_not_enough_alone); tests of how events are found use a small prior, with
# which such an event is strong alone
SMALL = 0.01


def population(n_cards: int = 2000, per_card: int = 8, seed: int = 0) -> pd.DataFrame:
    """Ordinary cards at home in Shanghai: chip uses every ~2 days, ATC +1 each time."""
    rng = np.random.default_rng(seed)
    card = np.repeat(np.arange(n_cards), per_card)
    k = np.tile(np.arange(per_card), n_cards)
    hours = k * 48.0 + rng.uniform(0, 12, len(card))
    frame = pd.DataFrame({
        "txn_id": [f"p{i:07d}" for i in range(len(card))], "ts": T0 + pd.to_timedelta(hours, unit="h"),
        "card_token": [f"pop{c:05d}" for c in card], "terminal_id": "T0", "merchant_id": "M0", "amount": 10.0,
        "txn_type": "purchase", "entry_mode": "chip", "response_code": "00",
        "atc": pd.array(100 + k, dtype="Int64"), "stan": pd.array([None] * len(card), dtype="Int64"), "mcc": "5411",
        "lat": SH["lat"] + rng.uniform(-0.05, 0.05, len(card)), "lon": SH["lon"] + rng.uniform(-0.05, 0.05, len(card))})
    return frame


def _run(rows, pop=None, terminals=None, **params) -> ClonedCardDetector:
    pop = population() if pop is None else pop
    tx = pd.concat([pop, make_txns(rows)], ignore_index=True) if rows else pop
    return ClonedCardDetector(**params).fit(Projection.from_frames(tx, terminals))


def _card(rows, token):
    return [dict(card_token=token, **r) for r in rows]


def _batch(n: int) -> list[dict]:
    """``n`` clones at home in Shanghai (four chip uses), each swiped three times in Beijing at shops of its own."""
    rows = []
    for c in range(n):
        rows += _card([dict(hours=48 * d, atc=d + 1, **SH) for d in range(4)]
                      + [dict(hours=200 + c + k, entry_mode="magstripe", terminal_id=f"BJ{c}-{k}", **BJ)
                         for k in range(3)], f"batch{c:02d}")
    return rows


def test_impossible_flight_flagged_possible_flight_not():
    rows = (_card([dict(hours=0, atc=1, **SH), dict(hours=3, atc=2, **GZ), dict(hours=80, atc=3, **GZ)], "flier")
            + _card([dict(hours=0, atc=1, **SH), dict(hours=1 / 3, atc=2, **GZ), dict(hours=80, atc=3, **GZ)],
                    "clone"))
    det = _run(rows, prior=SMALL)
    cards = det.result_
    assert list(cards.columns) == CARD_COLUMNS
    assert cards["card_token"].tolist() == ["clone"]  # 1,213 km in 3 h is a flight; in 20 min it is not
    row = cards.iloc[0]
    assert row["reasons"] == "impossible_travel:strong"
    assert row["q_value"] <= REPORT_Q and row["p_value"] <= row["q_value"]
    assert row["score"] == pytest.approx(min(1.0, -np.log10(row["q_value"]) / 10))
    assert row["travel_km"] == pytest.approx(SH_GZ_KM, rel=1e-6) and row["travel_hours"] == pytest.approx(1 / 3)
    assert row["travel_kmh"] == pytest.approx(3 * SH_GZ_KM, rel=1e-6)
    assert row["travel"] == f"{SH_GZ_KM:,.0f} km in 20 min ({3 * SH_GZ_KM:,.0f} km/h)"
    assert row["first_evidence_at"] == T0 + pd.Timedelta(minutes=20)
    assert len(row["evidence_txn_ids"]) == 2 and all(isinstance(t, str) for t in row["evidence_txn_ids"])
    assert det.n_scored_ == 2002


def test_a_clone_with_several_reasons_ranks_first_with_named_strengths():
    rows = (_card([dict(hours=0, atc=7, **SH), dict(hours=0.66, entry_mode="magstripe", **GZ),
                   dict(hours=5, atc=8, **SH), dict(hours=100, atc=8, **SH)], "victim")
            + _card([dict(hours=0, atc=1, **SH), dict(hours=0.25, atc=2, **BJ)], "one_hop"))
    rows += _card([dict(hours=0, atc=3, **SH), dict(hours=1, entry_mode="fallback", **BJ),
                   dict(hours=2, entry_mode="fallback", **BJ)], "two_far_swipes")
    for k in range(20):  # twenty more unremarkable cards with one such hop each
        rows += _card([dict(hours=k, atc=1, **SH), dict(hours=k + 0.25, atc=2, **BJ)], f"hop{k:02d}")
    cards = _run(rows).result_
    # one_hop's only reason is one event that 20 other cards of the run show too: not enough alone
    assert cards["card_token"].tolist() == ["victim", "two_far_swipes"]
    assert cards["q_value"].is_monotonic_increasing and cards["score"].is_monotonic_decreasing
    assert cards["rank"].tolist() == [1, 2] and cards["reasons"].iloc[1] == "fallback_far:strong"
    reasons = dict(r.split(":") for r in cards["reasons"].iloc[0].split(";"))
    # 21 other cards hop too: impossible travel is only of medium strength in this run
    assert reasons == {"impossible_travel": "medium", "fallback_far": "strong", "atc_replay": "strong"}
    assert cards["first_evidence_at"].iloc[0] == T0 + pd.Timedelta(hours=0.66)


@pytest.mark.parametrize("reason", ["fallback_after_chip", "impossible_travel"])
def test_a_reason_thirty_percent_of_cards_show_is_weak_alone(reason):
    pop = population(1000)
    noisy_cards = [c for c in range(1000) if c % 10 < 3]  # 30% of the cards
    last = np.array([c * 8 + 7 for c in noisy_cards])  # each one's last transaction: one event per noisy card
    if reason == "fallback_after_chip":
        pop.loc[last, "entry_mode"] = "magstripe"
        pop.loc[last, "atc"] = pd.NA
    else:  # a terminal geocoded 1,000 km away, 30 minutes after the card's previous use
        pop.loc[last, "lat"], pop.loc[last, "lon"] = BJ["lat"], BJ["lon"]
        pop.loc[last, "ts"] = pop.loc[last - 1, "ts"].to_numpy() + pd.Timedelta(minutes=30)
    det = ClonedCardDetector().fit(Projection.from_frames(pop))
    assert det.evidence_[f"n_{reason}"].gt(0).sum() == 300  # 30% of the cards show it
    assert det.result_.empty
    assert det.rates_[reason] > 0.01


def test_reported_cards_leave_the_base_rates_of_the_others():
    # 40 clones swiped three times each in Beijing (at three shops each), never used with the chip there: reported
    # at once; a 41st swiped there once. Its one far swipe is rare among the cards not already explained as clones.
    rows = _batch(40) + _card([dict(hours=48 * d, atc=d + 1, **SH) for d in range(4)]
                              + [dict(hours=300, entry_mode="fallback", **BJ)], "single")
    det = _run(rows, prior=SMALL)
    reported = set(det.result_["card_token"])
    assert "single" in reported and reported >= {f"batch{c:02d}" for c in range(40)}
    assert len(reported) == 41
    row = det.result_.set_index("card_token").loc["single"]
    assert row["reasons"] == "fallback_far:strong" and row["n_fallback_far"] == 1
    # the rate that judged it: no other unreported card swiped far from all its chip uses
    located = int(det.evidence_["chances_located"].sum()) - 40 * 7 - 5
    assert det.rates_["fallback_far"] == pytest.approx(det.prior / (located + 2 * det.prior))


def test_a_counterfeit_report_counts_only_with_a_use_that_shows_something():
    pop = population()
    swipes = pop.index[np.isin(pop.index % 8, [3, 6])]  # every card of this run swipes twice at home
    pop.loc[swipes, "entry_mode"], pop.loc[swipes, "atc"] = "magstripe", pd.NA
    habits = [dict(hours=48 * d, atc=d + 1, **SH) if d not in (3, 6) else
              dict(hours=48 * d, entry_mode="magstripe", amount=500.0, **SH) for d in range(8)]
    chip_only = [dict(hours=48 * d, atc=d + 1, **SH) for d in range(8)]
    rows = _card(habits, "reported_swiper") + _card(habits, "swiper") + _card(chip_only, "reported_chip_only")
    tx = pd.concat([pop, make_txns(rows)], ignore_index=True)
    reports = pd.DataFrame({"card_token": ["reported_swiper", "reported_chip_only", "no_transactions"],
                            "reported_at": ["2026-03-20"] * 3, "fraud_type": "counterfeit"})
    det = ClonedCardDetector(prior=SMALL).fit(Projection.from_frames(tx, fraud_reports=reports))
    # two swipes are what every card here does, their amounts a little unusual (the card's largest: p = 1/21);
    # with a counterfeit report they are what a clone does
    assert det.result_["card_token"].tolist() == ["reported_swiper"]
    assert det.result_["reasons"].iloc[0] == "reported_counterfeit:strong;fallback_amount:medium;fallback_after_chip:weak"
    assert det.n_scored_ == 2003  # the reported card without transactions is not scored
    ev = det.evidence_.set_index("card_token")
    assert ev.loc["reported_chip_only", "n_reported_counterfeit"] == 1  # reported, but no use shows anything
    off = ClonedCardDetector(use_reports=False, prior=SMALL).fit(Projection.from_frames(tx, fraud_reports=reports))
    assert off.result_.empty and off.evidence_["n_reported_counterfeit"].sum() == 0


def test_one_unique_event_is_not_enough_alone():
    one = _card([dict(hours=0, atc=1, **SH), dict(hours=1 / 3, atc=2, **GZ), dict(hours=80, atc=3, **GZ)], "one")
    two = _card([dict(hours=0, atc=1, **SH), dict(hours=1 / 3, atc=2, **GZ), dict(hours=80, atc=3, **GZ),
                 dict(hours=100, atc=3, **GZ)], "two")  # the impossible hop and an ATC replay
    det = _run(one + two)
    assert det.result_["card_token"].tolist() == ["two"]
    # the run's rate once "two" (reported) left it: "one" plus the prior over the other cards' chances; judged
    # against the others only, "one" sees the prior alone: a tail about its share of the run's chances
    ev = det.evidence_.set_index("card_token")
    others = int(det.evidence_["chances_pairs"].sum()) - int(ev.loc["two", "chances_pairs"])
    assert det.rates_["impossible_travel"] == pytest.approx(2 / (others + 2))
    assert _run(one + two, prior=SMALL).result_["card_token"].tolist() == ["two", "one"]


def test_no_clone_gives_an_empty_typed_frame_that_writes(tmp_path):
    det = _run([])
    cards = det.result_
    assert cards.empty and list(cards.columns) == CARD_COLUMNS
    assert str(cards["first_evidence_at"].dtype) == "datetime64[us, UTC]"
    assert cards["reasons"].dtype == object and cards["evidence_txn_ids"].dtype == object
    assert cards["p_value"].dtype == np.float64 and cards["rank"].dtype == np.int64
    path = tmp_path / "cloned_cards.parquet"
    pq.write_table(output_table("cloned_cards", cards), path)  # what write_outputs writes
    schema = pq.read_schema(path)
    assert schema.field("evidence_txn_ids").type == pa.list_(pa.string())
    assert schema.field("reasons").type == pa.string()
    assert schema.field("first_evidence_at").type == pa.timestamp("us", tz="UTC")
    assert pq.read_table(path).num_rows == 0


def test_offline_transactions_arriving_late_are_not_atc_evidence():
    rows = (_card([dict(hours=0, atc=10, **SH), dict(hours=1, atc=12, **SH), dict(hours=2, atc=13, **SH),
                   dict(hours=6, atc=11, **SH), dict(hours=30, atc=14, **SH)], "offline")
            + _card([dict(hours=0, atc=10, **SH), dict(hours=100, atc=11, **SH), dict(hours=200, atc=12, **SH),
                     dict(hours=300, atc=11, **SH)], "replayed")
            + _card([dict(hours=0, atc=50, **SH), dict(hours=100, atc=51, **SH), dict(hours=300, atc=40, **SH),
                     dict(hours=310, atc=41, **SH)], "regressed"))
    det = _run(rows, prior=SMALL)
    assert "offline" not in set(det.evidence_["card_token"])  # no evidence of any kind
    assert sorted(det.result_["card_token"]) == ["regressed", "replayed"]
    assert det.result_.set_index("card_token").loc["replayed", "reasons"] == "atc_replay:strong"


def test_swipes_that_are_the_cards_largest_purchases():
    # a card swiped now and then at home (like many cards of this run) vs one whose swipes are its largest uses
    pop = population()
    habit = pop.index[(pop.index % 8 == 5) & (pop.index // 8 % 3 == 0)]  # a third of the cards swipe once
    often = pop.index[np.isin(pop.index // 8, [1, 2, 4]) & np.isin(pop.index % 8, [3, 5, 7])]  # three thrice
    pop.loc[habit.union(often), "entry_mode"], pop.loc[habit.union(often), "atc"] = "magstripe", pd.NA
    home = [dict(hours=24 * d, atc=d + 1, amount=20.0 + d, **SH) for d in range(16)]
    swipes = [dict(hours=24 * d + 5, entry_mode="magstripe", amount=a, **SH) for d, a in ((4, 900.0), (6, 750.0),
                                                                                            (9, 820.0), (12, 700.0))]
    cheap = [dict(hours=24 * d + 5, entry_mode="magstripe", amount=a, **SH) for d, a in ((4, 9.0), (6, 7.5),
                                                                                         (9, 8.0), (12, 6.0))]
    det = _run(_card(home + swipes, "counterfeit") + _card(home + cheap, "worn_chip"), pop=pop)
    assert det.result_["card_token"].tolist() == ["counterfeit"]
    row = det.result_.iloc[0]
    assert row["n_fallback_amount"] == 4 and row["fallback_amount_p"] == pytest.approx(
        float(tails.hypergeom_sf(4, 19, 4, 4)))  # 19 uses after the first chip use, 4 swipes, all 4 the largest
    # five cards swiped three times or more; only the amounts tell these two apart
    assert row["reasons"] == "fallback_amount:strong;fallback_after_chip:medium"
    assert "fallback_burst" not in row["reasons"]  # off by default
    on = _run(_card(home + swipes[:1] + [dict(hours=24 * 4 + 6 + k, entry_mode="fallback", amount=900.0, **SH)
                                         for k in range(3)], "burst"), pop=pop, burst_min=3)
    assert on.evidence_.set_index("card_token").loc["burst", "n_fallback_burst"] == 4


def test_parallel_use_without_impossible_hops():
    # alternating Shanghai / Guangzhou every 8 h (each hop plausible by plane), for three days
    cards = _run([dict(card_token="c", hours=8 * k, **(SH if k % 2 == 0 else GZ)) for k in range(9)]).result_
    assert cards["reasons"].tolist() == ["parallel_use:strong"]
    assert cards["n_parallel_use"].iloc[0] == 8 and cards["travel"].iloc[0] == ""


def test_terminal_position_fallback_and_manual():
    terminals = pd.DataFrame({"terminal_id": ["T0", "TS", "TB"], "merchant_id": ["M0"] * 3,
                              "lat": [SH["lat"], SH["lat"], BJ["lat"]], "lon": [SH["lon"], SH["lon"], BJ["lon"]]})
    rows = [dict(card_token="c", terminal_id="TS", hours=0, lat=None, lon=None),
            dict(card_token="c", terminal_id="TB", hours=0.25, lat=None, lon=None)]
    assert _run(rows, terminals=terminals, prior=SMALL).result_["reasons"].tolist() == ["impossible_travel:strong"]
    assert _run(rows, terminals=terminals, use_terminal_position=False, prior=SMALL).result_.empty
    manual = [dict(card_token="c", hours=0, **SH), dict(card_token="c", hours=0.25, entry_mode="manual", **BJ)]
    assert _run(manual, prior=SMALL).result_.empty


def test_decide_on_bucket_evidence_equals_fit():
    rows = (_card([dict(hours=0, atc=1, **SH), dict(hours=0.2, atc=2, **GZ)], "a")
            + _card([dict(hours=0, atc=5, **SH), dict(hours=100, atc=5, **SH)], "b")
            + _card([dict(hours=0, atc=5, **SH), dict(hours=1, entry_mode="fallback", terminal_id="TB", **BJ),
                     dict(hours=2, entry_mode="fallback", terminal_id="TB", **BJ)], "c")
            + [dict(card_token=f"bj{i}", hours=i, terminal_id="TB", **BJ) for i in range(20)])
    tx = pd.concat([population(), make_txns(rows)], ignore_index=True)
    whole = ClonedCardDetector(prior=SMALL).fit(Projection.from_frames(tx)).result_
    det = ClonedCardDetector(prior=SMALL)
    odd = tx["card_token"].map(lambda t: sum(map(ord, t))) % 3  # three buckets of cards, any split
    parts = [det.evidence(Projection.from_frames(tx[odd == b])) for b in range(3)]
    assert all(list(p.columns) == EVIDENCE_COLUMNS for p in parts)
    # one summary row per activity band of the bucket's quiet cards (8 uses: band 3; one use: band 0), besides
    # its terminals' rows
    summaries = [p.loc[p["card_token"].isna() & p["terminal_id"].isna(), ["band", "cards"]] for p in parts]
    assert [sorted(b["band"]) for b in summaries] == [[0, 3]] * 3
    assert sum(int(b["cards"].sum()) for b in summaries) == 2000 + 20  # the population and bj*: no event
    # the terminal rows of the buckets add up to the located uses of each terminal over the whole run
    uses = pd.concat(parts).groupby("terminal_id")["located_uses"].sum()
    assert uses.to_dict() == det.evidence(Projection.from_frames(tx)).dropna(subset=["terminal_id"]) \
        .set_index("terminal_id")["located_uses"].to_dict()
    decided = det.decide(pd.concat(parts[::-1], ignore_index=True))
    pd.testing.assert_frame_equal(decided, whole)
    assert len(whole) == 3
    exposed = _exposed(["a", "c", "pop00001", "pop00002"])  # the Spark engine's decide gets the same exposed cards
    pd.testing.assert_frame_equal(det.decide(pd.concat(parts, ignore_index=True), exposed),
                                  ClonedCardDetector(prior=SMALL).fit(Projection.from_frames(tx), exposed).result_)
    assert det.exposed_family_ == 4 and det.scored_["exposed"].sum() == 2


def test_binomial_tail_matches_the_exact_reference():
    n = np.array([0, 1, 2, 5, 40, 120])
    for k in (1, 2, 3):
        for rho in (1e-7, 1e-3, 0.05, 0.4):
            got = binom_tail_small_k(k, n, rho)
            want = [float(tails.binom_sf(k, int(m), rho)) for m in n]
            np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-300)


def test_empty_and_bad_params():
    empty = Projection.from_frames(make_txns([]))
    det = ClonedCardDetector().fit(empty)
    assert det.result_.empty and list(det.result_.columns) == CARD_COLUMNS and det.n_scored_ == 0
    assert list(det.evidence(empty).columns) == EVIDENCE_COLUMNS
    with pytest.raises(ValueError):
        ClonedCardDetector(max_speed_kmh=0).fit(empty)
    with pytest.raises(ValueError):
        ClonedCardDetector(prior=0).fit(empty)
    with pytest.raises(ValueError):
        ClonedCardDetector(offline_delay_hours=-1).fit(empty)
    with pytest.raises(ValueError):
        ClonedCardDetector(burst_min=1).fit(empty)


def test_exact_tail_skips_only_cards_that_cannot_be_reported():
    rng = np.random.default_rng(3)
    n, widths = 300, np.array([4, 4, 2, 4, 2])
    tails = np.ones((n, len(widths), 5))
    for r, w in enumerate(widths):  # decreasing tails per reason, 0 past the last level
        steps = np.sort(rng.uniform(1e-6, 1.0, (n, w - 1)) ** 3, axis=1)[:, ::-1]
        tails[:, r, 1:w] = steps
        tails[:, r, w:] = 0.0
    levels = np.column_stack([rng.integers(0, w, n) for w in widths])
    exact = exact_tail(tails, levels, widths)
    lower = tails[np.arange(n)[:, None], np.arange(len(widths))[None, :], levels].prod(axis=1)
    assert np.all(exact >= lower * (1 - 1e-9))  # the bound is a lower bound: a skipped card's p is above it
    bound = float(np.quantile(lower, 0.3))
    pruned = exact_tail(tails, levels, widths, bound=bound)
    kept = lower <= bound
    assert 0 < kept.sum() < n
    np.testing.assert_array_equal(pruned[kept], exact[kept])
    assert np.all(pruned[~kept] == 1.0)


def test_far_swipes_a_terminal_shows_for_many_cards_are_its_pattern_not_each_cards_copy():
    """Thirty cards swiped once each at one terminal far from home (a merchant keying or swiping bought card
    data: fraud at that terminal, no copy of each card in use) against one card swiped once at a terminal where
    no other card is far from home. Each card shows the same single fallback_far event; the run's terminal
    rates tell them apart: the first thirty are the terminal's pattern (weak), the last a copy (reported)."""
    locals_ = [dict(card_token=f"bj{i:03d}", hours=i, terminal_id=t, **BJ) for i in range(100) for t in ("TX", "TY")]
    victims = [r for i in range(30) for r in _card([dict(hours=0, atc=1, **SH),
                                                     dict(hours=50 + i, entry_mode="magstripe", terminal_id="TX",
                                                          **BJ)], f"v{i:02d}")]
    clone = _card([dict(hours=0, atc=1, **SH), dict(hours=60, entry_mode="magstripe", terminal_id="TY", **BJ)],
                  "clone")
    det = ClonedCardDetector(prior=SMALL)
    tx = pd.concat([population(), make_txns(locals_ + victims + clone)], ignore_index=True)
    ev = det.evidence(Projection.from_frames(tx))
    # the p-value of each card before any BH pruning: the bound off
    det.decide(ev)
    p = det.scored_.set_index("card_token")["p_value"]
    victims_p = p[[f"v{i:02d}" for i in range(30)]]
    assert victims_p.min() > 0.05 and p["clone"] < 0.01 and p["clone"] < victims_p.min() / 10
    assert np.isfinite(det.rates_["fallback_far_terminal_prior"])  # the terminals differ: a finite prior
    ev = det.evidence_.set_index("card_token")
    assert ev.loc["v00", "far_terminal_ids"] == ["TX"] and ev.loc["clone", "far_terminal_ids"] == ["TY"]


def test_site_tails_match_an_exact_enumeration():
    rng = np.random.default_rng(5)
    cap, n_cards = 3, 40
    card = np.sort(rng.integers(0, n_cards, 60))
    pi = rng.uniform(0, 0.6, len(card))
    chances = np.bincount(card, minlength=n_cards) + rng.integers(0, 7, n_cards)
    rho = rng.uniform(1e-4, 0.2, n_cards)
    got = site_tails(card, pi, chances, rho, cap)
    for c in range(n_cards):
        probs = list(pi[card == c]) + [rho[c]] * int(chances[c] - (card == c).sum())
        for k in range(1, cap + 1):
            assert got[c, k - 1] == pytest.approx(tails.poisson_binomial_sf(k, probs), rel=1e-9, abs=1e-15)


def test_terminal_prior_by_moments():
    rng = np.random.default_rng(8)
    u = np.full(4000, 300)
    assert terminal_prior(rng.binomial(u, 0.01), u) == np.inf or terminal_prior(rng.binomial(u, 0.01), u) > 1000
    rates = rng.beta(0.01 * 40, 0.99 * 40, len(u))  # a beta prior of strength 40
    assert 25 < terminal_prior(rng.binomial(u, rates), u) < 60
    assert terminal_prior(np.zeros(5), np.full(5, 10)) == np.inf  # no event at all


def _at_terminal_run(keyed: int = 0):
    """Ordinary Shanghai cards, 1,000 of which swipe once at home (a habit that makes counterfeit reports rare among
    the cards with some event), all shopping at the busy terminal "TP" too; 12 clones, each swiped in Guangzhou at
    three shops; 24 Beijing cards whose data TP swiped for 500 one night each (fraud at the terminal), and
    ``keyed`` more it keyed in. Every clone and victim is reported counterfeit, its first fraud named."""
    pop = population()
    pop.loc[pop.index[(pop.index % 8 == 5) & (pop.index < 8000)], ["entry_mode", "atc"]] = ["magstripe", pd.NA]
    pop.loc[pop.index % 8 == 1, "terminal_id"] = "TP"  # a busy shop: 2,000 ordinary uses
    rows, first = [], {}
    for c in range(12):
        rows += _card([dict(hours=48 * d, atc=d + 1, **SH) for d in range(4)]
                      + [dict(hours=300 + 5 * c + k, entry_mode="magstripe", terminal_id=f"GZ{c}-{k}", **GZ)
                         for k in range(3)], f"clone{c:02d}")
        first[f"clone{c:02d}"] = 300 + 5 * c
    for v in range(24 + keyed):
        swipe = dict(hours=400 + v, entry_mode="magstripe" if v < 24 else "manual", terminal_id="TP", amount=500.0,
                     **SH)
        habit = [dict(hours=48 * d, atc=d + 1, **BJ) if d != 2 or v < 24 else
                 dict(hours=48 * d, entry_mode="magstripe", **BJ) for d in range(4)]  # the keyed ones swipe at home
        rows += _card(habit + [swipe], f"victim{v:02d}")
        first[f"victim{v:02d}"] = 400 + v
    tx = pd.concat([pop, make_txns(rows)], ignore_index=True)
    reports = pd.DataFrame({"card_token": list(first), "reported_at": [T0 + pd.Timedelta(hours=900)] * len(first),
                            "first_fraud_at": [T0 + pd.Timedelta(hours=h) for h in first.values()],
                            "fraud_type": "counterfeit"})
    return Projection.from_frames(tx, fraud_reports=reports)


def test_far_swipes_that_all_sit_at_one_terminal_are_fraud_at_that_point_not_copies():
    det = ClonedCardDetector().fit(_at_terminal_run())
    reported = set(det.result_["card_token"])
    # the victims' fraud is the terminal's, not a copy's (without the explain-away all 24 were reported: a far
    # swipe at a busy shop, the card's largest amount, a counterfeit report rare among the cards with a swipe)
    assert reported == {f"clone{c:02d}" for c in range(12)}
    points = det.points_.set_index("terminal_id")
    assert points.loc["TP", "accepted"] and points.loc["TP", "sole_cards"] == 24 and points.loc["TP", "far_cards"] == 24
    assert points["accepted"].sum() == 1  # the clones' shops are stops of a copy's round, not points
    assert points.loc["TP", "q_value"] <= REPORT_Q < points.drop(index="TP")["q_value"].min()
    # the terminals the reports name as the first fraud
    ev = det.evidence_.set_index("card_token")
    assert ev.loc["victim00", "report_terminal_ids"] == ["TP"] and ev.loc["clone00", "report_terminal_ids"] == ["GZ0-0"]


def test_a_report_whose_first_fraud_is_at_an_accepted_point_is_explained_by_it():
    # two more victims that TP keyed in (no far event there; each swiped once at home, as half the run's cards
    # do): their reports name TP's keyed transaction, the fraud of an accepted point, not a copy's
    det = ClonedCardDetector().fit(_at_terminal_run(keyed=2))
    assert not set(det.result_["card_token"]) & {"victim24", "victim25"}
    ev = det.evidence_.set_index("card_token")
    assert ev.loc["victim24", "report_terminal_ids"] == ["TP"] and ev.loc["victim24", "n_reported_counterfeit"] == 1
    scored = det.scored_.set_index("card_token")
    assert (scored.loc[["victim24", "victim25"], "p_value"] > 0.05).all()  # a home swipe is all that is left


def test_one_card_alone_never_makes_its_terminal_a_point():
    # the run's other far cards are multi-site clones (every sole share of the other terminals is ~0): one
    # card swiped once at its own terminal is still judged as a card, not explained by its terminal
    rows = _batch(30) + _card([dict(hours=48 * d, atc=d + 1, **SH) for d in range(4)]
                              + [dict(hours=300, entry_mode="fallback", terminal_id="ALONE", **BJ)], "single")
    det = _run(rows, prior=SMALL)
    assert not det.points_["accepted"].any()
    assert "single" in set(det.result_["card_token"])


def test_swipes_at_shops_the_card_never_uses_with_its_chip():
    home = [dict(hours=24 * d, atc=d + 1, merchant_id=f"M{d % 3}", **SH) for d in range(20)]
    swipes = [dict(hours=30 * 24 + 5 * k, entry_mode="magstripe", merchant_id=f"NEW{k}", **SH) for k in range(3)]
    regular = [dict(hours=30 * 24 + 5 * k, entry_mode="magstripe", merchant_id=f"M{k}", **SH) for k in range(3)]
    rows = _card(home + swipes, "copy_at_home") + _card(home + regular, "worn_chip")
    det = _run(rows)
    ev = det.evidence_.set_index("card_token")
    # the card's 20 chip uses are at its three shops (no single visit): r = 1 / 22, three new shops of three swipes
    assert ev.loc["copy_at_home", "n_fallback_new_merchant"] == 3
    assert ev.loc["copy_at_home", "fallback_new_merchant_p"] == pytest.approx((1 / 22) ** 3, rel=1e-9)
    assert ev.loc["worn_chip", "n_fallback_new_merchant"] == 0
    assert det.result_["card_token"].tolist() == ["copy_at_home"]
    assert "fallback_new_merchant:strong" in det.result_["reasons"].iloc[0]


def test_a_conditional_p_value_is_checked_against_the_run():
    # 300 cards of the run show the same tiny per-card p-value: the run says it is not rare
    own = np.r_[np.full(300, 1e-6), np.ones(700)]
    base = np.ones(1000, dtype=bool)
    cal = calibrated(own, base, 1000, 1.0)
    assert cal[0] == pytest.approx((299 + 1) / (999 + 2)) and (cal[300:] == 1.0).all()
    lone = np.r_[1e-6, np.ones(999)]  # shown by one card only: its own p-value stands
    assert calibrated(lone, base, 1000, 1.0)[0] == pytest.approx(1 / 1001)


def _swipes(pop: pd.DataFrame, tokens, per_card: int, k: int) -> None:
    """The last ``k`` uses of each card in ``tokens`` become magstripe swipes near its chip uses (fallback_after_chip
    events), in place."""
    for c in tokens:
        last = pop.index[pop["card_token"] == c][per_card - k:]
        pop.loc[last, "entry_mode"] = "magstripe"
        pop.loc[last, "atc"] = pd.NA


def _exposed(tokens) -> pd.DataFrame:
    return pd.DataFrame({"card_token": list(tokens), "terminal_id": "TSKIM", "mode": "skimming",
                         "first_exposed_at": pd.Timestamp(T0)})


def test_cards_exposed_at_a_skimming_point_are_tested_as_their_own_family():
    # one swipe near home is a weak sign: 8 of 4,000 unexposed cards show it, as do 16 of the 40 cards exposed
    # at an accepted skimming point. Among all cards none of them stands out; among the exposed ones, 16 of 40
    # is far more than the unexposed cards' rate: those 16 are reported, the 8 are not
    pop = population(4040)
    exposed = [f"pop{c:05d}" for c in range(4000, 4040)]
    copies, noise = exposed[:16], [f"pop{c:05d}" for c in range(0, 4000, 500)]
    _swipes(pop, copies + noise, 8, 1)
    det = ClonedCardDetector()
    evidence = det.evidence(Projection.from_frames(pop))
    assert ClonedCardDetector(exposure_family=False).decide(evidence, _exposed(exposed)).empty
    assert det.decide(evidence).empty  # without the skimming point's exposed cards: one family, nothing
    cards = det.decide(evidence, _exposed(exposed))
    assert sorted(cards["card_token"]) == sorted(copies)
    assert (cards["exposed_at"] == "TSKIM").all() and det.exposed_family_ == 40
    assert (cards["q_value"] <= REPORT_Q).all() and cards["reasons"].str.startswith("fallback_after_chip").all()
    # a point where the fraud happened at the terminal exposes no family: no copy of the card is in use
    assert det.decide(evidence, _exposed(exposed).assign(mode="at_terminal")).empty


def test_exposed_cards_are_judged_against_unexposed_cards_as_active():
    # busy cards (64 uses) swipe twice near home often (20 of 100 unexposed busy cards), quiet cards (8 uses)
    # never: over all cards two swipes look rare (36 of 8,140), so 16 genuine busy cards among the 40 exposed
    # would be reported if judged by that rate; against the unexposed busy cards they are ordinary
    quiet, busy = population(8000), population(140, per_card=64, seed=1)
    busy["card_token"] = busy["card_token"].str.replace("pop", "busy")
    busy["txn_id"] = "b" + busy["txn_id"]
    exposed = [f"busy{c:05d}" for c in range(100, 140)]
    _swipes(busy, [f"busy{c:05d}" for c in range(0, 100, 5)] + exposed[:16], 64, 2)
    det = ClonedCardDetector()
    evidence = det.evidence(Projection.from_frames(pd.concat([quiet, busy], ignore_index=True)))
    assert det.decide(evidence, _exposed(exposed)).empty
    scored = det.scored_.set_index("card_token")
    assert scored.loc[exposed[:16], "p_value"].max() < 0.01  # the events alone look rare
    assert scored.loc[exposed[:16], "exposed"].all() and not scored.loc["busy00000", "exposed"]
