"""Per-terminal STAN and per-card EMV ATC counters, assigned in time order with vectorised group sums."""

from __future__ import annotations

import numpy as np

from etl.generate.config import (CHIP, COMPLETION, CONTACTLESS, P_REGRESSION, P_REPLAY, STAN_MAX, T0, VOID)
from etl.generate.rows import Rows

__all__ = ["group_order", "spread_terminal_seconds", "stan_starts", "assign_stan", "assign_atc",
           "atc_eligible"]


def group_order(group: np.ndarray, ts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Stable order by (group, ts) and each sorted row's rank within its group."""
    key = group.astype(np.int64) * (1 << 32) + (ts - T0 + (1 << 30))
    order = np.argsort(key, kind="stable")
    g = group[order]
    start = np.flatnonzero(np.concatenate([[True], g[1:] != g[:-1]]))
    size = np.diff(np.concatenate([start, [len(g)]]))
    rank = np.arange(len(g)) - np.repeat(start, size)
    return order, rank


def spread_terminal_seconds(rows: Rows) -> None:
    """Move rows by whole seconds so that no terminal sends two messages in the same second (in place)."""
    order, rank = group_order(rows["term"], rows["ts"])
    g = rows["term"][order].astype(np.int64)
    big = np.int64(1) << 40
    base = g * big + (rows["ts"][order] - T0) - rank
    rows["ts"][order] = np.maximum.accumulate(base) - g * big + rank + T0


def stan_starts(counts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """First STAN of each terminal: random, and a few busy-enough ones so close to 999999 that they wrap."""
    start = rng.integers(1, STAN_MAX - 5000, len(counts)).astype(np.int64)
    busy = np.flatnonzero(counts >= 5)
    wrap = rng.choice(busy, size=min(len(busy), max(3, len(counts) // 50)), replace=False)
    start[wrap] = STAN_MAX - rng.integers(0, np.minimum(counts[wrap] - 2, 20) + 1)
    return start


def assign_stan(rows: Rows, start: np.ndarray) -> None:
    """STAN +1 per message per terminal in true time order, wrapping from 999999 to 1 (in place)."""
    order, rank = group_order(rows["term"], rows["ts"])
    first = start[rows["term"][order]]
    rows["stan"][order] = (first - 1 + rank) % STAN_MAX + 1


def atc_eligible(rows: Rows) -> np.ndarray:
    """Rows whose card counts up its ATC: chip/contactless, not void/completion, not a planted clone."""
    return (((rows["entry"] == CHIP) | (rows["entry"] == CONTACTLESS)) & (rows["ttype"] != VOID)
            & (rows["ttype"] != COMPLETION) & (rows["plant"] != P_REPLAY) & (rows["plant"] != P_REGRESSION))


def assign_atc(rows: Rows, atc0: np.ndarray, rng: np.random.Generator) -> None:
    """ATC per card in observed time order: +1 per chip/contactless use, sometimes +2/+3 (offline); in place.

    Rows that are not eligible (magstripe, manual, voids, completions, planted clones) keep ``-1``.
    """
    ok = atc_eligible(rows)
    idx = np.flatnonzero(ok)
    obs = rows["ts"][idx] - rows["shift"][idx]
    order, rank = group_order(rows["card"][idx], obs)
    step = rng.choice([1, 2, 3], size=len(idx), p=[0.97, 0.02, 0.01]).astype(np.int64)
    cs = np.cumsum(step)
    first = np.flatnonzero(rank == 0)
    size = np.diff(np.concatenate([first, [len(idx)]]))
    base = np.repeat(cs[first] - step[first], size)
    rows["atc"][idx[order]] = atc0[rows["card"][idx[order]]] + cs - base
