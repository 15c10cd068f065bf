"""Cash-out and fake-volume rings: dense card x merchant blocks of unusual transactions (FRAUDAR), kept only
when their density is significant against degree-preserving randomisations of the same graph."""

from __future__ import annotations

import hashlib
import logging
import math

import networkx as nx
import numpy as np
import pandas as pd

from graph.detectors.base import BaseDetector
from graph.detectors.significance import REPORT_Q, bh_qvalues, binom_sf
from graph.kernels.rings import (block_density, column_weights, fraudar_blocks, null_densities, roundness_levels,
                                visit_null_densities)
from graph.projection import Projection

__all__ = ["RingDetector", "RING_COLUMNS", "suspicion", "suspicion_counts", "roundness", "gumbel_sf",
           "ordinary_visits", "visit_pool", "N_LEVELS"]

log = logging.getLogger("posguard.rings")

RING_COLUMNS = ["ring_id", "kind", "score", "member_type", "member_id", "p_value", "q_value", "density", "cards",
                "merchants", "terminals", "txns", "amount"]
N_LEVELS = 16  # roundness levels 0..15: an amount's cents end in up to 15 zeros
_EULER = 0.5772156649015329


def roundness(amount, near_share: float = 0.002) -> np.ndarray:
    """Roundness level of each amount: the number of trailing zeros of its cents, or of the round number it
    falls just under (within ``near_share`` of the amount: 9999.00 and 49990.00 count as 10000 and 50000).

    Missing, zero and negative amounts are level 0 (no evidence). Returns int8 in ``0..N_LEVELS-1``.

    Example
    -------
    >>> roundness(np.array([5000.0, 9999.0, 123.45, 12.0, np.nan])).tolist()
    [5, 6, 0, 2, 0]
    """
    amount = np.ascontiguousarray(amount, dtype=np.float64)
    return roundness_levels(amount, float(near_share), N_LEVELS)


def suspicion_counts(amount, ts) -> np.ndarray:
    """Evidence phase: counts of transactions per UTC hour (24) then per roundness level (``N_LEVELS``).

    Counts of separate parts of a run add up (a Spark engine sums them over partitions), and
    ``suspicion`` turns the run's totals into per-transaction weights.
    """
    ts = np.asarray(ts, dtype=np.int64)
    return _counts(roundness(amount), ts)


def _counts(level: np.ndarray, ts: np.ndarray) -> np.ndarray:
    hours = (ts[ts >= 0] // 3600) % 24
    return np.concatenate([np.bincount(hours, minlength=24), np.bincount(level, minlength=N_LEVELS)]).astype(np.int64)


def _surprisal(counts: np.ndarray, ordinal: bool) -> np.ndarray:
    """``-log P(a transaction is at least this unusual)`` per bucket, from the run's counts.

    Ordinal (roundness): at least this round, ``P(level >= L)``. Not ordinal (hour): at least this rare an
    hour, the share of transactions in hours no busier than this one.
    """
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum()
    if total <= 0:
        return np.zeros(len(counts))
    if ordinal:
        tail = np.cumsum(counts[::-1])[::-1]
    else:
        tail = np.array([counts[counts <= k].sum() for k in counts])
    return -np.log(np.clip(tail / total, 1e-300, 1.0))


def suspicion(amount, ts, counts=None) -> np.ndarray:
    """Decision phase: the suspicion of each transaction, fitted to the run's base rates.

    ``s = -log P(hour at least this quiet) - log P(amount at least this round)``, the probabilities being
    the shares of the run's transactions (``counts`` from ``suspicion_counts``, by default of these
    transactions). The hour is the UTC hour: an hour that is quiet where the run took place is rare in its
    counts whatever the time zone, and a roundness that is common in its currency weighs nothing. Under
    independence, ``exp(-s)`` is the probability of a transaction at least this unusual on both counts.

    Example
    -------
    >>> amount = np.r_[np.full(99, 12.34), 5000.0]
    >>> ts = np.r_[np.arange(99) % 12 * 3600 + 9 * 3600, 3 * 3600]
    >>> s = suspicion(amount, ts)
    >>> bool(s[-1] > 8 > s[:99].max())
    True
    """
    ts = np.asarray(ts, dtype=np.int64)
    level = roundness(amount)
    counts = _counts(level, ts) if counts is None else np.asarray(counts)
    s_hour, s_round = _surprisal(counts[:24], False), _surprisal(counts[24:], True)
    out = s_round[level]
    ok = ts >= 0
    out[ok] += s_hour[(ts[ok] // 3600) % 24]
    return out


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


def _visits_by_index(visits: pd.DataFrame, card_ids, merchant_ids):
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


def _visits_of(p: Projection, mask: np.ndarray, ucards: np.ndarray, umerch: np.ndarray):
    """The same, straight from a projection holding the whole run (its ids are sorted, so the numbering is
    the one of ``_visits_by_index``): one entry per ordinary transaction at a graph merchant."""
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


def _parts(block_edges: list[tuple[int, int, float]], min_cards: int, min_merchants: int):
    """A block's rings: its connected components, and a component that hangs on one shared node (two rings
    sharing a merchant) split there, the shared node going to each side. Nodes are ("c", i) / ("m", j)."""
    graph = nx.Graph()
    graph.add_weighted_edges_from(sorted(block_edges))
    out = []
    stack = [set(c) for c in nx.connected_components(graph)]
    while stack:
        nodes = stack.pop()
        sub = graph.subgraph(nodes)
        split = None
        for cut in sorted(nx.articulation_points(sub)):
            pieces = [set(p) for p in nx.connected_components(sub.subgraph(nodes - {cut}))]
            big = [p for p in pieces if _big(p | {cut}, min_cards, min_merchants)]
            if len(big) >= 2:
                small = set().union(*(p for p in pieces if not _big(p | {cut}, min_cards, min_merchants)))
                big = sorted(big, key=len, reverse=True)
                big[0] |= small
                split = [p | {cut} for p in big]
                break
        if split is None:
            out.append(nodes)
        else:
            stack.extend(split)
    return [(np.array(sorted(i for t, i in n if t == "c"), np.int64), np.array(sorted(i for t, i in n if t == "m"),
                                                                                  np.int64)) for n in out]


def _big(nodes, min_cards, min_merchants) -> bool:
    return (sum(t == "c" for t, _ in nodes) >= min_cards) and (sum(t == "m" for t, _ in nodes) >= min_merchants)


def _regions(p: Projection, merchants: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Region of each merchant (indices ``merchants``): its ``city`` in the merchants table when the run has
    one, else the 1-degree cell (about 100 km) of the median position of its edge transactions, else one
    region for all: cards shop where they live."""
    table = p.merchants
    if "city" in table.columns and "merchant_id" in table.columns and table["city"].notna().any():
        city = table.set_index(table["merchant_id"].astype(str))["city"].astype(str)
        city = city[~city.index.duplicated(keep="last")]
        names = city.reindex(pd.Index(p.merchant_ids[merchants].astype(str))).fillna("")
        return pd.factorize(names.to_numpy(), sort=True)[0].astype(np.int64)
    ok = mask & np.isfinite(p.txn_lat) & np.isfinite(p.txn_lon) & (p.txn_merchant >= 0)
    if not ok.any():
        return np.zeros(len(merchants), np.int64)
    pos = pd.DataFrame({"m": p.txn_merchant[ok], "lat": p.txn_lat[ok], "lon": p.txn_lon[ok]}).groupby("m").median()
    pos = pos.reindex(merchants)
    cell = np.floor(pos["lat"].to_numpy()) * 1000 + np.floor(pos["lon"].to_numpy())
    return pd.factorize(np.where(np.isfinite(cell), cell, np.inf), sort=True)[0].astype(np.int64)


def _overlaps(a: np.ndarray, b: np.ndarray) -> bool:
    """Two merchant sets sharing at least half of the merchants of each."""
    return len(np.intersect1d(a, b)) >= 0.5 * max(len(a), len(b))


def _habit_shares(habits, n_r: int, n_v: int, rows: np.ndarray, cols: np.ndarray, prior: float):
    """From the ordinary transactions ``habits`` = (rows, cols, counts) (``_visits_of``; rows ``>= n_r`` are
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


def _member_merchants(r, v, n, n_r, n_v, rows, cols, habits) -> np.ndarray:
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


def _attached_cards(r, v, n, n_r, n_v, cols, taken, habits) -> np.ndarray:
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
        Ordinary transactions per card and merchant of the graph (``_visits_of``).
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


def _merge_overlapping(found: list[tuple[int, np.ndarray, np.ndarray]]):
    """Join a part to the first earlier ring (of another block) with which it shares at least half of the
    merchants of each; compared with each ring's own merchants as first found, so rings never chain.

    Returns
    -------
    list of (rows, cols, core rows, core cols): each ring and the part that first found it
    """
    rings: list[list] = []
    for block, rows, cols in found:
        for ring in rings:
            if ring[0] != block and _overlaps(ring[2], cols):
                ring[3] = np.union1d(ring[3], rows)
                ring[4] = np.union1d(ring[4], cols)
                break
        else:
            rings.append([block, rows, cols, rows, cols])
    return [(r[3], r[4], r[1], r[2]) for r in rings]


class RingDetector(BaseDetector):
    """Rings of cards and merchants that trade among themselves in unusual ways, with their significance.

    1. **Edges fitted to the run** (``suspicion``): each transaction weighs ``s = -log P(hour at least this
       quiet) - log P(amount at least this round)``, from the run's own hour and roundness counts. The
       transactions with ``exp(-s) <= txn_alpha`` become card x merchant edges weighing ``log(1 + sum of
       their s)``: repeated pairs weigh more, but concavely, so that one card's heavy pair cannot outweigh a
       group of cards trading with the same merchants (measured: the sum let single cards' stars make the
       null as dense as the planted rings).
    2. **Blocks** (FRAUDAR, ``graph.kernels.rings``): greedy peeling with column weights ``1 / log(degree
       + c)`` (popular merchants count little, which resists camouflage) returns the densest block; its edges
       are removed and the search repeats, at most ``n_blocks`` times.
    3. **Significance**: the density ``f(S) / |S|`` (column weights of the whole graph) is compared with the
       densest block FRAUDAR finds on ``n_null`` configuration-model randomisations of the same weighted
       graph (every card keeps its edges and weights, every merchant its degree), through a Gumbel fitted
       to those maxima (``gumbel_sf``). Peeling stops at the first block that is not significant (its
       Benjamini-Hochberg q over the ``n_blocks`` planned tests above ``REPORT_Q``) unless that block is
       the rest of a ring found earlier (it shares at least half of the merchants of each: the ring's cards
       left out of the first block because their degree fell below its density); peeling then goes on,
       but a block that is not significant adds no member to any ring (its ring cards come back one by
       one in step 5, each significant).
       **Confirmation, the habit null**: a genuine community (a city's regulars of its night-time places,
       going back to the same few bars, taxis and fuel stations) is denser than any degree-preserving
       randomisation, because people go back to the same places. The candidate rings (step 4) are therefore
       also compared with randomisations where every unusual transaction keeps its merchant and suspicion and
       is drawn again onto one of that merchant's **ordinary** (not unusual) transactions, i.e. onto its
       customers in proportion to how often they come back (``ordinary_visits``, ``visit_pool``,
       ``graph.kernels.rings.visit_randomise``; a merchant without ordinary transactions draws from those of
       its region, ``_regions``). Each candidate is compared with the densest block that FRAUDAR finds on its
       own merchants in each randomisation (Gumbel tail again); its p-value is the larger of the two.
       Regulars make a merchant's unusual transactions as they make its ordinary ones, so their community
       comes back in this null; a ring's cards come to its merchants only for the ring, so it does not.
       Measured: the night-time block of 170 cards and 39 merchants of a clean 1M drop, which the
       configuration null calls critical, has q = 0.09 here, and a planted ring that a regional null missed
       (a small city, whose few merchants made the regional null dense) is found.
    4. **Rings**: each significant block is split into its connected components, and a component hanging
       on one node (two rings sharing a merchant) into its sides; a part of a later block joins an earlier
       ring only when they share at least half of the merchants of each (never transitively). Each part
       with at least ``min_cards`` cards and ``min_merchants`` merchants gets its own p-value (same null)
       and q-value (BH over all parts and planned blocks); rings with q above ``REPORT_Q`` are not
       reported. A ring larger than ``max_share`` of the graph's cards or merchants (at least ``min_cap``
       of each) is cut back to the part that first found it, and a part that large on its own is not a ring
       (logged). ``score = min(1, -log10(q) / 10)``.
    5. **Members**, each significant under both nulls: a merchant of a significant ring stays in it when
       the ring's cards make more of its unusual transactions than their share of all unusual transactions
       and their share of its ordinary ones predict (``_member_merchants``: a busy place that the ring's
       cards also go to, as everyone does, is no member; the ring's cards keep an unusual transaction at a
       member merchant); a card outside the rings joins one when more of its unusual transactions go to
       the ring's merchants than their share of all unusual transactions and its own share of ordinary
       transactions there predict (``_attached_cards``: peeling drops ring cards whose degree is below the
       density; a regular of the ring's merchants is not taken). Binomial tails, BH within ``REPORT_Q``.
       A ring that the cards attached would take over the cap keeps its significant block alone.

    Parameters
    ----------
    n_blocks : int
        Most dense blocks peeled (and planned tests of the BH family).
    c : float
        FRAUDAR's column-weight constant: a merchant of degree d weighs ``1 / log(d + c)``.
    min_cards, min_merchants : int
        Smallest ring: parts with fewer cards or merchants are not rings.
    txn_alpha : float
        A transaction becomes an edge when its hour and roundness together are at most this likely in the run.
    n_null : int
        Randomised graphs peeled for each null (configuration model and habits).
    max_share : float
        Cap of a ring: this share of the graph's cards or merchants (at least ``min_cap`` of each).
    min_cap : int
        Smallest cap, for small runs.
    seed : int
        Seed of the randomisations.

    Attributes
    ----------
    result_ : DataFrame
        ``RING_COLUMNS``, one row per member (kind ``cash_out``), by descending score.
    blocks_ : list of (row indices, col indices, density, p_value)
        The blocks tested (card and merchant indices of the projection), the last one possibly not
        significant.
    null_ : ndarray
        The densest-block densities of the configuration-model randomisations.
    visit_null_ : ndarray (candidates, n_null)
        For each candidate ring, the densest-block densities on its merchants in the habit null.

    Example
    -------
    >>> RingDetector(n_blocks=3).fit(projection).result_.head()  # doctest: +SKIP
    """

    name = "rings"
    output = "rings"

    def __init__(self, n_blocks: int = 10, c: float = 5.0, min_cards: int = 4, min_merchants: int = 2,
                 txn_alpha: float = 0.01, n_null: int = 8, max_share: float = 0.02, min_cap: int = 30,
                 seed: int = 0):
        self.n_blocks = n_blocks
        self.c = c
        self.min_cards = min_cards
        self.min_merchants = min_merchants
        self.txn_alpha = txn_alpha
        self.n_null = n_null
        self.max_share = max_share
        self.min_cap = min_cap
        self.seed = seed

    def keep(self, s: np.ndarray) -> np.ndarray:
        """The transactions unusual enough to become edges: ``exp(-s) <= txn_alpha``."""
        return np.asarray(s) >= -math.log(self.txn_alpha)

    def edges(self, p: Projection, counts=None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(card, merchant, weight, edge-transaction mask) of the suspicion graph; ``counts`` are the run's
        ``suspicion_counts`` (default: of ``p``'s transactions)."""
        return self._edges(p, counts)[:4]

    def _edges(self, p: Projection, counts=None):
        s = suspicion(p.txn_amount, p.txn_ts, counts)
        mask = self.keep(s) & (p.txn_card >= 0) & (p.txn_merchant >= 0)
        key = p.txn_card[mask].astype(np.int64) * max(p.n_merchants, 1) + p.txn_merchant[mask]
        pairs, inverse = np.unique(key, return_inverse=True)
        weight = np.log1p(np.bincount(inverse, weights=s[mask], minlength=len(pairs)))
        return pairs // max(p.n_merchants, 1), pairs % max(p.n_merchants, 1), weight, mask, s, \
            np.bincount(inverse, minlength=len(pairs)).astype(np.int64)

    def fit(self, projection: Projection, counts=None, visits: pd.DataFrame | None = None) -> "RingDetector":
        """Build the suspicion graph, peel its significant dense blocks and report the significant rings.

        ``counts``, ``visits``: the run's ``suspicion_counts`` and ``ordinary_visits`` when ``projection``
        holds only part of the run (the Spark engine passes the transactions that become edges, the counts
        over all of them and the ordinary visits of the others).
        """
        p = projection
        cards, merchants, weight, mask, s, n_txns = self._edges(p, counts)
        # compact numbering: the graph is the same whatever else the projection holds
        ucards, r = np.unique(cards, return_inverse=True)
        umerch, v = np.unique(merchants, return_inverse=True)
        r, v = r.astype(np.int64), v.astype(np.int64)
        n_r, n_v = len(ucards), len(umerch)
        self.blocks_, self.null_, self.visit_null_ = [], np.zeros(0), np.zeros((0, int(self.n_null)))
        parts = []
        if len(r):
            self.null_ = null_densities(r, v, weight, n_r, n_v, int(self.n_null), float(self.c), int(self.seed),
                                        log_weights=True)
            cw = column_weights(v, np.ones(len(v), np.bool_), n_v, float(self.c))
            cweight = weight * cw[v]

            def density(rows, cols):
                in_r, in_v = np.zeros(n_r, np.bool_), np.zeros(n_v, np.bool_)
                in_r[rows], in_v[cols] = True, True
                return block_density(r, v, cweight, in_r, in_v, len(rows) + len(cols))

            cap_r = max(int(self.min_cap), math.ceil(self.max_share * n_r))
            cap_v = max(int(self.min_cap), math.ceil(self.max_share * n_v))
            found = self._blocks(r, v, weight, n_r, n_v, density, (cap_r, cap_v))
            candidates = []
            for rows, cols, core_rows, core_cols in _merge_overlapping(found):
                if len(rows) > cap_r or len(cols) > cap_v:
                    # parts of later blocks joined past the cap: the ring as first found
                    log.info("ring of %d cards and %d merchants is over the cap (%d, %d): cut back to the part "
                             "that found it (%d, %d)", len(rows), len(cols), cap_r, cap_v, len(core_rows),
                             len(core_cols))
                    rows, cols = core_rows, core_cols
                if len(rows) < self.min_cards or len(cols) < self.min_merchants:
                    continue
                if len(rows) > cap_r or len(cols) > cap_v:
                    log.info("dense block of %d cards and %d merchants is over the ring cap (%d, %d): not a ring",
                             len(rows), len(cols), cap_r, cap_v)
                    continue
                candidates.append((rows, cols, density(rows, cols)))
            if candidates:
                # confirmation, the habit null: each merchant's unusual transactions drawn again onto its
                # ordinary customers; a candidate is compared with the densest block on its own merchants
                if visits is None:
                    vr, vc, vn, n_pool = _visits_of(p, mask, ucards, umerch)
                else:
                    vr, vc, vn, n_pool = _visits_by_index(visits, p.card_ids[ucards], p.merchant_ids[umerch])
                pool_rows, pool_lo, pool_n = visit_pool(vr, vc, vn, _regions(p, umerch, mask), n_v)
                self.visit_null_ = visit_null_densities(
                    np.searchsorted(umerch, p.txn_merchant[mask]), s[mask], pool_rows, pool_lo, pool_n, n_pool,
                    n_v, int(self.n_null), float(self.c), int(self.seed) + 1,
                    np.searchsorted(ucards, p.txn_card[mask]), within=[cols for _, cols, _ in candidates])
                dens = [d for *_, d in candidates]
                pv = np.maximum(gumbel_sf(dens, self.null_),
                                [gumbel_sf([d], null)[0] for d, null in zip(dens, self.visit_null_)])
                qv = bh_qvalues(pv, m=max(int(self.n_blocks), len(candidates)))
                taken = np.zeros(n_r, np.bool_)
                for (rows, _, _), qq in zip(candidates, qv):
                    taken[rows] |= qq <= REPORT_Q
                for (rows, cols, d), pp, qq in zip(candidates, pv, qv):
                    if qq <= REPORT_Q:
                        rows, cols = self._members(r, v, n_txns, n_r, n_v, rows, cols, (vr, vc, vn))
                        attached = _attached_cards(r, v, n_txns, n_r, n_v, cols, taken, (vr, vc, vn))
                        if len(rows) + len(attached) > cap_r:
                            log.info("ring of %d cards with the %d cards attached is over the cap (%d): its "
                                     "significant block alone", len(rows) + len(attached), len(attached), cap_r)
                        else:
                            rows = np.union1d(rows, attached)
                        taken[rows] = True
                        parts.append(self._ring(p, ucards[rows], umerch[cols], d, float(pp), float(qq), mask))
        self.result_ = self._shape(parts)
        return self

    def _members(self, r, v, n, n_r, n_v, rows, cols, habits):
        """A significant block's ring: its member merchants (``_member_merchants``) and the cards with an
        unusual transaction at one of them; the block as found when fewer than ``min_merchants`` or
        ``min_cards`` would be left."""
        kept = _member_merchants(r, v, n, n_r, n_v, rows, cols, habits)
        in_v = np.zeros(n_v, np.bool_)
        in_v[kept] = True
        kept_rows = np.intersect1d(rows, r[in_v[v]])
        if len(kept) < self.min_merchants or len(kept_rows) < self.min_cards:
            return rows, cols
        if len(kept) < len(cols):
            log.info("ring of %d cards and %d merchants: %d merchants and %d cards are members", len(rows),
                     len(cols), len(kept), len(kept_rows))
        return kept_rows, kept

    def _blocks(self, r, v, weight, n_r, n_v, density, cap):
        """Peel block after block while each is significant; their parts as (block number, rows, cols)."""
        found = []
        active = np.ones(len(r), np.bool_)
        for k in range(1, int(self.n_blocks) + 1):
            blocks = fraudar_blocks(r[active], v[active], weight[active], n_r, n_v, n_blocks=1, c=float(self.c))
            if not blocks:
                break
            rows, cols, _ = blocks[0]
            d = density(rows, cols)
            pv = float(gumbel_sf([d], self.null_)[0])
            self.blocks_.append((rows, cols, d, pv))
            significant = pv * int(self.n_blocks) / k <= REPORT_Q
            if not significant and (not found or len(rows) > cap[0] or len(cols) > cap[1]):
                break
            in_r, in_v = np.zeros(n_r, np.bool_), np.zeros(n_v, np.bool_)
            in_r[rows], in_v[cols] = True, True
            inside = in_r[r] & in_v[v]
            edges = [(("c", int(a)), ("m", int(b)), float(w)) for a, b, w in zip(r[inside & active],
                                                                                  v[inside & active],
                                                                                  weight[inside & active])]
            parts = _parts(edges, int(self.min_cards), int(self.min_merchants))
            if not significant:
                # the rest of a ring found earlier (its cards whose edges to the ring's merchants were not in
                # the first block): peeling goes on, but a part that is not significant adds no member (its
                # ring cards come back one by one, each significant, through ``_attached_cards``)
                if not any(_overlaps(cc, c0) for rr, cc in parts for b0, _, c0 in found if b0 < k):
                    break
            else:
                found.extend((k, rr, cc) for rr, cc in parts)
            active &= ~inside
            if not active.any():
                break
        return found

    def _ring(self, p: Projection, rows, cols, density, p_value, q_value, mask) -> pd.DataFrame:
        inside = mask & np.isin(p.txn_card, rows) & np.isin(p.txn_merchant, cols)
        terminals = np.unique(p.txn_terminal[inside & (p.txn_terminal >= 0)])
        card_ids, merchant_ids = p.card_ids[rows], p.merchant_ids[cols]
        terminal_ids = p.terminal_ids[terminals]
        digest = hashlib.sha256("|".join(sorted(card_ids) + sorted(merchant_ids)).encode("utf-8")).hexdigest()
        score = min(1.0, -math.log10(max(q_value, 1e-300)) / 10.0)
        members = ([("card", c) for c in card_ids] + [("merchant", m) for m in merchant_ids]
                   + [("terminal", t) for t in terminal_ids])
        return pd.DataFrame({"ring_id": f"cash_out-{digest[:12]}", "kind": "cash_out", "score": round(score, 6),
                             "member_type": [t for t, _ in members], "member_id": [m for _, m in members],
                             "p_value": p_value, "q_value": q_value, "density": density, "cards": len(rows),
                             "merchants": len(cols), "terminals": len(terminals), "txns": int(inside.sum()),
                             "amount": float(np.nansum(p.txn_amount[inside]))})

    @staticmethod
    def _shape(parts: list[pd.DataFrame]) -> pd.DataFrame:
        if not parts:
            kinds = {"score": float, "p_value": float, "q_value": float, "density": float, "amount": float,
                     "cards": np.int64, "merchants": np.int64, "terminals": np.int64, "txns": np.int64}
            return pd.DataFrame({c: pd.Series([], dtype=kinds.get(c, object)) for c in RING_COLUMNS})
        frame = pd.concat(parts, ignore_index=True)
        order = {"card": 0, "merchant": 1, "terminal": 2}
        frame = frame.assign(_t=frame["member_type"].map(order))
        frame = frame.sort_values(["score", "q_value", "ring_id", "_t", "member_id"],
                                  ascending=[False, True, True, True, True], kind="stable")
        return frame.drop(columns="_t").reset_index(drop=True)[RING_COLUMNS]
