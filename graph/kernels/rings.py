"""FRAUDAR (Hooi et al., KDD 2016): camouflage-resistant dense blocks of a bipartite graph by greedy peeling."""

from __future__ import annotations

import math

import numpy as np
from numba import njit

__all__ = ["column_weights", "peel", "fraudar_blocks", "DIGITS", "block_density", "roundness_levels"]

# Priorities are compared rounded to this many decimals, so that degrees equal in exact arithmetic tie
# (and break by node number) whatever order the floating-point sums were taken in; densities must beat
# the best by a relative 1e-12 to count as higher.
DIGITS = 9


@njit(cache=True, inline="always")
def _less(keys, a, b):
    """Heap order of nodes ``a`` and ``b``: lower key first, ties by lower node number."""
    return keys[a] < keys[b] or (keys[a] == keys[b] and a < b)


@njit(cache=True)
def _sift_up(heap, pos, keys, i):
    node = heap[i]
    while i > 0:
        parent = (i - 1) >> 1
        if not _less(keys, node, heap[parent]):
            break
        heap[i] = heap[parent]
        pos[heap[i]] = i
        i = parent
    heap[i] = node
    pos[node] = i


@njit(cache=True)
def _sift_down(heap, pos, keys, i, size):
    node = heap[i]
    while True:
        child = 2 * i + 1
        if child >= size:
            break
        if child + 1 < size and _less(keys, heap[child + 1], heap[child]):
            child += 1
        if not _less(keys, heap[child], node):
            break
        heap[i] = heap[child]
        pos[heap[i]] = i
        i = child
    heap[i] = node
    pos[node] = i


@njit(cache=True)
def column_weights(cols, active, n_cols, c):
    """FRAUDAR's column weight ``1 / log(degree + c)`` of each column over the active edges."""
    degree = np.zeros(n_cols, np.float64)
    for e in range(len(cols)):
        if active[e]:
            degree[cols[e]] += 1.0
    out = np.empty(n_cols, np.float64)
    for v in range(n_cols):
        out[v] = 1.0 / math.log(degree[v] + c)
    return out


@njit(cache=True)
def peel(rows, cols, weights, active, n_rows, n_cols):
    """Greedy peeling of the active edges (weights already column-weighted).

    Nodes are rows ``0..n_rows-1`` then columns ``n_rows + v``. Every step removes the node whose removal
    lowers the total weight least (its current weighted degree rounded to ``DIGITS`` decimals; ties: lower
    node number) and records the
    density ``f(S) / |S|`` of what remains; nodes without active edges are not part of the graph.

    Returns
    -------
    in_best : bool array (n_rows + n_cols)
        The remaining set of highest density (the earliest, i.e. largest, on ties).
    best_density : float
    """
    n = n_rows + n_cols
    m = len(rows)
    # CSR of incident active edges per node
    deg = np.zeros(n + 1, np.int64)
    for e in range(m):
        if active[e]:
            deg[rows[e] + 1] += 1
            deg[n_rows + cols[e] + 1] += 1
    indptr = np.cumsum(deg)
    fill = indptr[:-1].copy()
    incident = np.empty(indptr[-1], np.int64)
    for e in range(m):
        if active[e]:
            incident[fill[rows[e]]] = e
            fill[rows[e]] += 1
            incident[fill[n_rows + cols[e]]] = e
            fill[n_rows + cols[e]] += 1
    prio = np.zeros(n, np.float64)
    alive = np.zeros(n, np.bool_)
    total = 0.0
    size = 0
    for e in range(m):
        if active[e]:
            prio[rows[e]] += weights[e]
            prio[n_rows + cols[e]] += weights[e]
            total += weights[e]
    for u in range(n):
        if indptr[u + 1] > indptr[u]:
            alive[u] = True
            size += 1
    edge_alive = active.copy()
    # An indexed binary min-heap over the alive nodes, keyed by their rounded priority: a removal lowers its
    # neighbours' keys in place (sift up) instead of pushing stale copies, so the heap never outgrows n.
    keys = np.empty(n, np.float64)
    for u in range(n):
        keys[u] = round(prio[u], DIGITS)
    heap = np.empty(size, np.int64)
    pos = np.full(n, -1, np.int64)
    fill_at = 0
    for u in range(n):
        if alive[u]:
            heap[fill_at] = u
            pos[u] = fill_at
            fill_at += 1
    for i in range(size // 2 - 1, -1, -1):
        _sift_down(heap, pos, keys, i, size)
    order = np.empty(size, np.int64)
    best_density = total / size if size > 0 else 0.0
    best_step = 0
    removed = 0
    remaining = size
    hsize = size
    while hsize > 0:
        u = heap[0]
        hsize -= 1
        if hsize > 0:
            heap[0] = heap[hsize]
            pos[heap[0]] = 0
            _sift_down(heap, pos, keys, 0, hsize)
        pos[u] = -1
        alive[u] = False
        order[removed] = u
        removed += 1
        remaining -= 1
        total -= prio[u]
        for k in range(indptr[u], indptr[u + 1]):
            e = incident[k]
            if not edge_alive[e]:
                continue
            edge_alive[e] = False
            other = n_rows + cols[e] if u == rows[e] else rows[e]
            prio[other] -= weights[e]
            keys[other] = round(prio[other], DIGITS)
            at = pos[other]
            _sift_up(heap, pos, keys, at)
            if pos[other] == at:  # a negative weight would raise the key
                _sift_down(heap, pos, keys, at, hsize)
        if remaining > 0:
            density = max(total, 0.0) / remaining
            if density > best_density * (1.0 + 1e-12) + 1e-12:
                best_density = density
                best_step = removed
    in_best = np.zeros(n, np.bool_)
    for i in range(best_step, removed):
        in_best[order[i]] = True
    return in_best, best_density


def fraudar_blocks(rows, cols, weights, n_rows: int, n_cols: int, n_blocks: int = 5, c: float = 5.0):
    """Up to ``n_blocks`` dense blocks: peel, take the densest set, drop its edges, repeat.

    Parameters
    ----------
    rows, cols : int arrays
        Edge endpoints (row and column numbers), one entry per distinct pair.
    weights : float array
        Edge suspicion weights (before the column weighting, which is recomputed for each block over the
        edges still present).
    n_rows, n_cols : int
    n_blocks : int
    c : float
        Column weight constant in ``1 / log(degree + c)`` (the paper uses 5).

    Returns
    -------
    list of (row_indices, col_indices, density)

    Example
    -------
    >>> fraudar_blocks(np.array([0, 0, 1, 1]), np.array([0, 1, 0, 1]), np.ones(4), 2, 2, n_blocks=1)[0][:2]
    (array([0, 1]), array([0, 1]))
    """
    rows = np.ascontiguousarray(rows, dtype=np.int64)
    cols = np.ascontiguousarray(cols, dtype=np.int64)
    weights = np.ascontiguousarray(weights, dtype=np.float64)
    if not (len(rows) == len(cols) == len(weights)):
        raise ValueError("rows, cols and weights must have one entry per edge")
    if len(rows) and (rows.min() < 0 or rows.max() >= n_rows or cols.min() < 0 or cols.max() >= n_cols):
        raise ValueError("edge endpoints out of range")
    active = np.ones(len(rows), np.bool_)
    blocks = []
    for _ in range(n_blocks):
        if not active.any():
            break
        cw = column_weights(cols, active, n_cols, float(c))
        in_best, density = peel(rows, cols, weights * cw[cols], active, n_rows, n_cols)
        block_rows = np.flatnonzero(in_best[:n_rows])
        block_cols = np.flatnonzero(in_best[n_rows:])
        if not len(block_rows) or not len(block_cols):
            break
        blocks.append((block_rows, block_cols, float(density)))
        active &= ~(in_best[rows] & in_best[n_rows + cols])
    return blocks


@njit(cache=True)
def roundness_levels(amount, near_share, n_levels):
    """Roundness level of each amount (see ``graph.detectors.rings_suspicion.roundness``): the largest ``k <
    n_levels`` such that the cents are a multiple of ``10^k`` or (``k >= 2``) fall short of one by at most
    ``near_share`` of the amount; 0 for missing, non-positive or huge amounts."""
    out = np.zeros(len(amount), np.int8)
    for i in range(len(amount)):
        a = amount[i]
        if not (a > 0.0 and a < 1e13):  # also false for NaN
            continue
        cents = np.int64(round(a * 100.0))
        if cents <= 0:
            continue
        unit = np.int64(1)
        for k in range(1, n_levels):
            unit *= 10
            rest = cents % unit
            if rest == 0 or (k >= 2 and unit - rest <= near_share * cents):
                out[i] = k
    return out


@njit(cache=True)
def block_density(rows, cols, weights, in_rows, in_cols, n_nodes):
    """FRAUDAR density ``f(S) / |S|`` of the set ``S`` marked by the boolean arrays ``in_rows``, ``in_cols``
    (weights already column-weighted); ``n_nodes`` is ``|S|``."""
    total = 0.0
    for e in range(len(rows)):
        if in_rows[rows[e]] and in_cols[cols[e]]:
            total += weights[e]
    return total / n_nodes if n_nodes > 0 else 0.0
