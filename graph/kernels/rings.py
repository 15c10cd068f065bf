"""FRAUDAR (Hooi et al., KDD 2016): camouflage-resistant dense blocks of a bipartite graph by greedy peeling."""

from __future__ import annotations

import math

import numpy as np
from numba import njit

__all__ = ["column_weights", "peel", "fraudar_blocks", "DIGITS", "block_density",
           "configuration_randomise", "null_densities", "roundness_levels", "visit_randomise",
           "visit_null_densities"]

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


def _merge(rows, drawn, weights, n_cols, log_weights):
    """Merge duplicate (row, col) pairs: add their weights, or, for ``log_weights`` (``log(1 + x)`` of
    additive amounts), add the amounts."""
    n = max(int(n_cols), 1)
    key, inverse = np.unique(rows * n + drawn, return_inverse=True)
    if log_weights:
        merged = np.log1p(np.bincount(inverse, weights=np.expm1(weights), minlength=len(key)))
    else:
        merged = np.bincount(inverse, weights=weights, minlength=len(key))
    return key // n, key % n, merged


def configuration_randomise(rows, cols, weights, n_cols: int, seed: int, strata=None, log_weights: bool = False):
    """One degree-preserving randomisation of a weighted bipartite graph (configuration model).

    The column ends of the edges are shuffled (``numpy.random.default_rng(seed)``): every row keeps its edges
    and their weights, every column keeps its number of edge ends. Two edges that land on the same pair are
    merged and their weights added (``log_weights``: the amounts behind ``log(1 + amount)`` weights), so a
    randomised graph is never sparser than the original (a conservative null for density). With ``strata``
    (an int per edge), column ends are shuffled only among edges of the same stratum (e.g. region).

    Returns
    -------
    rows, cols, weights : arrays of the randomised graph (distinct pairs, sorted by row then column)

    Example
    -------
    >>> r, c, w = configuration_randomise(np.array([0, 1]), np.array([0, 1]), np.array([1.0, 2.0]), 2, 0)
    >>> float(w.sum())
    3.0
    """
    rows = np.asarray(rows, dtype=np.int64)
    cols = np.asarray(cols, dtype=np.int64)
    weights = np.asarray(weights, dtype=np.float64)
    rng = np.random.default_rng(seed)
    if strata is None:
        shuffled = cols[rng.permutation(len(cols))]
    else:
        shuffled = cols.copy()
        order = np.argsort(strata, kind="stable")
        bounds = np.flatnonzero(np.diff(np.asarray(strata)[order])) + 1
        for part in np.split(order, bounds):
            shuffled[part] = cols[part[rng.permutation(len(part))]]
    return _merge(rows, shuffled, weights, n_cols, log_weights)


def null_densities(rows, cols, weights, n_rows: int, n_cols: int, n_null: int, c: float = 5.0, seed: int = 0,
                   strata=None, log_weights: bool = False):
    """Density of FRAUDAR's first (densest) block on ``n_null`` configuration-model randomisations.

    The null distribution of "the densest block anywhere in a graph with these degrees and weights", for
    the significance of blocks peeled from the real graph; randomisation ``i`` uses seed ``(seed, i)``
    (``configuration_randomise``).

    Returns
    -------
    ndarray of float, one density per randomisation

    Example
    -------
    >>> null_densities(np.array([0, 1]), np.array([0, 1]), np.ones(2), 2, 2, n_null=2).round(3).tolist()
    [0.279, 0.279]
    """
    out = np.zeros(int(n_null), dtype=np.float64)
    for i in range(int(n_null)):
        sub_seed = int(np.random.SeedSequence([int(seed), i]).generate_state(1)[0])
        r, v, w = configuration_randomise(rows, cols, weights, n_cols, sub_seed, strata, log_weights)
        if not len(r):
            continue
        active = np.ones(len(r), np.bool_)
        cw = column_weights(v, active, int(n_cols), float(c))
        _, out[i] = peel(r, v, w * cw[v], active, int(n_rows), int(n_cols))
    return out


def visit_randomise(cols, weights, pool_rows, pool_lo, pool_n, n_cols: int, seed: int, rows=None):
    """One randomisation of the unusual transactions over the ordinary visits of their columns.

    Unusual transaction ``j`` (column ``cols[j]``, weight ``weights[j]``, e.g. its suspicion) keeps its
    column and weight and draws its row uniformly, with replacement, among the ordinary transactions of its
    column: the rows ``pool_rows[pool_lo[c]:pool_lo[c] + pool_n[c]]`` (one entry per ordinary transaction,
    so a row that comes back often is drawn often). The null of "which of a place's customers make its
    unusual transactions does not depend on who they are": each column keeps its unusual transactions and
    their weights, each row's chance follows its habit of going there. A column with ``pool_n == 0`` keeps
    its rows (``rows``, required then). Transactions landing on the same pair are merged, as the real graph's
    edges are: weight ``log(1 + sum of their weights)``.

    Returns
    -------
    rows, cols, weights : the randomised edges (distinct pairs, sorted by row then column)

    Example
    -------
    >>> r, c, w = visit_randomise(np.array([0, 0]), np.array([1.0, 2.0]), np.array([7, 7]), np.array([0]),
    ...                           np.array([2]), 1, 0)
    >>> r.tolist(), c.tolist(), round(float(w[0]), 6) == round(math.log(4.0), 6)
    ([7], [0], True)
    """
    cols = np.asarray(cols, dtype=np.int64)
    weights = np.asarray(weights, dtype=np.float64)
    pool_rows = np.asarray(pool_rows, dtype=np.int64)
    lo, n = np.asarray(pool_lo, dtype=np.int64)[cols], np.asarray(pool_n, dtype=np.int64)[cols]
    rng = np.random.default_rng(seed)
    at = lo + np.floor(rng.random(len(cols)) * n).astype(np.int64)
    has = n > 0
    drawn = np.empty(len(cols), np.int64)
    drawn[has] = pool_rows[at[has]]
    if not has.all():
        drawn[~has] = np.asarray(rows, dtype=np.int64)[~has]
    return _merge(drawn, cols, np.log1p(weights), n_cols, True)


def visit_null_densities(cols, weights, pool_rows, pool_lo, pool_n, n_rows: int, n_cols: int, n_null: int,
                         c: float = 5.0, seed: int = 0, rows=None, within=None):
    """Density of FRAUDAR's first block on ``n_null`` randomisations by ``visit_randomise`` (seed ``(seed,
    i)``): the densest block that the habits of going back to the same places give by themselves.

    With ``within`` (a list of column-index arrays), the densest block among the edges of each of those
    column sets, column weights still those of the whole randomised graph: the null of a block found on
    these columns (merchants), the cards being drawn again. One draw serves every set.

    Returns
    -------
    ndarray (n_null,), or (len(within), n_null) with ``within``

    Example
    -------
    >>> visit_null_densities(np.array([0, 1]), np.ones(2), np.array([0, 1]), np.array([0, 1]),
    ...                      np.array([1, 1]), 2, 2, n_null=1).round(3).tolist()
    [0.193]
    """
    sets = [np.arange(int(n_cols))] if within is None else [np.asarray(w, np.int64) for w in within]
    out = np.zeros((len(sets), int(n_null)), dtype=np.float64)
    for i in range(int(n_null)):
        sub_seed = int(np.random.SeedSequence([int(seed), i]).generate_state(1)[0])
        r, v, w = visit_randomise(cols, weights, pool_rows, pool_lo, pool_n, n_cols, sub_seed, rows)
        if not len(r):
            continue
        cw = column_weights(v, np.ones(len(r), np.bool_), int(n_cols), float(c))
        cweight = w * cw[v]
        for k, cols_k in enumerate(sets):
            member = np.zeros(int(n_cols), np.bool_)
            member[cols_k] = True
            active = member[v]
            if active.any():
                _, out[k, i] = peel(r, v, cweight, active, int(n_rows), int(n_cols))
    return out[0] if within is None else out

