"""EMV application transaction counters (per card) and system trace audit numbers (per terminal)."""

from __future__ import annotations

import numpy as np

from etl.adversary.region import CHIP, CONTACTLESS, DAY, MODELS, PREAUTH, PURCHASE, REFUND, T0
from etl.adversary.world import World

__all__ = ["assign_atc", "assign_stan", "STAN_MAX"]

STAN_MAX = 999_999


def _group_rank(key: np.ndarray) -> np.ndarray:
    """0, 1, 2, ... within runs of equal ``key`` (``key`` sorted)."""
    n = len(key)
    start = np.flatnonzero(np.concatenate([[True], key[1:] != key[:-1]])) if n else np.zeros(0, np.int64)
    first = np.repeat(start, np.diff(np.concatenate([start, [n]])))
    return np.arange(n) - first


def assign_atc(rows: dict, world: World, rng: np.random.Generator) -> None:
    """ATC of chip/contactless purchases, preauths and refunds, counted in true time per card.

    8% of steps jump 2-6 (the card was also used at ATMs or online, outside this drop). Offline uploads keep
    the ATC of their true time, so in written-``ts`` order the ATC goes back within a day. Other rows: -1.
    """
    has = (np.isin(rows["entry"], [CHIP, CONTACTLESS]) & np.isin(rows["ttype"], [PURCHASE, PREAUTH, REFUND]))
    idx = np.flatnonzero(has)
    order = idx[np.lexsort((rows["ts"][idx], rows["card"][idx]))]
    step = 1 + (rng.random(len(order)) < 0.08) * rng.integers(1, 6, len(order))
    total = np.cumsum(step)
    card = rows["card"][order]
    start = np.flatnonzero(np.concatenate([[True], card[1:] != card[:-1]])) if len(order) else order
    before = np.repeat(total[start] - step[start], np.diff(np.concatenate([start, [len(order)]])))
    rows["atc"][:] = -1
    rows["atc"][order] = world.c_atc0[card] + total - before


def assign_stan(rows: dict, world: World, rng: np.random.Generator) -> None:
    """STAN +1 per message per terminal in written order, from a random start; models that close their batch
    daily spend one more STAN per day (genuine gaps); wraps from 999999 to 1."""
    order = np.lexsort((rows["ts"], rows["obs"], rows["term"]))
    term = rows["term"][order]
    start = rng.integers(1, STAN_MAX, world.n_terminals)
    batch = np.array([m[3] for m in MODELS])[world.t_model[term]]
    days = (rows["obs"][order] - T0) // DAY
    raw = start[term] + _group_rank(term) + batch * days
    rows["stan"][order] = (raw - 1) % STAN_MAX + 1
