"""Cloned cards from each card's own history, weighed by how rare each reason is among this run's cards.

Two phases, so that Spark can run the first per card bucket and the second once:

1. ``ClonedCardDetector.evidence(projection)``: per card, the events of each reason (impossible travel, ATC
   replay and regression, fallback near a chip use of the card or far from all of them, parallel use, fallback
   burst, amount and at new merchants, a counterfeit report) and the chances it had to show them (its located
   consecutive pairs, ATC-bearing and located transactions), the terminals of its fallback_far events
   (``far_terminal_ids``) and of the transactions its reports name as the first fraud (``report_terminal_ids``).
   One row per card with evidence plus one summary row (``card_token`` missing) for the cards without, and one row per terminal
   (``terminal_id``) with its located uses (``located_uses``); the tables of several buckets concatenate into
   the table of the whole run (a terminal's rows over the buckets add up).
2. ``ClonedCardDetector.decide(evidence, exposed)``: run-wide base rates from that table, a p-value per card,
   Benjamini-Hochberg over every card scored (and over the cards exposed at accepted skimming points, below),
   and only the cards with ``q_value <= REPORT_Q``; repeated with the cards reported so far left out of the base
   rates until no new card is reported (below).

The null model (fitted to the run at hand):

- rare reasons (impossible_travel, atc_replay, atc_regression, parallel_use, fallback_far): events happen
  independently per chance at the run-wide rate ``rho = (cards showing it + prior) / (chances of all cards +
  2 prior)``. Each card counts once in the numerator, so a clone's repeats (or one noisy card's burst) do not
  raise the rate that judges the others. A card's tail for level ``k`` is ``P(Binomial(chances, rho) >= k)``.
- fallback_far, where the event happened: a far swipe at a terminal where many other cards are swiped far from
  home (a merchant keying or swiping bought card data: fraud at the terminal, no copy of each card in use) is
  that terminal's pattern, not each card's. Each event has the chance ``pi_T = (x_T + M rho) / (u_T + M)`` at
  its terminal ``T`` (``x_T`` far events of the other cards there, ``u_T`` located uses there, both leaving out
  the card itself and the cards reported in earlier rounds), ``M`` the strength of a beta prior fitted to the
  run's terminals by the method of moments of a beta-binomial (``inf``, every terminal at ``rho``, when they vary
  no more than binomial draws); the card's other located uses keep ``rho``; the tail is that of the sum of these
  Bernoulli draws. In ``rho`` each terminal with such events counts once (however many cards show them there),
  so one terminal's pattern does not raise the rate that judges cards elsewhere.
- fallback_after_chip (magstripe near the card's own chip use: a worn chip, a terminal that cannot read it;
  a habit that repeats within a card): the share of the run's cards showing at least ``k`` such events
  (with the same prior).
- fallback_burst (several magstripe/fallback uses within ``burst_window_hours``), fallback_amount (the
  card's fallback uses among its largest amounts) and fallback_new_merchant (swipes near home at merchants where
  the card is never used by chip or contactless, against the card's own share of chip uses at merchants it uses
  once): their own p-values from the kernel, conditional on the card's uses (a card that often swipes is not
  suspicious for swiping; its swipes crowding into a few days, being its largest purchases, or falling at shops
  it never otherwise visits, are). Each is checked against the run: its tail is the larger of the card's
  p-value and the share of the run's other cards with a p-value as small (where genuine cards break the
  per-card null, e.g. the first generator's swipes at shops new to the card, the run's rate takes over).
- fraud at one terminal, explained away: a terminal whose fallback_far cards show that anomaly nowhere else
  (each such card's far swipes all there) more often than the run's far cards at other terminals do
  (binomial, leaving the judged card out, Benjamini-Hochberg over the terminals with far swipes) is a point of
  fraud *at* the terminal (a merchant swiping or keying bought card data; no copy of each card is in use).
  Its far swipes count as certain under the null, and the counterfeit report of a card whose far swipes all sit
  at such points, or whose report names (``first_fraud_at``) a transaction at one, is that point's fraud and
  is not counted. The points tested are in ``points_``.
- reported_counterfeit (the card has a fraud report of type counterfeit, ``fraud_reports`` being an input of
  the run as for the skimming detector): counted only for a card with at least one event of another reason
  (a report says fraud happened, the card's own uses must show a copy), as the share of the other cards with
  such an event that are reported counterfeit. A report alone never reports a card; with other evidence it
  weighs as one more event, as rare as reports are among such cards.
- reasons are independent under the null; the card's evidence is ``S = sum_r -log tail_r(level_r)`` with
  levels capped at ``count_cap``, and its p-value is ``P(S >= s)``, computed exactly over every combination
  of levels.

A reason 30% of genuine cards show has tails near 0.3 and stays weak alone; a reason no other card shows has a
rate of about ``prior / chances``: with the default prior (1) a card with a typical number of chances gets a
tail near ``1 / cards`` (the most one card can show about itself under exchangeability), strong, but reported
only with other evidence.

Cards exposed at an accepted skimming point (``decide``'s ``exposed``: the skimming detector's exposed cards of
points of the ``skimming`` mode) had their data taken there: among them clones are far more common, and a weak
sign of a copy (one swipe near home at a shop new to the card) means more. When there are such cards they are
tested a second time, as a family of their own (stratified false-discovery control): each exposed card's
p-value is checked against the unexposed cards of its activity band (``activity_band``: busy cards show the weak
reasons more often than each reason's null allows; the larger of its p-value and the share of those cards with
one as small), Benjamini-Hochberg runs over the exposed cards with Storey's estimate of their share of true
nulls, and the false-discovery budget is split between the two looks (Bonferroni): ``q = min(1, 2 min(q_all,
q_exposed))``. Without accepted skimming points (a clean run) there is one look, as before.

The base rates estimate how often *genuine* cards show each reason. Counted over every card, they also count the
run's clones: a batch of a few hundred counterfeit copies, each swiped once far from home, makes "one far swipe"
look common and hides every clone that shows only that. So ``decide`` works in rounds: the cards reported in a
round (q <= ``REPORT_Q``) leave the base rates (numerators and chances) of the next, and the decision is taken
again, until a round reports no new card (the reported set only grows, so this ends). On a run with nothing
planted the first round reports (almost) nothing and the rates do not move; a card is never judged against
itself (leave-one-out as before).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from graph.detectors.base import BaseDetector, to_timestamps
from graph.detectors.cloned_exposure import ExposedLook, activity_band
from graph.detectors.cloned_sites import (at_terminal_points, binom_tail_small_k, far_event_rates, far_sites,
                                          far_sources, reports_at_points, site_names, site_tails)
from graph.detectors.significance import REPORT_Q, bh_qvalues
from graph.kernels.cloned import FALLBACK_FAR, NO_TIME, REASONS, cloned_card_evidence, combined_tail, evidence_csr
from graph.projection import Projection
from graph.vocabulary import ENTRY_CHIP, ENTRY_CONTACTLESS, ENTRY_MANUAL, TYPE_COMPLETION, TYPE_VOID

__all__ = ["ClonedCardDetector", "CARD_COLUMNS", "EVIDENCE_COLUMNS", "CHANCES"]

# the chances a card had to show each reason: a column of the evidence table (None: judged per card)
CHANCES = {"impossible_travel": "chances_pairs", "atc_replay": "chances_atc", "atc_regression": "chances_atc",
           "fallback_after_chip": None, "parallel_use": "chances_pairs", "fallback_far": "chances_located",
           "fallback_burst": "fallback_burst_p", "fallback_amount": "fallback_amount_p",
           "fallback_new_merchant": "fallback_new_merchant_p", "reported_counterfeit": None}
_CONDITIONAL = ("fallback_burst", "fallback_amount", "fallback_new_merchant")  # own p-value, given the card's uses
_BINARY = ("reported_counterfeit",)  # shown or not
_REASONS = (*REASONS, "reported_counterfeit")
_REPORTED = len(REASONS)  # its column: after the kernel's reasons
_COUNTS = [f"n_{r}" for r in _REASONS]
EVIDENCE_COLUMNS = ["card_token", "cards", *_COUNTS, "chances_pairs", "chances_atc", "chances_located",
                    "fallback_burst_p", "fallback_amount_p", "fallback_new_merchant_p", "first_evidence_at",
                    "evidence_txn_ids", "travel_km", "travel_hours", "far_terminal_ids", "terminal_id", "located_uses",
                    "report_terminal_ids", "band"]
CARD_COLUMNS = ["card_token", "score", "reasons", "first_evidence_at", "evidence_txn_ids", "p_value", "q_value",
                "rank", *_COUNTS, "fallback_burst_p", "fallback_amount_p", "fallback_new_merchant_p", "travel_km",
                "travel_hours", "travel_kmh", "travel", "exposed_at"]
_STRONG, _MEDIUM = 1e-3, 5e-2  # a reason's own tail at the card's level: strong / medium / weak


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
        (n_cards x 8) and the first evidence second per reason (``NO_TIME`` if none).

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

        One row per card with at least one event (``cards`` = 1), then one row with ``card_token`` missing
        for all the cards with transactions but no event (``cards`` = how many, chances summed); no such
        row when there are none.

        Raises
        ------
        ValueError
            For parameters out of range.
        """
        self._check()
        p = projection
        args = self.kernel_args(p)
        counts, first, evidence, travel_km, travel_s, burst_p, amount_p, new_p = cloned_card_evidence(*args)
        self.counts_, self.first_ = counts, first
        counts = np.column_stack([counts, self._reported_counterfeit(p)])
        sizes = np.diff(p.card_indptr)
        card_of = np.repeat(np.arange(p.n_cards), sizes)
        located, atc_ok = args[4], args[7]
        n_located = np.bincount(card_of[located], minlength=p.n_cards).astype(np.int64)
        chances = {"chances_pairs": np.maximum(n_located - 1, 0),
                   "chances_atc": np.bincount(card_of[atc_ok], minlength=p.n_cards).astype(np.int64),
                   "chances_located": n_located}
        hit = np.flatnonzero(counts.sum(axis=1) > 0)
        quiet = (sizes > 0) & (counts.sum(axis=1) == 0)
        indptr, indices = evidence_csr(p.card_indptr, evidence)
        ids = p.txn_ids[indices]
        first_any = first[hit].min(axis=1) if len(hit) else np.zeros(0, np.int64)
        first_any = np.where(first_any == NO_TIME, -1, first_any)
        rows = {"card_token": pd.Series(p.card_ids[hit], dtype=object),
                "cards": np.ones(len(hit), dtype=np.int64)}
        for r, name in enumerate(_COUNTS):
            rows[name] = counts[hit, r].astype(np.int64)
        for name, values in chances.items():
            rows[name] = values[hit]
        rows["fallback_burst_p"] = burst_p[hit]
        rows["fallback_amount_p"] = amount_p[hit]
        rows["fallback_new_merchant_p"] = new_p[hit]
        rows["first_evidence_at"] = to_timestamps(first_any)
        rows["evidence_txn_ids"] = pd.Series([ids[indptr[c]:indptr[c + 1]].tolist() for c in hit], dtype=object)
        rows["travel_km"] = travel_km[hit]
        rows["travel_hours"] = np.where(travel_s[hit] >= 0, travel_s[hit] / 3600.0, np.nan)
        far_ptr, far_idx = evidence_csr(p.card_indptr, (evidence >> FALLBACK_FAR) & np.uint8(1))
        far_terms = np.where(p.txn_terminal[far_idx] >= 0, p.terminal_ids[np.maximum(p.txn_terminal[far_idx], 0)], "")
        rows["far_terminal_ids"] = pd.Series([far_terms[far_ptr[c]:far_ptr[c + 1]].tolist() for c in hit], dtype=object)
        rows["terminal_id"] = pd.Series([None] * len(hit), dtype=object)
        rows["located_uses"] = np.zeros(len(hit), dtype=np.int64)
        named = self._report_terminals(p)
        rows["report_terminal_ids"] = pd.Series([named[c] for c in hit], dtype=object)
        band = activity_band(n_located)
        rows["band"] = band[hit]
        frame = pd.DataFrame({k: (v.reset_index(drop=True) if isinstance(v, pd.Series) else v)
                              for k, v in rows.items()})
        bands = np.unique(band[quiet])
        if len(bands):  # one summary row per activity band of the quiet cards
            of = [quiet & (band == b) for b in bands]
            rest = {"card_token": [None] * len(bands), "cards": [int(q.sum()) for q in of],
                    **{n: [0] * len(bands) for n in _COUNTS},
                    **{n: [int(v[q].sum()) for q in of] for n, v in chances.items()}, "fallback_burst_p": 1.0,
                    "fallback_amount_p": 1.0, "fallback_new_merchant_p": 1.0}
            summary = pd.DataFrame(rest)
            summary["first_evidence_at"] = pd.Series([pd.NaT] * len(bands), dtype="datetime64[us, UTC]")
            summary["evidence_txn_ids"] = pd.Series([[] for _ in bands], dtype=object)
            summary["travel_km"] = np.nan
            summary["travel_hours"] = np.nan
            summary["far_terminal_ids"] = pd.Series([[] for _ in bands], dtype=object)
            summary["terminal_id"] = pd.Series([None] * len(bands), dtype=object)
            summary["located_uses"] = 0
            summary["report_terminal_ids"] = pd.Series([[] for _ in bands], dtype=object)
            summary["band"] = bands.astype(np.int64)
            frame = pd.concat([frame, summary[EVIDENCE_COLUMNS]], ignore_index=True) if len(frame) else summary
        uses = np.bincount(p.txn_terminal[located & (p.txn_terminal >= 0)], minlength=p.n_terminals)
        used = np.flatnonzero(uses > 0)
        if len(used):  # the terminals' located uses in this projection: the denominators of the terminal rates
            terms = pd.DataFrame({"card_token": pd.Series([None] * len(used), dtype=object),
                                  "cards": np.zeros(len(used), dtype=np.int64),
                                  **{n: np.zeros(len(used), dtype=np.int64) for n in _COUNTS},
                                  **{n: np.zeros(len(used), dtype=np.int64) for n in chances},
                                  "fallback_burst_p": 1.0, "fallback_amount_p": 1.0, "fallback_new_merchant_p": 1.0,
                                  "first_evidence_at": pd.Series([pd.NaT] * len(used), dtype="datetime64[us, UTC]"),
                                  "evidence_txn_ids": pd.Series([[] for _ in used], dtype=object),
                                  "travel_km": np.nan, "travel_hours": np.nan,
                                  "far_terminal_ids": pd.Series([[] for _ in used], dtype=object),
                                  "terminal_id": pd.Series(p.terminal_ids[used], dtype=object),
                                  "located_uses": uses[used].astype(np.int64),
                                  "report_terminal_ids": pd.Series([[] for _ in used], dtype=object),
                                  "band": np.full(len(used), -1, dtype=np.int64)})
            frame = pd.concat([frame[EVIDENCE_COLUMNS], terms[EVIDENCE_COLUMNS]], ignore_index=True) \
                if len(frame) else terms
        return _typed_evidence(frame[EVIDENCE_COLUMNS])

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
        ev = _typed_evidence(evidence[EVIDENCE_COLUMNS])
        n_scored = int(ev["cards"].sum())
        cards = ev[ev["card_token"].notna()].sort_values("card_token", kind="stable").reset_index(drop=True)
        sites = far_sites(cards, ev)
        cap = int(self.count_cap)
        levels = np.minimum(cards[_COUNTS].to_numpy(np.int64).reshape(len(cards), len(_REASONS)), cap)
        widths = np.array([2 if r in _CONDITIONAL or r in _BINARY else cap + 1 for r in _REASONS])  # levels per reason
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
            p = _exact_tail(tails, levels, widths, bound=bound)
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
        self.result_ = _card_frame(cards.iloc[keep].reset_index(drop=True), p[keep], q[keep],
                                  tails[keep], levels[keep], look.point[keep])
        return self.result_

    def _tails(self, cards: pd.DataFrame, levels: np.ndarray, widths: np.ndarray, n_scored: int, totals: dict,
               out: np.ndarray, sites: tuple, explained: np.ndarray) -> tuple[np.ndarray, dict]:
        """Per card and reason the tail ``P(level >= k)`` for k = 0..cap + 1 under rates from the run's other
        cards, leaving out the card itself and the cards in ``out`` (reported in an earlier round); the
        fallback_far events at the rate of their terminal (``far_event_rates``)."""
        cap = int(self.count_cap)
        tails = np.ones((len(cards), len(_REASONS), cap + 2))
        tails[:, :, cap + 1] = 0.0
        rates = {}
        base = ~out
        n_base = n_scored - int(out.sum())
        for r, reason in enumerate(_REASONS):
            mine = levels[:, r]
            column = CHANCES[reason]
            shown = int(((mine > 0) & base).sum())
            if reason in _CONDITIONAL:  # conditional on the card's own uses, checked against the run's cards
                own_p = np.where(mine > 0, cards[column].to_numpy(np.float64), 1.0)
                tails[:, r, 1] = _calibrated(own_p, base, n_base, self.prior)
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


def _calibrated(own_p: np.ndarray, base: np.ndarray, n_base: int, prior: float) -> np.ndarray:
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


def _exact_tail(tails: np.ndarray, levels: np.ndarray, widths: np.ndarray, bound: float = 1.0) -> np.ndarray:
    """P(S >= s) per card, S = sum_r -log tail_r(L_r) over independent levels L_r in 0..widths_r - 1 (exact,
    ``graph.kernels.cloned.combined_tail``).

    Cards whose lower bound ``prod_r tail_r(l_r)`` (every level at least the observed one implies S >= s) is above
    ``bound`` are not enumerated: their value is 1.0. ``decide`` passes the largest p-value that Benjamini-
    Hochberg could still report, so the reported cards and their q-values do not change.
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


def _strength(tail: float) -> str:
    return "strong" if tail <= _STRONG else "medium" if tail <= _MEDIUM else "weak"


def _card_frame(cards: pd.DataFrame, p: np.ndarray, q: np.ndarray, tails: np.ndarray,
                levels: np.ndarray, exposed_at: np.ndarray) -> pd.DataFrame:
    """The reported cards, typed even when empty, by ascending q-value."""
    own = tails[np.arange(len(cards))[:, None], np.arange(len(_REASONS))[None, :], levels]
    reasons = []
    for i in range(len(cards)):
        shown = [r for r in np.argsort(own[i], kind="stable") if levels[i, r] > 0]
        reasons.append(";".join(f"{_REASONS[r]}:{_strength(own[i, r])}" for r in shown))
    km = cards["travel_km"].to_numpy(np.float64)
    hours = cards["travel_hours"].to_numpy(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        kmh = np.where(hours > 0, km / np.where(hours > 0, hours, 1.0), np.where(np.isfinite(km), np.inf, np.nan))
    travel = [f"{k:,.0f} km in {h * 60:,.0f} min ({'instant' if not np.isfinite(v) else f'{v:,.0f} km/h'})"
              if np.isfinite(k) else "" for k, h, v in zip(km, hours, kmh)]
    frame = pd.DataFrame({
        "card_token": pd.Series(cards["card_token"].to_numpy(dtype=object), dtype=object),
        "score": np.minimum(1.0, -np.log10(np.maximum(q, 1e-300)) / 10.0),
        "reasons": pd.Series(reasons, dtype=object),
        "first_evidence_at": cards["first_evidence_at"].reset_index(drop=True).astype("datetime64[us, UTC]"),
        "evidence_txn_ids": pd.Series([[str(x) for x in v] for v in cards["evidence_txn_ids"]], dtype=object),
        "p_value": p.astype(np.float64), "q_value": q.astype(np.float64),
    })
    for name in _COUNTS:
        frame[name] = cards[name].to_numpy(np.int64)
    frame["fallback_burst_p"] = cards["fallback_burst_p"].to_numpy(np.float64)
    frame["fallback_amount_p"] = cards["fallback_amount_p"].to_numpy(np.float64)
    frame["fallback_new_merchant_p"] = cards["fallback_new_merchant_p"].to_numpy(np.float64)
    frame["travel_km"], frame["travel_hours"], frame["travel_kmh"] = km, hours, kmh
    frame["travel"] = pd.Series(travel, dtype=object)
    frame["exposed_at"] = pd.Series(list(exposed_at), dtype=object)
    frame = frame.sort_values(["q_value", "p_value", "first_evidence_at", "card_token"], kind="stable")
    frame = frame.reset_index(drop=True)
    frame["rank"] = np.arange(1, len(frame) + 1, dtype=np.int64)
    return frame[CARD_COLUMNS]


def _typed_evidence(frame: pd.DataFrame) -> pd.DataFrame:
    """The evidence table with fixed dtypes (empty tables and Spark's round trip included)."""
    out = pd.DataFrame(index=frame.index)
    out["card_token"] = frame["card_token"].astype(object).where(frame["card_token"].notna(), None)
    for name in ["cards", *_COUNTS, "chances_pairs", "chances_atc", "chances_located"]:
        out[name] = frame[name].to_numpy(np.int64) if len(frame) else np.zeros(0, np.int64)
    out["first_evidence_at"] = pd.to_datetime(frame["first_evidence_at"], utc=True).astype("datetime64[us, UTC]")
    out["evidence_txn_ids"] = pd.Series([[] if v is None else [str(x) for x in v] for v in frame["evidence_txn_ids"]],
                                        index=frame.index, dtype=object)
    for name in ("fallback_burst_p", "fallback_amount_p", "fallback_new_merchant_p", "travel_km", "travel_hours"):
        out[name] = frame[name].to_numpy(np.float64) if len(frame) else np.zeros(0)
    out["far_terminal_ids"] = pd.Series([[] if v is None else [str(x) for x in v] for v in frame["far_terminal_ids"]],
                                        index=frame.index, dtype=object)
    out["terminal_id"] = frame["terminal_id"].astype(object).where(frame["terminal_id"].notna(), None)
    out["located_uses"] = frame["located_uses"].to_numpy(np.int64) if len(frame) else np.zeros(0, np.int64)
    out["report_terminal_ids"] = pd.Series([[] if v is None else [str(x) for x in v]
                                            for v in frame["report_terminal_ids"]], index=frame.index, dtype=object)
    out["band"] = frame["band"].to_numpy(np.int64) if len(frame) else np.zeros(0, np.int64)
    return out[EVIDENCE_COLUMNS].reset_index(drop=True)
