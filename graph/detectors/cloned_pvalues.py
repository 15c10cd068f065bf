"""A cloned card's p-values: a conditional reason checked against the run, the reasons combined exactly."""

from __future__ import annotations

import numpy as np

from graph.kernels.cloned_combine import combined_tail

__all__ = ["calibrated", "exact_tail"]


def calibrated(own_p: np.ndarray, base: np.ndarray, n_base: int, prior: float) -> np.ndarray:
    """A card's conditional p-value checked against the run: the larger of its own p-value and the share of the
    run's other cards (in ``base``; the cards without a row have p-value 1) whose p-value is as small,
    ``(cards + prior) / (n_base - 1 + 2 prior)``. Where the per-card null holds the share is about the p-value
    times the share of cards that can show the reason, and the p-value stands; where genuine cards break it
    (fallbacks that replace chip insertions, larger than the contactless uses they are compared with), the
    run's own rate takes over."""
    shown = own_p < 1.0
    mine = own_p[base & shown]
    ranked = np.sort(mine)
    at_most = np.searchsorted(ranked, own_p, side="right") - (base & shown)
    share = (at_most + prior) / (max(n_base - 1, 0) + 2.0 * prior)
    return np.where(shown, np.maximum(own_p, np.minimum(share, 1.0)), 1.0)


def exact_tail(tails: np.ndarray, levels: np.ndarray, widths: np.ndarray, bound: float = 1.0) -> np.ndarray:
    """P(S >= s) per card, S = sum_r -log tail_r(L_r) over independent levels L_r in 0..widths_r - 1 (exact,
    ``graph.kernels.cloned_combine.combined_tail``).

    Cards whose lower bound ``prod_r tail_r(l_r)`` (every level at least the observed one implies S >= s) is above
    ``bound`` are not enumerated: their value is 1.0. ``ClonedCardDetector.decide`` passes the largest p-value that
    Benjamini-Hochberg could still report, so the reported cards and their q-values do not change.
    """
    n, n_reasons, _ = tails.shape
    out = np.ones(n)
    lower = tails[np.arange(n)[:, None], np.arange(n_reasons)[None, :], levels].prod(axis=1)
    todo = np.flatnonzero(lower <= bound).astype(np.int64)
    if len(todo):
        out[todo] = combined_tail(np.ascontiguousarray(tails, dtype=np.float64),
                                  np.ascontiguousarray(levels, dtype=np.int64),
                                  np.ascontiguousarray(widths, dtype=np.int64), todo)
    return out
