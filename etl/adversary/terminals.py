"""Terminal life: legitimate recorded moves, and planted tampering (unrecorded move, deleted messages,
unapproved firmware)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from etl.adversary.region import CITIES, DAY, T0
from etl.adversary.rows import GENUINE, take
from etl.adversary.world import AdvPlan, World

__all__ = ["legit_moves", "choose_cases", "plant_unrecorded_moves", "trace_gap_mask", "plan_unapproved",
           "CASE_KINDS", "LEGIT_MOVE_SHARE"]

CASE_KINDS = ("relocation", "trace_gap", "unapproved_firmware")
LEGIT_MOVE_SHARE = 0.01  # merchants that move shop (1-4 km) during the period, recorded in the events


def legit_moves(world: World, rows: dict, plan: AdvPlan, blocked_t: np.ndarray,
                rng: np.random.Generator) -> pd.DataFrame:
    """Move ~1% of merchants (none with a ``blocked_t`` terminal) with all their terminals 1-4 km at a random
    time; rows after it get the new place.

    ``world.t_lat/t_lon`` and ``world.m_lat/m_lon`` become the new positions (the terminals table is a
    snapshot at the end of the period); the events record a boot at the new place.

    Returns
    -------
    DataFrame terminal, ts, lat, lon (new position from ts on), old_lat, old_lon
    """
    m_blocked = np.zeros(world.n_merchants, bool)
    m_blocked[world.t_merchant[blocked_t]] = True
    movers = np.flatnonzero((rng.random(world.n_merchants) < LEGIT_MOVE_SHARE) & ~m_blocked)
    out = []
    for m in movers:
        at = T0 + int(rng.integers(5, plan.days - 5)) * DAY + int(rng.integers(0, DAY))
        ang, km = rng.uniform(0, 2 * np.pi), rng.uniform(1, 4)
        dlat, dlon = km / 111.0 * np.sin(ang), km / (111.0 * np.cos(np.radians(world.m_lat[m]))) * np.cos(ang)
        terms = np.arange(world.m_term_lo[m], world.m_term_lo[m] + world.m_term_n[m])
        old = [(world.t_lat[t], world.t_lon[t]) for t in terms]
        world.m_lat[m] += dlat
        world.m_lon[m] += dlon
        world.t_lat[terms] += dlat
        world.t_lon[terms] += dlon
        sel = np.isin(rows["term"], terms) & (rows["ts"] >= at)
        rows["lat"][sel] += dlat
        rows["lon"][sel] += dlon
        out += [(t, at, world.t_lat[t], world.t_lon[t], o[0], o[1]) for t, o in zip(terms, old)]
    return pd.DataFrame(out, columns=["terminal", "ts", "lat", "lon", "old_lat", "old_lon"])


def choose_cases(world: World, rows: dict, plan: AdvPlan, blocked_t: np.ndarray, rng) -> pd.DataFrame:
    """``plan.n_per_case`` terminals per kind with at least 40 genuine rows, one per merchant, not blocked."""
    vol = np.bincount(rows["term"], minlength=world.n_terminals)
    cand = rng.permutation(np.flatnonzero((vol >= 40) & ~blocked_t))
    picked, seen = [], set()
    for t in cand:
        if int(world.t_merchant[t]) not in seen:
            seen.add(int(world.t_merchant[t]))
            picked.append(int(t))
        if len(picked) == len(CASE_KINDS) * plan.n_per_case:
            break
    kinds = np.repeat(CASE_KINDS, plan.n_per_case)[:len(picked)]
    return pd.DataFrame({"terminal": np.array(picked, np.int64), "kind": kinds})


def plant_unrecorded_moves(world: World, rows: dict, terms: np.ndarray, plan: AdvPlan, rng) -> dict:
    """Each terminal is taken to another city for 5-15 days without any record: its own customers are gone,
    and it serves cards of that city (rows taken over from the city's terminals), at the new place."""
    drop = np.zeros(len(rows["ts"]), bool)
    for t in terms:
        a = T0 + int(rng.integers(10, plan.days - 20)) * DAY
        b = a + int(rng.integers(5, 16)) * DAY
        home = int(world.m_city[world.t_merchant[t]])
        dest = int((home + rng.integers(1, len(CITIES))) % len(CITIES))
        own = (rows["term"] == t) & (rows["ts"] >= a) & (rows["ts"] < b) & (rows["fraud"] == GENUINE)
        drop |= own
        there = np.flatnonzero((world.m_city[world.t_merchant[rows["term"]]] == dest) & (rows["ts"] >= a)
                               & (rows["ts"] < b) & (rows["fraud"] == GENUINE) & ~drop)
        n_own = max(int(own.sum()), 10)
        grab = rng.choice(there, min(n_own, len(there)), replace=False)
        lat = CITIES[dest][1] + rng.normal(0, 0.03)
        lon = CITIES[dest][2] + rng.normal(0, 0.04)
        rows["term"][grab] = t
        rows["lat"][grab] = lat + rng.normal(0, 0.00015, len(grab))
        rows["lon"][grab] = lon + rng.normal(0, 0.00015, len(grab))
        rows["mcc"][grab] = world.mcc_code[world.m_mcc[world.t_merchant[t]]]
    return take(rows, ~drop)


def trace_gap_mask(rows: dict, terms: np.ndarray, rng) -> np.ndarray:
    """Rows to keep after deleting 2-4 runs of 3-12 consecutive messages (by STAN) at each terminal."""
    keep = np.ones(len(rows["ts"]), bool)
    for t in terms:
        idx = np.flatnonzero(rows["term"] == t)
        idx = idx[np.argsort(rows["stan"][idx], kind="stable")]
        for _ in range(int(rng.integers(2, 5))):
            length = int(rng.integers(3, 13))
            start = int(rng.integers(1, max(2, len(idx) - length - 1)))
            run = idx[start:start + length]
            keep[run[rows["fraud"][run] == GENUINE]] = False
    return keep


def plan_unapproved(world: World, terms: np.ndarray, plan: AdvPlan, rng) -> pd.DataFrame:
    """Unapproved firmware installs: two of three get a hash missing from the allow-list, the third the model's
    next version days before its approval (seen only in the ``firmware_update`` event and later heartbeats).

    Returns
    -------
    DataFrame terminal, ts, firmware_hash
    """
    out = []
    for i, t in enumerate(terms):
        nxt = int(world.t_model[t]) * 5 + 4
        if i % 3 == 2 and world.fw_approved[nxt] > T0 + 12 * DAY:
            ts = int(world.fw_approved[nxt]) - int(rng.integers(2, 10)) * DAY - int(rng.integers(0, DAY))
            out.append((int(t), ts, world.fw_hash[nxt]))
        else:
            ts = T0 + int(rng.integers(8, plan.days - 10)) * DAY + int(rng.integers(0, DAY))
            out.append((int(t), ts, f"{int(rng.integers(0, 2 ** 62)):016x}"))
    return pd.DataFrame(out, columns=["terminal", "ts", "firmware_hash"])
