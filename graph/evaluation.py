"""Quality measurement of the skimming and cloned-card detectors against a generated drop's truth."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

from graph.detectors.cloned import ClonedCardDetector
from graph.detectors.skimming import SkimmingDetector
from graph.projection import Projection
from graph.tokens import tokenize
from graph.vocabulary import ENTRY_FALLBACK, ENTRY_MAGSTRIPE

__all__ = ["read_drop_kind", "tokenize_pan", "drop_frames", "projection_from_drop", "precision_at_k",
           "skimming_metrics", "reporting_rate_curve", "pool_rate_curve", "load_truth", "threshold_curve", "match_rings"]

DAY = 86_400


def read_drop_kind(drop: str | Path, kind: str) -> pd.DataFrame | None:
    """All files of one kind in a drop (CSV or Parquet, names starting with the kind), lower-case columns.

    Returns None when the drop holds no file of that kind.
    """
    files = sorted(p for p in Path(drop).iterdir() if p.is_file() and p.name.lower().startswith(kind)
                   and p.suffix.lower() in (".csv", ".parquet"))
    if not files:
        return None
    parts = [pd.read_parquet(p) if p.suffix.lower() == ".parquet" else pd.read_csv(p, dtype=str, keep_default_na=True)
             for p in files]
    frame = pd.concat(parts, ignore_index=True)
    frame.columns = [c.lower() for c in frame.columns]
    return frame


def tokenize_pan(values: Iterable, key: str | bytes) -> np.ndarray:
    """card_token of each PAN: the contract's ``hex(HMAC-SHA256(key, "pan:" + value))[:32]``."""
    return np.asarray(tokenize(list(values), "pan", _key_bytes(key)), dtype=object)


def _key_bytes(key: str | bytes) -> bytes:
    return key if isinstance(key, bytes) else key.encode("utf-8")


def _tokenize_merchants(merchants: pd.DataFrame | None, key: str | bytes) -> pd.DataFrame | None:
    """Raw merchant rows -> staging columns: owner_id/phone/bank_account replaced by their ``*_token``."""
    if merchants is None:
        return None
    out = merchants.copy()
    for field in ("owner_id", "phone", "bank_account"):
        if field in out.columns:
            name = "owner_token" if field == "owner_id" else f"{field}_token"
            out[name] = tokenize(out.pop(field).tolist(), field, _key_bytes(key))
    return out


def drop_frames(drop: str | Path, key: str) -> dict[str, pd.DataFrame | None]:
    """A drop's input kinds as frames, PANs and merchant secrets tokenized, numbers parsed (no ETL).

    Returns
    -------
    dict: transactions, terminals, merchants, fraud_reports, approved_firmware, terminal_events (None when
    the drop has no file of that kind), in ``Projection.from_frames``'s order.
    """
    tx = read_drop_kind(drop, "transactions")
    tx = tx.assign(card_token=tokenize_pan(tx["pan"], key)).drop(columns="pan")
    for col in ("amount", "lat", "lon", "atc", "stan"):
        if col in tx.columns:
            tx[col] = pd.to_numeric(tx[col], errors="coerce")
    reports = read_drop_kind(drop, "fraud_reports")
    if reports is not None:
        reports = reports.assign(card_token=tokenize_pan(reports["pan"], key)).drop(columns="pan")
    terminals = read_drop_kind(drop, "terminals")
    merchants = _tokenize_merchants(read_drop_kind(drop, "merchants"), key)
    for frame in (terminals, merchants):
        if frame is not None:
            for col in ("lat", "lon"):
                if col in frame.columns:
                    frame[col] = pd.to_numeric(frame[col], errors="coerce")
    return {"transactions": tx, "terminals": terminals, "merchants": merchants, "fraud_reports": reports,
            "approved_firmware": read_drop_kind(drop, "approved_firmware"),
            "terminal_events": read_drop_kind(drop, "terminal_events")}


def projection_from_drop(drop: str | Path, key: str) -> Projection:
    """A Projection straight from a drop directory (no ETL, no Neo4j): PANs tokenized, contract defaults.

    Parameters
    ----------
    drop : path of the drop; key : the tokenization key

    Returns
    -------
    Projection
    """
    return Projection.from_frames(*drop_frames(drop, key).values())


def precision_at_k(ranked_ids: Iterable, truth: Iterable, k: int | None = None) -> float:
    """Share of the first ``k`` ranked ids (default: as many as there are true ids) that are true."""
    truth = set(truth)
    k = len(truth) if k is None else k
    if k == 0:
        return float("nan")
    return len(set(list(ranked_ids)[:k]) & truth) / k


def skimming_metrics(points: pd.DataFrame, skimmers: pd.DataFrame, alpha: float = 0.01, top: int = 5) -> dict:
    """Precision/recall of skimming points against truth (terminal_id, window_start, window_end).

    Returns precision_at_k and recall_at_k (k = number of true skimmers), recall_top (true skimmers within
    the first ``max(top, k)``), precision/recall of the accepted points with ``q_value <= alpha`` (outputs
    without q-values: ``p_value_adjusted <= alpha``), and
    window_overlap: the share of found true skimmers (within ``max(top, k)``) whose estimated window
    overlaps the true one.
    """
    if "mode" in points.columns:  # the skimming kind of the points of compromise
        points = points[points["mode"] == "skimming"].reset_index(drop=True)
    truth = set(skimmers["terminal_id"])
    k = len(truth)
    top = max(top, k)
    ranked = points["terminal_id"].tolist()
    if "q_value" in points.columns:  # reported: accepted points within the false-discovery level
        keep = points["q_value"] <= alpha
        if "accepted" in points.columns:
            keep &= points["accepted"].astype(bool)
        flagged = set(points.loc[keep, "terminal_id"])
    else:
        flagged = set(points.loc[points["p_value_adjusted"] <= alpha, "terminal_id"])
    found = points.head(top).merge(skimmers, on="terminal_id", suffixes=("", "_true"))
    overlap = ((found["window_start"] <= pd.to_datetime(found["window_end_true"], utc=True))
               & (found["window_end"] >= pd.to_datetime(found["window_start_true"], utc=True)))
    return {"skimmers": k, "precision_at_k": precision_at_k(ranked, truth),
            "recall_at_k": len(set(ranked[:k]) & truth) / k if k else float("nan"),
            "recall_top": len(set(ranked[:top]) & truth) / k if k else float("nan"),
            "flagged": len(flagged), "precision": len(flagged & truth) / len(flagged) if flagged else float("nan"),
            "recall": len(flagged & truth) / k if k else float("nan"),
            "window_overlap": float(overlap.mean()) if len(found) else float("nan")}


def _clone_reports(p: Projection, tokens: np.ndarray, lag_days: float) -> pd.DataFrame:
    """One counterfeit report per cloned card: its own report if any, else synthesized from its history
    (first fraud = first cloning evidence, else first magstripe/fallback use; reported ``lag_days`` later)."""
    idx = pd.Index(p.card_ids).get_indexer(tokens)
    idx = idx[idx >= 0]
    own = pd.DataFrame({"card": p.report_card, "at": p.report_at, "first": p.report_first_fraud_at})
    own = own[own["card"].isin(idx)].groupby("card").first()
    first = ClonedCardDetector().fit(p).first_.min(axis=1)
    rows = []
    for c in idx:
        if c in own.index:
            rows.append((c, own.at[c, "at"], own.at[c, "first"]))
            continue
        t = first[c]
        if t == np.iinfo(np.int64).max:
            lo, hi = p.card_indptr[c], p.card_indptr[c + 1]
            skim = np.flatnonzero(np.isin(p.txn_entry[lo:hi], (ENTRY_MAGSTRIPE, ENTRY_FALLBACK)))
            if not len(skim):
                continue
            t = p.txn_ts[lo + skim[0]]
        rows.append((c, int(t + lag_days * DAY), int(t)))
    return pd.DataFrame(rows, columns=["card", "at", "first"])


def reporting_rate_curve(projection: Projection, skimmers: pd.DataFrame, cloned_cards: Iterable[str],
                         rates=(0.1, 0.25, 0.5, 1.0), seed: int = 0, lag_days: float = 3.0, alpha: float = 0.01,
                         **detector_params) -> pd.DataFrame:
    """Skimming-point quality when only a share of the cloned cards gets reported.

    For each rate, a random share of ``cloned_cards`` (card_tokens) is reported as counterfeit (the drop's
    own report of that card when it has one, else one synthesized from the card's history) and replaces the
    projection's report arrays (its ``fraud_reports`` frame is left as it was); ``SkimmingDetector(**detector_params)`` is fitted and scored by
    ``skimming_metrics``.

    Parameters
    ----------
    projection : Projection
    skimmers : DataFrame with terminal_id, window_start, window_end (the generator's truth)
    cloned_cards : card_tokens of the truly cloned cards
    rates : shares of cloned cards reported; seed : sampling seed

    Returns
    -------
    DataFrame, one row per rate: rate, reported, and the ``skimming_metrics`` keys.

    Example
    -------
    >>> reporting_rate_curve(p, truth_skimmers, clone_tokens, rates=(0.25, 1.0))  # doctest: +SKIP
    """
    pool = _clone_reports(projection, np.asarray(list(cloned_cards), dtype=object), lag_days)
    return pool_rate_curve(projection, pool, skimmers, rates=rates, seed=seed, alpha=alpha, **detector_params)


def pool_rate_curve(projection: Projection, pool: pd.DataFrame, skimmers: pd.DataFrame, rates, seed: int = 0,
                    alpha: float = 0.01, **detector_params) -> pd.DataFrame:
    """The reporting-rate curve from a ``pool`` of possible reports (card, at, first: one row per cloned card):
    for each rate a random share of it (one shuffle by ``seed``, so each rate's reports contain the lower
    rates') replaces the projection's reports as counterfeit ones, ``SkimmingDetector(**detector_params)`` is
    fitted and ``skimming_metrics`` scores it against ``skimmers``."""
    shuffled = pool.iloc[np.random.default_rng(seed).permutation(len(pool))]
    rows = []
    for rate in rates:
        chosen = shuffled.head(int(round(rate * len(pool)))).sort_values(["card", "at"])
        p = dataclasses.replace(
            projection, report_card=chosen["card"].to_numpy(np.int32), report_at=chosen["at"].to_numpy(np.int64),
            report_first_fraud_at=chosen["first"].to_numpy(np.int64),
            report_type=np.full(len(chosen), "counterfeit", dtype=object),
            report_txn=np.full(len(chosen), -1, dtype=np.int64))
        points = SkimmingDetector(**detector_params).fit(p).result_
        rows.append({"rate": rate, "reported": len(chosen), **skimming_metrics(points, skimmers, alpha=alpha)})
    return pd.DataFrame(rows)



def load_truth(drop: str | Path, key: str | bytes) -> dict[str, pd.DataFrame]:
    """A generated drop's planted truth (``truth/*.parquet``) with every PAN replaced by its card_token.

    Returns
    -------
    dict with ``skimmers`` (terminal_id, window_start, window_end, UTC), ``cloned_cards`` (card_token, source),
    ``rings`` (ring_id, kind, member_type, member_id; card members as tokens) and ``terminal_cases``
    (terminal_id, kind).

    Example
    -------
    >>> truth = load_truth("var/drops/sample", key)                      # doctest: +SKIP
    """
    folder = Path(drop) / "truth"
    truth = {p.stem: pd.read_parquet(p) for p in sorted(folder.glob("*.parquet"))}
    clones = truth["cloned_cards"]
    truth["cloned_cards"] = clones.assign(card_token=tokenize_pan(clones.pop("pan"), key))[["card_token", "source"]]
    for name in ("fraud_txns", "compromised_cards"):  # the adversarial generator's extra truth
        if name in truth and "pan" in truth[name].columns:
            frame = truth[name]
            truth[name] = frame.assign(card_token=tokenize_pan(frame.pop("pan"), key))
    rings = truth["rings"].copy()
    cards = rings["member_type"] == "card"
    rings.loc[cards, "member_id"] = tokenize_pan(rings.loc[cards, "member_id"], key)
    truth["rings"] = rings
    for col in ("window_start", "window_end"):
        truth["skimmers"][col] = pd.to_datetime(truth["skimmers"][col], utc=True)
    return truth


def threshold_curve(found: pd.DataFrame, truth_ids: Iterable, thresholds: Iterable[float], *,
                    id_col: str, score_col: str = "score") -> pd.DataFrame:
    """Precision and recall of the ids scored at or above each threshold, against the true ids.

    Parameters
    ----------
    found : a detector's table; ``id_col`` may repeat (an id counts once, at its best score)
    truth_ids : the planted ids
    thresholds : score cut-offs

    Returns
    -------
    DataFrame: threshold, flagged, true_positives, precision (NaN when nothing is flagged), recall.

    Example
    -------
    >>> threshold_curve(cards, truth["cloned_cards"].card_token, [0.5, 0.9], id_col="card_token")  # doctest: +SKIP
    """
    truth = set(truth_ids)
    best = found.groupby(id_col)[score_col].max() if len(found) else pd.Series(dtype=float)
    rows = []
    for t in thresholds:
        flagged = set(best.index[best >= t])
        tp = len(flagged & truth)
        rows.append({"threshold": t, "flagged": len(flagged), "true_positives": tp,
                     "precision": tp / len(flagged) if flagged else float("nan"),
                     "recall": tp / len(truth) if truth else float("nan")})
    return pd.DataFrame(rows)


def match_rings(found: pd.DataFrame, truth: pd.DataFrame, member_type: str = "merchant") -> pd.DataFrame:
    """Each found ring against the planted ring it overlaps most (Jaccard of its ``member_type`` members).

    Returns
    -------
    DataFrame per found ring: ring_id, kind, score, truth_ring (None when it overlaps none), jaccard.
    """
    def members(frame):
        part = frame[frame["member_type"] == member_type]
        return part.groupby("ring_id")["member_id"].apply(set).to_dict()

    planted = members(truth)
    rows = []
    for ring_id, group in found.groupby("ring_id", sort=False):
        mine = set(group.loc[group["member_type"] == member_type, "member_id"])
        best, score = None, 0.0
        for truth_id, theirs in planted.items():
            j = len(mine & theirs) / len(mine | theirs) if mine | theirs else 0.0
            if j > score:
                best, score = truth_id, j
        rows.append({"ring_id": ring_id, "kind": group["kind"].iloc[0], "score": float(group["score"].max()),
                     "truth_ring": best, "jaccard": score})
    return pd.DataFrame(rows, columns=["ring_id", "kind", "score", "truth_ring", "jaccard"])
