"""FRAUDAR's nulls: degree-preserving and habit randomisations of a bipartite graph, their densest blocks' densities."""

from __future__ import annotations

import numpy as np

from graph.kernels.rings import column_weights, peel

__all__ = ["configuration_randomise", "null_densities", "visit_randomise", "visit_null_densities"]


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
    >>> r.tolist(), c.tolist(), round(float(w[0]), 6) == round(float(np.log(4.0)), 6)
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
