"""Genuine card traffic: flights, habits, local-time hour shapes, entry modes, offline uploads, voids, fuel preauths."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from etl.adversary.region import (CHIP, CITIES, COMPLETION, CONTACTLESS, CRUISE_KMH, DAY, FALLBACK, HOUR,
                                  MAGSTRIPE, MANUAL, MCCS, MINUTE, PREAUTH, PROFILES, REFUND, T0, VOID,
                                  distance_km, local_to_utc, mcc_index)
from etl.adversary.rows import concat, new_rows, take
from etl.adversary.world import HABITS, AdvPlan, World

__all__ = ["Flights", "make_flights", "genuine_traffic", "amounts", "CITY_BASE", "FLIGHT_SHARE",
           "FALLBACK_TERMINAL_SHARE"]

CITY_BASE = np.array([c[3] for c in CITIES], np.int64)
CITY_LAT = np.array([c[1] for c in CITIES])
CITY_LON = np.array([c[2] for c in CITIES])
FLIGHT_SHARE = 0.05  # cards that fly to another city for 2-6 days
FALLBACK_TERMINAL_SHARE = 0.06  # terminals with a worn chip reader (fallback 10-20% there, ~1% elsewhere)
_NEVER = np.int64(2 ** 62)
_BEFORE, _AFTER = int(1.5 * HOUR), int(0.75 * HOUR)  # no purchase this close to take-off / after landing


@dataclass
class Flights:
    """One return trip per flying card (others: ``dep = _NEVER``); times in UTC seconds."""

    dest: np.ndarray
    dep: np.ndarray
    arr: np.ndarray
    ret: np.ndarray
    back: np.ndarray

    def city_at(self, home: np.ndarray, card: np.ndarray, t: np.ndarray) -> np.ndarray:
        """City of each card at ``t`` (-1 around and during a flight, when it cannot pay)."""
        city = home[card].copy()
        away = (t >= self.arr[card] + _AFTER) & (t < self.ret[card] - _BEFORE)
        city[away] = self.dest[card][away]
        blocked = (((t >= self.dep[card] - _BEFORE) & (t < self.arr[card] + _AFTER))
                   | ((t >= self.ret[card] - _BEFORE) & (t < self.back[card] + _AFTER)))
        city[blocked] = -1
        return city

    @property
    def flying(self) -> np.ndarray:
        return self.dep < _NEVER


def make_flights(world: World, plan: AdvPlan, rng: np.random.Generator) -> Flights:
    """About ``FLIGHT_SHARE`` of cards fly out (local 06-20 h) and back 2-6 days later at ``CRUISE_KMH``."""
    n = world.n_cards
    share = np.array([c[4] for c in CITIES])
    fly = np.flatnonzero(rng.random(n) < FLIGHT_SHARE)
    home = world.c_city[fly]
    dest = rng.choice(len(CITIES), len(fly), p=share / share.sum())
    clash = dest == home
    dest[clash] = (dest[clash] + 1 + rng.integers(0, len(CITIES) - 1, clash.sum())) % len(CITIES)
    hours = distance_km(CITY_LAT[home], CITY_LON[home], CITY_LAT[dest], CITY_LON[dest]) / CRUISE_KMH + 0.5
    day = rng.integers(1, plan.days - 8, len(fly))
    dep = local_to_utc(T0 + day * DAY + rng.integers(6 * HOUR, 20 * HOUR, len(fly)), CITY_BASE[home])
    arr = dep + (hours * HOUR).astype(np.int64)
    stay = rng.integers(2, 7, len(fly))
    ret = local_to_utc(T0 + (day + stay) * DAY + rng.integers(7 * HOUR, 21 * HOUR, len(fly)), CITY_BASE[dest])
    ret = np.maximum(ret, arr + 36 * HOUR)
    back = ret + (hours * HOUR).astype(np.int64)
    out = Flights(dest=np.full(n, -1, np.int64), dep=np.full(n, _NEVER), arr=np.full(n, _NEVER),
                  ret=np.full(n, _NEVER), back=np.full(n, _NEVER))
    out.dest[fly], out.dep[fly], out.arr[fly], out.ret[fly], out.back[fly] = dest, dep, arr, ret, back
    return out


def amounts(rng: np.random.Generator, mcc_idx: np.ndarray) -> np.ndarray:
    """Log-normal amounts per MCC in cents (at least 0.50 EUR), never suspiciously round."""
    median = np.array([m[3] for m in MCCS])[mcc_idx]
    sigma = np.array([m[4] for m in MCCS])[mcc_idx]
    cents = np.round(median * np.exp(rng.normal(0.0, 1.0, len(mcc_idx)) * sigma) * 100).astype(np.int64)
    return np.maximum(cents, 50)


def _local_times(rng, world: World, merchant: np.ndarray, day: np.ndarray, city: np.ndarray) -> np.ndarray:
    """UTC instants on local ``day`` with the hour drawn from the merchant's MCC profile, in the city's zone."""
    profile = np.array([m[6] for m in MCCS])[world.m_mcc[merchant]]
    cum = np.cumsum(PROFILES, axis=1)
    cum = cum / cum[:, -1:]
    hour = np.zeros(len(merchant), np.int64)
    u = rng.random(len(merchant))
    for p in range(len(PROFILES)):
        sel = profile == p
        hour[sel] = np.searchsorted(cum[p], u[sel], side="right")
    local = T0 + day * DAY + np.minimum(hour, 23) * HOUR + rng.integers(0, HOUR, len(merchant))
    return local_to_utc(local, CITY_BASE[city])


def genuine_traffic(world: World, flights: Flights, plan: AdvPlan, rng: np.random.Generator) -> dict:
    """Ordinary purchases of every card, plus refunds, voids, fuel preauth/completion and offline uploads.

    Cards shop at home (55% at habitual merchants) or, while away on a flight, in the destination city; no
    purchase happens within 1.5 h before a take-off or 45 min after a landing. 20% of restaurant, bar and
    taxi bills are rounded up to 5 EUR with the tip. Offline-capable terminals
    (transit, parking) upload 35% of their transactions 20 min to 8 h late (the written ``ts`` is the upload;
    the ATC is the one of the true time).
    """
    n_c = world.n_cards
    per_card = plan.txns * 0.985 / n_c
    lam = world.c_weight / world.c_weight.mean() * per_card
    count = rng.poisson(lam)
    card = np.repeat(np.arange(n_c), count)
    n = len(card)
    dow = (np.arange(plan.days) + 0) % 7  # T0 is a Monday
    day_w = np.where(dow == 6, 0.65, np.where(dow == 5, 1.2, 1.0))
    day = rng.choice(plan.days, n, p=day_w / day_w.sum())
    # provisional time at home (noon) to decide where the card is that day
    noon = T0 + day * DAY + 12 * HOUR - CITY_BASE[world.c_city[card]] * HOUR
    city = flights.city_at(world.c_city, card, noon)
    city = np.where(city < 0, world.c_city[card], city)
    at_home = city == world.c_city[card]
    habit = at_home & (rng.random(n) < 0.55)
    merchant = world.draw_merchants(city, rng.random(n))
    merchant[habit] = world.c_habit[card[habit], rng.integers(0, HABITS, habit.sum())]
    ts = _local_times(rng, world, merchant, day, city)
    where = flights.city_at(world.c_city, card, ts)
    ok = where == city
    card, merchant, ts, city = card[ok], merchant[ok], ts[ok], city[ok]
    n = len(card)
    term = world.draw_terminal(merchant, rng.random(n))
    mcc_idx = world.m_mcc[merchant]
    amount = amounts(rng, mcc_idx)
    tipped = np.isin(mcc_idx, [mcc_index(5812), mcc_index(5813), mcc_index(4121)]) & (rng.random(n) < 0.2)
    amount[tipped] = np.maximum(np.ceil(amount[tipped] / 500) * 500, 500).astype(np.int64)  # "make it 25"
    entry = _entry_modes(rng, world, card, term, amount, mcc_idx)
    resp = rng.choice(5, n, p=[0.975, 0.011, 0.01, 0.003, 0.001])
    rows = new_rows(world, ts, card, term, amount, entry, resp=resp, rng=rng)
    refund = rng.random(n) < np.where(np.isin(mcc_idx, [mcc_index(5651), mcc_index(5732), mcc_index(5311)]),
                                      0.03, 0.004)
    rows["ttype"][refund] = REFUND
    rows["resp"][refund] = 0
    offline = (np.array([m[7] for m in MCCS])[mcc_idx] == 1) & (rng.random(n) < 0.35) & ~flights.flying[card]
    rows["obs"][offline] += rng.integers(20 * MINUTE, 8 * HOUR, offline.sum())
    extra = [_voids(rows, rng), _fuel(rows, mcc_idx, rng)]
    return concat(rows, *extra)


def _entry_modes(rng, world: World, card, term, amount, mcc_idx) -> np.ndarray:
    """Contactless up to 50 EUR by the card's habit, else chip; fallback/magstripe on worn readers and at random."""
    n = len(card)
    worn = rng.random(world.n_terminals) < FALLBACK_TERMINAL_SHARE
    p_fb = np.where(worn[term], rng.uniform(0.10, 0.20, n), 0.02)
    entry = np.where((amount <= 5000) & (rng.random(n) < world.c_contactless[card]), CONTACTLESS, CHIP)
    fb = (entry == CHIP) & (rng.random(n) < p_fb)
    entry[fb] = np.where(rng.random(fb.sum()) < 0.5, FALLBACK, MAGSTRIPE)
    keyed = (mcc_idx == mcc_index(7011)) & (rng.random(n) < 0.03)
    entry[keyed] = MANUAL
    return entry.astype(np.int8)


def _voids(rows: dict, rng) -> dict:
    """0.3% of purchases are voided 1-6 minutes later at the same terminal (same card, same amount)."""
    pick = np.flatnonzero((rows["ttype"] == 0) & (rows["resp"] == 0) & (rng.random(len(rows["ts"])) < 0.003))
    out = take(rows, pick)
    delay = rng.integers(MINUTE, 6 * MINUTE, len(pick))
    out["ts"] = out["ts"] + delay
    out["obs"] = out["obs"] + delay
    out["ttype"][:] = VOID
    return out


def _fuel(rows: dict, mcc_idx: np.ndarray, rng) -> dict:
    """Pay-at-pump: 40% of fuel purchases become a 150.00 preauth and a completion 3-9 minutes later."""
    pick = np.flatnonzero((mcc_idx == mcc_index(5541)) & (rows["ttype"] == 0) & (rows["resp"] == 0)
                          & (rng.random(len(rows["ts"])) < 0.4))
    pre = take(rows, pick)
    pre["amount"][:] = 15000
    pre["ttype"][:] = PREAUTH
    delay = rng.integers(3 * MINUTE, 9 * MINUTE, len(pick))
    rows["ts"][pick] += delay
    rows["obs"][pick] += delay
    rows["ttype"][pick] = COMPLETION
    return pre
