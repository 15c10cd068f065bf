"""Points of compromise, each reported card's exposure window, report lags, fraud visits and the fitted look-back."""

from __future__ import annotations

import numpy as np
import pandas as pd

from graph.detectors.significance import REPORT_Q
from graph.kernels import skimming as ks
from graph.projection import Projection, to_epoch_seconds
from graph.vocabulary import ENTRY_MANUAL

__all__ = ["DAY", "MIN_LAGS", "LAG_QUANTILES", "LOOKBACK_QUANTILE", "card_windows", "report_lags", "fraud_visits",
           "fitted_lag", "at_csr", "fitted_lookback"]

DAY = 86_400
MIN_LAGS = 5  # lags needed to fit a look-back from the data (report lags; visit-to-fraud lags of accepted points)
LAG_QUANTILES = (0.1, 0.9)  # the run's report lags taken as the short and long end of an unknown one
LOOKBACK_QUANTILE = 0.95  # the accepted points' visit-to-fraud delays a fitted look-back covers


def card_windows(p: Projection, present: np.ndarray, lookback_days: float, type_weights: dict,
                 at_terminal_weights: dict | None, report_lag_days: float, far_km: float):
    """Compromised cards (of either kind) with their skimming weight and exposure window (one per card:
    the union of its reports' windows; weight-0 cards get an empty window), and their at-terminal reports.

    A report with a known first fraud looks back ``lookback_days`` from it; one without looks back from
    ``reported_at`` minus the run's fitted report lag (``report_lags``): ``[at - long - lookback,
    at - short)``. ``type_weights`` and ``at_terminal_weights`` are the weights per fraud type (unknown types
    weigh ``other``); ``at_terminal_weights`` None: no at-terminal test (every at-terminal weight 0).

    Returns (cards, skimming weights, window starts, window ends, at-terminal weights, the reports kept,
    (short, long) report lags in seconds)."""
    w = np.array([type_weights.get(t, type_weights.get("other", 0.0)) for t in p.report_type], dtype=np.float64)
    at = at_terminal_weights
    wa = (np.array([at.get(t, at.get("other", 0.0)) for t in p.report_type], dtype=np.float64)
          if at is not None else np.zeros(len(w)))
    labelled = np.where(p.report_txn >= 0, p.txn_ts[np.maximum(p.report_txn, 0)], -1) if p.n_txns else \
        np.full(len(w), -1, dtype=np.int64)
    known = np.where(p.report_first_fraud_at >= 0, p.report_first_fraud_at, labelled)
    anchor = np.where(known >= 0, known, p.report_at - int(report_lag_days * DAY))
    keep = (p.report_card >= 0) & ((w > 0) | (wa > 0)) & (p.report_at >= 0)
    reports = pd.DataFrame({"card": p.report_card[keep], "w": w[keep], "wa": wa[keep], "anchor": anchor[keep],
                            "known": known[keep] >= 0, "at": p.report_at[keep], "txn": p.report_txn[keep]})
    short, long = report_lags(reports, report_lag_days)
    back = int(lookback_days * DAY)
    known_r, at_r = reports["known"].to_numpy(), reports["at"].to_numpy()
    reports["end"] = np.where(known_r, reports["anchor"].to_numpy(), at_r - short)
    reports["start"] = np.where(known_r, reports["anchor"].to_numpy(), at_r - long) - back
    per_card = reports.groupby("card").agg(w=("w", "max"), wa=("wa", "max"), start=("start", "min"),
                                           end=("end", "min"))
    cards = per_card.index.to_numpy(dtype=np.int64)
    ends = per_card["end"].to_numpy(dtype=np.int64)
    starts = per_card["start"].to_numpy(dtype=np.int64)
    lat, lon = p.txn_positions()
    cut = ks.fallback_cut(p.card_indptr, p.txn_ts, p.txn_entry, lat, lon,
                          present & np.isfinite(lat) & np.isfinite(lon), cards, starts, float(far_km))
    ws = per_card["w"].to_numpy(dtype=np.float64)
    ends = np.minimum(ends, cut)
    starts = np.where(ws > 0, np.minimum(starts, ends), ends)
    return cards, ws, starts, ends, per_card["wa"].to_numpy(dtype=np.float64), reports, (short, long)


def _known_lags(reports: pd.DataFrame) -> np.ndarray:
    """Seconds from first fraud to report of the reports whose first fraud is known (negative lags left out)."""
    lags = (reports["at"].to_numpy() - reports["anchor"].to_numpy())[reports["known"].to_numpy()]
    return lags[lags >= 0]


def report_lags(reports: pd.DataFrame, report_lag_days: float) -> tuple[int, int]:
    """Seconds from first fraud to report assumed for a report without a known first fraud: the
    ``LAG_QUANTILES`` of this run's known lags (with at least ``MIN_LAGS`` of them), else
    ``report_lag_days`` for both ends."""
    lags = _known_lags(reports)
    if len(lags) >= MIN_LAGS:
        lo, hi = np.quantile(lags, LAG_QUANTILES)
        return int(lo), int(hi)
    fixed = int(report_lag_days * DAY)
    return fixed, fixed


def fraud_visits(p: Projection, cards, wa, reports, far_km: float, at_terminal_days: float, exposure_days: float):
    """CSR (over ``cards``) of each card's fraud visits for the at-terminal test (see
    ``graph.detectors.skimming.SkimmingDetector``), which of them are counterfeit-looking uses
    (``ks.clone_uses``), and the period searched; reports without a known first fraud search back over
    ``fitted_lag``."""
    lat, lon = p.txn_positions()
    clone = ks.clone_uses(p.card_indptr, p.txn_ts, p.txn_entry, lat, lon, np.isfinite(lat) & np.isfinite(lon),
                          float(far_km))
    usable = np.ones(p.n_txns, dtype=bool)  # any entry mode: keyed-in fraud is fraud at the terminal too
    pos = pd.Index(cards).get_indexer(reports["card"].to_numpy())
    ok = wa[pos] > 0 if len(pos) else np.zeros(0, dtype=bool)
    txn = reports["txn"].to_numpy()
    lab = ok & (txn >= 0)
    lab_pos, lab_txn = pos[lab], txn[lab]
    good = np.ones(len(lab_txn), dtype=bool)
    labelled_card = np.zeros(len(cards), dtype=bool)
    labelled_card[lab_pos] = True
    day = int(at_terminal_days * DAY)
    lag = fitted_lag(reports, at_terminal_days, exposure_days)
    win = ok & ~labelled_card[pos] if len(pos) else ok
    known = reports["known"].to_numpy()
    anchor, at = reports["anchor"].to_numpy(), reports["at"].to_numpy()
    # A known first fraud names its transaction when the card has one at that very second: that one alone.
    exact_rows = np.flatnonzero(win & known)
    eptr, etxn = ks.exposure_visits(p.card_indptr, p.txn_ts, usable, cards[pos[exact_rows]],
                                    anchor[exact_rows], anchor[exact_rows] + 1)
    found = np.zeros(len(pos), dtype=bool)
    found[exact_rows[np.diff(eptr) > 0]] = True
    rows = np.flatnonzero(win & ~found)
    lo = np.where(known, anchor, at - lag)[rows]
    hi = np.where(known, anchor + day, at)[rows]
    wptr, wtxn = ks.exposure_visits(p.card_indptr, p.txn_ts, usable, cards[pos[rows]], lo, hi + 1)
    pairs = pd.DataFrame({"pos": np.concatenate([lab_pos[good], np.repeat(pos[exact_rows], np.diff(eptr)),
                                                 np.repeat(pos[rows], np.diff(wptr))]),
                          "txn": np.concatenate([lab_txn[good], etxn, wtxn])}).drop_duplicates()
    pairs = pairs.assign(ts=p.txn_ts[pairs["txn"].to_numpy()]).sort_values(["pos", "ts", "txn"], kind="stable")
    indptr = np.searchsorted(pairs["pos"].to_numpy(), np.arange(len(cards) + 1)).astype(np.int64)
    txns = np.ascontiguousarray(pairs["txn"].to_numpy(dtype=np.int64))
    # The period the test looks at: every candidate window (an exact first fraud's too), every labelled fraud.
    edges = np.concatenate([p.txn_ts[lab_txn], anchor[exact_rows], anchor[exact_rows] + day, lo, hi,
                            p.txn_ts[txns]])
    span = (int(edges.min()), int(edges.max()) + 1) if len(txns) else (0, 0)
    return indptr, txns, clone, span


def fitted_lag(reports: pd.DataFrame, at_terminal_days: float, exposure_days: float) -> int:
    """Seconds before reported_at in which a report without a known first fraud had it: the 90th
    percentile of this run's known report lags (with at least ``MIN_LAGS`` of them) plus ``at_terminal_days``,
    else ``exposure_days`` (the horizon the skimming test looks back over)."""
    lags = _known_lags(reports)
    if len(lags) >= MIN_LAGS:
        return int(np.quantile(lags, 0.9)) + int(at_terminal_days * DAY)
    return int(exposure_days * DAY)


def at_csr(p: Projection, aptr, atxn, clone, n_cards):
    """Card -> distinct terminals of its fraud visits, its transpose, per transposed entry whether any
    of the card's fraud visits there was genuine (not a counterfeit-looking use), per entry the share of
    the card's fraud visits at that terminal (its fraud mass there), and per card whether any of its
    fraud visits was a counterfeit-looking use."""
    pairs = pd.DataFrame({"c": np.repeat(np.arange(n_cards, dtype=np.int64), np.diff(aptr)),
                          "t": p.txn_terminal[atxn].astype(np.int64), "g": ~clone[atxn]})
    pairs = pairs[pairs["t"] >= 0].groupby(["c", "t"], sort=True).agg(g=("g", "any"), v=("g", "size"))
    pairs = pairs.reset_index()
    c, t, g = (pairs[k].to_numpy() for k in ("c", "t", "g"))
    visits = pairs["v"].to_numpy(dtype=np.float64)
    mass = visits / np.bincount(c, weights=visits, minlength=n_cards)[c] if len(c) else visits
    elsewhere = np.zeros(n_cards, dtype=np.bool_)
    elsewhere[c[~g]] = True
    at_ptr = np.searchsorted(c, np.arange(n_cards + 1)).astype(np.int64)
    order = np.lexsort((c, t))
    term_ptr = np.searchsorted(t[order], np.arange(p.n_terminals + 1)).astype(np.int64)
    return (at_ptr, np.ascontiguousarray(t, dtype=np.int64), term_ptr,
            np.ascontiguousarray(c[order], dtype=np.int64), np.ascontiguousarray(g[order], dtype=np.bool_),
            np.ascontiguousarray(mass, dtype=np.float64), elsewhere)


def fitted_lookback(p: Projection, points: pd.DataFrame | None, cards: np.ndarray, ends: np.ndarray) -> float | None:
    """Days to look back from a first fraud, fitted to this run: the ``LOOKBACK_QUANTILE`` quantile of the
    delay from a compromised card's visit to an accepted skimming point of ``points`` (``q_value <=
    REPORT_Q``), inside the point's window, to the card's first fraud (the end of its exposure window), for
    every compromised card that made such a visit (at any delay: not only those the first pass looked back
    over), to the first point in rank order that it visited (the one explain-away would give it; its
    shortest delay there). None with fewer than ``MIN_LAGS`` such cards.

    ``SkimmingDetector.fit`` uses it only to lengthen ``exposure_days``: the points of the first pass are a
    sample of the run's points, and delays shorter than a strong point's say nothing about those of a weaker
    one."""
    pts = points
    if pts is None or pts.empty or not len(cards):
        return None
    pts = pts[(pts["mode"] == "skimming") & pts["accepted"].astype(bool) & (pts["q_value"] <= REPORT_Q)]
    pts = pts[pts["window_start"].notna() & pts["window_end"].notna()]
    if pts.empty:
        return None
    end_of = np.full(p.n_cards, -1, dtype=np.int64)
    end_of[cards] = ends
    term_index = pd.Index(p.terminal_ids)
    ws, we = to_epoch_seconds(pts["window_start"]), to_epoch_seconds(pts["window_end"])
    lags = np.full(p.n_cards, np.iinfo(np.int64).max, dtype=np.int64)
    taken = np.zeros(p.n_cards, dtype=bool)
    for t, lo, hi in zip(term_index.get_indexer(pts["terminal_id"]), ws, we):
        idx = p.term_order[p.term_indptr[t]:p.term_indptr[t + 1]]
        c = p.txn_card[idx].astype(np.int64)
        ts = p.txn_ts[idx]
        ok = (p.txn_entry[idx] != ENTRY_MANUAL) & (ts >= lo) & (ts <= hi) & (end_of[c] > ts) & ~taken[c]
        np.minimum.at(lags, c[ok], end_of[c[ok]] - ts[ok])
        taken[c[ok]] = True
    lags = lags[lags < np.iinfo(np.int64).max]
    if len(lags) < MIN_LAGS:
        return None
    return float(np.quantile(lags, LOOKBACK_QUANTILE)) / DAY
