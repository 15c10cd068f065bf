"""Planted terminal tampering: trace gaps, unapproved firmware, relocation, MCC mismatch, void spikes, clock skew."""

from __future__ import annotations

import numpy as np
import pandas as pd

from etl.generate.config import (DAY, HOUR, MANUAL, MCCS, MINUTE, PURCHASE, P_NORMAL, P_RELOCATED, P_VOID_SPIKE, Plan,
                                 REFUND, T0, VOID)
from etl.generate.counters import group_order
from etl.generate.entities import World
from etl.generate.rows import Rows, amount_cents, concat, make_rows, take
from etl.generate.traffic import Trips, card_entry, local_times
from graph.vocabulary import FINDING_KINDS

__all__ = ["KINDS", "choose_case_terminals", "plant_relocations", "plant_void_spikes", "plant_mcc_mismatch",
           "plant_clock_skew", "plant_unapproved_firmware", "trace_gap_keep"]

KINDS = FINDING_KINDS[:6]  # the terminal cases this generator plants (trace_gap ... clock_skew)
_MCC_NO = {m[0]: i for i, m in enumerate(MCCS)}
MIN_TRAFFIC = {"trace_gap": 80, "clock_skew": 40, "void_spike": 15, "relocation": 15, "unapproved_firmware": 10,
               "mcc_mismatch": 10}


def choose_case_terminals(world: World, rows: Rows, plan: Plan, exclude: np.ndarray,
                          rng: np.random.Generator) -> pd.DataFrame:
    """Terminals (one per merchant, untouched by other plants) for each kind; busy ones for gaps and skew.

    Returns
    -------
    DataFrame
        terminal (index), kind.
    """
    traffic = np.bincount(rows["term"], minlength=world.n_terminals)
    free = ~exclude.copy()
    free[np.unique(rows["term"][rows["plant"] != P_NORMAL])] = False
    used_m = np.zeros(world.n_merchants, bool)
    out = []
    high_fee = np.isin(world.m_mcc, [_MCC_NO[5944], _MCC_NO[7011]])[world.t_merchant]
    for kind in ("mcc_mismatch", "trace_gap", "clock_skew", "void_spike", "relocation", "unapproved_firmware"):
        ok = free & ~used_m[world.t_merchant] & (traffic >= MIN_TRAFFIC[kind])
        if kind == "mcc_mismatch":
            ok &= high_fee
        cand = np.flatnonzero(ok)
        if kind in ("mcc_mismatch", "trace_gap", "clock_skew"):  # the busiest of their pool, in random order
            cand = cand[np.argsort(-traffic[cand], kind="stable")][: 3 * plan.n_per_case]
        if len(cand) < plan.n_per_case:  # small drops: relax the traffic floor rather than plant fewer
            cand = np.flatnonzero(free & ~used_m[world.t_merchant] & (high_fee if kind == "mcc_mismatch" else True))
            cand = cand[np.argsort(-traffic[cand], kind="stable")][: 3 * plan.n_per_case]
        pick = np.sort(rng.choice(cand, size=min(plan.n_per_case, len(cand)), replace=False))
        free[pick] = False
        used_m[world.t_merchant[pick]] = True
        out.append(pd.DataFrame({"terminal": pick.astype(np.int32), "kind": kind}))
    return pd.concat(out, ignore_index=True)


def _home_cards(world: World, trips: Trips, city: int, n: int, rng: np.random.Generator) -> np.ndarray:
    pool = np.flatnonzero((world.c_city == city) & ~trips.travels())
    return rng.choice(pool, size=n).astype(np.int32)


def plant_relocations(world: World, trips: Trips, rows: Rows, terms: np.ndarray, plan: Plan,
                      rng: np.random.Generator) -> tuple[Rows, pd.DataFrame]:
    """Move each terminal to another city for 7-20 days: its messages there carry the new position.

    The terminal's ordinary traffic in the period is replaced by traffic of cards living in the new city, so
    no card shows implausible travel. Returns the new rows and terminal, start, end, city, lat, lon.
    """
    drop = np.zeros(len(rows["ts"]), bool)
    parts, info = [], []
    for t in terms:
        start = T0 + int(rng.integers(8, plan.days - 22)) * DAY  # local midnight
        end = start + int(rng.integers(7, 21)) * DAY
        home = int(world.m_city[world.t_merchant[t]])
        city = int((home + 1 + rng.integers(0, len(world.city_name) - 1)) % len(world.city_name))
        lat = world.city_lat[city] + rng.uniform(-0.08, 0.08)
        lon = world.city_lon[city] + rng.uniform(-0.08, 0.08)
        here = (rows["term"] == t) & (rows["ts"] >= start) & (rows["ts"] < end)
        drop |= here
        n = max(12, int(here.sum()))
        ts = start + (local_times(rng, n, (end - start) // DAY) - T0)
        cards = _home_cards(world, trips, city, n, rng)
        amount = amount_cents(rng, np.full(n, world.m_mcc[world.t_merchant[t]]))
        parts.append(make_rows(world, ts, cards, np.full(n, t), card_entry(rng, world.c_magonly[cards], amount),
                               amount, plant=P_RELOCATED, lat=np.full(n, lat), lon=np.full(n, lon), rng=rng))
        info.append((int(t), start, end, city, lat, lon))
    frame = pd.DataFrame(info, columns=["terminal", "start", "end", "city", "lat", "lon"])
    return concat(take(rows, ~drop), *parts), frame


def plant_void_spikes(world: World, trips: Trips, rows: Rows, terms: np.ndarray, plan: Plan,
                      rng: np.random.Generator) -> Rows:
    """A 1-3 day burst at each terminal: most purchases voided, plus purchase/void pairs and keyed refunds."""
    parts = []
    for t in terms:
        start = T0 + int(rng.integers(5, plan.days - 5)) * DAY + int(rng.integers(8, 14)) * HOUR
        end = start + int(rng.integers(1, 4)) * DAY
        sel = np.flatnonzero((rows["term"] == t) & (rows["ts"] >= start) & (rows["ts"] < end)
                             & (rows["ttype"] == PURCHASE) & (rows["resp"] == 0) & (rows["plant"] == P_NORMAL))
        sel = sel[rng.random(len(sel)) < 0.7]
        voids = take(rows, sel)
        voids["ts"] = voids["ts"] + rng.integers(60, 20 * MINUTE, len(sel))
        voids["ttype"][:] = VOID
        voids["plant"][:] = P_VOID_SPIKE
        city = int(world.m_city[world.t_merchant[t]])
        mcc = np.full(1, world.m_mcc[world.t_merchant[t]])
        n_pairs, n_ref = int(rng.integers(8, 16)), int(rng.integers(8, 20))
        span = end - start
        pt = start + rng.integers(0, span, n_pairs)
        pc = _home_cards(world, trips, city, n_pairs, rng)
        pa = amount_cents(rng, np.repeat(mcc, n_pairs), scale=2.0)
        pe = card_entry(rng, world.c_magonly[pc], pa)
        buys = make_rows(world, pt, pc, np.full(n_pairs, t), pe, pa, plant=P_VOID_SPIKE, rng=rng)
        undo = make_rows(world, pt + rng.integers(60, 5 * MINUTE, n_pairs), pc, np.full(n_pairs, t), pe, pa,
                         ttype=VOID, plant=P_VOID_SPIKE, rng=rng)
        rc = _home_cards(world, trips, city, n_ref, rng)
        refunds = make_rows(world, start + rng.integers(0, span, n_ref), rc, np.full(n_ref, t),
                            np.full(n_ref, MANUAL), amount_cents(rng, np.repeat(mcc, n_ref), scale=3.0),
                            ttype=REFUND, plant=P_VOID_SPIKE, rng=rng)
        parts += [voids, buys, undo, refunds]
    return concat(rows, *parts)


def plant_mcc_mismatch(world: World, rows: Rows, terms: np.ndarray, plan: Plan, rng: np.random.Generator) -> None:
    """From a day in the first half on, each terminal sends a low-fee MCC (5411 or 5812); in place."""
    for t in terms:
        start = T0 + int(rng.integers(5, plan.days // 2)) * DAY
        sel = (rows["term"] == t) & (rows["ts"] >= start)
        rows["mcc"][sel] = rng.choice([5411, 5812])


def plant_clock_skew(world: World, trips: Trips, rows: Rows, terms: np.ndarray, plan: Plan,
                     rng: np.random.Generator) -> Rows:
    """Twice per terminal its clock falls 1-6 hours behind the previous message for 2-4 days.

    Sets ``shift`` (observed ts = ts - shift) so that observed timestamps go backwards against STAN order,
    and drops the few rows whose card would thereby appear in two cities at once.
    """
    for t in terms:
        idx = np.flatnonzero(rows["term"] == t)
        idx = idx[np.argsort(rows["ts"][idx], kind="stable")]
        ts, n = rows["ts"][idx], len(idx)
        home_card = ~trips.travels()[rows["card"][idx]]
        for lo_frac, hi_frac in ((0.2, 0.45), (0.6, 0.85)):
            cand = np.arange(max(1, int(n * lo_frac)), max(2, int(n * hi_frac)))
            cand = cand[(cand < n) & home_card[np.minimum(cand, n - 1)]
                        & (ts[np.minimum(cand, n - 1)] - ts[cand - 1] < DAY)]
            if not len(cand):
                continue
            r = int(rng.choice(cand))
            offset = int(ts[r] - ts[r - 1]) + int(rng.integers(1 * HOUR, 6 * HOUR))
            span = int(rng.integers(2, 5)) * DAY
            rows["shift"][idx[(ts >= ts[r]) & (ts < ts[r] + span)]] = offset
    moved = np.flatnonzero(rows["shift"] > 0)
    c = rows["card"][moved]
    bad = trips.location(c, rows["ts"][moved] - rows["shift"][moved]) != trips.location(c, rows["ts"][moved])
    keep = np.ones(len(rows["ts"]), bool)
    keep[moved[bad]] = False
    return take(rows, keep)


def plant_unapproved_firmware(world: World, rows: Rows, terms: np.ndarray, plan: Plan,
                              rng: np.random.Generator) -> pd.DataFrame:
    """An update of each terminal to a hash that is not on the allow-list, with traffic continuing after it.

    Returns terminal, ts, firmware_hash of the update events.
    """
    out = []
    for t in terms:
        ts = np.sort(rows["ts"][rows["term"] == t])
        at = int(ts[len(ts) // 3]) - int(rng.integers(HOUR, 6 * HOUR)) if len(ts) else T0 + 10 * DAY
        out.append((int(t), at, "".join(f"{b:02x}" for b in rng.integers(0, 256, 32))))
    return pd.DataFrame(out, columns=["terminal", "ts", "firmware_hash"])


def trace_gap_keep(rows: Rows, terms: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Mask of rows to keep after deleting 3-5 runs of 5-30 consecutive messages from each terminal."""
    keep = np.ones(len(rows["ts"]), bool)
    for t in terms:
        idx = np.flatnonzero(rows["term"] == t)
        order, _ = group_order(rows["term"][idx], rows["ts"][idx])
        idx = idx[order]
        n = len(idx)
        runs = min(int(rng.integers(3, 6)), (n - 10) // 12)  # quiet terminals (tiny drops) get fewer gaps
        if runs < 1:
            continue
        seg = (n - 10) // runs
        longest = int(min(30, max(5, seg // 2)))
        for k in range(runs):
            length = int(rng.integers(5, longest + 1))
            a = 5 + k * seg + int(rng.integers(0, max(1, seg - length)))
            keep[idx[a:a + length]] = False
    return keep
