"""Cash-out and fake-volume rings: dense card x merchant blocks of unusual transactions (FRAUDAR), kept only
when their density is significant against degree-preserving randomisations of the same graph."""

from __future__ import annotations

import hashlib
import logging
import math

import networkx as nx
import numpy as np
import pandas as pd

from graph.detectors.base import BaseDetector, to_timestamps
from graph.detectors.rings_nulls import (attached_cards, gumbel_sf, member_merchants, visit_pool, visits_by_index,
                                         visits_of)
from graph.detectors.rings_suspicion import suspicion
from graph.detectors.significance import REPORT_Q, bh_qvalues
from graph.kernels.rings import block_density, column_weights, fraudar_blocks
from graph.kernels.rings_nulls import null_densities, visit_null_densities
from graph.projection import Projection

__all__ = ["RingDetector", "RING_COLUMNS"]

log = logging.getLogger("posguard.rings")

RING_COLUMNS = ["ring_id", "kind", "score", "member_type", "member_id", "p_value", "q_value", "density", "cards",
                "merchants", "terminals", "txns", "amount", "first_seen", "last_seen"]


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
       ``graph.kernels.rings_nulls.visit_randomise``; a merchant without ordinary transactions draws from those of
       its region, ``_regions``). Each candidate is compared with the densest block that FRAUDAR finds on its
       own merchants in each of ``n_habit_null`` randomisations (Gumbel tail again); its p-value is the larger
       of the two.
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
       and their share of its ordinary ones predict (``member_merchants``: a busy place that the ring's
       cards also go to, as everyone does, is no member; the ring's cards keep an unusual transaction at a
       member merchant); a card outside the rings joins one when more of its unusual transactions go to
       the ring's merchants than their share of all unusual transactions and its own share of ordinary
       transactions there predict (``attached_cards``: peeling drops ring cards whose degree is below the
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
        Randomised graphs peeled for the configuration-model null (over the whole graph).
    n_habit_null : int
        Randomised graphs of the habit null, which confirms each candidate ring on its own merchants and
        decides the borderline ones. Both nulls' p-values come from a Gumbel fitted to their maxima; with 8
        draws each the fitted tail made blocks of genuine regulars significant: on 7 clean 1M drops of the
        second generator, each tokenized with 3 keys (21 runs, the key orders the cards), a false medium ring
        in 9 runs; with 64 and 128 draws in 3 (with 256 of each also 3: those blocks are structure the habit
        null misses, not noise).
    max_share : float
        Cap of a ring: this share of the graph's cards or merchants (at least ``min_cap`` of each).
    min_cap : int
        Smallest cap, for small runs.
    seed : int
        Seed of the randomisations.

    Attributes
    ----------
    result_ : DataFrame
        ``RING_COLUMNS``, one row per member (kind ``cash_out``), by descending score; ``first_seen`` and
        ``last_seen`` are the times of the ring's first and last transaction among its members.
    blocks_ : list of (row indices, col indices, density, p_value)
        The blocks tested (card and merchant indices of the projection), the last one possibly not
        significant.
    null_ : ndarray
        The densest-block densities of the configuration-model randomisations.
    visit_null_ : ndarray (candidates, n_habit_null)
        For each candidate ring, the densest-block densities on its merchants in the habit null.

    Example
    -------
    >>> RingDetector(n_blocks=3).fit(projection).result_.head()  # doctest: +SKIP
    """

    name = "rings"
    output = "rings"

    def __init__(self, n_blocks: int = 10, c: float = 5.0, min_cards: int = 4, min_merchants: int = 2,
                 txn_alpha: float = 0.01, n_null: int = 64, n_habit_null: int = 128, max_share: float = 0.02,
                 min_cap: int = 30, seed: int = 0):
        self.n_blocks = n_blocks
        self.c = c
        self.min_cards = min_cards
        self.min_merchants = min_merchants
        self.txn_alpha = txn_alpha
        self.n_null = n_null
        self.n_habit_null = n_habit_null
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
        self.blocks_, self.null_, self.visit_null_ = [], np.zeros(0), np.zeros((0, int(self.n_habit_null)))
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
                    vr, vc, vn, n_pool = visits_of(p, mask, ucards, umerch)
                else:
                    vr, vc, vn, n_pool = visits_by_index(visits, p.card_ids[ucards], p.merchant_ids[umerch])
                pool_rows, pool_lo, pool_n = visit_pool(vr, vc, vn, _regions(p, umerch, mask), n_v)
                self.visit_null_ = visit_null_densities(
                    np.searchsorted(umerch, p.txn_merchant[mask]), s[mask], pool_rows, pool_lo, pool_n, n_pool,
                    n_v, int(self.n_habit_null), float(self.c), int(self.seed) + 1,
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
                        attached = attached_cards(r, v, n_txns, n_r, n_v, cols, taken, (vr, vc, vn))
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
        """A significant block's ring: its member merchants (``member_merchants``) and the cards with an
        unusual transaction at one of them; the block as found when fewer than ``min_merchants`` or
        ``min_cards`` would be left."""
        kept = member_merchants(r, v, n, n_r, n_v, rows, cols, habits)
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
                # ring cards come back one by one, each significant, through ``attached_cards``)
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
                             "amount": float(np.nansum(p.txn_amount[inside])),
                             "first_seen": to_timestamps([int(p.txn_ts[inside].min())])[0],
                             "last_seen": to_timestamps([int(p.txn_ts[inside].max())])[0]})

    @staticmethod
    def _shape(parts: list[pd.DataFrame]) -> pd.DataFrame:
        if not parts:
            kinds = {"score": float, "p_value": float, "q_value": float, "density": float, "amount": float,
                     "cards": np.int64, "merchants": np.int64, "terminals": np.int64, "txns": np.int64,
                     "first_seen": "datetime64[us, UTC]", "last_seen": "datetime64[us, UTC]"}
            return pd.DataFrame({c: pd.Series([], dtype=kinds.get(c, object)) for c in RING_COLUMNS})
        frame = pd.concat(parts, ignore_index=True)
        order = {"card": 0, "merchant": 1, "terminal": 2}
        frame = frame.assign(_t=frame["member_type"].map(order))
        frame = frame.sort_values(["score", "q_value", "ring_id", "_t", "member_id"],
                                  ascending=[False, True, True, True, True], kind="stable")
        return frame.drop(columns="_t").reset_index(drop=True)[RING_COLUMNS]
