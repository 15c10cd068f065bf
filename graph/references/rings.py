"""Slow, obviously correct FRAUDAR: recompute every node's weighted degree at every step (no heap)."""

from __future__ import annotations

import math

__all__ = ["fraudar_blocks"]


def _peel(edges, nodes):
    """edges: {(row_node, col_node): weight}; nodes: set. Returns (best set, best density)."""
    alive = set(nodes)
    live_edges = dict(edges)

    def degree(u):
        return sum(w for (a, b), w in live_edges.items() if u in (a, b))

    def density():
        return max(sum(live_edges.values()), 0.0) / len(alive)

    best, best_set = density(), set(alive)
    while len(alive) > 1:
        u = min(alive, key=lambda x: (round(degree(x), 9), x))  # equal degrees tie, lower node first
        alive.discard(u)
        live_edges = {e: w for e, w in live_edges.items() if u not in e}
        if density() > best * (1 + 1e-12) + 1e-12:
            best, best_set = density(), set(alive)
    return best_set, best


def fraudar_blocks(rows, cols, weights, n_rows, n_cols, n_blocks=5, c=5.0):
    """Same contract as graph.kernels.rings.fraudar_blocks; blocks as (sorted rows, sorted cols, density)."""
    edges = [(int(r), n_rows + int(v), float(w)) for r, v, w in zip(rows, cols, weights)]
    active = [True] * len(edges)
    blocks = []
    for _ in range(n_blocks):
        live = [e for e, a in zip(edges, active) if a]
        if not live:
            break
        degree = {}
        for _, v, _ in live:
            degree[v] = degree.get(v, 0) + 1
        weighted = {}
        for r, v, w in live:
            weighted[(r, v)] = weighted.get((r, v), 0.0) + w / math.log(degree[v] + c)
        nodes = {u for pair in weighted for u in pair}
        chosen, density = _peel(weighted, nodes)
        block_rows = sorted(u for u in chosen if u < n_rows)
        block_cols = sorted(u - n_rows for u in chosen if u >= n_rows)
        if not block_rows or not block_cols:
            break
        blocks.append((block_rows, block_cols, density))
        for i, (r, v, _) in enumerate(edges):
            if r in chosen and v in chosen:
                active[i] = False
    return blocks
