"""The explorer's merchant portfolio: volume, trend and growth against the network's, per merchant and per agent."""

from __future__ import annotations

import math
from datetime import datetime, timezone

import numpy as np
import pandas as pd

from app.query_values import iso_text
from graph.detectors.significance import REPORT_Q, bh_qvalues
from graph.kernels.tails import log_binom_sf

__all__ = ["TREND_WEEKS", "CASE_FREE", "latest_transaction", "portfolio"]

TREND_WEEKS = 12  # the portfolio's trend: weekly volume over the last 12 weeks
CYPHER = {
    # One pass over the transactions per merchant; week: of the trend (0 = oldest; null before the trend).
    "portfolio": """
MATCH (m:Merchant)
OPTIONAL MATCH (m)-[:SIGNED_BY]->(ag:Agent)
OPTIONAL MATCH (t:Terminal)-[:INSTALLED_AT {current: true}]->(m)
OPTIONAL MATCH ()-[r:TXN]->(t)
WITH m, ag, t, r, CASE WHEN r.ts >= $trend_start THEN (r.ts.epochMillis - $trend_ms) / 604800000 END AS week
WITH m, ag, count(DISTINCT t) AS terminals, count(r) AS txns, sum(r.amount) AS volume,
     sum(CASE WHEN r.ts >= $recent THEN r.amount ELSE 0 END) AS recent,
     sum(CASE WHEN r.ts >= $previous AND r.ts < $recent THEN r.amount ELSE 0 END) AS previous,
     count(CASE WHEN r.ts >= $recent THEN 1 END) AS recent_n,
     count(CASE WHEN r.ts >= $previous AND r.ts < $recent THEN 1 END) AS previous_n,
     collect(DISTINCT r.currency) AS currencies, """ + ", ".join(
        f"sum(CASE WHEN week {'>=' if w == TREND_WEEKS - 1 else '='} {w} THEN r.amount ELSE 0 END) AS w{w}"
        for w in range(TREND_WEEKS)) + """
RETURN m.merchant_id AS merchant_id, m.name AS name, m.mcc AS mcc, ag.agent_id AS agent_id, terminals, txns,
       volume, recent, previous, recent_n, previous_n, currencies,
       [""" + ", ".join(f"w{w}" for w in range(TREND_WEEKS)) + """] AS trend,
       EXISTS { (m)-[:MEMBER_OF]->(:Ring) } AS in_ring
ORDER BY volume DESC, merchant_id""",
    "latest_txn": "MATCH ()-[r:TXN]->() RETURN max(r.ts) AS latest",
}


def latest_transaction(db):
    """Time of the newest transaction (ISO text), or None: the reference date of the portfolio."""
    latest = db.read(CYPHER["latest_txn"])[0]["latest"]
    return iso_text(latest) if latest is not None else None


def _currency(codes) -> str | None:
    """The one currency of some amounts, "mixed" when there are several, None when there are none."""
    codes = {c for c in codes if isinstance(c, str) and c}
    return codes.pop() if len(codes) == 1 else ("mixed" if codes else None)


def portfolio(db, days: int = 30) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per merchant and per acquiring agent: terminals, transactions, volume (and its currency, "mixed" when
    several), the last ``days`` against the ``days`` before and the weekly volume of the last ``TREND_WEEKS``
    weeks (``trend``, oldest first), all relative to the newest transaction (``latest_transaction``).

    A merchant is flagged when it is in a ring found by the detectors or when its transactions grew faster
    than the network's (``growth_q``: ``growth_p`` is ``P(Binomial(n, s) >= k)`` for its ``k`` transactions of
    the last ``days`` among the ``n`` of the last two periods, ``s`` being the network's share of the last
    period; Benjamini-Hochberg over the merchants with transactions, flagged at q <= 0.05)."""
    latest = db.read(CYPHER["latest_txn"])[0]["latest"]
    latest = latest.to_native() if latest is not None else datetime.now(timezone.utc)
    recent = latest - pd.Timedelta(days=days)
    previous = recent - pd.Timedelta(days=days)
    trend_start = latest - pd.Timedelta(weeks=TREND_WEEKS)
    merchants = pd.DataFrame(db.read(CYPHER["portfolio"], recent=recent, previous=previous,
                                     trend_start=trend_start, trend_ms=int(trend_start.timestamp() * 1000)))
    if not len(merchants):
        return merchants, merchants
    merchants["currency"] = [_currency(codes) for codes in merchants.pop("currencies")]
    merchants["trend"] = [[round(float(v), 2) for v in trend] for trend in merchants["trend"]]
    merchants["growth"] = (merchants["recent"] - merchants["previous"]) / merchants["previous"].where(
        merchants["previous"] > 0)
    merchants["growth_q"] = _growth_q(merchants.pop("recent_n").to_numpy(np.int64),
                                      merchants.pop("previous_n").to_numpy(np.int64))
    merchants["flag"] = merchants["in_ring"] | (merchants["growth_q"] <= REPORT_Q)
    grouped = merchants.groupby("agent_id", dropna=False, sort=False)
    agents = grouped.agg(
        merchants=("merchant_id", "size"), terminals=("terminals", "sum"), txns=("txns", "sum"),
        volume=("volume", "sum"), recent=("recent", "sum"), previous=("previous", "sum"),
        flagged=("flag", "sum"), currency=("currency", _currency),
        trend=("trend", lambda t: [round(float(v), 2) for v in np.sum(np.stack(list(t)), axis=0)])).reset_index()
    return merchants, agents.sort_values("volume", ascending=False, kind="stable").reset_index(drop=True)


def _growth_q(recent: np.ndarray, previous: np.ndarray) -> np.ndarray:
    """BH q-values of each merchant's growth against the network's (see ``portfolio``; 1 without transactions)."""
    n = recent + previous
    q = np.ones(len(n))
    active = n > 0
    if active.any():
        share = recent[active].sum() / n[active].sum()
        p = [math.exp(log_binom_sf(float(k), float(m), share)) for k, m in zip(recent[active], n[active])]
        q[active] = bh_qvalues(np.asarray(p))
    return q


# Reads that case work (decisions, comments, assignments) cannot change: cached across it (app.cache).
CASE_FREE = frozenset({portfolio, latest_transaction})
