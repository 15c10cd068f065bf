"""Cloned cards from each card's own history: impossible travel, ATC replay/regression, fallback, parallel use."""

from __future__ import annotations

import numpy as np
import pandas as pd

from graph.detectors.base import BaseDetector, to_timestamps
from graph.kernels.cloned import FALLBACK_AFTER_CHIP, FALLBACK_FAR, REASONS, cloned_card_evidence, evidence_csr
from graph.projection import (ENTRY_CHIP, ENTRY_CONTACTLESS, ENTRY_MANUAL, TYPE_COMPLETION, TYPE_VOID,
                              Projection)

__all__ = ["ClonedCardDetector", "DEFAULT_WEIGHTS", "CARD_COLUMNS"]

DEFAULT_WEIGHTS = {"impossible_travel": 0.6, "atc_replay": 0.7, "atc_regression": 0.6,
                   "fallback_after_chip": 0.3, "parallel_use": 0.7, "fallback_far": 0.6}
CARD_COLUMNS = ["card_token", "score", "reasons", "first_evidence_at", "evidence_txn_ids", "rank",
                *(f"n_{r}" for r in REASONS), "n_fallback_far"]


class ClonedCardDetector(BaseDetector):
    """Cards whose own transactions show a second physical copy in use; needs no fraud reports.

    Per card and reason ``r`` with ``n_r`` events (capped at ``count_cap``) and weight ``w_r``, the score
    is ``1 - prod_r (1 - w_r) ** n_r``: 0 without evidence, near 1 with several independent reasons.
    fallback_after_chip events at least ``fallback_far_km`` from the card's latest chip use (a copy used far
    away rather than a worn chip at home) weigh ``weights["fallback_far"]`` instead.

    Parameters
    ----------
    max_speed_kmh : float
        Faster consecutive card-present use is impossible travel (default 900: a jet, gate to gate).
    min_distance_km : float
        Hops shorter than this never count as travel (GPS noise, neighbouring towns).
    parallel_km : float
        Consecutive uses at least this far apart are a "switch" between places.
    parallel_window_hours, parallel_min_switches : float, int
        Parallel use: at least this many switches within this many hours.
    fallback_far_km : float
        Distance that makes a fallback_after_chip event "far".
    weights : dict, optional
        Weight per reason code, and ``fallback_far`` (see ``DEFAULT_WEIGHTS``); a reason with weight 0 is
        still reported.
    count_cap : int
        Events per reason counted in the score at most.
    use_terminal_position : bool
        Where a transaction has no lat/lon, use its terminal's registered position.

    Attributes
    ----------
    cards_ : DataFrame
        One row per card with any evidence (``CARD_COLUMNS``), by descending score.
    counts_, first_ : ndarray
        Kernel output per card: events per reason plus the far-fallback count (n_cards x 6), and the first
        evidence second per reason (``NO_TIME`` if none).

    Example
    -------
    >>> ClonedCardDetector().fit(projection).cards_.head()  # doctest: +SKIP
    """

    def __init__(self, max_speed_kmh: float = 900.0, min_distance_km: float = 100.0, parallel_km: float = 300.0,
                 parallel_window_hours: float = 72.0, parallel_min_switches: int = 3,
                 fallback_far_km: float = 300.0, weights: dict | None = None, count_cap: int = 3,
                 use_terminal_position: bool = True):
        self.max_speed_kmh = max_speed_kmh
        self.min_distance_km = min_distance_km
        self.parallel_km = parallel_km
        self.parallel_window_hours = parallel_window_hours
        self.parallel_min_switches = parallel_min_switches
        self.fallback_far_km = fallback_far_km
        self.weights = weights
        self.count_cap = count_cap
        self.use_terminal_position = use_terminal_position
        self.cards_ = None

    def _check(self) -> np.ndarray:
        if self.max_speed_kmh <= 0 or self.min_distance_km < 0 or self.parallel_km < 0:
            raise ValueError("max_speed_kmh must be > 0, min_distance_km and parallel_km >= 0")
        if self.parallel_min_switches < 1 or self.count_cap < 1 or self.parallel_window_hours < 0:
            raise ValueError("parallel_min_switches and count_cap must be >= 1, parallel_window_hours >= 0")
        weights = {**DEFAULT_WEIGHTS, **(self.weights or {})}
        unknown = set(weights) - set(DEFAULT_WEIGHTS)
        if unknown:
            raise ValueError(f"unknown reason codes in weights: {sorted(unknown)}")
        w = np.array([weights[r] for r in (*REASONS, "fallback_far")], dtype=np.float64)
        if np.any((w < 0) | (w >= 1)):
            raise ValueError("weights must lie in [0, 1)")
        return w

    def kernel_args(self, p: Projection) -> tuple:
        """Arguments of ``graph.kernels.cloned.cloned_card_evidence`` for this projection and these parameters."""
        lat, lon = p.txn_positions() if self.use_terminal_position else (p.txn_lat, p.txn_lon)
        located = np.isfinite(lat) & np.isfinite(lon) & (p.txn_entry != ENTRY_MANUAL)
        atc_ok = ((p.txn_atc >= 0) & ((p.txn_entry == ENTRY_CHIP) | (p.txn_entry == ENTRY_CONTACTLESS))
                  & (p.txn_type != TYPE_VOID) & (p.txn_type != TYPE_COMPLETION))
        return (p.card_indptr, p.txn_ts, np.ascontiguousarray(lat), np.ascontiguousarray(lon), located, p.txn_entry,
                p.txn_atc, atc_ok, float(self.max_speed_kmh), float(self.min_distance_km), float(self.parallel_km),
                int(self.parallel_window_hours * 3600), int(self.parallel_min_switches), float(self.fallback_far_km))

    def fit(self, projection: Projection) -> "ClonedCardDetector":
        """Run the per-card kernel over ``projection`` and build ``cards_``.

        Parameters
        ----------
        projection : graph.projection.Projection

        Returns
        -------
        self

        Raises
        ------
        ValueError
            For parameters out of range or unknown reason codes in ``weights``.
        """
        w = self._check()
        p = projection
        counts, first, evidence = cloned_card_evidence(*self.kernel_args(p))
        self.counts_, self.first_ = counts, first
        self.cards_ = self._frame(p, counts, first, evidence, w)
        return self

    def _frame(self, p: Projection, counts, first, evidence, w) -> pd.DataFrame:
        events = counts.copy()
        events[:, FALLBACK_AFTER_CHIP] -= counts[:, FALLBACK_FAR]  # near ones; far ones weigh w[FALLBACK_FAR]
        score = 1.0 - np.prod((1.0 - w)[None, :] ** np.minimum(events, self.count_cap), axis=1)
        hit = np.flatnonzero(counts[:, :len(REASONS)].sum(axis=1) > 0)
        indptr, indices = evidence_csr(p.card_indptr, evidence)
        ids = p.txn_ids[indices]
        names = np.array(REASONS, dtype=object)
        frame = pd.DataFrame({
            "card_token": p.card_ids[hit],
            "score": score[hit],
            "reasons": [";".join(names[counts[c, :len(REASONS)] > 0]) for c in hit],
            "first_evidence_at": to_timestamps(first[hit].min(axis=1) if len(hit) else np.zeros(0, np.int64)),
            "evidence_txn_ids": [ids[indptr[c]:indptr[c + 1]].tolist() for c in hit],
        })
        for r, name in enumerate((*REASONS, "fallback_far")):
            frame[f"n_{name}"] = counts[hit, r]
        frame = frame.sort_values(["score", "first_evidence_at", "card_token"], ascending=[False, True, True],
                                  kind="stable").reset_index(drop=True)
        frame.insert(5, "rank", np.arange(1, len(frame) + 1, dtype=np.int64))
        return frame[CARD_COLUMNS]

