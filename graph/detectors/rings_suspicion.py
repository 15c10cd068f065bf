"""Collusion rings, the suspicion of a transaction: how unusual its hour and the roundness of its amount are
among the run's transactions (the edges of the card x merchant graph that ``graph.detectors.rings`` peels)."""

from __future__ import annotations

import numpy as np

from graph.kernels.rings import roundness_levels

__all__ = ["N_LEVELS", "roundness", "suspicion", "suspicion_counts"]

N_LEVELS = 16  # roundness levels 0..15: an amount's cents end in up to 15 zeros


def roundness(amount, near_share: float = 0.002) -> np.ndarray:
    """Roundness level of each amount: the number of trailing zeros of its cents, or of the round number it
    falls just under (within ``near_share`` of the amount: 9999.00 and 49990.00 count as 10000 and 50000).

    Missing, zero and negative amounts are level 0 (no evidence). Returns int8 in ``0..N_LEVELS-1``.

    Example
    -------
    >>> roundness(np.array([5000.0, 9999.0, 123.45, 12.0, np.nan])).tolist()
    [5, 6, 0, 2, 0]
    """
    amount = np.ascontiguousarray(amount, dtype=np.float64)
    return roundness_levels(amount, float(near_share), N_LEVELS)


def suspicion_counts(amount, ts) -> np.ndarray:
    """Evidence phase: counts of transactions per UTC hour (24) then per roundness level (``N_LEVELS``).

    Counts of separate parts of a run add up (a Spark engine sums them over partitions), and
    ``suspicion`` turns the run's totals into per-transaction weights.
    """
    ts = np.asarray(ts, dtype=np.int64)
    return _counts(roundness(amount), ts)


def _counts(level: np.ndarray, ts: np.ndarray) -> np.ndarray:
    hours = (ts[ts >= 0] // 3600) % 24
    return np.concatenate([np.bincount(hours, minlength=24), np.bincount(level, minlength=N_LEVELS)]).astype(np.int64)


def _surprisal(counts: np.ndarray, ordinal: bool) -> np.ndarray:
    """``-log P(a transaction is at least this unusual)`` per bucket, from the run's counts.

    Ordinal (roundness): at least this round, ``P(level >= L)``. Not ordinal (hour): at least this rare an
    hour, the share of transactions in hours no busier than this one.
    """
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum()
    if total <= 0:
        return np.zeros(len(counts))
    if ordinal:
        tail = np.cumsum(counts[::-1])[::-1]
    else:
        tail = np.array([counts[counts <= k].sum() for k in counts])
    return -np.log(np.clip(tail / total, 1e-300, 1.0))


def suspicion(amount, ts, counts=None) -> np.ndarray:
    """Decision phase: the suspicion of each transaction, fitted to the run's base rates.

    ``s = -log P(hour at least this quiet) - log P(amount at least this round)``, the probabilities being
    the shares of the run's transactions (``counts`` from ``suspicion_counts``, by default of these
    transactions). The hour is the UTC hour: an hour that is quiet where the run took place is rare in its
    counts whatever the time zone, and a roundness that is common in its currency weighs nothing. Under
    independence, ``exp(-s)`` is the probability of a transaction at least this unusual on both counts.

    Example
    -------
    >>> amount = np.r_[np.full(99, 12.34), 5000.0]
    >>> ts = np.r_[np.arange(99) % 12 * 3600 + 9 * 3600, 3 * 3600]
    >>> s = suspicion(amount, ts)
    >>> bool(s[-1] > 8 > s[:99].max())
    True
    """
    ts = np.asarray(ts, dtype=np.int64)
    level = roundness(amount)
    counts = _counts(level, ts) if counts is None else np.asarray(counts)
    s_hour, s_round = _surprisal(counts[:24], False), _surprisal(counts[24:], True)
    out = s_round[level]
    ok = ts >= 0
    out[ok] += s_hour[(ts[ok] // 3600) % 24]
    return out
