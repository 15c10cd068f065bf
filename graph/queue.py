"""The investigators' alert queue: one row per entity and kind, drawn from every detector, with a severity."""

from __future__ import annotations

import hashlib
from datetime import datetime

import numpy as np
import pandas as pd

from graph import explain
from graph.detectors.significance import bh_qvalues, severity_from_q
from graph.vocabulary import MODE_AT_TERMINAL, MODE_SKIMMING, POINT_KIND_OF_MODE, SEVERITIES

__all__ = ["build_alerts", "alert_id", "ALERT_COLUMNS", "q_values_of"]

ALERT_COLUMNS = ["alert_id", "entity_type", "entity_id", "kind", "score", "severity", "created_at", "summary"]
# Extra columns after the contract's: the q-value behind the severity, the date of the evidence (not of the
# scoring run) and the impact used to order alerts of one severity (cards at risk: a point's exposed cards, those
# that used it inside its window, a ring's cards, 1 for a cloned card, 0 for a terminal finding), then the plain-language
# explanation written now from the detector's outputs (``graph.explain``: evidence, comparison with
# normal, strength, and a stamp naming the detector's version) and the key of its evidence (a hash of the words
# without the stamp; ``graph.writeback`` keeps an alert's explanation while that key stays the same).
EXTRA_COLUMNS = ["q_value", "evidence_at", "impact", "explanation", "explanation_key"]


def alert_id(entity_type: str, entity_id: str, kind: str) -> str:
    """Deterministic id of the alert about one entity and kind, so that re-scoring finds the same alert.

    Example
    -------
    >>> alert_id("terminal", "T1", "skimming_point") == alert_id("terminal", "T1", "skimming_point")
    True
    """
    return hashlib.sha256(f"{entity_type}|{entity_id}|{kind}".encode("utf-8")).hexdigest()[:20]


def q_values_of(frame: pd.DataFrame) -> np.ndarray:
    """The q-values behind a detector's rows: its ``q_value`` column, else BH over its ``p_value`` column.

    Skimming outputs written before q-values existed carry ``p_value_adjusted`` (Bonferroni), which is never
    below the BH q-value and is taken as is.

    Raises
    ------
    ValueError
        The frame has neither q-values nor p-values: a detector that does not state its significance.
    """
    for column in ("q_value", "p_value_adjusted"):
        if column in frame.columns:
            return frame[column].to_numpy(np.float64)
    if "p_value" in frame.columns:
        return bh_qvalues(frame["p_value"].to_numpy(np.float64))
    raise ValueError(f"a detector's output has no q_value or p_value column: {list(frame.columns)}")


def _part(entity_type: str, ids, kind, q, score, summary, evidence_at, impact, why) -> pd.DataFrame:
    kinds = np.broadcast_to(np.asarray(kind, dtype=object), (len(why),))
    why = list(why)
    frame = pd.DataFrame({"entity_type": entity_type, "entity_id": np.asarray(ids, dtype=object), "kind": kind,
                          "score": np.asarray(score, dtype=np.float64), "severity": severity_from_q(q),
                          "summary": list(summary), "q_value": np.asarray(q, dtype=np.float64),
                          "evidence_at": pd.Series(pd.to_datetime(pd.Series(evidence_at), utc=True).to_numpy(),
                                                   dtype="datetime64[us, UTC]").to_numpy(),
                          "impact": np.asarray(impact, dtype=np.int64),
                          "explanation": [f"{w}\n{explain.stamp(k)}" for w, k in zip(why, kinds)],
                          "explanation_key": [explain.explanation_key(w) for w in why]})
    return frame[frame["severity"].notna()]


def _skimming(points: pd.DataFrame, exposed: pd.DataFrame | None) -> pd.DataFrame:
    if "accepted" in points.columns:  # the ranked list holds every candidate; only accepted points alert
        points = points[points["accepted"].astype(bool)]
    if not len(points):
        return pd.DataFrame()
    # cards at risk: the cards that used the point inside its window (its exposed-card list); without that list,
    # the cards seen at the terminal
    impact = points["cards_seen"].to_numpy(np.int64)
    if exposed is not None and len(exposed):
        listed = exposed.groupby("terminal_id")["card_token"].nunique()
        on_list = points["terminal_id"].map(listed)
        impact = np.where(on_list.notna(), on_list.fillna(0).to_numpy(np.int64), impact)
    q = q_values_of(points)
    n = points["compromised_cards"].to_numpy()
    mode = points["mode"] if "mode" in points.columns else pd.Series("skimming", index=points.index)
    label = {"skimming": "shared skimming point", "at_terminal": "compromised terminal (fraud at the terminal)"}
    summary = [f"{label.get(m, m)} #{r}: {c} compromised cards of {s} seen, window {a:%Y-%m-%d} to {b:%Y-%m-%d},"
               f" q={qq:.1e}" for m, r, c, s, a, b, qq in zip(mode, points["rank"], n, points["cards_seen"],
                                                               points["window_start"], points["window_end"], q)]
    kind = np.where(mode.to_numpy() == MODE_AT_TERMINAL, POINT_KIND_OF_MODE[MODE_AT_TERMINAL],
                    POINT_KIND_OF_MODE[MODE_SKIMMING])
    return _part("terminal", points["terminal_id"], kind, q, points["score"], summary, points["window_end"],
                 impact, explain.skimming(points, q))


def _cloned(cards: pd.DataFrame) -> pd.DataFrame:
    if not len(cards):
        return pd.DataFrame()
    q = q_values_of(cards)
    summary = [f"cloned card: {r.replace(';', ', ')} (first evidence {t:%Y-%m-%d %H:%M}, q={qq:.1e})" if pd.notna(t)
               else f"cloned card: {r.replace(';', ', ')} (q={qq:.1e})"
               for r, t, qq in zip(cards["reasons"], cards["first_evidence_at"], q)]
    return _part("card", cards["card_token"], "cloned_card", q, cards["score"], summary, cards["first_evidence_at"],
                 np.ones(len(cards), dtype=np.int64), explain.cloned(cards, q))


def _rings(rings: pd.DataFrame) -> pd.DataFrame:
    if not len(rings):
        return pd.DataFrame()
    rings = rings.assign(_q=q_values_of(rings))
    g = rings.groupby(["ring_id", "kind"], sort=True).agg(
        score=("score", "max"), q=("_q", "min"), cards=("member_type", lambda s: int((s == "card").sum())),
        merchants=("member_type", lambda s: int((s == "merchant").sum())),
        terminals=("member_type", lambda s: int((s == "terminal").sum()))).reset_index()
    label = {"cash_out": "cash-out ring", "merchant_network": "merchant network"}
    summary = [f"{label.get(k, k)}: {c} cards, {m} merchants, {t} terminals (q={q:.1e})" if c
               else f"{label.get(k, k)}: {m} merchants linked (q={q:.1e})" for k, c, m, t, q in
               zip(g["kind"], g["cards"], g["merchants"], g["terminals"], g["q"])]
    # a ring's evidence date: its first transaction (a merchant network, linked by identifiers, has none)
    first = (rings.groupby("ring_id")["first_seen"].min().reindex(g["ring_id"]).to_numpy()
             if "first_seen" in rings.columns else [pd.NaT] * len(g))
    return _part("ring", g["ring_id"], g["kind"].to_numpy(), g["q"], g["score"], summary,
                 first, g["cards"], explain.rings(g, rings.drop_duplicates("ring_id")))


def _findings(findings: pd.DataFrame) -> pd.DataFrame:
    if not len(findings):
        return pd.DataFrame()
    q = q_values_of(findings)
    summary = [f"{k.replace('_', ' ')}: {d} (q={qq:.1e})" for k, d, qq in zip(findings["kind"], findings["details"], q)]
    return _part("terminal", findings["terminal_id"], findings["kind"].to_numpy(), q, findings["score"], summary,
                 findings["first_seen"], np.zeros(len(findings), dtype=np.int64), explain.findings(findings, q))


def build_alerts(points: pd.DataFrame, cards: pd.DataFrame, rings: pd.DataFrame, findings: pd.DataFrame,
                 created_at: datetime, exposed: pd.DataFrame | None = None) -> pd.DataFrame:
    """The alert queue of one scoring run: every row whose q-value earns a severity, most severe first.

    One rule for every detector (``graph.detectors.significance``): a row raises an alert when its
    Benjamini-Hochberg q-value is at most 0.05 (medium), 0.01 (high) or 0.001 (critical). Within a severity,
    alerts with more cards at risk (``impact``) come first, then lower q-values.

    Parameters
    ----------
    points, cards, rings, findings : DataFrame
        Outputs of the point-of-compromise, cloned-card, ring (cash-out and merchant-network) and integrity
        detectors, each with ``q_value`` (or ``p_value``) per row.
    created_at : datetime
        Timestamp of every alert of this run.
    exposed : DataFrame, optional
        The exposed cards of the accepted points (``exposed_cards``): a point's impact is the number of cards
        on its list (the cards that used it inside its window), else its ``cards_seen``.

    Returns
    -------
    DataFrame
        ``ALERT_COLUMNS`` then ``EXTRA_COLUMNS`` (q_value, evidence_at, impact, explanation,
        explanation_key); ``alert_id`` is
        ``alert_id(entity_type, entity_id, kind)``.

    Example
    -------
    >>> build_alerts(points, cards, rings, findings, datetime.now(timezone.utc))  # doctest: +SKIP
    """
    parts = [f for f in (_skimming(points, exposed), _cloned(cards), _rings(rings), _findings(findings)) if len(f)]
    created = pd.Timestamp(created_at)
    created = created.tz_convert("UTC") if created.tzinfo else created.tz_localize("UTC")
    if not parts:
        frame = pd.DataFrame({c: pd.Series([], dtype=float if c in ("score", "q_value") else object)
                              for c in ALERT_COLUMNS + EXTRA_COLUMNS})
        frame["created_at"] = pd.Series([], dtype="datetime64[us, UTC]")
        frame["evidence_at"] = pd.Series([], dtype="datetime64[us, UTC]")
        frame["impact"] = pd.Series([], dtype=np.int64)
        frame["explanation"] = pd.Series([], dtype=object)
        frame["explanation_key"] = pd.Series([], dtype=object)
        return frame
    frame = pd.concat(parts, ignore_index=True)
    frame["alert_id"] = [alert_id(t, e, k) for t, e, k in zip(frame["entity_type"], frame["entity_id"], frame["kind"])]
    frame["created_at"] = pd.Series(created, index=frame.index).astype("datetime64[us, UTC]")
    frame["score"] = frame["score"].astype(np.float64).round(6)
    rank = frame["severity"].map({s: i for i, s in enumerate(SEVERITIES)})
    frame = frame.assign(_rank=rank).sort_values(["_rank", "impact", "q_value", "alert_id"],
                                                 ascending=[True, False, True, True], kind="stable")
    return frame[ALERT_COLUMNS + EXTRA_COLUMNS].reset_index(drop=True)
