"""The investigators' alert queue: one row per entity and kind, drawn from every detector, with a severity."""

from __future__ import annotations

import hashlib
from datetime import datetime

import numpy as np
import pandas as pd

__all__ = ["build_alerts", "alert_id", "ALERT_COLUMNS", "SEVERITIES", "severity_of"]

ALERT_COLUMNS = ["alert_id", "entity_type", "entity_id", "kind", "score", "severity", "created_at", "summary"]
SEVERITIES = ("low", "medium", "high", "critical")
# score thresholds (0..1 scores) for medium, high, critical; a score below the first gives "low"
_THRESHOLDS = {"cloned_card": (0.6, 0.9, 0.99), "cash_out": (0.5, 0.75, 0.9), "merchant_network": (0.5, 0.75, 0.9),
               "trace_gap": (0.5, 0.8, 0.95), "unapproved_firmware": (0.5, 0.85, 2.0),
               "relocation": (0.5, 0.8, 0.95), "mcc_mismatch": (0.5, 0.8, 2.0), "void_spike": (0.4, 0.7, 2.0),
               "clock_skew": (0.5, 0.8, 2.0)}
_DEFAULT_THRESHOLDS = (0.5, 0.8, 0.95)


def alert_id(entity_type: str, entity_id: str, kind: str) -> str:
    """Deterministic id of the alert about one entity and kind, so that re-scoring finds the same alert.

    Example
    -------
    >>> alert_id("terminal", "T1", "skimming_point") == alert_id("terminal", "T1", "skimming_point")
    True
    """
    return hashlib.sha256(f"{entity_type}|{entity_id}|{kind}".encode("utf-8")).hexdigest()[:20]


def severity_of(kind: str, scores) -> np.ndarray:
    """Severity label of each 0..1 score of one alert kind (object array)."""
    medium, high, critical = _THRESHOLDS.get(kind, _DEFAULT_THRESHOLDS)
    s = np.asarray(scores, dtype=np.float64)
    return np.select([s >= critical, s >= high, s >= medium], ["critical", "high", "medium"], "low").astype(object)


def _skimming(points: pd.DataFrame, alpha: float) -> pd.DataFrame:
    p_adj = points["p_value_adjusted"] if "p_value_adjusted" in points.columns else points["p_value"]
    sel = points[p_adj <= alpha]
    p_adj = p_adj[sel.index].to_numpy(np.float64)
    n = sel["compromised_cards"].to_numpy()
    severity = np.select([(p_adj <= 1e-6) & (n >= 5), p_adj <= 1e-3], ["critical", "high"], "medium").astype(object)
    score = np.clip(-np.log10(np.maximum(p_adj, 1e-300)) / 20.0, 0.0, 1.0)
    summary = [f"shared skimming point #{r}: {c} compromised cards of {s} seen, window {a:%Y-%m-%d} to {b:%Y-%m-%d},"
               f" adjusted p={p:.1e}" for r, c, s, a, b, p in zip(sel["rank"], n, sel["cards_seen"],
                                                                  sel["window_start"], sel["window_end"], p_adj)]
    return pd.DataFrame({"entity_type": "terminal", "entity_id": sel["terminal_id"].to_numpy(),
                         "kind": "skimming_point", "score": score, "severity": severity, "summary": summary})


def _cloned(cards: pd.DataFrame, min_score: float) -> pd.DataFrame:
    sel = cards[cards["score"] >= min_score]
    summary = [f"cloned card: {r.replace(';', ', ')} (first evidence {t:%Y-%m-%d %H:%M})" if pd.notna(t)
               else f"cloned card: {r.replace(';', ', ')}" for r, t in zip(sel["reasons"], sel["first_evidence_at"])]
    return pd.DataFrame({"entity_type": "card", "entity_id": sel["card_token"].to_numpy(), "kind": "cloned_card",
                         "score": sel["score"].to_numpy(), "severity": severity_of("cloned_card", sel["score"]),
                         "summary": summary})


def _rings(rings: pd.DataFrame, min_score: float) -> pd.DataFrame:
    if not len(rings):
        return pd.DataFrame()
    g = rings.groupby(["ring_id", "kind"], sort=True).agg(
        score=("score", "max"), cards=("member_type", lambda s: int((s == "card").sum())),
        merchants=("member_type", lambda s: int((s == "merchant").sum())),
        terminals=("member_type", lambda s: int((s == "terminal").sum()))).reset_index()
    g = g[g["score"] >= min_score]
    severity = np.array([severity_of(k, [s])[0] for k, s in zip(g["kind"], g["score"])], dtype=object)
    label = {"cash_out": "cash-out ring", "merchant_network": "merchant network"}
    summary = [f"{label.get(k, k)}: {c} cards, {m} merchants, {t} terminals" if c
               else f"{label.get(k, k)}: {m} merchants linked" for k, c, m, t in
               zip(g["kind"], g["cards"], g["merchants"], g["terminals"])]
    return pd.DataFrame({"entity_type": "ring", "entity_id": g["ring_id"].to_numpy(), "kind": g["kind"].to_numpy(),
                         "score": g["score"].to_numpy(), "severity": severity, "summary": summary})


def _findings(findings: pd.DataFrame) -> pd.DataFrame:
    if not len(findings):
        return pd.DataFrame()
    parts = []
    for kind, part in findings.groupby("kind", sort=True):
        parts.append(pd.DataFrame({"entity_type": "terminal", "entity_id": part["terminal_id"].to_numpy(),
                                   "kind": kind, "score": part["score"].to_numpy(),
                                   "severity": severity_of(kind, part["score"]),
                                   "summary": (kind.replace("_", " ") + ": " + part["details"]).to_numpy()}))
    return pd.concat(parts, ignore_index=True)


def build_alerts(points: pd.DataFrame, cards: pd.DataFrame, rings: pd.DataFrame, findings: pd.DataFrame,
                 created_at: datetime, *, skimming_alpha: float = 0.01, min_clone_score: float = 0.3,
                 min_ring_score: float = 0.3) -> pd.DataFrame:
    """The alert queue of one scoring run, by descending severity then score.

    Parameters
    ----------
    points, cards, rings, findings : DataFrame
        Outputs of the skimming, cloned-card, ring (cash-out and merchant-network) and integrity detectors.
    created_at : datetime
        Timestamp of every alert of this run.
    skimming_alpha : float
        Skimming points with an adjusted p-value above this raise no alert.
    min_clone_score, min_ring_score : float
        Cloned cards and rings scoring below these raise no alert.

    Returns
    -------
    DataFrame
        ``ALERT_COLUMNS``; ``alert_id`` is ``alert_id(entity_type, entity_id, kind)``.

    Example
    -------
    >>> build_alerts(points, cards, rings, findings, datetime.now(timezone.utc))  # doctest: +SKIP
    """
    parts = [f for f in (_skimming(points, skimming_alpha), _cloned(cards, min_clone_score),
                         _rings(rings, min_ring_score), _findings(findings)) if len(f)]
    if not parts:
        frame = pd.DataFrame({c: pd.Series([], dtype=float if c == "score" else object) for c in ALERT_COLUMNS})
        frame["created_at"] = pd.Series([], dtype="datetime64[us, UTC]")
        return frame
    frame = pd.concat(parts, ignore_index=True)
    frame["alert_id"] = [alert_id(t, e, k) for t, e, k in zip(frame["entity_type"], frame["entity_id"], frame["kind"])]
    frame["created_at"] = pd.Timestamp(created_at).tz_convert("UTC") if pd.Timestamp(created_at).tzinfo \
        else pd.Timestamp(created_at, tz="UTC")
    frame["created_at"] = frame["created_at"].astype("datetime64[us, UTC]")
    frame["score"] = frame["score"].astype(np.float64).round(6)
    rank = frame["severity"].map({s: i for i, s in enumerate(SEVERITIES)})
    frame = frame.assign(_rank=rank).sort_values(["_rank", "score", "alert_id"], ascending=[False, False, True],
                                                 kind="stable")
    return frame[ALERT_COLUMNS].reset_index(drop=True)
