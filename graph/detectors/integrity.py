"""Terminal integrity: hidden sales (STAN gaps), clock skew, unapproved firmware, relocation, MCC jumping, void
bursts, tamper events, boots at odd hours and new network addresses, each decided by a p-value under a null
fitted to the run's data and the Benjamini-Hochberg rule of ``graph.detectors.significance``.

The work is split in phases so that an engine that sees the terminals in parts (Spark) gives the same
findings (the phases without parameters of the decision live in ``graph.detectors.integrity_evidence``):
``stan_use`` (per terminal: sequence numbers skipped and the time they took), ``stan_rates`` (over all
terminals: the rate at which each model spends numbers without a message), ``transaction_evidence`` (per terminal,
from its own transactions and its model's rate: any subset of terminals) and ``event_evidence`` (per terminal, from
the reference tables), then ``decide`` over all terminals at once (base rates per terminal model, the
false-discovery rule over the whole family).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from graph.detectors import integrity_rules as rules
from graph.detectors.base import BaseDetector, to_timestamps
from graph.detectors.significance import REPORT_Q, bh_qvalues
from graph.detectors.integrity_evidence import (NO_ZONE, EvidenceFrames, event_evidence, model_of, stan_rates,
                                                stan_use)
from graph.detectors.integrity_rules import HIGH_FEE_MCC, LOW_FEE_MCC
from graph.kernels.integrity import NO_TIME, STATS, terminal_stats
from graph.projection import Projection
from graph.vocabulary import TYPE_REFUND, TYPE_VOID

__all__ = ["IntegrityDetector", "FINDING_COLUMNS", "HIGH_FEE_MCC", "LOW_FEE_MCC", "EvidenceFrames",
           "empty_findings"]

FINDING_COLUMNS = ["terminal_id", "merchant_id", "kind", "score", "details", "first_seen", "last_seen", "p_value",
                   "q_value", "events"]


def empty_findings() -> pd.DataFrame:
    """The typed, empty findings frame (``FINDING_COLUMNS``)."""
    return pd.DataFrame({"terminal_id": pd.Series([], dtype=object), "merchant_id": pd.Series([], dtype=object),
                         "kind": pd.Series([], dtype=object), "score": pd.Series([], dtype=float),
                         "details": pd.Series([], dtype=object),
                         "first_seen": to_timestamps(np.zeros(0, np.int64)),
                         "last_seen": to_timestamps(np.zeros(0, np.int64)),
                         "p_value": pd.Series([], dtype=float), "q_value": pd.Series([], dtype=float),
                         "events": pd.Series([], dtype=np.int64)})


def _codes(values) -> np.ndarray:
    return pd.factorize(pd.Series(values, dtype=object).fillna(""), sort=True)[0].astype(np.int64)


class IntegrityDetector(BaseDetector):
    """Signs that a terminal's software or placement was tampered with, one finding per terminal and kind.

    Every kind is a one-sided test per terminal against a null fitted to this run's data, and a finding is
    reported only when its Benjamini-Hochberg q-value over the family of terminals tested for that kind is at
    most ``REPORT_Q`` (0.05). The counting kinds test ``k`` events of ``n`` trials against a beta-binomial
    fitted to the terminals of the same *model* (of the same registered MCC for MCC mismatches): its mean
    pooled over the others and shrunk towards the network's with the weight of ``prior_terminals`` average
    terminals, its overdispersion by the method of moments without the ``trim`` share of the group's
    highest rates (so that a model whose terminals differ among themselves, e.g. some renew their address
    daily and others never, gives weaker evidence, and a few tampered ones do not):

    - ``trace_gap``: messages hidden by STAN gaps (wrap-around undone), among the sequence numbers the
      terminal's span used. Terminals spend numbers without a message in the drop (a daily batch close, echo
      tests), at a rate that is the model's: the seconds-weighted median over the model's terminals of the
      numbers each skipped per second (``stan_rates_``). A step that skips at least ``min_gap`` numbers more
      than that rate times its duration (rounded) explains hides that many messages; so a model that skips a
      number a day does not make every quiet terminal's week without sales a gap, and a block of sales deleted
      in between still is one;
    - ``clock_skew``: messages whose time is more than ``skew_tolerance_s`` behind an earlier one in STAN
      order, among its STAN steps;
    - ``relocation``: transactions and terminal events farther than ``far_km`` from the registered position,
      among those with a position;
    - ``mcc_mismatch``: transactions sent under another MCC than the merchant's, among those with an MCC
      (high-fee to low-fee is named in ``details``);
    - ``tamper_event``: ``tamper`` events among the terminal's events;
    - ``odd_hour_boot``: boots at hours that hold less than ``odd_share`` of the model's boots (half a boot
      added per hour) both by the UTC clock and by the solar local one (UTC plus the terminal's zone,
      ``time_zones``), among the terminal's boots;
    - ``new_ip``: moves to a network address the terminal never used before, among its address reports;
    - ``void_spike``: the densest ``window_hours`` burst of voids and refunds, binomial against the terminal's
      own rate outside the burst (shrunk towards the network's with the weight of ``prior_weight`` messages),
      times the number of windows in its span;
    - ``unapproved_firmware``: only direct evidence: a hash reported with a time (a terminal event, or the
      registered hash when ``terminals`` has ``firmware_updated_at``) that is not on the allow-list for the
      model, or reported before its ``approved_at``; never from ``installed_at``. Its p-value is the chance
      that a release of the model reaches so few of the model's terminals: ``P(Binomial(N, f) <= c)``, with
      ``c`` the model's terminals showing the same observation, ``N`` the model's terminals and ``f`` the
      median share of the model's terminals that run each of its approved hashes in this data.

    ``min_missing``, ``min_far``, ``min_mcc`` and ``min_voids`` are minimum evidence sizes (a terminal with
    less is tested and given p = 1), not decisions. ``score = min(1, -log10(q) / 10)``.

    Parameters
    ----------
    min_gap : int
        A step that skips at least this many sequence numbers more than its model spends in that time hides
        messages (trace_gap).
    min_missing : int
        Fewest hidden messages tested as a trace gap.
    skew_tolerance_s : int
        Seconds a message may lie behind an earlier one in STAN order before it counts as clock skew.
    far_km : float
        Distance from the registered position that counts as elsewhere (relocation).
    min_far : int
        Fewest far positions tested as a relocation.
    min_mcc : int
        Fewest transactions under another MCC tested as an MCC mismatch.
    window_hours : float
        Length of the burst window of voids and refunds (void_spike).
    min_voids : int
        Fewest voids and refunds in the burst tested as a void spike.
    prior_weight : float
        Messages' worth of the network's void rate mixed into a terminal's own rate.
    prior_terminals : float
        Terminals' worth of the network's rate mixed into a model's rate (counting kinds).
    trim : float
        Share of a model's highest rates left out when its spread between terminals is estimated.
    odd_share : float
        A boot hour holding less than this share of the model's boots is odd (odd_hour_boot).

    Attributes: ``result_`` (``FINDING_COLUMNS``, by ascending q-value), ``stats_`` (the per-terminal
    transaction evidence), ``stan_rates_`` (model -> sequence numbers spent per second without a message),
    ``tested_`` (kind -> size of the family tested).

    Example
    -------
    >>> IntegrityDetector(far_km=30).fit(projection).result_.head()  # doctest: +SKIP
    """

    name = "integrity"
    output = "terminal_findings"

    def __init__(self, min_gap: int = 2, min_missing: int = 1, skew_tolerance_s: int = 300, far_km: float = 50.0,
                 min_far: int = 2, min_mcc: int = 1, window_hours: float = 24.0, min_voids: int = 3,
                 prior_weight: float = 200.0, prior_terminals: float = 5.0, trim: float = 0.05,
                 odd_share: float = 1 / 48):
        self.min_gap = min_gap
        self.min_missing = min_missing
        self.skew_tolerance_s = skew_tolerance_s
        self.far_km = far_km
        self.min_far = min_far
        self.min_mcc = min_mcc
        self.window_hours = window_hours
        self.min_voids = min_voids
        self.prior_weight = prior_weight
        self.prior_terminals = prior_terminals
        self.trim = trim
        self.odd_share = odd_share

    # ------------------------------------------------------------------ evidence, per terminal
    stan_use = staticmethod(stan_use)  # graph.detectors.integrity_evidence: no parameter of the decision
    stan_rates = staticmethod(stan_rates)

    def kernel_args(self, p: Projection, rates: pd.Series | None = None) -> tuple:
        """Arguments of ``graph.kernels.integrity.terminal_stats`` for this projection and these parameters
        (``rates``: model -> numbers per second, as from ``stan_rates``; none: every number is a message)."""
        reg_mcc = np.full(p.n_terminals, -1, np.int32)
        has_merchant = p.terminal_merchant >= 0
        merchant_mcc = pd.to_numeric(pd.Series(p.merchant_mcc, dtype=object), errors="coerce").fillna(-1)
        reg_mcc[has_merchant] = merchant_mcc.to_numpy(np.int32)[p.terminal_merchant[has_merchant]]
        stan_rate = np.zeros(p.n_terminals)
        if rates is not None and len(rates) and p.n_terminals:
            stan_rate = (pd.Series(rates, dtype=np.float64).reindex(model_of(p.terminal_ids, p.terminals))
                         .fillna(0.0).to_numpy(np.float64))
        return (p.term_indptr, p.term_order, p.txn_ts, p.txn_stan, p.txn_type, p.txn_lat, p.txn_lon, p.txn_mcc,
                p.terminal_lat, p.terminal_lon, reg_mcc, np.ascontiguousarray(stan_rate), int(self.min_gap),
                int(self.skew_tolerance_s), float(self.far_km), int(self.window_hours * 3600),
                np.array([TYPE_VOID, TYPE_REFUND], np.int8))

    def terminal_stats(self, p: Projection, rates: pd.Series | None = None) -> pd.DataFrame:
        """The kernel's statistics, one row per terminal of ``p`` (``terminal`` index, ``STATS``, ``reg_mcc``,
        ``stan_rate``)."""
        args = self.kernel_args(p, rates)
        stats = pd.DataFrame(terminal_stats(*args), columns=list(STATS))
        stats.insert(0, "terminal", np.arange(p.n_terminals))
        stats["reg_mcc"] = args[10]
        stats["stan_rate"] = args[11]
        return stats

    def transaction_evidence(self, p: Projection, rates: pd.Series | None = None) -> pd.DataFrame:
        """Per-terminal evidence from the terminal's own transactions (any subset of terminals may be given).

        Parameters
        ----------
        p : Projection
        rates : Series, optional
            Model -> sequence numbers spent per second without a message (``stan_rates`` over every terminal).

        Returns
        -------
        DataFrame
            terminal_id, merchant_id, ``STATS``, reg_mcc, stan_rate, first_ts, last_ts; sorted by terminal_id.
        """
        stats = self.terminal_stats(p, rates).drop(columns="terminal")
        m = p.terminal_merchant
        merchant = (np.where(m >= 0, p.merchant_ids[np.maximum(m, 0)], None) if p.n_merchants
                    else np.full(p.n_terminals, None, dtype=object))
        lo, hi = p.term_indptr[:-1], p.term_indptr[1:]
        busy = hi > lo
        first = np.full(p.n_terminals, NO_TIME, np.int64)
        last = np.full(p.n_terminals, -1, np.int64)
        first[busy] = p.txn_ts[p.term_order[lo[busy]]]
        last[busy] = p.txn_ts[p.term_order[hi[busy] - 1]]
        stats.insert(0, "terminal_id", p.terminal_ids.astype(object))
        stats.insert(1, "merchant_id", pd.Series(merchant, dtype=object).to_numpy())
        stats["first_ts"], stats["last_ts"] = first, last
        return stats

    def event_evidence(self, terminal_ids, terminals: pd.DataFrame, events: pd.DataFrame,
                       approved: pd.DataFrame) -> EvidenceFrames:
        """``graph.detectors.integrity_evidence.event_evidence`` at this detector's ``far_km``."""
        return event_evidence(terminal_ids, terminals, events, approved, self.far_km)

    # ------------------------------------------------------------------ the decision, over all terminals
    def fit(self, projection: Projection) -> "IntegrityDetector":
        """Collect every terminal's evidence, test each kind against its null and keep what BH lets through."""
        p = projection
        self.stan_rates_ = self.stan_rates(self.stan_use(p))
        self.stats_ = self.transaction_evidence(p, self.stan_rates_)
        evidence = self.event_evidence(p.terminal_ids, p.terminals, p.terminal_events, p.approved_firmware)
        self.result_ = self.decide(self.stats_, evidence)
        return self

    def decide(self, stats: pd.DataFrame, evidence: EvidenceFrames) -> pd.DataFrame:
        """Findings from the evidence of *every* terminal of the run (``transaction_evidence`` of all parts,
        concatenated, and ``event_evidence``): p-values, q-values per kind, rows with q <= ``REPORT_Q``.

        Sets ``tested_`` (kind -> number of terminals tested). Returns ``FINDING_COLUMNS``.
        """
        per, boots, firmware = evidence
        s = stats.sort_values("terminal_id", kind="stable").reset_index(drop=True)
        s = s.merge(per, on="terminal_id", how="left", validate="one_to_one")
        for c in ("ev_n", "ev_located", "ev_far", "tamper_n", "ip_n", "ip_new"):
            s[c] = s[c].fillna(0).astype(np.int64)
        for c in ("ev_far_first", "tamper_first", "ip_first"):
            s[c] = s[c].fillna(NO_TIME).astype(np.int64)
        for c in ("ev_far_last", "tamper_last", "ip_last"):
            s[c] = s[c].fillna(-1).astype(np.int64)
        s["model"] = s["model"].fillna("")
        s["zone"] = s["zone"].fillna(NO_ZONE).astype(np.int64)
        s["_model"] = _codes(s["model"])
        s["_mcc"] = _codes(s["reg_mcc"].astype(np.int64))
        null = {"prior_terminals": self.prior_terminals, "trim": self.trim}  # the counting kinds' group nulls
        parts = [rules.trace_gap(s, self.min_missing, **null), rules.clock_skew(s, **null),
                 rules.relocation(s, self.far_km, self.min_far, **null), rules.mcc_mismatch(s, self.min_mcc, **null),
                 rules.void_spike(s, self.window_hours, self.min_voids, self.prior_weight),
                 rules.unapproved_firmware(s, firmware), rules.tamper_event(s, **null),
                 rules.odd_hour_boot(s, boots, self.odd_share, **null), rules.new_ip(s, **null)]
        self.tested_ = {}
        kept = []
        for kind, tested, frame in parts:
            self.tested_[kind] = int(tested)
            if not len(frame):
                continue
            frame = frame.assign(kind=kind, q=bh_qvalues(frame["p"].to_numpy(), m=max(int(tested), len(frame))))
            kept.append(frame[frame["q"] <= REPORT_Q])
        kept = [k for k in kept if len(k)]
        if not kept:
            return empty_findings()
        found = pd.concat(kept, ignore_index=True)
        merchant = s.set_index("terminal_id")["merchant_id"]
        q = found["q"].to_numpy(np.float64)
        out = pd.DataFrame({
            "terminal_id": found["terminal_id"].astype(object).to_numpy(),
            "merchant_id": merchant.reindex(found["terminal_id"]).astype(object).to_numpy(),
            "kind": found["kind"].astype(object).to_numpy(),
            "score": np.round(np.minimum(1.0, -np.log10(np.maximum(q, 1e-300)) / 10.0), 6),
            "details": found["details"].astype(object).to_numpy(),
            "first_seen": to_timestamps(found["first"].to_numpy(np.int64)).array,
            "last_seen": to_timestamps(found["last"].to_numpy(np.int64)).array,
            "p_value": found["p"].to_numpy(np.float64), "q_value": q,
            "events": found["events"].to_numpy(np.int64)})
        out["merchant_id"] = out["merchant_id"].where(out["merchant_id"].notna(), None)
        return out.sort_values(["q_value", "p_value", "terminal_id", "kind"], kind="stable").reset_index(drop=True)
