"""Ordinary card traffic: plausible trips, habitual shopping, entry modes, types, voids and completions."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from etl.generate.config import (CHIP, CITIES, COMPLETION, CONTACTLESS, DAY, FALLBACK, HOUR, HOUR_WEIGHTS,
                                 MAGSTRIPE, MANUAL, MCCS, P_NORMAL, PREAUTH, PURCHASE, REFUND, T0, VOID, Plan)
from etl.generate.entities import HABITS, World
from etl.generate.rows import Rows, amount_cents, concat, make_rows, take

__all__ = ["Trips", "make_trips", "normal_traffic", "derived_rows", "local_times", "card_entry",
           "TRAVEL_KMH"]

NEVER = np.int64(2 ** 62)
TRAVEL_KMH = 650.0  # door-to-door travel is never faster than this (plus 1-3 h at the airports)
_MCC_NO = {m[0]: i for i, m in enumerate(MCCS)}


@dataclass
class Trips:
    """Per card up to two trips: depart, arrive, return-depart and back-home times, and the destination."""

    home: np.ndarray
    dep: np.ndarray
    arr: np.ndarray
    ret: np.ndarray
    back: np.ndarray
    dest: np.ndarray

    def location(self, card: np.ndarray, t: np.ndarray) -> np.ndarray:
        """City of each card at time ``t``; -1 while it is travelling between cities."""
        city = self.home[card].astype(np.int16)
        for k in range(self.dep.shape[1]):
            d, a, r, b = self.dep[card, k], self.arr[card, k], self.ret[card, k], self.back[card, k]
            away = (t >= a) & (t < r)
            city[away] = self.dest[card, k][away]
            city[((t >= d) & (t < a)) | ((t >= r) & (t < b))] = -1
        return city

    def travels(self) -> np.ndarray:
        """Cards with at least one trip."""
        return self.dep[:, 0] < NEVER


def make_trips(world: World, plan: Plan, rng: np.random.Generator) -> Trips:
    """Trips of a minority of cards, each within one half of the period, at most ~650 km/h door to door.

    Parameters
    ----------
    world : World
    plan : Plan
    rng : numpy.random.Generator

    Returns
    -------
    Trips
    """
    n, half = world.n_cards, plan.days * DAY // 2
    share = np.array([c[3] for c in CITIES])
    shape = (n, 2)
    dep, arr, ret, back = (np.full(shape, NEVER, np.int64) for _ in range(4))
    dest = np.repeat(world.c_city[:, None], 2, axis=1).astype(np.int16)
    for k, p in enumerate((0.15, 0.06 if plan.days < 90 else 0.10)):
        go = np.flatnonzero(rng.random(n) < p)
        to = rng.choice(len(CITIES), size=len(go), p=share / share.sum()).astype(np.int16)
        same = to == world.c_city[go]
        to[same] = (to[same] + 1 + rng.integers(0, len(CITIES) - 1, same.sum())) % len(CITIES)
        travel = (world.city_dist[world.c_city[go], to] / TRAVEL_KMH * HOUR
                  + rng.uniform(1.0, 3.0, len(go)) * HOUR).astype(np.int64)
        stay = (rng.uniform(3.5, 9.0, len(go)) * DAY).astype(np.int64)
        lo, hi = T0 + k * half + 2 * DAY, T0 + (k + 1) * half - 2 * DAY - stay - 2 * travel
        d = lo + (rng.random(len(go)) * np.maximum(hi - lo, 1)).astype(np.int64)
        dep[go, k], arr[go, k] = d, d + travel
        ret[go, k], back[go, k] = d + travel + stay, d + 2 * travel + stay
        dest[go, k] = to
    # a second trip only for cards that made the first (keeps the travelling minority small)
    lone = dep[:, 0] == NEVER
    for a in (dep, arr, ret, back):
        a[lone, 1] = NEVER
    return Trips(home=world.c_city.copy(), dep=dep, arr=arr, ret=ret, back=back, dest=dest)


def local_times(rng: np.random.Generator, n: int, days: int, hours: np.ndarray | None = None) -> np.ndarray:
    """``n`` UTC epoch seconds on uniform days with a diurnal local-hour profile (or uniform over ``hours``)."""
    day = rng.integers(0, days, n)
    if hours is None:
        hour = rng.choice(24, size=n, p=HOUR_WEIGHTS / HOUR_WEIGHTS.sum())
    else:
        hour = rng.choice(np.asarray(hours), size=n)
    return T0 + day * DAY + hour * HOUR + rng.integers(0, HOUR, n)


def card_entry(rng: np.random.Generator, magonly: np.ndarray, amount: np.ndarray) -> np.ndarray:
    """Entry modes of genuine cards: magstripe-only cards swipe; chip cards dip or tap (rarely key or fall back)."""
    n = len(magonly)
    u, v = rng.random(n), rng.random(n)
    chip = np.where((amount <= 100_000) & (v < 0.5), CONTACTLESS, CHIP)
    chip = np.where(u < 0.004, MANUAL, np.where(u < 0.0043, FALLBACK, chip))
    mag = np.where(u < 0.03, MANUAL, MAGSTRIPE)
    return np.where(magonly, mag, chip).astype(np.int8)


def normal_traffic(world: World, trips: Trips, plan: Plan, rng: np.random.Generator) -> Rows:
    """Card-present purchases, refunds and pre-authorisations of every card over the period.

    Parameters
    ----------
    world : World
    trips : Trips
    plan : Plan
    rng : numpy.random.Generator

    Returns
    -------
    Rows
        Unsorted rows; voids and completions come from :func:`derived_rows`.
    """
    lam = plan.txns / 1.02 * world.c_weight / world.c_weight.sum()
    card = np.repeat(np.arange(world.n_cards, dtype=np.int32), rng.poisson(lam))
    ts = local_times(rng, len(card), plan.days)
    city = trips.location(card, ts)
    card, ts, city = card[city >= 0], ts[city >= 0], city[city >= 0]
    n = len(card)
    home = city == world.c_city[card]
    habitual = home & (rng.random(n) < 0.8)
    merch = np.where(habitual, world.c_habit[card, rng.integers(0, HABITS, n)],
                     world.sample_merchants(city, rng.random(n)))
    term = world.pick_terminal(merch, rng.random(n))
    mcc_idx = world.m_mcc[merch]
    p_pre = np.full(len(MCCS), 0.005)
    p_pre[_MCC_NO[7011]], p_pre[_MCC_NO[5541]], p_pre[_MCC_NO[4121]] = 0.15, 0.05, 0.05
    u = rng.random(n)
    ttype = np.where(u < p_pre[mcc_idx], PREAUTH, np.where(u > 1 - 0.012, REFUND, PURCHASE)).astype(np.int8)
    amount = amount_cents(rng, mcc_idx)
    refund = ttype == REFUND
    amount[refund] = np.maximum(np.round(amount[refund] * rng.uniform(0.1, 1.0, refund.sum())), 100)
    entry = card_entry(rng, world.c_magonly[card], amount)
    r = rng.random(n)
    resp = np.select([r < 0.015, r < 0.035, r < 0.04], [1, 2, 3], 0).astype(np.int8)
    resp[refund] = 0
    return make_rows(world, ts, card, term, entry, amount, ttype=ttype, resp=resp, rng=rng)


def derived_rows(world: World, trips: Trips, rows: Rows, plan: Plan, rng: np.random.Generator) -> Rows:
    """Voids of some approved purchases (minutes later) and completions of approved pre-authorisations.

    A derived row is dropped when the card would have changed city in between, so travel stays plausible.
    """
    base = rows["plant"] == P_NORMAL
    approved = base & (rows["resp"] == 0)
    u = rng.random(len(rows["ts"]))
    void = np.flatnonzero(approved & (rows["ttype"] == PURCHASE) & (u < 0.008))
    comp = np.flatnonzero(approved & (rows["ttype"] == PREAUTH) & (u < 0.85))
    hotel = world.m_mcc[rows["merch"][comp]] == _MCC_NO[7011]
    delay_c = np.where(hotel, rng.uniform(12, 72, len(comp)) * HOUR, rng.uniform(5, 90, len(comp)) * 60)
    parts = []
    for idx, delay, ttype, scale in ((void, rng.uniform(30, 900, len(void)), VOID, None),
                                     (comp, delay_c, COMPLETION, rng.uniform(0.7, 1.0, len(comp)))):
        d = take(rows, idx)
        t = d["ts"] + delay.astype(np.int64)
        ok = (t < plan.t_end) & (trips.location(d["card"], t) == trips.location(d["card"], d["ts"]))
        d = take(d, ok)
        d["ts"] = t[ok]
        d["ttype"] = np.full(len(d["ts"]), ttype, np.int8)
        d["resp"] = np.zeros(len(d["ts"]), np.int8)
        if scale is not None:
            d["amount"] = np.maximum(np.round(d["amount"] * scale[ok]), 100).astype(np.int64)
        parts.append(d)
    return concat(*parts)
