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


def _attached_cards(r, v, n_r, n_v, cols, taken) -> np.ndarray:
    """Cards outside the ring whose edges go to its merchants more than chance allows.

    A card with ``k`` edges of which ``j >= 2`` reach the ring's merchants (one shop is no pattern: cards
    shop near home), these holding a share ``f`` of all edge ends, has ``p = P(Binomial(k, f) >= j)``; it is
    attached when its BH q (over the cards touching the ring) is within ``REPORT_Q``. Peeling leaves out
    ring cards whose degree falls below the block's density; this takes them back, and no merchant.
    """
    in_v = np.zeros(n_v, np.bool_)
    in_v[cols] = True
    into = in_v[v]
    share = into.sum() / max(len(v), 1)
    j = np.bincount(r[into], minlength=n_r)
    k = np.bincount(r, minlength=n_r)
    cand = np.flatnonzero((j > 1) & ~taken)
    if not len(cand):
        return cand
    q = bh_qvalues(binom_sf(j[cand], k[cand], np.full(len(cand), share)))
    return cand[q <= REPORT_Q]


def _merge_overlapping(found: list[tuple[int, np.ndarray, np.ndarray]]):
    """Join a part to the first earlier ring (of another block) with which it shares at least half of the
    merchants of each; compared with each ring's own merchants as first found, so rings never chain."""
    rings: list[list] = []
    for block, rows, cols in found:
        for ring in rings:
            if ring[0] != block and _overlaps(ring[2], cols):
                ring[1] = np.union1d(ring[1], rows)
                ring[3] = np.union1d(ring[3], cols)
                break
        else:
            rings.append([block, rows, cols, cols])
    return [(r[1], r[3]) for r in rings]


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
       left out of the first block because their degree fell below its density), which joins that ring.
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
       reported. A part larger than ``max_share`` of the graph's cards or merchants (at least
       ``min_cap`` of each) is not a ring (logged). ``score = min(1, -log10(q) / 10)``.
    5. **Left-out cards**: a card outside the reported rings whose edges reach a ring's merchants more
       often than their share of all edges allows (binomial tail, BH within ``REPORT_Q``;
       ``_attached_cards``) joins that ring: peeling drops ring cards whose degree is below the density.

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
        return pairs // max(p.n_merchants, 1), pairs % max(p.n_merchants, 1), weight, mask, s

    def fit(self, projection: Projection, counts=None, visits: pd.DataFrame | None = None) -> "RingDetector":
        """Build the suspicion graph, peel its significant dense blocks and report the significant rings.

        ``counts``, ``visits``: the run's ``suspicion_counts`` and ``ordinary_visits`` when ``projection``
        holds only part of the run (the Spark engine passes the transactions that become edges, the counts
        over all of them and the ordinary visits of the others).
        """
        p = projection
        cards, merchants, weight, mask, s = self._edges(p, counts)
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
            for rows, cols in _merge_overlapping(found):
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
                        rows = np.union1d(rows, _attached_cards(r, v, n_r, n_v, cols, taken))
                        taken[rows] = True
                        if len(rows) > cap_r:
                            log.info("ring of %d cards with the cards attached is over the cap (%d): not a ring",
                                     len(rows), cap_r)
                            continue
                        parts.append(self._ring(p, ucards[rows], umerch[cols], d, float(pp), float(qq), mask))
        self.result_ = self._shape(parts)
        return self

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
                # not significant on its own: only the rest of a ring found earlier (its cards whose edges
                # to the ring's merchants were not in the first block) is kept, and peeling goes on
                rest = [(rr, cc) for rr, cc in parts if any(_overlaps(cc, c0) for b0, _, c0 in found if b0 < k)]
                if not rest:
                    break
                parts = rest
            for rr, cc in parts:
                found.append((k, rr, cc))
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
