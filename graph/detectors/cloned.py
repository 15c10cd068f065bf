"""Cloned cards from each card's own history, weighed by how rare each reason is among this run's cards.

The two phases and the null model are described in docs/METHODS.md ("Cloned cards: the null model").
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from graph.detectors.base import BaseDetector
from graph.detectors.cloned_exposure import ExposedLook
from graph.detectors.cloned_pvalues import calibrated, exact_tail
from graph.detectors.cloned_sites import (at_terminal_points, binom_tail_small_k, far_event_rates, far_sites,
                                          far_sources, reports_at_points, site_names, site_tails)
from graph.detectors.cloned_tables import (ALL_REASONS, CARD_COLUMNS, CHANCES, COUNT_COLUMNS, EVIDENCE_COLUMNS,
                                           card_frame, evidence_frame, typed_evidence)
from graph.detectors.significance import REPORT_Q, bh_qvalues
from graph.kernels.cloned import REASONS, cloned_card_evidence
from graph.projection import Projection
from graph.vocabulary import ENTRY_CHIP, ENTRY_CONTACTLESS, ENTRY_MANUAL, TYPE_COMPLETION, TYPE_VOID

__all__ = ["ClonedCardDetector", "CARD_COLUMNS", "EVIDENCE_COLUMNS", "CHANCES"]

_CONDITIONAL = ("fallback_burst", "fallback_amount", "fallback_new_merchant")  # own p-value, given the card's uses
_BINARY = ("reported_counterfeit",)  # shown or not
_REPORTED = len(REASONS)  # its column: after the kernel's reasons


class ClonedCardDetector(BaseDetector):
    """Cards whose own transactions show a second physical copy in use; fraud reports are used, not needed.

    Parameters
    ----------
    max_speed_kmh : float
        No plane links two places faster: a pair is impossible travel when its distance exceeds
        ``max_speed_kmh * (elapsed + clock_slack_minutes)`` (default 1,000 km/h, above airliner cruise speed).
    clock_slack_minutes : float
        Added to the elapsed time of every pair: terminal clock error and minute rounding (default 15).
    min_distance_km : float
        Hops shorter than this never count as travel (GPS and geocoding noise, neighbouring towns).
    parallel_km : float
        Consecutive uses at least this far apart are a "switch" between places.
    parallel_window_hours, parallel_min_switches : float, int
        Parallel use: at least this many switches within this many hours.
    fallback_far_km : float
        A magstripe/fallback use at least this far from every located chip/contactless use of the card (before
        or after it) is ``fallback_far``: where the genuine card was never seen.
    offline_delay_hours : float
        An ATC below one the card used less than this long before is an offline transaction arriving late,
        not a regression (default 72 h: offline batches are uploaded within days).
    burst_window_hours, burst_min : float, int
        fallback_burst looks at windows of this length holding at least this many fallback uses; off by default
        (``burst_min=0``): its null (a card's swipes fall on its uses at random in time) fails for genuine
        streaks of swipes (a chip that stops working until the card is replaced), which raised 16 medium
        alerts on a clean 1M-transaction drop of the second generator. ``burst_min=3`` turns it on.
    count_cap : int
        Events per reason counted at most (levels 0..count_cap).
    prior : float
        Pseudo-count added to every base rate (default 1, Laplace): a reason no other card shows has, for a
        card with a typical number of chances, a tail near ``1 / cards``, as much as one card in a run can show
        about itself; a smaller prior let one genuine traveller's unique swipe reach q <= 0.01 on a clean drop.
    use_terminal_position : bool
        Where a transaction has no lat/lon, use its terminal's registered position.
    use_reports : bool
        Count a counterfeit fraud report of the card as the reason ``reported_counterfeit`` (with another reason
        only, weighed by its share among the cards showing one); off: the cards' transactions alone.
    exposure_family : bool
        With an ``exposed`` table (the skimming detector's ``exposed_``), test the cards exposed at an accepted
        skimming point a second time as a family of their own (checked against unexposed cards as active, the
        false-discovery budget split between the two looks); off: one family of every card.

    Attributes
    ----------
    result_ : DataFrame
        ``CARD_COLUMNS``: the cards with ``q_value <= REPORT_Q``, by ascending q-value; ``score`` is
        ``min(1, -log10(q) / 10)``; ``reasons`` lists ``code:strength`` (strong, medium, weak by the reason's
        own tail), strongest first; ``travel`` describes the worst impossible pair; ``exposed_at`` the terminal
        of the accepted skimming point where the card was first exposed (None if none).
    evidence_ : DataFrame
        The evidence table that was decided on (``EVIDENCE_COLUMNS``).
    rates_ : dict
        Per reason, the run-wide rate per chance (or share of cards, for fallback_after_chip) of the last round:
        over the cards not reported; ``fallback_far_terminal_prior`` is the strength ``M`` of the terminals' prior.
    n_scored_ : int
        Cards with at least one transaction: the family size of the false-discovery rule.
    points_ : DataFrame
        terminal_id, far_cards, sole_cards, p_value, q_value, accepted: the terminals with fallback_far events
        tested as points of fraud at the terminal (``accepted``: q_value <= REPORT_Q; their cards explained).
    scored_ : DataFrame
        card_token, p_value, q_value, exposed (in the exposed family) of every card with evidence in the last
        round, reported or not (p-values above what Benjamini-Hochberg could still report are 1.0).
    exposed_family_ : int
        Cards exposed at an accepted skimming point: the size of the exposed family (0: one look).
    counts_, first_ : ndarray
        Kernel output of the last ``evidence`` call, per card of its projection: events per reason
        (n_cards x len(graph.kernels.cloned.REASONS)) and the first evidence second per reason (``NO_TIME`` if none).

    Example
    -------
    >>> ClonedCardDetector().fit(projection).result_.head()  # doctest: +SKIP
    """

    name = "cloned"
    output = "cloned_cards"

    def __init__(self, max_speed_kmh: float = 1000.0, clock_slack_minutes: float = 15.0,
                 min_distance_km: float = 100.0, parallel_km: float = 300.0, parallel_window_hours: float = 72.0,
                 parallel_min_switches: int = 3, fallback_far_km: float = 300.0, offline_delay_hours: float = 72.0,
                 burst_window_hours: float = 72.0, burst_min: int = 0, count_cap: int = 3, prior: float = 1.0,
                 use_terminal_position: bool = True, use_reports: bool = True, exposure_family: bool = True):
        self.max_speed_kmh = max_speed_kmh
        self.clock_slack_minutes = clock_slack_minutes
        self.min_distance_km = min_distance_km
        self.parallel_km = parallel_km
        self.parallel_window_hours = parallel_window_hours
        self.parallel_min_switches = parallel_min_switches
        self.fallback_far_km = fallback_far_km
        self.offline_delay_hours = offline_delay_hours
        self.burst_window_hours = burst_window_hours
        self.burst_min = burst_min
        self.count_cap = count_cap
        self.prior = prior
        self.use_terminal_position = use_terminal_position
        self.use_reports = use_reports
        self.exposure_family = exposure_family
        self.result_ = None

    def _check(self) -> None:
        if self.max_speed_kmh <= 0 or self.min_distance_km < 0 or self.parallel_km < 0:
            raise ValueError("max_speed_kmh must be > 0, min_distance_km and parallel_km >= 0")
        if self.clock_slack_minutes < 0 or self.offline_delay_hours < 0 or self.parallel_window_hours < 0:
            raise ValueError("clock_slack_minutes, offline_delay_hours and parallel_window_hours must be >= 0")
        if self.parallel_min_switches < 1 or (self.burst_min != 0 and self.burst_min < 2) \
                or not 1 <= self.count_cap <= 4:
            raise ValueError("parallel_min_switches must be >= 1, burst_min 0 (off) or >= 2, count_cap in 1..4")
        if self.burst_window_hours <= 0:
            raise ValueError("burst_window_hours must be > 0")
        if self.prior <= 0:
            raise ValueError("prior must be > 0")

    def kernel_args(self, p: Projection) -> tuple:
        """Arguments of ``graph.kernels.cloned.cloned_card_evidence`` for this projection and these parameters."""
        lat, lon = p.txn_positions() if self.use_terminal_position else (p.txn_lat, p.txn_lon)
        located = np.isfinite(lat) & np.isfinite(lon) & (p.txn_entry != ENTRY_MANUAL)
        return (p.card_indptr, p.txn_ts, np.ascontiguousarray(lat), np.ascontiguousarray(lon), located, p.txn_entry,
                p.txn_atc, self._atc_ok(p), np.ascontiguousarray(p.txn_amount, dtype=np.float64),
                np.ascontiguousarray(p.txn_merchant, dtype=np.int64), np.ascontiguousarray(p.txn_type),
                float(self.max_speed_kmh), float(self.min_distance_km),
                int(round(self.clock_slack_minutes * 60)), float(self.parallel_km),
                int(self.parallel_window_hours * 3600), int(self.parallel_min_switches), float(self.fallback_far_km),
                int(round(self.offline_delay_hours * 3600)), int(round(self.burst_window_hours * 3600)),
                int(self.burst_min))

    def _reported_counterfeit(self, p: Projection) -> np.ndarray:
        """1 for the cards with transactions and a counterfeit fraud report, else 0 (all 0 when ``use_reports``
        is off)."""
        out = np.zeros(p.n_cards, dtype=np.int64)
        if self.use_reports and len(p.report_card):
            mine = (p.report_card >= 0) & (np.asarray(p.report_type, dtype=object) == "counterfeit")
            out[p.report_card[mine]] = 1
        return out * (np.diff(p.card_indptr) > 0)  # a reported card without transactions is not scored

    def _report_terminals(self, p: Projection) -> list[list[str]]:
        """Per card, the terminals of the transactions its counterfeit reports name as the first fraud: the card's
        transaction nearest to ``first_fraud_at`` within ``clock_slack_minutes`` (none when the report gives no
        first fraud or no such transaction exists)."""
        out: list[list[str]] = [[] for _ in range(p.n_cards)]
        if not self.use_reports or not len(p.report_card):
            return out
        slack = int(round(self.clock_slack_minutes * 60))
        types = np.asarray(p.report_type, dtype=object)
        for r in np.flatnonzero((p.report_card >= 0) & (types == "counterfeit") & (p.report_first_fraud_at >= 0)):
            c, at = int(p.report_card[r]), int(p.report_first_fraud_at[r])
            lo, hi = int(p.card_indptr[c]), int(p.card_indptr[c + 1])
            j = lo + int(np.searchsorted(p.txn_ts[lo:hi], at))
            near = [i for i in (j - 1, j) if lo <= i < hi and abs(int(p.txn_ts[i]) - at) <= slack]
            if near:
                i = min(near, key=lambda i: abs(int(p.txn_ts[i]) - at))
                if p.txn_terminal[i] >= 0:
                    out[c].append(str(p.terminal_ids[p.txn_terminal[i]]))
        return out

    @staticmethod
    def _atc_ok(p: Projection) -> np.ndarray:
        return ((p.txn_atc >= 0) & ((p.txn_entry == ENTRY_CHIP) | (p.txn_entry == ENTRY_CONTACTLESS))
                & (p.txn_type != TYPE_VOID) & (p.txn_type != TYPE_COMPLETION))

    # --- phase 1: per card ------------------------------------------------------------------------------

    def evidence(self, projection: Projection) -> pd.DataFrame:
        """The evidence table of ``projection``'s cards (``EVIDENCE_COLUMNS``), concatenable across buckets.

        One row per card with at least one event (``cards`` = 1), then one row per activity band with
        ``card_token`` missing for the cards with transactions but no event (``cards`` = how many, chances
        summed), then one row per terminal with located uses (``terminal_id``, ``located_uses``); see
        ``graph.detectors.cloned_tables.evidence_frame``.

        Raises
        ------
        ValueError
            For parameters out of range.
        """
        self._check()
        p = projection
        args = self.kernel_args(p)
        found = cloned_card_evidence(*args)
        self.counts_, self.first_ = found[0], found[1]
        return evidence_frame(p, found, self._reported_counterfeit(p), self._report_terminals(p),
                              located=args[4], atc_ok=args[7])

    # --- phase 2: the run-wide decision -------------------------------------------------------------------

    def decide(self, evidence: pd.DataFrame, exposed: pd.DataFrame | None = None) -> pd.DataFrame:
        """Base rates, p-values, q-values and the reported cards from a run's evidence table.

        Parameters
        ----------
        evidence : DataFrame
            ``EVIDENCE_COLUMNS``: the output of ``evidence`` for the run, or the concatenation of its outputs
            over disjoint card buckets (any row order).
        exposed : DataFrame, optional
            The cards exposed at the run's accepted points of compromise (``SkimmingDetector.exposed_``:
            card_token, terminal_id, mode, first_exposed_at); with ``exposure_family`` the cards exposed at a
            ``skimming`` point are a family of their own (``graph.detectors.cloned_exposure``).

        Returns
        -------
        DataFrame
            ``CARD_COLUMNS``; also sets ``result_``, ``evidence_``, ``rates_``, ``n_scored_``.
        """
        self._check()
        ev = typed_evidence(evidence[EVIDENCE_COLUMNS])
        n_scored = int(ev["cards"].sum())
        cards = ev[ev["card_token"].notna()].sort_values("card_token", kind="stable").reset_index(drop=True)
        sites = far_sites(cards, ev)
        cap = int(self.count_cap)
        levels = np.minimum(cards[COUNT_COLUMNS].to_numpy(np.int64).reshape(len(cards), len(ALL_REASONS)), cap)
        # levels per reason
        widths = np.array([2 if r in _CONDITIONAL or r in _BINARY else cap + 1 for r in ALL_REASONS])
        levels = np.minimum(levels, (widths - 1)[None, :])  # conditional reasons: shown or not
        levels[:, _REPORTED] *= levels[:, :_REPORTED].sum(axis=1) > 0  # a report counts with a use that shows
        totals = {c: float(ev[c].sum()) for c in set(CHANCES.values()) if c and c.startswith("chances")}
        points, explained, card_explained = at_terminal_points(sites, len(cards), self.prior)
        accepted = np.zeros(len(sites[2]), dtype=bool)
        accepted[points.loc[points["accepted"], "site"].to_numpy(np.int64)] = True
        card_explained |= reports_at_points(cards, ev, accepted)
        levels[card_explained, _REPORTED] = 0  # its report is the point's fraud, not a copy's
        look = ExposedLook(cards, ev, exposed if self.exposure_family else None)
        m_all, looks = max(n_scored, len(cards)), 2 if look.size else 1  # the budget split between the looks
        budget = REPORT_Q / looks
        # a card is reported only if p * m / j <= budget for a rank j <= the rows of its look; the exposed
        # look's p-values are checked against the unexposed cards', exact up to that look's bound
        bound_all = budget * len(cards) / max(m_all, 1)
        bound = np.where(look.family, look.bound(budget), max(bound_all, look.bound(budget)))
        out = np.zeros(len(cards), dtype=bool)  # cards reported in an earlier round: out of the base rates
        while True:
            tails, rates = self._tails(cards, levels, widths, n_scored, totals, out, sites, explained)
            p = exact_tail(tails, levels, widths, bound=bound)
            q = bh_qvalues(p, m=m_all)
            if looks == 2:  # Bonferroni over the two looks
                q = np.minimum(1.0, looks * np.minimum(q, look.q_values(p, out, budget, self.prior)))
            new = (q <= REPORT_Q) & ~out
            if not new.any():
                break
            out |= new
        self.evidence_, self.rates_, self.n_scored_ = ev, rates, n_scored
        names = np.asarray(site_names(ev), dtype=object)
        self.points_ = pd.DataFrame({"terminal_id": pd.Series(names[points["site"].to_numpy(np.int64)], dtype=object),
                                     **{c: points[c].to_numpy() for c in points.columns if c != "site"}})
        self.scored_ = pd.DataFrame({"card_token": cards["card_token"].to_numpy(dtype=object), "p_value": p,
                                     "q_value": q, "exposed": look.family})
        self.exposed_family_ = look.size
        keep = np.flatnonzero(q <= REPORT_Q)
        self.result_ = card_frame(cards.iloc[keep].reset_index(drop=True), p[keep], q[keep],
                                  tails[keep], levels[keep], look.point[keep])
        return self.result_

    def _tails(self, cards: pd.DataFrame, levels: np.ndarray, widths: np.ndarray, n_scored: int, totals: dict,
               out: np.ndarray, sites: tuple, explained: np.ndarray) -> tuple[np.ndarray, dict]:
        """Per card and reason the tail ``P(level >= k)`` for k = 0..cap + 1 under rates from the run's other
        cards, leaving out the card itself and the cards in ``out`` (reported in an earlier round); the
        fallback_far events at the rate of their terminal (``far_event_rates``)."""
        cap = int(self.count_cap)
        tails = np.ones((len(cards), len(ALL_REASONS), cap + 2))
        tails[:, :, cap + 1] = 0.0
        rates = {}
        base = ~out
        n_base = n_scored - int(out.sum())
        for r, reason in enumerate(ALL_REASONS):
            mine = levels[:, r]
            column = CHANCES[reason]
            shown = int(((mine > 0) & base).sum())
            if reason in _CONDITIONAL:  # conditional on the card's own uses, checked against the run's cards
                own_p = np.where(mine > 0, cards[column].to_numpy(np.float64), 1.0)
                tails[:, r, 1] = calibrated(own_p, base, n_base, self.prior)
                tails[:, r, 2:] = 0.0
                rates[reason] = (shown + self.prior) / (n_base + 2 * self.prior)
            elif reason in _BINARY:  # share among the other cards with another reason
                eligible = base & (levels[:, :_REPORTED].sum(axis=1) > 0)
                others = int(((mine > 0) & eligible).sum()) - ((mine > 0) & eligible)
                tails[:, r, 1] = np.minimum(1.0, (others + self.prior) / (int(eligible.sum()) - eligible
                                                                          + 2 * self.prior))
                tails[:, r, 2:] = 0.0
                rates[reason] = (shown + self.prior) / (int(eligible.sum()) + 2 * self.prior)
            elif column is None:  # share of the other cards with at least k events
                for k in range(1, cap + 1):
                    others = int(((mine >= k) & base).sum()) - ((mine >= k) & base)
                    tails[:, r, k] = np.minimum(1.0, (others + self.prior) / (n_base - base + 2 * self.prior))
                rates[reason] = (shown + self.prior) / (n_base + 2 * self.prior)
            else:  # per chance, each other card counted once
                n = cards[column].to_numpy(np.int64)
                total = totals[column] - float(n[out].sum())
                own = (mine > 0) & base
                if reason == "fallback_far":  # each terminal counted once: one terminal's pattern is one source
                    shown, own = far_sources(sites, out)
                rates[reason] = (shown + self.prior) / (total + 2 * self.prior)
                rho = (shown - own + self.prior) / (total - n * base + 2 * self.prior)
                if reason == "fallback_far":
                    pi, dispersion = far_event_rates(sites, out, rho)
                    pi[explained] = 1.0  # an event at an at-terminal point is that point's fraud
                    rates["fallback_far_terminal_prior"] = dispersion
                    tails[:, r, 1:cap + 1] = site_tails(sites[0], pi, n, rho, cap)
                else:
                    for k in range(1, cap + 1):
                        tails[:, r, k] = binom_tail_small_k(k, n, rho)
        return tails, rates

    def fit(self, projection: Projection, exposed: pd.DataFrame | None = None) -> "ClonedCardDetector":
        """``decide(evidence(projection), exposed)``: the reported cards of one projection in ``result_``.

        Parameters
        ----------
        projection : graph.projection.Projection
        exposed : DataFrame, optional
            ``SkimmingDetector.exposed_`` of the same run (see ``decide``).

        Returns
        -------
        self

        Raises
        ------
        ValueError
            For parameters out of range.
        """
        self.decide(self.evidence(projection), exposed)
        return self
