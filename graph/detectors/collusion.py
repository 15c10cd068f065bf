"""Cash-out and fake-volume rings: dense card x merchant blocks of suspicious transactions (FRAUDAR)."""

from __future__ import annotations

import hashlib

import networkx as nx
import numpy as np
import pandas as pd

from graph.detectors.base import BaseDetector
from graph.kernels.dense import column_weights, fraudar_blocks
from graph.projection import Projection

__all__ = ["RingDetector", "RING_COLUMNS", "suspicion"]

RING_COLUMNS = ["ring_id", "kind", "score", "member_type", "member_id", "density", "cards", "merchants",
                "terminals", "txns", "amount"]


def suspicion(amount: np.ndarray, ts: np.ndarray, *, tz_offset_hours: float = 8.0, small_hours=(1, 5),
              round_unit: float = 1000.0, min_amount: float = 1000.0, near_limit: float = 0.002) -> np.ndarray:
    """Suspicion of each transaction: one point each for a small-hours local time, a round amount, and an
    amount just under a round limit (9999, 49990, ...). Returns int8 in 0..2.

    Example
    -------
    >>> suspicion(np.array([5000.0, 9999.0, 123.45]), np.array([0, 0, 0]), tz_offset_hours=0).tolist()
    [1, 1, 0]
    """
    amount = np.asarray(amount, dtype=np.float64)
    hour = ((np.asarray(ts, dtype=np.int64) + int(tz_offset_hours * 3600)) // 3600) % 24
    small = (hour >= small_hours[0]) & (hour < small_hours[1])
    big = np.isfinite(amount) & (amount >= min_amount)
    cents = np.round(np.where(big, amount, 0.0) * 100).astype(np.int64)
    unit = int(round(round_unit * 100))
    round_ = big & (cents % unit == 0)
    gap = (unit - cents % unit) % unit
    near = big & ~round_ & (gap <= near_limit * np.where(big, cents, 0))
    return (small.astype(np.int8) + (round_ | near).astype(np.int8)).astype(np.int8)


def _components(cards, merchants, rows, cols):
    """Split a block into its connected components: two rings peeled together are two rings."""
    inside = np.isin(cards, rows) & np.isin(merchants, cols)
    graph = nx.Graph()
    graph.add_edges_from(zip((("c", int(c)) for c in cards[inside]), (("m", int(m)) for m in merchants[inside])))
    return [(np.array(sorted(i for t, i in nodes if t == "c"), dtype=np.int64),
             np.array(sorted(i for t, i in nodes if t == "m"), dtype=np.int64))
            for nodes in nx.connected_components(graph)]


def _merge_sharing_merchants(found):
    """Merge components that share a merchant: a later block holding the rest of a ring's cards (their
    edges to the ring's merchants survive the first block's removal) joins that ring."""
    graph = nx.Graph()
    for i, (_, cols) in enumerate(found):
        graph.add_node(("block", i))
        graph.add_edges_from((("block", i), ("m", int(m))) for m in cols)
    merged = []
    for nodes in nx.connected_components(graph):
        members = [found[i] for t, i in nodes if t == "block"]
        rows = np.unique(np.concatenate([r for r, _ in members]))
        cols = np.unique(np.concatenate([c for _, c in members]))
        merged.append((rows, cols))
    return sorted(merged, key=lambda rc: (int(rc[0][0]) if len(rc[0]) else -1, int(rc[1][0])))


def _density(cards, merchants, weights, rows, cols) -> float:
    """FRAUDAR density ``f(S) / |S|`` of a card x merchant set (column weights of the whole graph)."""
    inside = np.isin(cards, rows) & np.isin(merchants, cols)
    return float(weights[inside].sum() / (len(rows) + len(cols)))


class RingDetector(BaseDetector):
    """Rings of cards and merchants that trade among themselves in suspicious ways.

    Transactions with any suspicion (``suspicion``: small hours, round or near-limit amounts) become
    card x merchant edges weighted by the sum of their suspicion, so repeated pairs weigh more. FRAUDAR
    (``graph.kernels.dense``) peels the graph with column weights ``1 / log(degree + c)`` — popular
    merchants that every card visits count little, which resists camouflage — and returns the densest
    block; its edges are removed and the search repeats ``n_blocks`` times. Each block is split into its
    connected components (two rings of similar density peel together), and components sharing a
    merchant are merged (the rest of a ring found by a later round). A group with at least
    ``min_cards`` cards and ``min_merchants`` merchants is a ring, scored ``1 - exp(-density /
    score_scale)`` in 0..1; its terminals are those that carried its suspicious transactions.

    Attributes
    ----------
    rings_ : DataFrame
        ``RING_COLUMNS``, one row per member (kind ``cash_out``), by descending score.
    blocks_ : list of (row indices, col indices, density)
        The raw blocks (card and merchant indices of the projection), kept or not.

    Example
    -------
    >>> RingDetector(n_blocks=3).fit(projection).rings_.head()  # doctest: +SKIP
    """

    def __init__(self, n_blocks: int = 5, c: float = 5.0, min_cards: int = 4, min_merchants: int = 2,
                 score_scale: float = 2.0, tz_offset_hours: float = 8.0, small_hours: tuple = (1, 5),
                 round_unit: float = 1000.0, min_amount: float = 1000.0, near_limit: float = 0.002):
        self.n_blocks = n_blocks
        self.c = c
        self.min_cards = min_cards
        self.min_merchants = min_merchants
        self.score_scale = score_scale
        self.tz_offset_hours = tz_offset_hours
        self.small_hours = small_hours
        self.round_unit = round_unit
        self.min_amount = min_amount
        self.near_limit = near_limit

    def edges(self, p: Projection) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(card, merchant, weight, suspicious-transaction mask) of the suspicion graph."""
        s = suspicion(p.txn_amount, p.txn_ts, tz_offset_hours=self.tz_offset_hours, small_hours=self.small_hours,
                      round_unit=self.round_unit, min_amount=self.min_amount, near_limit=self.near_limit)
        mask = (s > 0) & (p.txn_card >= 0) & (p.txn_merchant >= 0)
        key = p.txn_card[mask].astype(np.int64) * max(p.n_merchants, 1) + p.txn_merchant[mask]
        pairs, inverse = np.unique(key, return_inverse=True)
        weight = np.bincount(inverse, weights=s[mask].astype(np.float64), minlength=len(pairs))
        return pairs // max(p.n_merchants, 1), pairs % max(p.n_merchants, 1), weight, mask

    def fit(self, projection: Projection) -> "RingDetector":
        """Build the suspicion graph, find its dense blocks and keep those large enough to be rings."""
        p = projection
        cards, merchants, weight, mask = self.edges(p)
        self.blocks_ = fraudar_blocks(cards, merchants, weight, p.n_cards, max(p.n_merchants, 1),
                                      n_blocks=int(self.n_blocks), c=float(self.c))
        cw = column_weights(merchants, np.ones(len(merchants), np.bool_), max(p.n_merchants, 1), float(self.c))
        found = [(r, c) for rows, cols, _ in self.blocks_ for r, c in _components(cards, merchants, rows, cols)]
        parts = []
        for comp_rows, comp_cols in _merge_sharing_merchants(found):
            if len(comp_rows) >= self.min_cards and len(comp_cols) >= self.min_merchants:
                density = _density(cards, merchants, weight * cw[merchants], comp_rows, comp_cols)
                parts.append(self._ring(p, comp_rows, comp_cols, density, mask))
        self.rings_ = self._shape(parts)
        return self

    def _ring(self, p: Projection, rows, cols, density, mask) -> pd.DataFrame:
        inside = mask & np.isin(p.txn_card, rows) & np.isin(p.txn_merchant, cols)
        terminals = np.unique(p.txn_terminal[inside & (p.txn_terminal >= 0)])
        card_ids, merchant_ids = p.card_ids[rows], p.merchant_ids[cols]
        terminal_ids = p.terminal_ids[terminals]
        digest = hashlib.sha256("|".join(sorted(card_ids) + sorted(merchant_ids)).encode("utf-8")).hexdigest()
        score = float(1.0 - np.exp(-density / self.score_scale))
        members = ([("card", c) for c in card_ids] + [("merchant", m) for m in merchant_ids]
                   + [("terminal", t) for t in terminal_ids])
        return pd.DataFrame({"ring_id": f"cash_out-{digest[:12]}", "kind": "cash_out", "score": round(score, 6),
                             "member_type": [t for t, _ in members], "member_id": [m for _, m in members],
                             "density": density, "cards": len(rows), "merchants": len(cols),
                             "terminals": len(terminals), "txns": int(inside.sum()),
                             "amount": float(np.nansum(p.txn_amount[inside]))})

    @staticmethod
    def _shape(parts: list[pd.DataFrame]) -> pd.DataFrame:
        if not parts:
            kinds = {"score": float, "density": float, "amount": float, "cards": np.int64, "merchants": np.int64,
                     "terminals": np.int64, "txns": np.int64}
            return pd.DataFrame({c: pd.Series([], dtype=kinds.get(c, object)) for c in RING_COLUMNS})
        frame = pd.concat(parts, ignore_index=True)
        order = {"card": 0, "merchant": 1, "terminal": 2}
        frame = frame.assign(_t=frame["member_type"].map(order))
        frame = frame.sort_values(["score", "ring_id", "_t", "member_id"], ascending=[False, True, True, True],
                                  kind="stable")
        return frame.drop(columns="_t").reset_index(drop=True)[RING_COLUMNS]
