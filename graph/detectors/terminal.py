"""Terminal integrity: hidden sales (STAN gaps), clock skew, unapproved firmware, relocation, MCC jumping, void bursts."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from graph.detectors.base import BaseDetector, to_timestamps
from graph.kernels.geo import haversine_km_array
from graph.kernels.skimming import log_binom_sf
from graph.kernels.terminal import NO_TIME, STATS, terminal_stats
from graph.projection import TYPE_REFUND, TYPE_VOID, Projection, to_epoch_seconds

__all__ = ["IntegrityDetector", "network_rate", "FINDING_COLUMNS", "KINDS", "HIGH_FEE_MCC", "LOW_FEE_MCC"]

KINDS = ("trace_gap", "unapproved_firmware", "relocation", "mcc_mismatch", "void_spike", "clock_skew")
FINDING_COLUMNS = ["terminal_id", "merchant_id", "kind", "score", "details", "first_seen", "last_seen", "events"]
# Interchange tiers as acquirers see them: merchants moving volume from the first set to the second
# ("MCC jumping") pay less and hide what they sell.
HIGH_FEE_MCC = frozenset({5944, 7011, 5732, 6051, 6011, 5999, 5311, 5691, 4829, 7995})
LOW_FEE_MCC = frozenset({5411, 5812, 5541, 5300, 5912, 4121, 8211, 8062, 9399})


def _saturating(x, scale: float) -> np.ndarray:
    """0 at 0, rising to 1: ``1 - exp(-x / scale)``."""
    return 1.0 - np.exp(-np.asarray(x, dtype=np.float64) / scale)


def network_rate(stats: pd.DataFrame, totals: tuple[float, float] | None = None) -> float:
    """The network's void/refund rate: ``(voids and refunds + 1) / (messages + 50)`` over ``stats`` (the
    kernel's per-terminal statistics), or over ``totals`` = (voids and refunds, messages) summed elsewhere."""
    vr, n = totals if totals is not None else (float(stats["vr_total"].sum()), float(stats["n"].sum()))
    return (vr + 1.0) / (n + 50.0)


class IntegrityDetector(BaseDetector):
    """Signs that a terminal's software or placement was tampered with, one finding per terminal and kind.

    - ``trace_gap``: STAN jumps (wrap-around undone; declines, voids and reversals consume numbers too) that
      hide at least ``min_missing`` messages in runs longer than ``min_gap`` — deleted sales;
    - ``clock_skew``: in STAN order, time going backwards by more than ``skew_tolerance_s``;
    - ``unapproved_firmware``: a registered or reported firmware hash not on the allow-list, or installed
      before its approval (skipped when no allow-list was supplied);
    - ``relocation``: at least ``min_far`` transactions or terminal events farther than ``far_km`` from the
      registered position;
    - ``mcc_mismatch``: at least ``min_mcc`` transactions (and ``min_mcc_share`` of them) sent under another
      MCC than the merchant's registered one; high-fee to low-fee scores higher;
    - ``void_spike``: a ``window_hours`` burst of voids and refunds whose count is improbable
      (binomial tail below ``void_alpha``) given the terminal's own rate outside the burst, shrunk towards
      the whole network's rate with the weight of ``prior_weight`` messages (``network_rate``: given by
      an engine that sees the network in parts, else computed from the projection).

    Scores are in 0..1 per finding. Attributes: ``findings_`` (``FINDING_COLUMNS``, by descending score),
    ``stats_`` (the kernel's per-terminal statistics as a DataFrame).

    Example
    -------
    >>> IntegrityDetector(far_km=30).fit(projection).findings_.head()  # doctest: +SKIP
    """

    def __init__(self, min_gap: int = 2, min_missing: int = 5, skew_tolerance_s: int = 300, far_km: float = 50.0,
                 min_far: int = 3, min_mcc: int = 3, min_mcc_share: float = 0.05, window_hours: float = 24.0,
                 min_voids: int = 5, void_alpha: float = 1e-6, prior_weight: float = 200.0,
                 network_rate: float | None = None):
        self.min_gap = min_gap
        self.min_missing = min_missing
        self.skew_tolerance_s = skew_tolerance_s
        self.far_km = far_km
        self.min_far = min_far
        self.min_mcc = min_mcc
        self.min_mcc_share = min_mcc_share
        self.window_hours = window_hours
        self.min_voids = min_voids
        self.void_alpha = void_alpha
        self.prior_weight = prior_weight
        self.network_rate = network_rate

    def kernel_args(self, p: Projection) -> tuple:
        """Arguments of ``graph.kernels.terminal.terminal_stats`` for this projection and these parameters."""
        reg_mcc = np.full(p.n_terminals, -1, np.int32)
        has_merchant = p.terminal_merchant >= 0
        merchant_mcc = pd.to_numeric(pd.Series(p.merchant_mcc, dtype=object), errors="coerce").fillna(-1)
        reg_mcc[has_merchant] = merchant_mcc.to_numpy(np.int32)[p.terminal_merchant[has_merchant]]
        return (p.term_indptr, p.term_order, p.txn_ts, p.txn_stan, p.txn_type, p.txn_lat, p.txn_lon, p.txn_mcc,
                p.terminal_lat, p.terminal_lon, reg_mcc, int(self.min_gap), int(self.skew_tolerance_s),
                float(self.far_km), int(self.window_hours * 3600), np.array([TYPE_VOID, TYPE_REFUND], np.int8))

    def terminal_stats(self, p: Projection) -> pd.DataFrame:
        """The kernel's statistics, one row per terminal of ``p`` (``terminal`` index, ``STATS``, ``reg_mcc``)."""
        args = self.kernel_args(p)
        stats = pd.DataFrame(terminal_stats(*args), columns=list(STATS))
        stats.insert(0, "terminal", np.arange(p.n_terminals))
        stats["reg_mcc"] = args[10]
        return stats

    def fit(self, projection: Projection) -> "IntegrityDetector":
        """Compute every terminal's statistics and turn those past the thresholds into findings."""
        p = projection
        self.stats_ = stats = self.terminal_stats(p)
        parts = [self._trace_gaps(stats), self._clock_skew(stats), self._relocation(p, stats),
                 self._mcc_mismatch(stats), self._void_spikes(stats), self._firmware(p, stats)]
        found = pd.concat([f for f in parts if len(f)], ignore_index=True) if any(len(f) for f in parts) else None
        self.findings_ = self._shape(p, found)
        return self

    # ---- one method per kind: each returns terminal, kind, score, details, first, last, events
    @staticmethod
    def _frame(s: pd.DataFrame, kind: str, score, details, first, last, events) -> pd.DataFrame:
        return pd.DataFrame({"terminal": s["terminal"].to_numpy(), "kind": kind, "score": np.asarray(score, float),
                             "details": list(details), "first": np.asarray(first, np.int64),
                             "last": np.asarray(last, np.int64), "events": np.asarray(events, np.int64)})

    def _trace_gaps(self, stats):
        s = stats[stats["gap_missing"] >= self.min_missing]
        details = [f"{r} STAN gaps hide {m} messages of {n}" for r, m, n in
                   zip(s["gap_runs"], s["gap_missing"], s["stan_n"])]
        return self._frame(s, "trace_gap", _saturating(s["gap_missing"], 20.0), details, s["gap_first"],
                           s["gap_last"], s["gap_runs"])

    def _clock_skew(self, stats):
        s = stats[stats["skew_events"] > 0]
        hours = s["skew_max_s"].to_numpy() / 3600.0
        details = [f"time went back {e} times in STAN order, at most {h:.1f} h" for e, h in
                   zip(s["skew_events"], hours)]
        return self._frame(s, "clock_skew", _saturating(s["skew_events"] * np.minimum(hours, 24.0), 2.0), details,
                           s["skew_first"], s["skew_last"], s["skew_events"])

    def _relocation(self, p: Projection, stats):
        far_events = self._far_events(p)
        s = stats.merge(far_events, on="terminal", how="left")
        s["ev_n"] = s["ev_n"].fillna(0).astype(np.int64)
        s = s[s["far_n"] + s["ev_n"] >= self.min_far]
        first = np.minimum(s["far_first"], s["ev_first"].fillna(NO_TIME).astype(np.int64))
        last = np.maximum(s["far_last"], s["ev_last"].fillna(-1).astype(np.int64))
        details = [f"{n} of {loc} located transactions and {e} terminal events over {self.far_km:g} km from the "
                   f"registered position" for n, loc, e in zip(s["far_n"], s["located"], s["ev_n"])]
        return self._frame(s, "relocation", _saturating(s["far_n"] + 2 * s["ev_n"], 6.0), details, first, last,
                           s["far_n"] + s["ev_n"])

    def _far_events(self, p: Projection) -> pd.DataFrame:
        ev = p.terminal_events
        empty = pd.DataFrame({"terminal": pd.Series([], dtype=np.int64), "ev_n": pd.Series([], dtype=np.int64),
                              "ev_first": pd.Series([], dtype=np.int64), "ev_last": pd.Series([], dtype=np.int64)})
        if not len(ev) or "lat" not in ev.columns or "lon" not in ev.columns:
            return empty
        term = pd.Index(p.terminal_ids).get_indexer(ev["terminal_id"].astype(object))
        lat = pd.to_numeric(ev["lat"], errors="coerce").to_numpy(np.float64)
        lon = pd.to_numeric(ev["lon"], errors="coerce").to_numpy(np.float64)
        ok = (term >= 0) & np.isfinite(lat) & np.isfinite(lon)
        t = term[ok]
        dist = haversine_km_array(lat[ok], lon[ok], p.terminal_lat[t], p.terminal_lon[t])
        far = np.isfinite(dist) & (dist > self.far_km)
        if not far.any():
            return empty
        ts = to_epoch_seconds(ev["ts"])[ok][far]
        frame = pd.DataFrame({"terminal": t[far], "ts": ts})
        return frame.groupby("terminal")["ts"].agg(ev_n="size", ev_first="min", ev_last="max").reset_index()

    def _mcc_mismatch(self, stats):
        share = stats["mcc_n"] / stats["mcc_known"].clip(lower=1)
        s = stats[(stats["mcc_n"] >= self.min_mcc) & (share >= self.min_mcc_share)]
        share = share[s.index]
        downgrade = np.array([r in HIGH_FEE_MCC and m in LOW_FEE_MCC for r, m in zip(s["reg_mcc"], s["mcc_sent"])],
                             dtype=bool)
        score = _saturating(s["mcc_n"], 10.0) * np.where(downgrade, 1.0, 0.6) * np.minimum(1.0, 0.5 + share)
        details = [f"{n} of {k} transactions ({sh:.0%}) sent under MCC {m:04d}, registered {r:04d}"
                   + (" (high-fee to low-fee)" if d else "")
                   for n, k, sh, m, r, d in zip(s["mcc_n"], s["mcc_known"], share, s["mcc_sent"], s["reg_mcc"],
                                                downgrade)]
        return self._frame(s, "mcc_mismatch", score, details, s["mcc_first"], s["mcc_last"], s["mcc_n"])

    def _void_spikes(self, stats):
        s = stats[stats["vr_window"] >= self.min_voids]
        # the terminal's own rate outside the burst, shrunk towards the network's rate (a multi-day burst
        # would otherwise raise its own baseline)
        network = self.network_rate if self.network_rate is not None else network_rate(stats)
        outside_n = (s["n"] - s["vr_window_n"]).to_numpy(np.float64)
        outside_vr = (s["vr_total"] - s["vr_window"]).to_numpy(np.float64)
        rate = (outside_vr + network * self.prior_weight) / (outside_n + self.prior_weight)
        logp = np.array([log_binom_sf(float(k), float(n), float(r)) for k, n, r in
                         zip(s["vr_window"], s["vr_window_n"], rate)])
        keep = logp <= math.log(self.void_alpha)
        s, logp, rate = s[keep], logp[keep], rate[keep]
        window = int(self.window_hours * 3600)
        details = [f"{k} voids/refunds among {n} messages within {self.window_hours:g} h (usual rate {r:.1%})"
                   for k, n, r in zip(s["vr_window"], s["vr_window_n"], rate)]
        score = np.minimum(1.0, -logp / math.log(10) / 20.0)
        return self._frame(s, "void_spike", score, details, s["vr_window_start"], s["vr_window_start"] + window,
                           s["vr_window"])

    def _firmware(self, p: Projection, stats):
        allow = p.approved_firmware
        if not len(allow) or "firmware_hash" not in allow.columns:
            return self._frame(stats.iloc[:0], "unapproved_firmware", [], [], [], [], [])
        approved_at = dict(zip(allow["firmware_hash"], to_epoch_seconds(allow["approved_at"])
                               if "approved_at" in allow.columns else np.full(len(allow), -1)))
        seen = []  # (terminal, ts, hash) of every firmware report: registrations and events
        if len(p.terminals) and "firmware_hash" in p.terminals.columns:
            t = pd.Index(p.terminal_ids).get_indexer(p.terminals["terminal_id"].astype(object))
            inst = (to_epoch_seconds(p.terminals["installed_at"]) if "installed_at" in p.terminals.columns
                    else np.full(len(t), -1))
            seen.append(pd.DataFrame({"terminal": t, "ts": inst, "hash": p.terminals["firmware_hash"].to_numpy()}))
        ev = p.terminal_events
        if len(ev) and "firmware_hash" in ev.columns:
            t = pd.Index(p.terminal_ids).get_indexer(ev["terminal_id"].astype(object))
            seen.append(pd.DataFrame({"terminal": t, "ts": to_epoch_seconds(ev["ts"]),
                                      "hash": ev["firmware_hash"].to_numpy()}))
        if not seen:
            return self._frame(stats.iloc[:0], "unapproved_firmware", [], [], [], [], [])
        fw = pd.concat(seen, ignore_index=True)
        fw = fw[(fw["terminal"] >= 0) & fw["hash"].notna()]
        known = fw["hash"].map(approved_at)
        unknown = known.isna()
        early = ~unknown & (fw["ts"] >= 0) & (fw["ts"] < known.fillna(-1))
        bad = fw[unknown | early].assign(unknown=unknown[unknown | early])
        if not len(bad):
            return self._frame(stats.iloc[:0], "unapproved_firmware", [], [], [], [], [])
        g = bad.groupby("terminal").agg(first=("ts", "min"), last=("ts", "max"), events=("ts", "size"),
                                        unknown=("unknown", "any"), hash=("hash", "first")).reset_index()
        g["first"] = g["first"].where(g["first"] >= 0, NO_TIME)
        details = [f"firmware {h[:12]}… {'is not on the allow-list' if u else 'in use before its approval'}"
                   f" ({e} reports)" for h, u, e in zip(g["hash"].astype(str), g["unknown"], g["events"])]
        return self._frame(g, "unapproved_firmware", np.where(g["unknown"], 0.9, 0.5), details, g["first"], g["last"],
                           g["events"])

    def _shape(self, p: Projection, found: pd.DataFrame | None) -> pd.DataFrame:
        if found is None:
            return pd.DataFrame({"terminal_id": pd.Series([], dtype=object), "merchant_id": pd.Series([], dtype=object),
                                 "kind": pd.Series([], dtype=object), "score": pd.Series([], dtype=float),
                                 "details": pd.Series([], dtype=object),
                                 "first_seen": to_timestamps(np.zeros(0, np.int64)),
                                 "last_seen": to_timestamps(np.zeros(0, np.int64)),
                                 "events": pd.Series([], dtype=np.int64)})
        t = found["terminal"].to_numpy()
        m = p.terminal_merchant[t]
        merchant = np.where(m >= 0, p.merchant_ids[np.maximum(m, 0)] if p.n_merchants else None, None)
        out = pd.DataFrame({"terminal_id": p.terminal_ids[t], "merchant_id": merchant, "kind": found["kind"],
                            "score": found["score"].round(6), "details": found["details"],
                            "first_seen": to_timestamps(found["first"]).array,
                            "last_seen": to_timestamps(found["last"]).array, "events": found["events"]})
        return out.sort_values(["score", "terminal_id", "kind"], ascending=[False, True, True],
                               kind="stable").reset_index(drop=True)
