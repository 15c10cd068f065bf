"""Planted card fraud: skimmers with late cloning elsewhere, compromise at the terminal, camouflaged rings."""

from __future__ import annotations

import numpy as np
import pandas as pd

from etl.adversary.region import (CHIP, CITIES, DAY, FALLBACK, HOUR, MAGSTRIPE, MANUAL, MINUTE, PURCHASE, T0,
                                  local_to_utc, mcc_index)
from etl.adversary.rows import AT_TERMINAL, CLONE, RING, new_rows
from etl.adversary.traffic import CITY_BASE, Flights
from etl.adversary.world import AdvPlan, World

__all__ = ["plant_skimmers", "plant_at_terminal", "plant_rings", "CLONE_MCCS", "ROUND_EUR"]

CLONE_MCCS = (5732, 5944, 5311, 5651, 5541, 5411, 5999)
ROUND_EUR = np.array([100, 150, 200, 250, 300, 400, 500, 600, 800, 1000, 1200, 1500, 2000, 2500, 3000])
_SKIM_MCCS = (5411, 5499, 5541, 5812, 5814, 5813, 5999, 5912)


def _volume_band(world: World, rows: dict, lo: float, hi: float, allowed: np.ndarray) -> np.ndarray:
    """Terminals whose genuine volume lies between the ``lo`` and ``hi`` quantiles, among ``allowed``."""
    vol = np.bincount(rows["term"], minlength=world.n_terminals)
    q_lo, q_hi = np.quantile(vol[vol > 0], [lo, hi])
    return np.flatnonzero((vol >= q_lo) & (vol <= q_hi) & allowed)


def _one_per_merchant(world: World, terms: np.ndarray, k: int, rng) -> np.ndarray:
    picked, seen = [], set()
    for t in rng.permutation(terms):
        m = int(world.t_merchant[t])
        if m not in seen:
            picked.append(int(t))
            seen.add(m)
        if len(picked) == k:
            break
    return np.array(picked, np.int64)


def _city_merchants(world: World, city: int, mccs, blocked_t: np.ndarray) -> np.ndarray:
    """Merchants of ``city`` with one of ``mccs`` and no terminal in ``blocked_t``."""
    ms = np.arange(world.city_lo[city], world.city_hi[city])
    m_blocked = np.zeros(world.n_merchants, bool)
    m_blocked[world.t_merchant[blocked_t]] = True
    return ms[np.isin(world.mcc_code[world.m_mcc[ms]], mccs) & ~m_blocked[ms]]


def plant_skimmers(world: World, rows: dict, plan: AdvPlan, taken: np.ndarray, blocked_t: np.ndarray,
                   rng: np.random.Generator):
    """Skimmers on ``plan.n_skimmers`` busy (not the busiest) terminals for 3-6 weeks; 70% of the cards inserted or
    swiped there (contactless taps are not captured) are cloned 1-8 weeks after their visit, 1-6 magstripe or
    fallback purchases over up to 4 days in one of the gang's 1-2 cash-out cities (sometimes the same city).

    Returns
    -------
    (rows of clone transactions, skimmers DataFrame terminal/window_start/window_end,
     victims DataFrame card/terminal/skimmed_at)
    """
    allowed = np.isin(world.mcc_code[world.m_mcc[world.t_merchant]], _SKIM_MCCS) & ~blocked_t
    terms = _one_per_merchant(world, _volume_band(world, rows, 0.9, 0.995, allowed), plan.n_skimmers, rng)
    parts, skim, vic = [], [], []
    for t in terms:
        ws = T0 + int(rng.integers(2, 21)) * DAY + int(rng.integers(0, DAY))
        we = min(ws + int(rng.integers(21, 43)) * DAY, plan.t_end - 14 * DAY)
        sel = np.flatnonzero((rows["term"] == t) & (rows["ts"] >= ws) & (rows["ts"] < we)
                             & np.isin(rows["entry"], [CHIP, MAGSTRIPE, FALLBACK]) & (rows["fraud"] == 0))
        sel = sel[np.argsort(rows["ts"][sel], kind="stable")]
        cards, first = np.unique(rows["card"][sel], return_index=True)
        skimmed_at = rows["ts"][sel][first]
        ok = ~taken[cards] & (rng.random(len(cards)) < 0.7)
        cards, skimmed_at = cards[ok], skimmed_at[ok]
        taken[cards] = True
        skim.append((t, ws, we))
        vic.append(pd.DataFrame({"card": cards, "terminal": t, "skimmed_at": skimmed_at}))
        home = world.m_city[world.t_merchant[t]]
        cities = rng.choice(len(CITIES), 2, replace=False)
        if rng.random() < 0.3:
            cities[0] = home
        start = skimmed_at + rng.integers(7, 57, len(cards)) * DAY
        k = np.minimum(rng.geometric(0.35, len(cards)), 6)
        card = np.repeat(cards, k)
        city = np.repeat(cities[rng.integers(0, 2, len(cards))], k)
        day0 = (np.repeat(start, k) - T0) // DAY + rng.integers(0, 5, len(card))
        local = T0 + day0 * DAY + rng.integers(10 * HOUR, 22 * HOUR, len(card))
        ts = local_to_utc(local, CITY_BASE[city])
        keep = ts < plan.t_end
        card, city, ts = card[keep], city[keep], ts[keep]
        merch = np.empty(len(card), np.int64)
        for c in np.unique(city):
            pool = _city_merchants(world, int(c), CLONE_MCCS, blocked_t | np.isin(np.arange(world.n_terminals), terms))
            w = world.m_pop[pool] / world.m_pop[pool].sum()
            merch[city == c] = rng.choice(pool, int((city == c).sum()), p=w)
        term = world.draw_terminal(merch, rng.random(len(card)))
        amount = np.round(rng.lognormal(np.log(350.0), 0.7, len(card)) * 100).astype(np.int64) + 1
        entry = np.where(rng.random(len(card)) < 0.55, MAGSTRIPE, FALLBACK)
        resp = np.where(rng.random(len(card)) < 0.1, 1, 0)
        parts.append(new_rows(world, ts, card, term, amount, entry, resp=resp, fraud=CLONE, rng=rng))
    skimmers = pd.DataFrame(skim, columns=["terminal", "window_start", "window_end"])
    victims = pd.concat(vic, ignore_index=True) if vic else pd.DataFrame(columns=["card", "terminal", "skimmed_at"])
    return parts, skimmers, victims


def plant_at_terminal(world: World, rows: dict, plan: AdvPlan, taken: np.ndarray, blocked_t: np.ndarray,
                      flights: Flights, rng: np.random.Generator):
    """Compromise at the terminal for 7-21 days: fraud committed at the terminal itself.

    Even cases are tampered terminals that charge 60% of their customers a second time 1-20 minutes after a
    genuine purchase (keyed or swiped, 60-600 EUR); odd cases are colluding merchants that key or swipe
    bought card data of cards from other cities, mostly 21:00-03:00 local. Before the window a terminal
    shows a ``tamper`` event (case 0, 3, ...), an odd-hour boot with a new ip (1, 4, ...) or nothing.

    Returns
    -------
    (rows, points DataFrame terminal/window_start/window_end/style, pre-window events DataFrame
     terminal/ts/event/new_ip)
    """
    allowed = ~blocked_t & ~np.isin(world.m_mcc[world.t_merchant], [mcc_index(4111), mcc_index(7523)])
    terms = _one_per_merchant(world, _volume_band(world, rows, 0.5, 0.95, allowed), plan.n_at_terminal, rng)
    parts, points, events = [], [], []
    for i, t in enumerate(terms):
        ws = T0 + int(rng.integers(10, 70)) * DAY + int(rng.integers(0, DAY))
        we = ws + int(rng.integers(7, 22)) * DAY
        home = int(world.m_city[world.t_merchant[t]])
        if i % 2 == 0:
            sel = np.flatnonzero((rows["term"] == t) & (rows["ts"] >= ws) & (rows["ts"] < we)
                                 & (rows["ttype"] == PURCHASE) & (rows["resp"] == 0) & (rows["fraud"] == 0))
            sel = sel[~taken[rows["card"][sel]] & (rng.random(len(sel)) < 0.6)]
            card = rows["card"][sel]
            ts = rows["ts"][sel] + rng.integers(MINUTE, 20 * MINUTE, len(sel))
        else:
            pool = np.flatnonzero((world.c_city != home) & ~taken & ~flights.flying)
            n = int(rng.integers(25, 71))
            card = rng.choice(pool, min(n, len(pool)), replace=False)
            n = len(card)
            day = (ws - T0) // DAY + rng.integers(0, max(1, (we - ws) // DAY), n)
            local = T0 + day * DAY + 21 * HOUR + rng.integers(0, 6 * HOUR, n)
            ts = np.clip(local_to_utc(local, CITY_BASE[np.full(n, home)]), ws, we - 1)
        taken[card] = True
        amount = np.round(rng.uniform(60, 600 if i % 2 == 0 else 900, len(card)) * 100).astype(np.int64) + 7
        entry = np.where(rng.random(len(card)) < 0.5, MANUAL, MAGSTRIPE)
        parts.append(new_rows(world, ts, card, np.full(len(card), t), amount, entry, fraud=AT_TERMINAL, rng=rng))
        points.append((t, ws, we, "double_charge" if i % 2 == 0 else "collusion"))
        if i % 3 == 0:
            events.append((t, ws - int(rng.integers(2 * HOUR, 3 * DAY)), "tamper", False))
        elif i % 3 == 1:
            day = (ws - T0) // DAY - int(rng.integers(1, 4))
            boot = local_to_utc(np.array([T0 + day * DAY + int(rng.integers(2 * HOUR, 4 * HOUR))]),
                                CITY_BASE[[home]])[0]
            events.append((t, int(boot), "boot", True))
    return (parts, pd.DataFrame(points, columns=["terminal", "window_start", "window_end", "style"]),
            pd.DataFrame(events, columns=["terminal", "ts", "event", "new_ip"]))


def plant_rings(world: World, rows: dict, plan: AdvPlan, taken: np.ndarray, blocked_t: np.ndarray,
                flights: Flights, phone: np.ndarray, account: np.ndarray, rng: np.random.Generator):
    """Cash-out rings of 4-10 small genuine merchants and 15-60 ordinary cards of the same city.

    Ring cards keep shopping normally and ring merchants keep their genuine customers (camouflage); each card
    uses about 60% of the ring's merchants, 1-3 times each, for round amounts, 70% between 23:00 and 04:00
    local. A random 40% of the ring's merchants share a phone, another random 40% a bank account (so the
    identities link only part of the ring; ``phone`` and ``account`` are edited in place).

    Returns
    -------
    (rows, truth DataFrame ring_id/kind/member_type/member, ring merchants array)
    """
    vol = np.bincount(rows["card"], minlength=world.n_cards)
    m_free = (world.m_chain < 0) & ~np.isin(world.m_mcc, [mcc_index(4111), mcc_index(7523)])
    m_blocked = np.zeros(world.n_merchants, bool)
    m_blocked[world.t_merchant[blocked_t]] = True
    small = world.m_pop <= np.quantile(world.m_pop, 0.7)
    parts, truth, ring_m = [], [], []
    share = np.array([c[4] for c in CITIES])
    for r in range(plan.n_rings):
        n_m, n_c = int(rng.integers(4, 11)), int(rng.integers(15, 61))
        eligible = m_free & ~m_blocked & small
        card_ok = ~taken & ~flights.flying & (vol >= 5)
        fits = np.array([eligible[world.city_lo[c]:world.city_hi[c]].sum() >= 2 * n_m
                         and (card_ok & (world.c_city == c)).sum() >= 2 * n_c for c in range(len(CITIES))])
        if not fits.any():
            break
        city = int(rng.choice(len(CITIES), p=share * fits / (share * fits).sum()))
        ms = np.arange(world.city_lo[city], world.city_hi[city])
        merchants = rng.choice(ms[eligible[ms]], n_m, replace=False)
        m_blocked[merchants] = True
        cards = rng.choice(np.flatnonzero(card_ok & (world.c_city == city)), n_c, replace=False)
        taken[cards] = True
        uses = rng.random((len(cards), n_m)) < 0.6
        uses[np.arange(len(cards)), rng.integers(0, n_m, len(cards))] = True
        uses[np.arange(len(cards)), rng.integers(0, n_m, len(cards))] = True
        ci, mi = np.nonzero(uses)
        reps = rng.integers(1, 4, len(ci))
        card, merch = np.repeat(cards[ci], reps), np.repeat(merchants[mi], reps)
        n = len(card)
        day = rng.integers(0, plan.days, n)
        night = rng.random(n) < 0.7
        hour = np.where(night, (23 + rng.integers(0, 5, n)) % 24, rng.integers(10, 20, n))
        local = T0 + day * DAY + hour * HOUR + rng.integers(0, HOUR, n)
        ts = local_to_utc(local, CITY_BASE[np.full(n, city)])
        ts = np.minimum(ts, plan.t_end - 1)
        term = world.draw_terminal(merch, rng.random(n))
        amount = rng.choice(ROUND_EUR, n) * 100
        parts.append(new_rows(world, ts, card, term, amount, np.full(n, CHIP), fraud=RING, rng=rng))
        by_phone = rng.choice(merchants, max(2, round(0.4 * n_m)), replace=False)
        by_account = rng.choice(merchants, max(2, round(0.4 * n_m)), replace=False)
        phone[by_phone] = phone[by_phone[0]]
        account[by_account] = account[by_account[0]]
        rid = f"ring-{r + 1}"
        terms = np.concatenate([np.arange(world.m_term_lo[m], world.m_term_lo[m] + world.m_term_n[m])
                                for m in merchants])
        truth += [pd.DataFrame({"ring_id": rid, "kind": "cash_out", "member_type": mt, "member": mem})
                  for mt, mem in (("card", cards), ("merchant", merchants), ("terminal", terms))]
        ring_m.append(merchants)
    frame = pd.concat(truth, ignore_index=True) if truth else pd.DataFrame(
        columns=["ring_id", "kind", "member_type", "member"])
    return parts, frame, np.concatenate(ring_m) if ring_m else np.zeros(0, np.int64)
