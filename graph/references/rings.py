"""Plain-Python FRAUDAR: the slow, obviously correct oracle (no heap) and the heapq twin the bench times."""

from __future__ import annotations

import heapq
import math

import numpy as np

from graph.kernels.rings import DIGITS

__all__ = ["fraudar_blocks", "fraudar_python"]


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


def fraudar_python(rows, cols, weights, n_rows: int, n_cols: int, n_blocks: int = 5, c: float = 5.0):
    """The same blocks in plain Python with ``heapq`` (the structure of the published reference code).

    The speed baseline that ``posguard bench`` compares the kernel with; the test oracle is ``fraudar_blocks``
    above, which recomputes every node's weighted degree at every step.
    """
    edges = list(zip((int(r) for r in rows), (int(v) for v in cols), (float(w) for w in weights)))
    active = [True] * len(edges)
    blocks = []
    for _ in range(n_blocks):
        if not any(active):
            break
        degree = [0] * n_cols
        for e, (_, v, _) in enumerate(edges):
            if active[e]:
                degree[v] += 1
        cw = [1.0 / math.log(d + c) for d in degree]
        incident: dict[int, list[int]] = {}
        prio: dict[int, float] = {}
        total = 0.0
        for e, (r, v, w) in enumerate(edges):
            if active[e]:
                ww = w * cw[v]
                for node in (r, n_rows + v):
                    incident.setdefault(node, []).append(e)
                    prio[node] = prio.get(node, 0.0) + ww
                total += ww
        heap = [(round(p, DIGITS), node) for node, p in prio.items()]
        heapq.heapify(heap)
        alive = set(prio)
        edge_alive = set(e for e in range(len(edges)) if active[e])
        order, best, best_step, remaining = [], total / len(alive), 0, len(alive)
        while heap:
            key, u = heapq.heappop(heap)
            if u not in alive or key != round(prio[u], DIGITS):
                continue
            alive.discard(u)
            order.append(u)
            remaining -= 1
            total -= prio[u]
            for e in incident[u]:
                if e in edge_alive:
                    edge_alive.discard(e)
                    r, v, w = edges[e]
                    other = n_rows + v if u == r else r
                    prio[other] -= w * cw[v]
                    heapq.heappush(heap, (round(prio[other], DIGITS), other))
            if remaining and max(total, 0.0) / remaining > best * (1.0 + 1e-12) + 1e-12:
                best, best_step = max(total, 0.0) / remaining, len(order)
        chosen = set(order[best_step:])
        block_rows = np.array(sorted(u for u in chosen if u < n_rows), dtype=np.int64)
        block_cols = np.array(sorted(u - n_rows for u in chosen if u >= n_rows), dtype=np.int64)
        if not len(block_rows) or not len(block_cols):
            break
        blocks.append((block_rows, block_cols, float(best)))
        for e, (r, v, _) in enumerate(edges):
            if r in chosen and n_rows + v in chosen:
                active[e] = False
    return blocks
