"""Planted card fraud: skimmers and their counterfeit copies, ATC-cloned cards, and fraud reports."""

from __future__ import annotations

import numpy as np
import pandas as pd

from etl.generate.config import (CHIP, CONTACTLESS, DAY, FALLBACK, HOUR, MAGSTRIPE, MANUAL, MINUTE,
                                 P_COUNTERFEIT, P_GENUINE, P_NORMAL, P_REGRESSION, P_REPLAY, T0, Plan)
from etl.generate.counters import atc_eligible, group_order
from etl.generate.entities import HABITS, World
from etl.generate.rows import Rows, amount_cents, concat, make_rows
from etl.generate.traffic import Trips, card_entry, local_times

__all__ = ["plant_skimmers", "plant_atc_clones", "fill_clone_atc", "fraud_reports", "FAR_KM"]

FAR_KM = 800.0  # counterfeit copies are used at least this far from the card's home city
COPY_RATE = 0.45  # share of the cards seen by a skimmer inside its window that are copied
MIN_COPIES, MAX_COPIES = 5, 150  # copied cards per skimmer
MIN_REPORTED = 3  # reported copied cards per skimmer, at least


def _far_city(world: World, home: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    far = world.city_dist >= FAR_KM
    u = rng.random(len(home))
    out = np.empty(len(home), np.int16)
    for c in np.unique(home):
        opts = np.flatnonzero(far[c])
        sel = home == c
        out[sel] = opts[(u[sel] * len(opts)).astype(int)]
    return out


def _skimmer_terminals(world: World, rows: Rows, n: int, rng: np.random.Generator) -> np.ndarray:
    """The busiest merchant's busiest terminal, then busy-to-moderate terminals in distinct cities."""
    traffic = np.bincount(rows["term"], minlength=world.n_terminals)
    busiest_m = np.argmax(np.bincount(rows["merch"], minlength=world.n_merchants))
    lo = world.m_term_lo[busiest_m]
    chosen = [int(lo + np.argmax(traffic[lo:lo + world.m_term_n[busiest_m]]))]
    pool = np.argsort(-traffic, kind="stable")[: max(4 * n, world.n_terminals // 7)]
    pool = pool[world.t_merchant[pool] != busiest_m]
    cities = {int(world.m_city[busiest_m])}
    for t in rng.permutation(pool):
        c = int(world.m_city[world.t_merchant[t]])
        if len(chosen) >= n:
            break
        if c in cities and len(cities) < len(world.city_name):
            continue
        chosen.append(int(t))
        cities.add(c)
    return np.array(chosen, np.int32)


def plant_skimmers(world: World, trips: Trips, rows: Rows, plan: Plan, rng: np.random.Generator):
    """Skim cards at a few terminals during a window; use copies far away days to weeks later.

    Parameters
    ----------
    world, trips, plan : World, Trips, Plan
    rows : Rows
        Ordinary traffic (the skimmers' victims are the cards that used them).
    rng : numpy.random.Generator

    Returns
    -------
    rows : Rows
        Counterfeit uses (magstripe/fallback, no ATC) and genuine uses at home close in time to them.
    skimmers : DataFrame
        terminal (index), window_start, window_end (UTC epoch seconds).
    victims : DataFrame
        card (index), terminal, first_fraud (epoch s of the first counterfeit use).
    """
    terms = _skimmer_terminals(world, rows, plan.n_skimmers, rng)
    sk, vic = [], []
    taken = np.zeros(world.n_cards, bool)
    for t in terms:
        at = (rows["term"] == t) & (rows["entry"] != MANUAL) & (rows["plant"] == P_NORMAL)
        ts_t, cards_t = rows["ts"][at], rows["card"][at]
        start = T0 + int(rng.integers(3, max(4, plan.days - 45))) * DAY + int(rng.integers(0, 12)) * HOUR
        length = int(rng.integers(5, 11)) * DAY
        while length < 15 * DAY and len(np.unique(cards_t[(ts_t >= start) & (ts_t < start + length)])) < 12:
            length += DAY
        end = start + length
        inside = (ts_t >= start) & (ts_t < end)
        order = np.argsort(ts_t[inside], kind="stable")
        c_in, first_idx = np.unique(cards_t[inside][order], return_index=True)
        visit = ts_t[inside][order][first_idx]
        free = ~taken[c_in]
        copy = (rng.random(len(c_in)) < COPY_RATE) & free
        short = MIN_COPIES - copy.sum()
        if short > 0:  # a quiet skimmer still yields a few copies, or nobody could ever find it
            spare = np.flatnonzero(free & ~copy)
            copy[rng.choice(spare, size=min(short, len(spare)), replace=False)] = True
        copy = np.flatnonzero(copy)
        if len(copy) > MAX_COPIES:  # a skimmer's memory, and the gang's appetite, are finite
            copy = np.sort(rng.choice(copy, size=MAX_COPIES, replace=False))
        c_in, visit = c_in[copy], visit[copy]
        cf = np.maximum(end + rng.uniform(1, 4, len(c_in)) * DAY, visit + rng.uniform(3, 21, len(c_in)) * DAY)
        cf = cf.astype(np.int64)
        keep = cf < plan.t_end - 2 * DAY
        c_in, cf = c_in[keep], cf[keep]
        taken[c_in] = True
        sk.append((int(t), start, end))
        vic.append(pd.DataFrame({"card": c_in, "terminal": int(t), "first_fraud": cf}))
    skimmers = pd.DataFrame(sk, columns=["terminal", "window_start", "window_end"])
    victims = pd.concat(vic, ignore_index=True)
    return _counterfeit_rows(world, trips, victims, plan, rng), skimmers, victims


def _counterfeit_rows(world: World, trips: Trips, victims: pd.DataFrame, plan: Plan, rng) -> Rows:
    card = victims["card"].to_numpy(np.int32)
    k = rng.integers(2, 7, len(card))
    c = np.repeat(card, k)
    first = np.repeat(victims["first_fraud"].to_numpy(np.int64), k)
    head = (np.arange(len(c)) - np.repeat(np.cumsum(k) - k, k)) == 0
    ts = np.where(head, first, first + (rng.uniform(0.02, 3.0, len(c)) * DAY).astype(np.int64))
    ts = np.minimum(ts, plan.t_end - 1)
    city = np.repeat(_far_city(world, world.c_city[card], rng), k)
    merch = world.sample_merchants(city, rng.random(len(c)))
    term = world.pick_terminal(merch, rng.random(len(c)))
    entry = np.where(world.c_magonly[c] | (rng.random(len(c)) < 0.65), MAGSTRIPE, FALLBACK).astype(np.int8)
    amount = np.minimum(np.round(250_000 * np.exp(rng.normal(0, 0.7, len(c)))), 5_000_000).astype(np.int64)
    r = rng.random(len(c))
    resp = np.select([r < 0.05, r < 0.1], [2, 1], 0).astype(np.int8)
    fake = make_rows(world, ts, c, term, entry, amount, resp=resp, plant=P_COUNTERFEIT, rng=rng)
    # the genuine card keeps being used at home, minutes away from a counterfeit use
    g = np.flatnonzero(rng.random(len(card)) < 0.6)
    gt = victims["first_fraud"].to_numpy(np.int64)[g] + (rng.choice([-1, 1], len(g))
                                                         * rng.uniform(5, 40, len(g)) * MINUTE).astype(np.int64)
    gc = card[g]
    home = trips.location(gc, gt) == world.c_city[gc]
    gt, gc = gt[home], gc[home]
    merch = world.c_habit[gc, rng.integers(0, HABITS, len(gc))]
    term = world.pick_terminal(merch, rng.random(len(gc)))
    amount = amount_cents(rng, world.m_mcc[merch])
    genuine = make_rows(world, gt, gc, term, card_entry(rng, world.c_magonly[gc], amount), amount,
                        plant=P_GENUINE, rng=rng)
    return concat(fake, genuine)


def plant_atc_clones(world: World, trips: Trips, rows: Rows, plan: Plan, exclude: np.ndarray,
                     rng: np.random.Generator):
    """Chip clones that replay an ATC already used (or one below it) at some later time.

    Returns the clone rows (their ATC is filled by :func:`fill_clone_atc`) and the cloned card indices.
    """
    ok = atc_eligible(rows) & (rows["plant"] == P_NORMAL)
    n_chip = np.bincount(rows["card"][ok], minlength=world.n_cards)
    first = np.full(world.n_cards, np.iinfo(np.int64).max)
    np.minimum.at(first, rows["card"][ok], rows["ts"][ok])
    pool = np.flatnonzero((n_chip >= 5) & ~exclude & (first < plan.t_end - 25 * DAY))
    cards = np.sort(rng.choice(pool, size=min(plan.n_atc_clones, len(pool)), replace=False)).astype(np.int32)
    k = rng.integers(1, 4, len(cards))
    c = np.repeat(cards, k)
    ts = np.repeat(first[cards], k) + (rng.uniform(12, 60, len(c)) * DAY).astype(np.int64)
    ts = np.minimum(ts, plan.t_end - HOUR) - rng.integers(0, 10 * HOUR, len(c))
    far = np.repeat(rng.random(len(cards)) < 0.5, k)
    city = np.where(far, _far_city(world, world.c_city[c], rng), world.c_city[c])
    merch = world.sample_merchants(city, rng.random(len(c)))
    term = world.pick_terminal(merch, rng.random(len(c)))
    kind = np.repeat(np.where(rng.random(len(cards)) < 0.5, P_REPLAY, P_REGRESSION), k)
    amount = amount_cents(rng, world.m_mcc[merch], scale=4.0)
    entry = np.where(rng.random(len(c)) < 0.7, CHIP, CONTACTLESS)
    return make_rows(world, ts, c, term, entry, amount, plant=kind, rng=rng), cards


def fill_clone_atc(rows: Rows, rng: np.random.Generator) -> None:
    """Give each planted clone row an ATC the genuine card already used (replay) or a lower one (regression)."""
    clone = np.flatnonzero((rows["plant"] == P_REPLAY) | (rows["plant"] == P_REGRESSION))
    if not len(clone):
        return
    ok = np.flatnonzero(rows["atc"] >= 0)
    obs = rows["ts"] - rows["shift"]
    order, _ = group_order(rows["card"][ok], obs[ok])
    g_card, g_ts, g_atc = rows["card"][ok][order], obs[ok][order], rows["atc"][ok][order]
    key = g_card.astype(np.int64) * (1 << 32) + (g_ts - g_ts.min())
    for i in clone:
        c, t = rows["card"][i], obs[i]
        lo = np.searchsorted(key, np.int64(c) * (1 << 32))
        hi = np.searchsorted(key, np.int64(c) * (1 << 32) + (t - g_ts.min()))
        if hi <= lo:
            hi = min(lo + 1, len(key))
        j = int(rng.integers(max(lo, hi - 15), hi))
        rows["atc"][i] = g_atc[j] if rows["plant"][i] == P_REPLAY else max(1, g_atc[hi - 1] - int(rng.integers(3, 40)))


def fraud_reports(world: World, plan: Plan, victims: pd.DataFrame, clone_rows_first: pd.DataFrame,
                  exclude: np.ndarray, rng: np.random.Generator) -> pd.DataFrame:
    """Fraud reports: most copied cards (counterfeit), half the ATC clones, and unrelated background reports.

    Returns a DataFrame with card (index), reported_at, first_fraud_at (epoch s, -1 = unknown), fraud_type.
    """
    parts = []
    for frame, p_report, p_first in ((victims, 0.8, 0.6), (clone_rows_first, 0.5, 0.5)):
        if not len(frame):
            continue
        report = rng.random(len(frame)) < p_report
        if "terminal" in frame.columns:  # every skimmer gets a few reported victims
            rank = frame.assign(u=rng.random(len(frame))).groupby("terminal")["u"].rank(method="first")
            report |= rank.to_numpy() <= MIN_REPORTED
        sel = frame[report]
        ff = sel["first_fraud"].to_numpy(np.int64)
        rep = np.minimum(ff + (rng.uniform(1, 10, len(sel)) * DAY).astype(np.int64), plan.t_end - MINUTE)
        parts.append(pd.DataFrame({"card": sel["card"].to_numpy(np.int32), "reported_at": rep,
                                   "first_fraud_at": np.where(rng.random(len(sel)) < p_first, ff, -1),
                                   "fraud_type": "counterfeit"}))
    pool = np.flatnonzero(~exclude)
    bg = np.sort(rng.choice(pool, size=min(plan.n_background_reports, len(pool)), replace=False))
    rep = local_times(rng, len(bg), plan.days)
    kinds = rng.choice(["lost_stolen", "card_not_present", "account_takeover", "other"], size=len(bg),
                       p=[0.4, 0.35, 0.15, 0.1])
    first = np.where(rng.random(len(bg)) < 0.5, rep - (rng.uniform(0.5, 10, len(bg)) * DAY).astype(np.int64), -1)
    parts.append(pd.DataFrame({"card": bg.astype(np.int32), "reported_at": rep, "first_fraud_at": first,
                               "fraud_type": kinds}))
    out = pd.concat(parts, ignore_index=True)
    return out.sort_values(["reported_at", "card"], kind="stable").reset_index(drop=True)
