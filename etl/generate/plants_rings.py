"""Planted collusion: cash-out rings of cards and merchants, and shell-merchant networks sharing identifiers."""

from __future__ import annotations

import numpy as np
import pandas as pd

from etl.generate.config import CHIP, DAY, MANUAL, MCCS, P_RING, T0, Plan
from etl.generate.entities import World
from etl.generate.rows import Rows, concat, make_rows
from etl.generate.traffic import Trips, local_times

__all__ = ["plant_networks", "plant_rings", "RING_AMOUNTS", "TRUTH_COLUMNS"]

RING_AMOUNTS = np.array([500_000, 999_900, 4_999_000, 1_999_900, 999_000, 499_900, 2_000_000], np.int64)  # cents
RING_AMOUNT_P = np.array([0.25, 0.25, 0.1, 0.15, 0.1, 0.1, 0.05])
RING_HOURS = (1, 2, 3)  # local 01:00-04:00
TRUTH_COLUMNS = ["ring_id", "kind", "member_type", "member"]
_RISKY_MCC = [i for i, m in enumerate(MCCS) if m[0] in (5999, 6051, 5732, 5944)]


def plant_networks(world: World, plan: Plan, rng: np.random.Generator) -> pd.DataFrame:
    """Groups of 3-6 small merchants chained by a shared owner, phone or bank account (modifies ``world``).

    Each consecutive pair of a group shares one identifier (owner, then phone, then bank account, ...), so a
    group is one connected component; members also share an agent, were onboarded within a few weeks of
    each other and sell under risky MCCs.

    Returns
    -------
    DataFrame
        ring_id ("net-1", ...), kind "merchant_network", member_type "merchant", member (merchant index).
    """
    small = np.flatnonzero(world.m_pop < np.quantile(world.m_pop, 0.6))
    picked = rng.choice(small, size=min(len(small), 6 * plan.n_networks), replace=False)
    out, at = [], 0
    for g in range(plan.n_networks):
        size = int(rng.integers(3, 7))
        members = np.sort(picked[at:at + size])
        at += size
        fields = (world.m_owner, world.m_phone, world.m_bank)
        offset = int(rng.integers(0, 3))
        for i in range(1, len(members)):
            f = fields[(offset + i) % 3]
            f[members[i]] = f[members[i - 1]]
        world.m_agent[members] = world.m_agent[members[0]]
        world.m_onboarded[members] = (T0 - int(rng.integers(60, 200)) * DAY
                                      + rng.integers(0, 25 * DAY, len(members)))
        world.m_mcc[members] = rng.choice(_RISKY_MCC, size=len(members))
        t_lo, t_n = world.m_term_lo[members], world.m_term_n[members]
        tix = np.concatenate([np.arange(a, a + b) for a, b in zip(t_lo, t_n)])
        world.t_installed[tix] = np.maximum(np.repeat(world.m_onboarded[members] + DAY, t_n),
                                            world.fw_approved[world.t_fw[tix]] + DAY)
        out.append(pd.DataFrame({"ring_id": f"net-{g + 1}", "kind": "merchant_network", "member_type": "merchant",
                                 "member": members}))
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame(columns=TRUTH_COLUMNS)


def plant_rings(world: World, trips: Trips, plan: Plan, exclude_cards: np.ndarray, exclude_merchants: np.ndarray,
                rng: np.random.Generator) -> tuple[Rows, pd.DataFrame]:
    """Cash-out rings: 8-20 cards and 2-5 small merchants trading round amounts among themselves at night.

    Ring cards keep shopping normally and ring merchants keep selling to ordinary cards (their ordinary
    traffic is generated as usual). Ring cards are non-travelling chip cards of the ring's city; each card
    favours one or two of the ring's merchants (repeated pairs); amounts come from ``RING_AMOUNTS``
    (5000.00, 9999.00, 49990.00, ...); times are 01:00-04:00 local.

    Returns
    -------
    rows : Rows
    truth : DataFrame
        ring_id ("ring-1", ...), kind "cash_out", member_type (card, merchant, terminal), member (index).
    """
    parts, truth = [], []
    free_cards = ~exclude_cards & ~trips.travels() & ~world.c_magonly
    free_merch = ~exclude_merchants & (world.m_pop < np.quantile(world.m_pop, 0.7))
    n_cities = len(world.city_name)
    used = np.zeros(n_cities, bool)
    for r in range(plan.n_rings):
        room = np.minimum(np.bincount(world.c_city[free_cards], minlength=n_cities) / 8,
                          np.bincount(world.m_city[free_merch], minlength=n_cities) / 2)
        room[used] = 0
        if room.max() < 1:
            break
        top = np.argsort(-room, kind="stable")[:4]
        city = int(rng.choice(top[room[top] >= 1]))
        used[city] = True
        cpool = np.flatnonzero(free_cards & (world.c_city == city))
        mpool = np.flatnonzero(free_merch & (world.m_city == city))
        cards = np.sort(rng.choice(cpool, size=min(len(cpool), int(rng.integers(8, 21))), replace=False))
        merchants = np.sort(rng.choice(mpool, size=min(len(mpool), int(rng.integers(2, 6))), replace=False))
        free_cards[cards], free_merch[merchants] = False, False
        pref = np.stack([rng.choice(merchants, len(cards)), rng.choice(merchants, len(cards))], axis=1)
        k = rng.poisson(8 * plan.days / 60, len(cards)) + 3
        c = np.repeat(cards, k).astype(np.int32)
        n = len(c)
        merch = np.where(rng.random(n) < 0.85, pref[np.repeat(np.arange(len(cards)), k), rng.integers(0, 2, n)],
                         rng.choice(merchants, n))
        term = world.pick_terminal(merch, rng.random(n))
        ts = local_times(rng, n, plan.days, hours=RING_HOURS)
        amount = rng.choice(RING_AMOUNTS, size=n, p=RING_AMOUNT_P)
        entry = np.where(rng.random(n) < 0.85, CHIP, MANUAL).astype(np.int8)
        resp = np.where(rng.random(n) < 0.03, 2, 0).astype(np.int8)
        parts.append(make_rows(world, ts, c, term, entry, amount, resp=resp, plant=P_RING, rng=rng))
        rid = f"ring-{r + 1}"
        for mtype, members in (("card", cards), ("merchant", merchants), ("terminal", np.unique(term))):
            truth.append(pd.DataFrame({"ring_id": rid, "kind": "cash_out", "member_type": mtype,
                                       "member": members}))
    frame = pd.concat(truth, ignore_index=True) if truth else pd.DataFrame(columns=TRUTH_COLUMNS)
    return concat(*parts), frame
