"""Shared skimming points: terminals that reported counterfeit cards used inside their exposure windows."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from graph.detectors.base import BaseDetector, to_timestamps
from graph.kernels import skimming as ks
from graph.projection import ENTRY_MANUAL, Projection

__all__ = ["SkimmingDetector", "DEFAULT_TYPE_WEIGHTS", "POINT_COLUMNS", "MERCHANT_COLUMNS"]

DAY = 86_400
DEFAULT_TYPE_WEIGHTS = {"counterfeit": 1.0, "other": 0.25, "cash_out": 0.0, "lost_stolen": 0.0,
                        "card_not_present": 0.0, "account_takeover": 0.0}
POINT_COLUMNS = ["terminal_id", "merchant_id", "rank", "score", "p_value", "compromised_cards", "cards_seen",
                 "window_start", "window_end", "p_value_adjusted", "p_value_marginal", "explained_cards",
                 "accepted", "evidence_txn_ids"]
MERCHANT_COLUMNS = ["merchant_id", "rank", "score", "p_value", "terminals", "accepted_terminals",
                    "compromised_cards", "window_start", "window_end", "terminal_ids"]


class SkimmingDetector(BaseDetector):
    """Common points of compromise from fraud reports, with explain-away.

    Each reported card gets an exposure window ``[anchor - exposure_days, anchor)`` where the anchor is its
    ``first_fraud_at``, else ``reported_at - report_lag_days``; the window also ends at the card's first
    magstripe/fallback use at least ``far_km`` from its previous chip use (the counterfeit itself). Its
    card-present transactions inside are its exposure visits.

    Per terminal, ``k`` compromised cards (weighted by fraud type) visited it inside their windows; ``p`` is the
    chance of at least ``k`` by coincidence under the ``null`` below ("span": among the ``n`` distinct cards
    it served in the analysed period (the span of all windows), out of ``N`` active cards of which ``K`` are
    compromised, X ~ Hypergeometric(N, K, n)). With ``explain_away``
    the most significant terminal is accepted, the cards it explains leave the urn and every count, and the
    rest is re-scored, repeatedly, so a busy supermarket that every victim also visited drops away.

    ``score = -log10 p`` at acceptance (capped by the score of every point ranked above it, so rank and score
    agree); rank follows acceptance, then the remaining terminals by their final conditional score.

    ``p_value_adjusted`` multiplies ``p_value`` by the number of terminals scored (Bonferroni): the column to
    threshold when alerting. ``p_value_marginal`` is the p-value before any explain-away.

    The compromise window of a point is the interval between two compromised visits that maximises
    Kulldorff's Poisson log-likelihood ratio of compromised visits against all of the terminal's visits:
    dense enough in victims against its normal traffic, long enough to hold most of them.

    Known limit: a quiet terminal that most victims of a skimmer *also* used right after it (the cafe next
    door) can be accepted first; the skimmer then explains only the remaining victims and ranks lower.

    Parameters
    ----------
    exposure_days : float
        Length of each card's exposure window.
    report_lag_days : float
        Assumed delay from first fraud to report when ``first_fraud_at`` is missing.
    min_compromised : int
        Terminals with fewer compromised cards are never accepted as points.
    explain_away : bool
        Retire explained cards after each accepted point (False: rank by marginal p).
    type_weights : dict, optional
        Weight per fraud_type (``DEFAULT_TYPE_WEIGHTS``; unknown types weigh ``other``); 0 ignores a type.
    far_km : float
        Distance from the last chip use at which a magstripe/fallback use ends the exposure window.
    null : {"matched", "span"}
        "matched" (default): each victim is matched to random cards watched over a window of the same length
        ending the same day; the expected count at a terminal is the sum over victims of the share of active
        cards that used it in that window, and ``k ~ Binomial(K, expected / K)``. "span": the hypergeometric
        null over the whole span described above (blind to *when* a terminal is busy).

    Attributes
    ----------
    points_ : DataFrame
        One row per terminal any compromised card used in its window (``POINT_COLUMNS``), by rank.
    merchants_ : DataFrame
        Merchant roll-up (``MERCHANT_COLUMNS``), by rank.
    windows_ : DataFrame
        Per compromised card: card_token, weight, window_start, window_end, visits.

    Example
    -------
    >>> SkimmingDetector(exposure_days=45).fit(projection).points_.head()  # doctest: +SKIP
    """

    def __init__(self, exposure_days: float = 45.0, report_lag_days: float = 2.0, min_compromised: int = 2,
                 explain_away: bool = True, type_weights: dict | None = None, far_km: float = 50.0,
                 null: str = "matched"):
        self.exposure_days = exposure_days
        self.report_lag_days = report_lag_days
        self.min_compromised = min_compromised
        self.explain_away = explain_away
        self.type_weights = type_weights
        self.far_km = far_km
        self.null = null
        self.points_ = None
        self.merchants_ = None
        self.windows_ = None

    def _card_windows(self, p: Projection, present: np.ndarray):
        """Compromised cards, weights and exposure windows (one per card: its earliest anchor)."""
        if self.exposure_days <= 0 or self.report_lag_days < 0 or self.min_compromised < 1:
            raise ValueError("exposure_days must be > 0, report_lag_days >= 0, min_compromised >= 1")
        weights = {**DEFAULT_TYPE_WEIGHTS, **(self.type_weights or {})}
        w = np.array([weights.get(t, weights.get("other", 0.0)) for t in p.report_type], dtype=np.float64)
        anchor = np.where(p.report_first_fraud_at >= 0, p.report_first_fraud_at,
                          p.report_at - int(self.report_lag_days * DAY))
        keep = (p.report_card >= 0) & (w > 0) & (p.report_at >= 0)
        reports = pd.DataFrame({"card": p.report_card[keep], "w": w[keep], "anchor": anchor[keep]})
        per_card = reports.groupby("card").agg(w=("w", "max"), anchor=("anchor", "min"))
        cards = per_card.index.to_numpy(dtype=np.int64)
        ends = per_card["anchor"].to_numpy(dtype=np.int64)
        starts = ends - int(self.exposure_days * DAY)
        lat, lon = p.txn_positions()
        cut = ks.fallback_cut(p.card_indptr, p.txn_ts, p.txn_entry, lat, lon,
                              present & np.isfinite(lat) & np.isfinite(lon), cards, starts, float(self.far_km))
        return cards, per_card["w"].to_numpy(dtype=np.float64), starts, np.minimum(ends, cut)

    def fit(self, projection: Projection, totals=None) -> "SkimmingDetector":
        """Score every terminal a compromised card used inside its exposure window.

        Parameters
        ----------
        projection : graph.projection.Projection
        totals : object, optional
            The two counts over *all* cards, when ``projection`` holds only the reported cards and the
            terminals they used (the Spark engine's candidate subgraph): ``active_cards(span_start, span_end)``
            (distinct cards with a present transaction in the span) and ``active_days(day0, n_days,
            window_days)`` (``graph.kernels.skimming.active_days`` over every card). Default: counted from
            ``projection``.

        Returns
        -------
        self

        Raises
        ------
        ValueError
            For parameters out of range.
        """
        p = projection
        present = np.ascontiguousarray(p.txn_entry != ENTRY_MANUAL)
        cards, weights, starts, ends = self._card_windows(p, present)
        vptr, vtxn = ks.exposure_visits(p.card_indptr, p.txn_ts, present, cards, starts, ends)
        span = (int(starts.min()), int(ends.max())) if len(cards) else (0, 0)
        seen, active = ks.cards_seen(p.term_indptr, p.term_order, p.txn_card, p.txn_ts, present, p.n_cards, *span)
        if totals is not None and len(cards):
            active = int(totals.active_cards(*span))
        comp_ptr, comp_terms = ks.visit_terminals(vptr, vtxn, p.txn_terminal, p.n_terminals)
        term_ptr, term_comps = ks.transpose_csr(comp_ptr, comp_terms, p.n_terminals)
        sptr, stxn = ks.exposure_visits(p.card_indptr, p.txn_ts, present, cards, np.full(len(cards), span[0]),
                                        np.full(len(cards), span[1]))
        span_ptr, span_terms = ks.visit_terminals(sptr, stxn, p.txn_terminal, p.n_terminals)
        null = self._null(p, present, term_ptr, ends, span, totals)
        order, logp_acc, k_acc, logp_final = ks.explain_away(
            comp_ptr, comp_terms, term_ptr, term_comps, span_ptr, span_terms, weights, seen, active,
            int(self.min_compromised), bool(self.explain_away), *null)
        *_, logp_marg = ks.explain_away(comp_ptr, comp_terms, term_ptr, term_comps, span_ptr, span_terms,
                                        weights, seen, active, len(cards) + 1, False, *null)
        self.windows_ = pd.DataFrame({
            "card_token": p.card_ids[cards], "weight": weights, "window_start": to_timestamps(starts),
            "window_end": to_timestamps(ends), "visits": np.diff(vptr)})
        self.points_ = self._points(p, vptr, vtxn, term_ptr, term_comps, seen, span, present, order, logp_acc,
                                    k_acc, logp_final, logp_marg)
        self.merchants_ = self._merchants(p, vtxn)
        return self

    def _null(self, p: Projection, present, term_ptr, ends, span, totals=None):
        """(qmat, q_row, card_day) for ``ks.explain_away``: empty for the span null."""
        q_row = np.full(p.n_terminals, -1, dtype=np.int64)
        if self.null == "span" or not len(ends):
            return np.zeros((0, 1), dtype=np.float32), q_row, np.zeros(len(ends), dtype=np.int64)
        if self.null != "matched":
            raise ValueError(f"null must be 'matched' or 'span', not {self.null!r}")
        terms = np.flatnonzero(np.diff(term_ptr) > 0).astype(np.int64)
        q_row[terms] = np.arange(len(terms))
        day0 = span[0] // DAY * DAY
        n_days = int((span[1] - day0) // DAY) + 2
        window = int(math.ceil(self.exposure_days))
        active = (ks.active_days(p.card_indptr, p.txn_ts, present, day0, n_days, window) if totals is None
                  else np.asarray(totals.active_days(day0, n_days, window), dtype=np.float64))
        qmat = ks.terminal_presence(p.term_indptr, p.term_order, p.n_cards, p.txn_card, p.txn_ts, present, terms,
                                    day0, n_days, window, active)
        return qmat, q_row, ((ends - day0) // DAY).astype(np.int64)

    def _points(self, p, vptr, vtxn, term_ptr, term_comps, seen, span, present, order, logp_acc, k_acc,
                logp_final, logp_marg) -> pd.DataFrame:
        terms = np.flatnonzero(np.diff(term_ptr) > 0)
        visit_term = p.txn_terminal[vtxn].astype(np.int64)
        vorder = np.lexsort((p.txn_ts[vtxn], visit_term))
        vt_sorted = visit_term[vorder]
        bounds = np.searchsorted(vt_sorted, terms), np.searchsorted(vt_sorted, terms, side="right")
        visit_ptr = np.concatenate([[0], np.cumsum(bounds[1] - bounds[0])]).astype(np.int64)
        sel = np.concatenate([vorder[a:b] for a, b in zip(*bounds)]) if len(terms) else np.zeros(0, np.int64)
        w_start, w_end = ks.point_windows(visit_ptr, np.ascontiguousarray(p.txn_ts[vtxn[sel]]), terms,
                                          p.term_indptr, p.term_order, p.txn_ts, present, *span)
        accepted = np.zeros(p.n_terminals, dtype=bool)
        accepted[order] = True
        rank_of = np.full(p.n_terminals, -1, dtype=np.int64)
        rank_of[order] = np.arange(len(order))
        ln10 = math.log(10.0)
        score = np.where(accepted, -logp_acc, -logp_final)[terms] / ln10
        frame = pd.DataFrame({
            "terminal_id": p.terminal_ids[terms],
            "merchant_id": _merchant_of(p, terms),
            "score": score + 0.0,
            "p_value": np.exp(-score * ln10),
            "compromised_cards": np.diff(term_ptr)[terms],
            "cards_seen": seen[terms],
            "window_start": to_timestamps(w_start),
            "window_end": to_timestamps(w_end),
            "p_value_marginal": np.exp(logp_marg[terms]),
            "explained_cards": k_acc[terms],
            "accepted": accepted[terms],
            "evidence_txn_ids": [p.txn_ids[vtxn[sel[a:b]]].tolist() for a, b in zip(visit_ptr[:-1], visit_ptr[1:])],
            "_order": np.where(accepted[terms], rank_of[terms], len(order)),
        })
        frame = frame.sort_values(["_order", "score", "p_value_marginal", "compromised_cards", "terminal_id"],
                                  ascending=[True, False, True, False, True], kind="stable").reset_index(drop=True)
        frame["score"] = np.minimum.accumulate(frame["score"].to_numpy()) if len(frame) else frame["score"]
        frame["rank"] = np.arange(1, len(frame) + 1, dtype=np.int64)
        frame["p_value_adjusted"] = np.minimum(1.0, frame["p_value"].to_numpy() * max(len(frame), 1))
        return frame[POINT_COLUMNS]

    def _merchants(self, p: Projection, vtxn: np.ndarray) -> pd.DataFrame:
        pts = self.points_
        if pts.empty:
            return pd.DataFrame({c: [] for c in MERCHANT_COLUMNS})
        visits = pd.DataFrame({"merchant_id": _merchant_of(p, p.txn_terminal[vtxn]), "card": p.txn_card[vtxn]})
        cards = visits.groupby("merchant_id")["card"].nunique()
        rows = []
        for merchant, g in pts.groupby("merchant_id", sort=False):
            top = g.iloc[0]  # points_ is in rank order
            rows.append({"merchant_id": merchant, "score": top["score"],
                         "p_value": min(1.0, float(g["p_value"].min()) * len(g)),  # Bonferroni over its terminals
                         "terminals": len(g), "accepted_terminals": int(g["accepted"].sum()),
                         "compromised_cards": int(cards.get(merchant, 0)), "window_start": top["window_start"],
                         "window_end": top["window_end"], "terminal_ids": g["terminal_id"].tolist(),
                         "_rank": int(top["rank"])})
        out = pd.DataFrame(rows).sort_values("_rank", kind="stable").reset_index(drop=True)
        out["rank"] = np.arange(1, len(out) + 1, dtype=np.int64)
        return out[MERCHANT_COLUMNS]


def _merchant_of(p: Projection, terminals: np.ndarray) -> np.ndarray:
    """merchant_id of each terminal (None when unknown)."""
    out = np.full(len(terminals), None, dtype=object)
    m = p.terminal_merchant[terminals]
    out[m >= 0] = p.merchant_ids[m[m >= 0]]
    return out
