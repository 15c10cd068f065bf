"""Points of compromise: terminals where reported cards' data was taken (skimming) or their fraud committed
(at the terminal), ranked in one list with explain-away across both kinds."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from graph.detectors.base import BaseDetector, to_timestamps
from graph.detectors.compromise import REISSUE_P, event_evidence, exposed_cards
from graph.detectors.significance import bh_qvalues
from graph.detectors.skimming_windows import DAY, at_csr, card_windows, fitted_lookback, fraud_visits
from graph.kernels import skimming as ks
from graph.projection import Projection
from graph.vocabulary import ENTRY_MANUAL

__all__ = ["SkimmingDetector", "DEFAULT_TYPE_WEIGHTS", "AT_TERMINAL_TYPE_WEIGHTS", "POINT_COLUMNS",
           "MERCHANT_COLUMNS", "MODES"]

DEFAULT_TYPE_WEIGHTS = {"counterfeit": 1.0, "other": 0.25, "cash_out": 0.0, "lost_stolen": 0.0,
                        "card_not_present": 0.0, "account_takeover": 0.0}
# Fraud committed at the terminal: any card-present fraud against the card's holder but a thief's use of a lost or
# stolen card.
# A cash_out report is not a compromise either: the card's own holder (a ring's card) cashed out with a
# colluding merchant; the rings detector reports that merchant and those cards, and no other card is at risk there.
AT_TERMINAL_TYPE_WEIGHTS = {"counterfeit": 1.0, "other": 1.0, "cash_out": 0.0, "lost_stolen": 0.0,
                            "card_not_present": 0.0, "account_takeover": 0.0}
MODES = ("skimming", "at_terminal")
POINT_COLUMNS = ["terminal_id", "merchant_id", "rank", "score", "p_value", "compromised_cards", "cards_seen",
                 "window_start", "window_end", "q_value", "mode", "p_value_adjusted", "p_value_marginal",
                 "explained_cards", "accepted", "terminal_events", "evidence_txn_ids"]
MERCHANT_COLUMNS = ["merchant_id", "rank", "score", "p_value", "terminals", "accepted_terminals",
                    "compromised_cards", "window_start", "window_end", "terminal_ids"]


class SkimmingDetector(BaseDetector):
    """Common points of compromise from fraud reports, with explain-away.

    Each reported card gets an exposure window ``[anchor - L, anchor)`` where the anchor is its
    ``first_fraud_at``; without one, ``[reported_at - long - L, reported_at - short)`` with ``short`` and
    ``long`` the 10th and 90th percentiles of this run's known first-fraud-to-report lags
    (``report_lag_days`` for both with fewer than ``MIN_LAGS`` of them; ``report_lag_days_``); the window also
    ends at the card's first magstripe/fallback use at least ``far_km`` from its previous chip use (the
    counterfeit itself). Its card-present transactions inside are its exposure visits. The look-back ``L``
    is ``exposure_days``, lengthened to fit the run (``lookback_days_``): after a first pass, the 95th
    percentile of the delays from the compromised cards' visits to the accepted skimming points (inside
    their windows, at any delay, each card at the first point it visited) to their first fraud; when that
    exceeds ``exposure_days`` everything is scored again with it (victims whose data is used late are then
    explained by their skimmer, not left to make its neighbours points).

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

    **At the terminal** (``mode = "at_terminal"``; the fraud was committed *at* the compromised terminal: a
    hijacked or tampered terminal, a colluding merchant): each reported card's fraud visits are its labelled
    transactions (``fraud_reports.txn_id``) when any; else, when ``first_fraud_at`` is known, its
    transaction(s) at that very second when it has one (the first fraud itself), else its transactions (any
    entry mode: keyed-in fraud is fraud at the terminal) in ``[anchor, anchor + at_terminal_days]``; else
    those in ``[reported_at - L, reported_at]`` with ``L`` the 90th percentile of this run's known
    first-fraud-to-report lags plus ``at_terminal_days`` (``exposure_days`` when fewer than ``MIN_LAGS`` lags
    are known). The null is the share ``s`` of the run's transactions that the terminal served over the
    period searched (every candidate window). Two statistics, Bonferroni-combined (twice the smaller p):
    the ``k`` fraud cards at the terminal against Binomial(F, s) with ``F`` the card-terminal fraud pairs of
    the run, and the fraud *mass* there (each card's unit of fraud spread over its fraud visits: an exact
    first fraud weighs 1, a visit among twenty in a searched window 1/20) against Binomial(cards, s);
    both weighted by ``at_terminal_weights``. Both kinds compete in one explain-away
    (``ks.explain_away_modes``): an accepted point retires the cards it explains from its own kind; an
    accepted at-terminal point retires from the skimming test the cards whose fraud there was genuine (not a
    counterfeit-looking use: magstripe/fallback ``far_km`` from the card's last chip use, the data taken
    elsewhere), and an accepted skimming point retires from the at-terminal test the cards whose fraud was
    such a use somewhere or whose fraud type weighs for skimming at least as much as for the terminal
    (``type_weights`` >= ``at_terminal_weights``: a regular's "other" fraud at its shop stays there).
    ``q_value`` is Benjamini-Hochberg over every row
    (terminal and mode) scored. ``terminal_events`` lists the terminal's tamper, firmware change, new address
    and odd-hour boot events in the ``event_lead_days`` before the window start (shown, not scored).
    ``exposed_`` lists the cards exposed at accepted points (``graph.detectors.compromise.exposed_cards``).
    A ``cash_out`` report weighs 0 in both tests: the card's own holder cashed out with a colluding merchant
    (a ring: ``RingDetector`` reports those merchants and cards), no customer of the terminal is at risk.

    Known limit: a quiet terminal that most victims of a skimmer *also* used right after it (the cafe next
    door) can be accepted first; the skimmer then explains only the remaining victims and ranks lower.

    Parameters
    ----------
    exposure_days : float
        Shortest look-back from a card's first fraud (its exposure window); lengthened to the run's fitted
        visit-to-fraud delay of the accepted points when that is longer (``lookback_days_``).
    report_lag_days : float
        Delay from first fraud to report assumed when ``first_fraud_at`` is missing and the run has fewer than 5
        known lags (else their 10th to 90th percentile).
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
    at_terminal : bool
        Also test fraud committed at the terminal (False: skimming only, as before).
    at_terminal_days : float
        Length of the fraud-visit window after the anchor when transactions are not labelled.
    at_terminal_weights : dict, optional
        Weight per fraud_type for the at-terminal test (``AT_TERMINAL_TYPE_WEIGHTS``).
    event_lead_days : float
        How long before a window start a terminal event is shown with the point.
    reissue_p : float
        ``p_compromised`` from which an exposed card's action is ``reissue`` (else ``watch``).

    Attributes
    ----------
    result_ : DataFrame
        One row per terminal any compromised card used in its window (``POINT_COLUMNS``), by rank.
    merchants_ : DataFrame
        Merchant roll-up (``MERCHANT_COLUMNS``), by rank.
    windows_ : DataFrame
        Per compromised card: card_token, weight, window_start, window_end, visits.
    exposed_ : DataFrame
        ``graph.detectors.compromise.EXPOSED_COLUMNS``: cards exposed at accepted points.
    lookback_days_ : float
        The look-back used (``exposure_days`` or longer, fitted).
    report_lag_days_ : tuple of float
        The (short, long) first-fraud-to-report lag assumed for reports without ``first_fraud_at``.

    Example
    -------
    >>> SkimmingDetector(exposure_days=45).fit(projection).result_.head()  # doctest: +SKIP
    """

    name = "skimming"
    output = "skimming_points"

    def __init__(self, exposure_days: float = 45.0, report_lag_days: float = 2.0, min_compromised: int = 2,
                 explain_away: bool = True, type_weights: dict | None = None, far_km: float = 50.0,
                 null: str = "matched", at_terminal: bool = True, at_terminal_days: float = 1.0,
                 at_terminal_weights: dict | None = None, event_lead_days: float = 7.0, reissue_p: float = REISSUE_P):
        self.exposure_days = exposure_days
        self.report_lag_days = report_lag_days
        self.min_compromised = min_compromised
        self.explain_away = explain_away
        self.type_weights = type_weights
        self.far_km = far_km
        self.null = null
        self.at_terminal = at_terminal
        self.at_terminal_days = at_terminal_days
        self.at_terminal_weights = at_terminal_weights
        self.event_lead_days = event_lead_days
        self.reissue_p = reissue_p
        self.result_ = None
        self.merchants_ = None
        self.windows_ = None
        self.exposed_ = None
        self.lookback_days_ = None
        self.report_lag_days_ = None

    def fit(self, projection: Projection, totals=None) -> "SkimmingDetector":
        """Score every terminal a compromised card used inside its exposure window.

        Parameters
        ----------
        projection : graph.projection.Projection
        totals : object, optional
            The three counts over *all* cards, when ``projection`` holds only the reported cards and the
            terminals they used (the Spark engine's candidate subgraph): ``active_cards(span_start, span_end)``
            (distinct cards with a present transaction in the span), ``active_days(day0, n_days,
            window_days)`` (``graph.kernels.skimming.active_days`` over every card) and
            ``visits(start, end)`` (transactions in the at-terminal span). Default: counted
            from ``projection``. ``exposed_`` then needs the full history of the cards it lists (see
            ``graph.spark_scoring``).

        Returns
        -------
        self

        Raises
        ------
        ValueError
            For parameters out of range.
        """
        p = projection
        cards, weights, ends = self._fit_once(p, totals, float(self.exposure_days))
        self.lookback_days_ = float(self.exposure_days)
        fitted = fitted_lookback(p, self.result_, cards[weights > 0], ends[weights > 0])
        if fitted is not None and fitted >= self.exposure_days + 1.0:  # lengthened only (see fitted_lookback)
            self._fit_once(p, totals, fitted)
            self.lookback_days_ = fitted
        self.exposed_ = exposed_cards(p, self.result_, reissue_p=self.reissue_p, far_km=self.far_km)
        return self

    def _fit_once(self, p: Projection, totals, lookback_days: float):
        """One scoring pass with the given look-back: sets ``result_``, ``merchants_``, ``windows_``; returns
        the compromised cards, their skimming weights and exposure-window ends."""
        if self.exposure_days <= 0 or self.report_lag_days < 0 or self.min_compromised < 1 or \
                self.at_terminal_days < 0:
            raise ValueError("exposure_days must be > 0, report_lag_days >= 0, min_compromised >= 1, "
                             "at_terminal_days >= 0")
        present = np.ascontiguousarray(p.txn_entry != ENTRY_MANUAL)
        at_weights = {**AT_TERMINAL_TYPE_WEIGHTS, **(self.at_terminal_weights or {})} if self.at_terminal else None
        cards, weights, starts, ends, at_w, reports, lags = card_windows(
            p, present, lookback_days, {**DEFAULT_TYPE_WEIGHTS, **(self.type_weights or {})}, at_weights,
            self.report_lag_days, self.far_km)
        self.report_lag_days_ = (lags[0] / DAY, lags[1] / DAY)
        vptr, vtxn = ks.exposure_visits(p.card_indptr, p.txn_ts, present, cards, starts, ends)
        skim = weights > 0
        span = (int(starts[skim].min()), int(ends[skim].max())) if skim.any() else (0, 0)
        seen, active = ks.cards_seen(p.term_indptr, p.term_order, p.txn_card, p.txn_ts, present, p.n_cards, *span)
        if totals is not None and skim.any():
            active = int(totals.active_cards(*span))
        comp_ptr, comp_terms = ks.visit_terminals(vptr, vtxn, p.txn_terminal, p.n_terminals)
        term_ptr, term_comps = ks.transpose_csr(comp_ptr, comp_terms, p.n_terminals)
        sptr, stxn = ks.exposure_visits(p.card_indptr, p.txn_ts, present, cards, np.full(len(cards), span[0]),
                                        np.full(len(cards), span[1]))
        span_ptr, span_terms = ks.visit_terminals(sptr, stxn, p.txn_terminal, p.n_terminals)
        null = self._null(p, present, term_ptr, ends[skim], span, totals, skim, lookback_days)
        aptr, atxn, clone, at_span = fraud_visits(p, cards, at_w, reports, self.far_km, self.at_terminal_days,
                                                  self.exposure_days)
        at_ptr, at_terms, at_term_ptr, at_term_comps, at_genuine, at_mass, at_elsewhere = at_csr(
            p, aptr, atxn, clone, len(cards))
        at_elsewhere |= weights >= at_w  # its fraud type speaks for skimming at least as much
        every = np.ones(p.n_txns, dtype=bool)
        served, total = ks.terminal_share(p.term_indptr, p.term_order, p.txn_ts, every, *at_span)
        if totals is not None and len(atxn):
            total = float(totals.visits(*at_span))
        share = served / total if total > 0 else np.zeros(p.n_terminals)
        blocks = (comp_ptr, comp_terms, term_ptr, term_comps, span_ptr, span_terms, weights, seen, active)
        at_block = (at_ptr, at_terms, at_term_ptr, at_term_comps, at_w, share, at_genuine, at_mass, at_elsewhere)
        order, logp_acc, k_acc, logp_final = ks.explain_away_modes(
            *blocks, int(self.min_compromised), bool(self.explain_away), *null, *at_block)
        *_, logp_marg = ks.explain_away_modes(*blocks, len(cards) + 1, False, *null, *at_block)
        self.windows_ = pd.DataFrame({
            "card_token": p.card_ids[cards[skim]], "weight": weights[skim], "window_start": to_timestamps(starts[skim]),
            "window_end": to_timestamps(ends[skim]), "visits": np.diff(vptr)[skim]})
        n_t = p.n_terminals
        accepted = np.zeros(2 * n_t, dtype=bool)
        accepted[order] = True
        skim_rows = self._points(p, vptr, vtxn, term_ptr, term_comps, seen, span, present, "skimming",
                                 accepted[:n_t], logp_acc[:n_t], k_acc[:n_t], logp_final[:n_t], logp_marg[:n_t])
        at_seen, _ = ks.cards_seen(p.term_indptr, p.term_order, p.txn_card, p.txn_ts, every, p.n_cards, *at_span)
        at_rows = self._points(p, aptr, atxn, at_term_ptr, at_term_comps, at_seen, at_span, every, "at_terminal",
                               accepted[n_t:], logp_acc[n_t:], k_acc[n_t:], logp_final[n_t:], logp_marg[n_t:])
        self.result_ = self._rank(p, [skim_rows, at_rows], order)
        self.merchants_ = self._merchants(p, np.concatenate([vtxn, atxn]))
        return cards, weights, ends

    def _null(self, p: Projection, present, term_ptr, ends, span, totals=None, skim=None, lookback_days=None):
        """(qmat, q_row, card_day) for ``ks.explain_away``: empty for the span null (``card_day`` over every
        compromised card, 0 for those outside ``skim``)."""
        q_row = np.full(p.n_terminals, -1, dtype=np.int64)
        n_all = len(skim) if skim is not None else len(ends)
        if self.null not in ("matched", "span"):
            raise ValueError(f"null must be 'matched' or 'span', not {self.null!r}")
        if self.null == "span" or not len(ends):
            return np.zeros((0, 1), dtype=np.float32), q_row, np.zeros(n_all, dtype=np.int64)
        terms = np.flatnonzero(np.diff(term_ptr) > 0).astype(np.int64)
        q_row[terms] = np.arange(len(terms))
        day0 = span[0] // DAY * DAY
        n_days = int((span[1] - day0) // DAY) + 2
        window = int(math.ceil(self.exposure_days if lookback_days is None else lookback_days))
        active = (ks.active_days(p.card_indptr, p.txn_ts, present, day0, n_days, window) if totals is None
                  else np.asarray(totals.active_days(day0, n_days, window), dtype=np.float64))
        qmat = ks.terminal_presence(p.term_indptr, p.term_order, p.n_cards, p.txn_card, p.txn_ts, present, terms,
                                    day0, n_days, window, active)
        card_day = np.zeros(n_all, dtype=np.int64)
        card_day[skim if skim is not None else slice(None)] = (ends - day0) // DAY
        return qmat, q_row, card_day

    def _points(self, p, vptr, vtxn, term_ptr, term_comps, seen, span, present, mode, accepted, logp_acc, k_acc,
                logp_final, logp_marg) -> pd.DataFrame:
        """One row per terminal with a candidate of ``mode`` (unranked; ``_h`` is its hypothesis index)."""
        terms = np.flatnonzero(np.diff(term_ptr) > 0)
        visit_term = p.txn_terminal[vtxn].astype(np.int64)
        vorder = np.lexsort((p.txn_ts[vtxn], visit_term))
        vt_sorted = visit_term[vorder]
        bounds = np.searchsorted(vt_sorted, terms), np.searchsorted(vt_sorted, terms, side="right")
        visit_ptr = np.concatenate([[0], np.cumsum(bounds[1] - bounds[0])]).astype(np.int64)
        sel = np.concatenate([vorder[a:b] for a, b in zip(*bounds)]) if len(terms) else np.zeros(0, np.int64)
        w_start, w_end = ks.point_windows(visit_ptr, np.ascontiguousarray(p.txn_ts[vtxn[sel]]), terms,
                                          p.term_indptr, p.term_order, p.txn_ts, present, *span)
        accepted = accepted[terms]
        return pd.DataFrame({
            "terminal_id": p.terminal_ids[terms],
            "merchant_id": _merchant_of(p, terms),
            "_logp": np.where(accepted, logp_acc[terms], logp_final[terms]),
            "compromised_cards": np.diff(term_ptr)[terms],
            "cards_seen": seen[terms],
            "window_start": to_timestamps(w_start),
            "window_end": to_timestamps(w_end),
            "mode": mode,
            "p_value_marginal": np.exp(logp_marg[terms]),
            "explained_cards": k_acc[terms],
            "accepted": accepted,
            "evidence_txn_ids": [p.txn_ids[vtxn[sel[a:b]]].tolist() for a, b in zip(visit_ptr[:-1], visit_ptr[1:])],
            "_h": terms + (0 if mode == "skimming" else p.n_terminals),
        })

    def _rank(self, p: Projection, parts: list[pd.DataFrame], order: np.ndarray) -> pd.DataFrame:
        """Both kinds in one ranking: accepted in acceptance order, then the rest by final conditional score."""
        frame = pd.concat(parts, ignore_index=True)
        rank_of = np.full(2 * p.n_terminals, len(order), dtype=np.int64)
        rank_of[order] = np.arange(len(order))
        ln10 = math.log(10.0)
        frame["score"] = -frame["_logp"].to_numpy(dtype=np.float64) / ln10 + 0.0
        frame["_order"] = rank_of[frame["_h"].to_numpy(dtype=np.int64)] if len(frame) else np.zeros(0, np.int64)
        frame = frame.sort_values(["_order", "score", "p_value_marginal", "compromised_cards", "terminal_id", "mode"],
                                  ascending=[True, False, True, False, True, False], kind="stable").reset_index(drop=True)
        frame["score"] = np.minimum.accumulate(frame["score"].to_numpy()) if len(frame) else frame["score"]
        frame["p_value"] = np.exp(-frame["score"].to_numpy(dtype=np.float64) * ln10)
        frame["rank"] = np.arange(1, len(frame) + 1, dtype=np.int64)
        frame["q_value"] = bh_qvalues(frame["p_value"].to_numpy(), m=max(len(frame), 1))
        frame["p_value_adjusted"] = np.minimum(1.0, frame["p_value"].to_numpy() * max(len(frame), 1))
        frame["terminal_events"] = event_evidence(p, frame["terminal_id"].tolist(), frame["window_start"],
                                                  self.event_lead_days) if len(frame) else []
        if not len(frame):
            frame["mode"] = frame["mode"].astype(object)
            frame["accepted"] = frame["accepted"].astype(bool)
        return frame[POINT_COLUMNS]

    def _merchants(self, p: Projection, vtxn: np.ndarray) -> pd.DataFrame:
        pts = self.result_
        if pts.empty:
            return pd.DataFrame({c: [] for c in MERCHANT_COLUMNS})
        visits = pd.DataFrame({"merchant_id": _merchant_of(p, p.txn_terminal[vtxn]), "card": p.txn_card[vtxn]})
        cards = visits.groupby("merchant_id")["card"].nunique()
        rows = []
        for merchant, g in pts.groupby("merchant_id", sort=False):
            top = g.iloc[0]  # result_ is in rank order
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
