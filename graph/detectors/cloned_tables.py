"""The cloned-card detector's tables: evidence columns and rows (``evidence_frame``), the reported cards."""

from __future__ import annotations

import numpy as np
import pandas as pd

from graph.detectors.base import to_timestamps
from graph.detectors.cloned_exposure import activity_band
from graph.kernels.cloned import FALLBACK_FAR, NO_TIME, REASONS, evidence_csr
from graph.projection import Projection

__all__ = ["ALL_REASONS", "CARD_COLUMNS", "CHANCES", "COUNT_COLUMNS", "EVIDENCE_COLUMNS", "card_frame",
           "evidence_frame", "typed_evidence"]

# the chances a card had to show each reason: a column of the evidence table (None: judged per card)
CHANCES = {"impossible_travel": "chances_pairs", "atc_replay": "chances_atc", "atc_regression": "chances_atc",
           "fallback_after_chip": None, "parallel_use": "chances_pairs", "fallback_far": "chances_located",
           "fallback_burst": "fallback_burst_p", "fallback_amount": "fallback_amount_p",
           "fallback_new_merchant": "fallback_new_merchant_p", "reported_counterfeit": None}
ALL_REASONS = (*REASONS, "reported_counterfeit")  # the kernel's reasons and the report
COUNT_COLUMNS = [f"n_{r}" for r in ALL_REASONS]
EVIDENCE_COLUMNS = ["card_token", "cards", *COUNT_COLUMNS, "chances_pairs", "chances_atc", "chances_located",
                    "fallback_burst_p", "fallback_amount_p", "fallback_new_merchant_p", "first_evidence_at",
                    "evidence_txn_ids", "travel_km", "travel_hours", "far_terminal_ids", "terminal_id", "located_uses",
                    "report_terminal_ids", "band"]
CARD_COLUMNS = ["card_token", "score", "reasons", "first_evidence_at", "evidence_txn_ids", "p_value", "q_value",
                "rank", *COUNT_COLUMNS, "fallback_burst_p", "fallback_amount_p", "fallback_new_merchant_p", "travel_km",
                "travel_hours", "travel_kmh", "travel", "exposed_at"]
_STRONG, _MEDIUM = 1e-3, 5e-2  # a reason's own tail at the card's level: strong / medium / weak


def evidence_frame(p: Projection, found: tuple, reported: np.ndarray, named: list[list[str]], located: np.ndarray,
                   atc_ok: np.ndarray) -> pd.DataFrame:
    """The evidence table (``EVIDENCE_COLUMNS``) of projection ``p``, concatenable across buckets: one row per card
    with at least one event, one summary row (``card_token`` missing) per activity band of the cards with
    transactions but no event, one row per terminal (``terminal_id``) with its located uses.

    Parameters
    ----------
    p : graph.projection.Projection
    found : tuple
        The output of ``graph.kernels.cloned.cloned_card_evidence`` on ``p``.
    reported : int64[n_cards]
        1 for the cards with a counterfeit report counted (``reported_counterfeit``), else 0.
    named : list of list of str
        Per card, the terminals its counterfeit reports name as the first fraud.
    located, atc_ok : bool[n]
        The kernel's rows usable for travel and rows with a meaningful ATC.

    Returns
    -------
    DataFrame
    """
    counts, first, evidence, travel_km, travel_s, burst_p, amount_p, new_p = found
    counts = np.column_stack([counts, reported])
    sizes = np.diff(p.card_indptr)
    card_of = np.repeat(np.arange(p.n_cards), sizes)
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
    for r, name in enumerate(COUNT_COLUMNS):
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
    rows["report_terminal_ids"] = pd.Series([named[c] for c in hit], dtype=object)
    band = activity_band(n_located)
    rows["band"] = band[hit]
    frame = pd.DataFrame({k: (v.reset_index(drop=True) if isinstance(v, pd.Series) else v)
                          for k, v in rows.items()})
    bands = np.unique(band[quiet])
    if len(bands):  # one summary row per activity band of the quiet cards
        summary = _summary_rows(bands, band, quiet, chances)
        frame = pd.concat([frame, summary[EVIDENCE_COLUMNS]], ignore_index=True) if len(frame) else summary
    uses = np.bincount(p.txn_terminal[located & (p.txn_terminal >= 0)], minlength=p.n_terminals)
    used = np.flatnonzero(uses > 0)
    if len(used):  # the terminals' located uses in this projection: the denominators of the terminal rates
        terms = _terminal_rows(p, uses, used)
        frame = pd.concat([frame[EVIDENCE_COLUMNS], terms[EVIDENCE_COLUMNS]], ignore_index=True) \
            if len(frame) else terms
    return typed_evidence(frame[EVIDENCE_COLUMNS])


def _blank_rows(n: int, **values) -> pd.DataFrame:
    """``n`` evidence rows without an event (no card, no terminal, no chances), with ``values`` set."""
    rows = {"card_token": pd.Series([None] * n, dtype=object), "cards": np.zeros(n, dtype=np.int64),
            **{c: np.zeros(n, dtype=np.int64) for c in (*COUNT_COLUMNS, "chances_pairs", "chances_atc",
                                                         "chances_located", "located_uses")},
            **{c: np.ones(n) for c in ("fallback_burst_p", "fallback_amount_p", "fallback_new_merchant_p")},
            "first_evidence_at": pd.Series([pd.NaT] * n, dtype="datetime64[us, UTC]"),
            **{c: pd.Series([[] for _ in range(n)], dtype=object)
               for c in ("evidence_txn_ids", "far_terminal_ids", "report_terminal_ids")},
            "travel_km": np.full(n, np.nan), "travel_hours": np.full(n, np.nan),
            "terminal_id": pd.Series([None] * n, dtype=object), "band": np.full(n, -1, dtype=np.int64)}
    return pd.DataFrame({**rows, **values})[EVIDENCE_COLUMNS]


def _summary_rows(bands: np.ndarray, band: np.ndarray, quiet: np.ndarray, chances: dict) -> pd.DataFrame:
    """One row per activity band of the quiet cards: how many cards, their chances summed."""
    of = [quiet & (band == b) for b in bands]
    return _blank_rows(len(bands), cards=np.array([q.sum() for q in of], dtype=np.int64),
                       **{n: np.array([v[q].sum() for q in of], dtype=np.int64) for n, v in chances.items()},
                       band=bands.astype(np.int64))


def _terminal_rows(p: Projection, uses: np.ndarray, used: np.ndarray) -> pd.DataFrame:
    """One row per terminal of ``used``: its located uses in ``p``, the denominators of the terminal rates."""
    return _blank_rows(len(used), terminal_id=pd.Series(p.terminal_ids[used], dtype=object),
                       located_uses=uses[used].astype(np.int64))


def _strength(tail: float) -> str:
    return "strong" if tail <= _STRONG else "medium" if tail <= _MEDIUM else "weak"


def card_frame(cards: pd.DataFrame, p: np.ndarray, q: np.ndarray, tails: np.ndarray,
               levels: np.ndarray, exposed_at: np.ndarray) -> pd.DataFrame:
    """The reported cards, typed even when empty, by ascending q-value."""
    own = tails[np.arange(len(cards))[:, None], np.arange(len(ALL_REASONS))[None, :], levels]
    reasons = []
    for i in range(len(cards)):
        shown = [r for r in np.argsort(own[i], kind="stable") if levels[i, r] > 0]
        reasons.append(";".join(f"{ALL_REASONS[r]}:{_strength(own[i, r])}" for r in shown))
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
    for name in COUNT_COLUMNS:
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


def typed_evidence(frame: pd.DataFrame) -> pd.DataFrame:
    """The evidence table with fixed dtypes (empty tables and Spark's round trip included)."""
    out = pd.DataFrame(index=frame.index)
    out["card_token"] = frame["card_token"].astype(object).where(frame["card_token"].notna(), None)
    for name in ["cards", *COUNT_COLUMNS, "chances_pairs", "chances_atc", "chances_located"]:
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
