"""Collusion rings, the nulls: the maximum density of randomised graphs (``gumbel_sf``), the ordinary visits
behind the habit null (``ordinary_visits``, ``visit_pool``), and which merchants and cards of a significant
block are members (``member_merchants``, ``attached_cards``: each tested against the run and its own habits)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from graph.detectors.significance import REPORT_Q, bh_qvalues, binom_sf
from graph.projection import Projection

__all__ = ["attached_cards", "gumbel_sf", "member_merchants", "ordinary_visits", "visit_pool", "visits_by_index",
           "visits_of"]

_EULER = 0.5772156649015329


def gumbel_sf(x, null) -> np.ndarray:
    """P(M >= x) for the maximum M whose draws are ``null``, from a Gumbel fitted by moments.

    The null's sample gives p-values below ``1 / (len(null) + 1)`` through the fitted tail; at or below the
    largest null draw, the empirical share ``(1 + #{null >= x}) / (len(null) + 1)`` is used when larger.

    Example
    -------
    >>> bool(gumbel_sf([10.0], [1.0, 1.2, 0.9, 1.1])[0] < 1e-6)
    True
    """
    x = np.atleast_1d(np.asarray(x, dtype=np.float64))
    null = np.asarray(null, dtype=np.float64)
    if not len(null):
        return np.ones(len(x))
    mean, sd = float(null.mean()), float(null.std(ddof=1)) if len(null) > 1 else 0.0
    beta = max(sd * math.sqrt(6) / math.pi, 1e-3 * abs(mean), 1e-12)
    mu = mean - _EULER * beta
    z = np.clip((x - mu) / beta, -50, 700)
    p = -np.expm1(-np.exp(-z))
    empirical = (1 + (null[None, :] >= x[:, None]).sum(axis=1)) / (len(null) + 1)
    p = np.where(x <= null.max(), np.maximum(p, empirical), p)
    return np.clip(p, 0.0, 1.0)


def ordinary_visits(card_ids, merchant_ids) -> pd.DataFrame:
    """Evidence phase of the visit null: the number ``n`` of ordinary transactions (those that are not edges)
    per ``card_token`` and ``merchant_id``, from their ids (missing ones left out). Counts of separate parts
    of a run add up (a Spark engine sums them over partitions)."""
    frame = pd.DataFrame({"card_token": np.asarray(card_ids, object), "merchant_id": np.asarray(merchant_ids, object)})
    frame = frame.dropna()
    return frame.groupby(["card_token", "merchant_id"], sort=True).size().rename("n").reset_index()


def visit_pool(rows, cols, counts, regions, n_cols: int):
    """The ordinary visits (card ``rows``, merchant ``cols``, ``counts`` transactions) as ``visit_randomise``'s
    pool: one entry per ordinary transaction, sorted by region (``regions`` per merchant), merchant and card.

    A merchant without ordinary transactions draws from those of its region, and a region without any from
    all of them.

    Returns
    -------
    pool_rows, pool_lo, pool_n : int arrays (one entry per ordinary transaction; per merchant)
    """
    rows, cols = np.asarray(rows, np.int64), np.asarray(cols, np.int64)
    counts, regions = np.asarray(counts, np.int64), np.asarray(regions, np.int64)
    order = np.lexsort((rows, cols, regions[cols]))
    pool_rows = np.repeat(rows[order], counts[order])
    pool_n = np.bincount(cols, weights=counts, minlength=n_cols).astype(np.int64)
    # merchants sorted by region: their pools, then each region's, are contiguous
    by_region = np.lexsort((np.arange(n_cols), regions))
    pool_lo = np.zeros(n_cols, np.int64)
    pool_lo[by_region] = np.cumsum(pool_n[by_region]) - pool_n[by_region]
    n_regions = int(regions.max()) + 1 if n_cols else 0
    region_n = np.bincount(regions, weights=pool_n, minlength=n_regions).astype(np.int64)
    region_lo = np.full(n_regions, len(pool_rows), np.int64)
    np.minimum.at(region_lo, regions, pool_lo)
    empty = pool_n == 0
    pool_lo[empty], pool_n[empty] = region_lo[regions[empty]], region_n[regions[empty]]
    empty = pool_n == 0
    pool_lo[empty], pool_n[empty] = 0, len(pool_rows)
    return pool_rows, pool_lo, pool_n


def visits_by_index(visits: pd.DataFrame, card_ids, merchant_ids):
    """``ordinary_visits`` numbered as the graph: merchants by position in ``merchant_ids`` (others left out),
    cards by position in ``card_ids`` (sorted), then the other cards by sorted id. Returns rows, cols,
    counts and the number of cards."""
    col = pd.Index(np.asarray(merchant_ids).astype(str)).get_indexer(visits["merchant_id"].astype(str))
    keep = col >= 0
    tokens = visits["card_token"].astype(str).to_numpy()[keep]
    known = pd.Index(np.asarray(card_ids).astype(str))
    row = known.get_indexer(tokens)
    others = pd.Index(np.unique(tokens[row < 0]))
    row = np.where(row >= 0, row, len(known) + others.get_indexer(tokens))
    return row.astype(np.int64), col[keep].astype(np.int64), visits["n"].to_numpy(np.int64)[keep], \
        len(known) + len(others)


def visits_of(p: Projection, mask: np.ndarray, ucards: np.ndarray, umerch: np.ndarray):
    """The same, straight from a projection holding the whole run (its ids are sorted, so the numbering is
    the one of ``visits_by_index``): one entry per ordinary transaction at a graph merchant."""
    col_of = np.full(p.n_merchants, -1, np.int64)
    col_of[umerch] = np.arange(len(umerch))
    ok = ~mask & (p.txn_card >= 0) & (p.txn_merchant >= 0)
    ok[ok] = col_of[p.txn_merchant[ok]] >= 0
    cards = p.txn_card[ok]
    in_graph = np.zeros(p.n_cards, np.bool_)
    in_graph[ucards] = True
    others = np.unique(cards[~in_graph[cards]])
    row_of = np.full(p.n_cards, -1, np.int64)
    row_of[ucards] = np.arange(len(ucards))
    row_of[others] = len(ucards) + np.arange(len(others))
    return row_of[cards], col_of[p.txn_merchant[ok]], np.ones(int(ok.sum()), np.int64), len(ucards) + len(others)


def _habit_shares(habits, n_r: int, n_v: int, rows: np.ndarray, cols: np.ndarray, prior: float):
    """From the ordinary transactions ``habits`` = (rows, cols, counts) (``visits_of``; rows ``>= n_r`` are
    cards without edges): each card's share of its ordinary transactions made at the merchants ``cols``, and
    each merchant's share of its ordinary transactions made by the cards ``rows``, each with one more
    transaction counted at the share ``prior`` (a place seen once is not known to be a habit; ``prior``
    without any)."""
    hr, hc, hn = habits
    hn = np.asarray(hn, np.float64)
    in_v, in_r = np.zeros(n_v, np.bool_), np.zeros(max(int(hr.max()) + 1 if len(hr) else 0, n_r), np.bool_)
    in_v[cols], in_r[rows] = True, True
    known = hr < n_r
    card_there = np.bincount(hr[known], weights=(hn * in_v[hc])[known], minlength=n_r)
    card_all = np.bincount(hr[known], weights=hn[known], minlength=n_r)
    merchant_by = np.bincount(hc, weights=hn * in_r[hr], minlength=n_v)
    merchant_all = np.bincount(hc, weights=hn, minlength=n_v)
    return (card_there + prior) / (card_all + 1.0), (merchant_by + prior) / (merchant_all + 1.0)


def member_merchants(r, v, n, n_r, n_v, rows, cols, habits) -> np.ndarray:
    """The merchants of a block that are members of its ring: those whose unusual transactions the ring's
    cards make more often than chance and their customers' habits allow.

    Merchant ``m`` has ``U`` unusual transactions (``n`` per edge ``r``, ``v``), ``u`` of them by the cards
    ``rows``; ``p = P(Binomial(U, f) >= u)``, ``f`` being the larger of the cards' share of all unusual
    transactions (the run's null) and their share of ``m``'s ordinary transactions (``_habit_shares``; the
    habit null: a busy place that the ring's cards also go to, ordinarily, gets their unusual transactions
    as it gets their ordinary ones). A member has BH q (over ``cols``) within ``REPORT_Q``.
    """
    in_r = np.zeros(n_r, np.bool_)
    in_r[rows] = True
    by = in_r[r]
    share = n[by].sum() / max(n.sum(), 1)
    u = np.bincount(v[by], weights=n[by], minlength=n_v)[cols].astype(np.int64)
    total = np.bincount(v, weights=n, minlength=n_v)[cols].astype(np.int64)
    own = _habit_shares(habits, n_r, n_v, rows, cols, share)[1][cols]
    q = bh_qvalues(binom_sf(u, total, np.maximum(share, own)))
    return cols[q <= REPORT_Q]


def attached_cards(r, v, n, n_r, n_v, cols, taken, habits) -> np.ndarray:
    """Cards outside the ring whose unusual transactions go to its merchants more often than chance and
    their own habits allow.

    A card with ``k`` unusual transactions (``n`` per edge ``r``, ``v``), ``j`` of them at the merchants
    ``cols``, has ``p = P(Binomial(k, f) >= j)``, ``f`` being the larger of the share of all unusual
    transactions that these merchants hold (the run's null) and the card's own share of ordinary
    transactions there (``_habit_shares``; the habit null: a regular of these places makes unusual
    transactions there as it makes ordinary ones). The candidates are the cards with at least one unusual
    transaction there, so the tail is taken given that one, ``p = P(X >= j) / P(X >= 1)`` (one transaction
    is no pattern: it gives ``p = 1``); a card is attached when its BH q over the candidates is within
    ``REPORT_Q``. Peeling leaves out ring cards whose degree falls below the block's density; this takes
    them back, one by one, and no merchant.

    Parameters
    ----------
    r, v, n : int arrays
        The edges (card and merchant numbers of the suspicion graph) and their unusual transactions.
    n_r, n_v : int
    cols : int array
        The ring's merchants.
    taken : bool array (n_r)
        Cards already in a ring: not candidates.
    habits : (rows, cols, counts)
        Ordinary transactions per card and merchant of the graph (``visits_of``).
    """
    in_v = np.zeros(n_v, np.bool_)
    in_v[cols] = True
    into = in_v[v]
    share = n[into].sum() / max(n.sum(), 1)
    j = np.bincount(r[into], weights=n[into], minlength=n_r).astype(np.int64)
    k = np.bincount(r, weights=n, minlength=n_r).astype(np.int64)
    cand = np.flatnonzero((j > 0) & ~taken)
    if not len(cand):
        return cand
    f = np.maximum(share, _habit_shares(habits, n_r, n_v, np.zeros(0, np.int64), cols, share)[0][cand])
    first = binom_sf(np.ones(len(cand), np.int64), k[cand], f)
    p = np.divide(binom_sf(j[cand], k[cand], f), first, out=np.ones(len(cand)), where=first > 0)
    q = bh_qvalues(np.minimum(p, 1.0))
    return cand[q <= REPORT_Q]
