"""Detection quality of one scored drop against its planted truth: per detector and for the alert queue."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from graph.detectors.skimming import SkimmingDetector
from graph.detectors.significance import REPORT_Q
from graph.evaluation import drop_frames, load_truth, match_rings, pool_rate_curve, precision_at_k
from graph.evaluation import reporting_rate_curve as synthesized_rate_curve
from graph.projection import Projection
from graph.vocabulary import POINT_KIND_OF_MODE, SEVERITIES

__all__ = ["average_precision", "queue_truth", "drop_quality", "early_warning", "naive_point_ranking",
           "reporting_rate_curve", "TRUE_RING_JACCARD"]

DAY = 86_400

# A found ring counts as the planted ring it overlaps by at least this member Jaccard (merchants).
TRUE_RING_JACCARD = 0.5
_RING_KINDS = ("cash_out", "merchant_network")
_POINT_KINDS = tuple(POINT_KIND_OF_MODE.values())


def average_precision(ranked_ids, truth) -> float:
    """Average precision of a ranking against a set of true ids (NaN without true ids).

    Example
    -------
    >>> average_precision(["a", "x", "b"], {"a", "b"})
    0.8333333333333333
    """
    truth = set(truth)
    if not truth:
        return float("nan")
    hits, total = 0, 0.0
    for i, item in enumerate(ranked_ids, start=1):
        if item in truth:
            hits += 1
            total += hits / i
    return total / len(truth)


def naive_point_ranking(projection: Projection) -> list:
    """Terminals by the number of distinct reported cards that ever used them (the naive baseline), descending."""
    reported = np.zeros(projection.n_cards, dtype=bool)
    reported[projection.report_card] = True
    used = reported[projection.txn_card]
    pairs = pd.DataFrame({"terminal": projection.txn_terminal[used], "card": projection.txn_card[used]})
    counts = pairs.drop_duplicates().groupby("terminal").size().sort_values(ascending=False, kind="stable")
    return projection.terminal_ids[counts.index.to_numpy()].tolist()


def _truth_frame(truth: dict, name: str, columns: list[str]) -> pd.DataFrame:
    frame = truth.get(name)
    return frame if frame is not None else pd.DataFrame(columns=columns)


def _points_truth(truth: dict) -> pd.DataFrame:
    """Planted points of compromise (terminal_id, mode): the skimmers, and compromise_points where given."""
    skimmers = _truth_frame(truth, "skimmers", ["terminal_id"])[["terminal_id"]].assign(mode="skimming")
    points = _truth_frame(truth, "compromise_points", ["terminal_id", "mode"])[["terminal_id", "mode"]]
    return pd.concat([skimmers, points], ignore_index=True).drop_duplicates("terminal_id")


def queue_truth(alerts: pd.DataFrame, rings: pd.DataFrame, truth: dict) -> np.ndarray:
    """Whether each alert is about something planted (bool array, in the alerts' order).

    A point-of-compromise alert is true on a planted skimmer or compromised terminal; a cloned-card alert on a
    planted clone or on a card with planted fraud at a compromised terminal (``fraud_txns`` of kind
    ``at_terminal``: its data was used where the card never was, and the right action, reissue, is the same;
    the cloned-card figures of ``drop_quality`` still count planted clones only); a ring alert when its merchants overlap a planted ring by ``TRUE_RING_JACCARD``; a terminal
    finding on a terminal that a planted case or a planted compromise touched.
    """
    points = set(_points_truth(truth)["terminal_id"])
    clones = set(_truth_frame(truth, "cloned_cards", ["card_token"])["card_token"])
    fraud = _truth_frame(truth, "fraud_txns", ["card_token", "kind"])
    clones |= set(fraud.loc[fraud["kind"] == "at_terminal", "card_token"])  # used where the card never was
    cases = set(_truth_frame(truth, "terminal_cases", ["terminal_id"])["terminal_id"]) | points
    planted_rings = _truth_frame(truth, "rings", ["ring_id", "kind", "member_type", "member_id"])
    matched = match_rings(rings, planted_rings) if len(rings) and len(planted_rings) else \
        pd.DataFrame(columns=["ring_id", "jaccard"])
    true_rings = set(matched.loc[matched["jaccard"] >= TRUE_RING_JACCARD, "ring_id"])
    out = np.zeros(len(alerts), dtype=bool)
    for i, (kind, entity) in enumerate(zip(alerts["kind"], alerts["entity_id"])):
        if kind in _POINT_KINDS:
            out[i] = entity in points
        elif kind == "cloned_card":
            out[i] = entity in clones
        elif kind in _RING_KINDS:
            out[i] = entity in true_rings
        else:
            out[i] = entity in cases
    return out


def _ring_quality(rings: pd.DataFrame, planted: pd.DataFrame) -> dict:
    """Sizes of the reported rings, and for each planted ring the best member Jaccard of any reported one
    (over the member types the planted ring lists: cards and merchants, not the terminals a ring reports)."""
    sizes = rings.groupby("ring_id").size() if len(rings) else pd.Series(dtype=int)
    out = {"rings_reported": int(len(sizes)), "largest_ring_members": int(sizes.max()) if len(sizes) else 0,
           "rings_planted": int(planted["ring_id"].nunique()) if len(planted) else 0}
    if len(planted):
        found = {rid: set(zip(g["member_type"], g["member_id"])) for rid, g in rings.groupby("ring_id")} \
            if len(rings) else {}
        best = []
        for _, members in planted.groupby("ring_id"):
            mine = set(zip(members["member_type"], members["member_id"]))
            types = set(members["member_type"])
            score = 0.0
            for theirs in found.values():
                theirs = {m for m in theirs if m[0] in types}
                score = max(score, len(mine & theirs) / len(mine | theirs))
            best.append(score)
        out["ring_jaccard_min"] = float(min(best))
        out["ring_jaccard_mean"] = float(np.mean(best))
    return out


def _terminal_quality(findings: pd.DataFrame, truth: dict, n_terminals: int) -> dict:
    cases = _truth_frame(truth, "terminal_cases", ["terminal_id", "kind"])
    touched = set(cases["terminal_id"]) | set(_points_truth(truth)["terminal_id"])
    found = set(findings["terminal_id"]) if len(findings) else set()
    false = findings[~findings["terminal_id"].isin(touched)] if len(findings) else findings
    per_kind = false.groupby("kind").size() * 2000.0 / max(n_terminals, 1) if len(false) else pd.Series(dtype=float)
    return {"terminal_cases": int(cases["terminal_id"].nunique()),
            "terminal_recall": len(found & set(cases["terminal_id"])) / cases["terminal_id"].nunique()
            if len(cases) else float("nan"),
            "terminal_false": int(len(false)),
            "terminal_false_per_kind_per_2000_max": float(per_kind.max()) if len(per_kind) else 0.0}


def drop_quality(frames: dict[str, pd.DataFrame], drop: str | Path, key: str | bytes, *, n_terminals: int) -> dict:
    """Quality figures of one scoring run's outputs against the drop's ``truth/``.

    Parameters
    ----------
    frames : the outputs of ``graph.scoring.run_detectors`` (``ScoreResult.frames``)
    drop : the generated drop (its ``truth/`` folder is read)
    key : the tokenization key the drop was scored with
    n_terminals : terminals in the run (false findings are given per 2,000 terminals)

    Returns
    -------
    dict of flat figures: points (recall in the top 5, average precision per mode), cloned cards (precision@k,
    reported, precision and recall of what was reported), rings (Jaccard, sizes), terminal findings (recall,
    false findings) and the queue (alerts by severity, high+critical precision and false ones).
    """
    truth = load_truth(drop, key)
    points, cards = frames["skimming_points"], frames["cloned_cards"]
    rings, findings, alerts = frames["rings"], frames["terminal_findings"], frames["alerts"]
    out: dict = {}
    planted_points = _points_truth(truth)
    mode = points["mode"] if "mode" in points.columns else pd.Series("skimming", index=points.index)
    for m in ("skimming", "at_terminal"):
        true = set(planted_points.loc[planted_points["mode"] == m, "terminal_id"])
        if not true:
            continue
        ranked = points.loc[mode == m, "terminal_id"].tolist()
        top = max(5, len(true))
        out[f"{m}_planted"] = len(true)
        out[f"{m}_recall_top"] = len(set(ranked[:top]) & true) / len(true)
        out[f"{m}_average_precision"] = average_precision(ranked, true)
    clones = set(truth["cloned_cards"]["card_token"]) if len(truth["cloned_cards"]) else set()
    ranked_cards = cards.sort_values("score", ascending=False)["card_token"].tolist() if len(cards) else []
    out.update(cloned_planted=len(clones), cloned_reported=len(ranked_cards))
    if clones:
        out["cloned_precision_at_k"] = precision_at_k(ranked_cards, clones)
        out["cloned_precision"] = len(set(ranked_cards) & clones) / len(ranked_cards) if ranked_cards else float("nan")
        out["cloned_recall"] = len(set(ranked_cards) & clones) / len(clones)
    out.update(_ring_quality(rings, _truth_frame(truth, "rings", ["ring_id", "member_type", "member_id"])))
    out.update(_terminal_quality(findings, truth, n_terminals))
    is_true = queue_truth(alerts, rings, truth)
    severe = alerts["severity"].isin(["high", "critical"]).to_numpy()
    out.update({f"alerts_{s}": int((alerts["severity"] == s).sum()) for s in SEVERITIES})
    out["high_critical_false"] = int((severe & ~is_true).sum())
    out["high_critical_precision"] = float(is_true[severe].mean()) if severe.any() else float("nan")
    return out


def _as_utc(values) -> np.ndarray:
    """Timestamps (ISO-8601 strings with offsets, or datetimes) as naive UTC datetime64 values."""
    return pd.to_datetime(pd.Series(values), utc=True, format="ISO8601").dt.tz_convert(None).to_numpy()


def early_warning(drop: str | Path, key: str | bytes, *, step_days: float = 7.0, params: dict | None = None) -> dict:
    """How early the exposed-card lists name the cloned cards that are never reported.

    The drop is replayed week by week: at each cut-off ``t`` the points-of-compromise detector sees only the
    transactions, events and fraud reports known by ``t`` and lists its exposed cards. A cloned card that is
    never reported is *warned* when it sits on a list at a cut-off before its first clone use (the truth's
    ``fraud_txns`` of kind ``clone``; drops of the adversarial generator).

    Returns
    -------
    dict: unreported_clones, warned (share warned before the first clone use), median_warning_days (between
    the first list and the first clone use, among the warned), listed_ever (share on any list by the end),
    cut_offs.
    """
    truth = load_truth(drop, key)
    frames = drop_frames(drop, key)
    tx, reports = frames["transactions"], frames["fraud_reports"]
    ts = _as_utc(tx["ts"])
    fraud = truth.get("fraud_txns")
    if fraud is None or not len(fraud):
        return {"unreported_clones": 0}
    reported = set(reports["card_token"]) if reports is not None else set()
    clone_txns = fraud.loc[fraud["kind"] == "clone", ["txn_id", "card_token"]]
    first_use = (clone_txns.merge(pd.DataFrame({"txn_id": tx["txn_id"].to_numpy(), "ts": ts}), on="txn_id")
                 .groupby("card_token")["ts"].min())
    targets = first_use[~first_use.index.isin(reported)]
    first_listed: dict[str, pd.Timestamp] = {}
    start, end = pd.Timestamp(ts.min()), pd.Timestamp(ts.max())
    cut = start + pd.Timedelta(days=step_days)
    cut_offs = 0
    report_at = _as_utc(reports["reported_at"]) if reports is not None else None
    events = frames["terminal_events"]
    event_at = _as_utc(events["ts"]) if events is not None else None
    while cut <= end + pd.Timedelta(days=step_days):
        upto = cut.to_datetime64()
        part = dict(frames, transactions=tx[ts <= upto])
        if reports is not None:
            part["fraud_reports"] = reports[report_at <= upto]
        if events is not None:
            part["terminal_events"] = events[event_at <= upto]
        detector = SkimmingDetector(**(params or {}).get("skimming", {})).fit(Projection.from_frames(*part.values()))
        for card in set(detector.exposed_["card_token"]) & set(targets.index):
            first_listed.setdefault(card, cut)
        cut_offs += 1
        cut += pd.Timedelta(days=step_days)
    lead = pd.Series({c: (targets[c] - t).total_seconds() / 86_400 for c, t in first_listed.items()}, dtype=float)
    warned = lead[lead > 0]
    n = len(targets)
    return {"unreported_clones": n, "warned": len(warned) / n if n else float("nan"),
            "median_warning_days": float(warned.median()) if len(warned) else float("nan"),
            "listed_ever": len(first_listed) / n if n else float("nan"), "cut_offs": cut_offs}


def reporting_rate_curve(projection: Projection, truth: dict, rates=(0.05, 0.1, 0.25, 0.5, 1.0), seed: int = 0,
                         lag_days: float = 3.0, alpha: float = REPORT_Q, **detector_params) -> pd.DataFrame:
    """Skimming-point quality when only a share of the skimmers' cloned cards is reported (issue 12's curve).

    For each rate a random share of the truth's cloned cards is reported as counterfeit and replaces the
    projection's reports; ``SkimmingDetector(**detector_params)`` is fitted and scored by
    ``graph.evaluation.skimming_metrics`` (reported points: accepted with ``q_value <= alpha``). A chosen
    card keeps the drop's own report when it has one; otherwise its first fraud is its first planted clone
    use (the truth's ``fraud_txns`` of kind ``clone``), reported ``lag_days`` later, as an issuer's report would
    say. Drops without that truth (the first generator) fall back to
    ``graph.evaluation.reporting_rate_curve``, which takes the first fraud from the card's own history (its
    first cloning evidence: on the second generator's drops 10-15% of those dates fall before the visit
    that compromised the card, e.g. a genuine worn-reader swipe, which no report would say).

    Returns
    -------
    DataFrame, one row per rate: rate, reported, and the ``skimming_metrics`` keys.
    """
    fraud = truth.get("fraud_txns")
    clones = truth["cloned_cards"]["card_token"]
    if fraud is None or not (fraud["kind"] == "clone").any():
        return synthesized_rate_curve(projection, truth["skimmers"], clones, rates=rates, seed=seed,
                                      lag_days=lag_days, alpha=alpha, **detector_params)
    p = projection
    cards = pd.Index(p.card_ids).get_indexer(np.asarray(list(clones), dtype=object))
    cards = cards[cards >= 0]
    own = pd.DataFrame({"card": p.report_card, "at": p.report_at, "first": p.report_first_fraud_at})
    own = own[own["card"].isin(cards)].groupby("card").first()
    uses = fraud.loc[fraud["kind"] == "clone", "txn_id"].to_numpy()
    txn = pd.Index(p.txn_ids).get_indexer(uses)
    txn = txn[txn >= 0]
    first_use = pd.Series(p.txn_ts[txn]).groupby(p.txn_card[txn]).min()
    rows = []
    for c in cards:
        if c in own.index:
            rows.append((c, int(own.at[c, "at"]), int(own.at[c, "first"])))
        elif c in first_use.index:
            t = int(first_use[c])
            rows.append((c, t + int(lag_days * DAY), t))
    pool = pd.DataFrame(rows, columns=["card", "at", "first"])
    return pool_rate_curve(p, pool, truth["skimmers"], rates=rates, seed=seed, alpha=alpha, **detector_params)
