"""FRAUDAR kernel against a plain-Python reference and its heapq twin; camouflage resistance."""

from __future__ import annotations

import numpy as np
import pytest

from graph.kernels.rings import column_weights, fraudar_blocks, roundness_levels
from graph.kernels.rings_nulls import (configuration_randomise, null_densities, visit_null_densities,
                                       visit_randomise)
from graph.references import rings as reference


def _graph(seed, n_rows=40, n_cols=12, n_edges=60, block=(8, 3), camouflage=0, popular=2):
    """Random sparse edges, a complete planted block, and camouflage edges from block rows to popular columns."""
    rng = np.random.default_rng(seed)
    rows = list(rng.integers(0, n_rows, n_edges))
    cols = list(rng.integers(0, n_cols, n_edges))
    block_rows = list(range(block[0]))
    block_cols = list(range(n_cols - block[1], n_cols))
    for r in block_rows:
        for v in block_cols:
            rows.append(r), cols.append(v)
        for v in rng.choice(popular, size=min(camouflage, popular), replace=False):
            rows.append(r), cols.append(int(v))
    for r in range(block[0], n_rows):  # popular columns: every ordinary row visits one
        rows.append(r), cols.append(int(rng.integers(0, popular)))
    pairs = np.unique(np.stack([rows, cols], axis=1), axis=0)
    weights = 1.0 + rng.integers(0, 3, len(pairs))
    return pairs[:, 0], pairs[:, 1], weights.astype(float), n_rows, n_cols, block_rows, block_cols


CASES = {
    "empty": (np.zeros(0, int), np.zeros(0, int), np.zeros(0), 3, 3),
    "one_edge": (np.array([0]), np.array([0]), np.array([1.0]), 1, 1),
    "ties": (np.array([0, 0, 1, 1, 2, 2]), np.array([0, 1, 0, 1, 2, 3]), np.ones(6), 3, 4),
    "star": (np.arange(6), np.zeros(6, int), np.ones(6), 6, 1),
    "two_equal_blocks": (np.array([0, 0, 1, 1, 2, 2, 3, 3]), np.array([0, 1, 0, 1, 2, 3, 2, 3]), np.ones(8), 4, 4),
    "isolated_row": (np.array([0, 1]), np.array([0, 0]), np.array([2.0, 1.0]), 5, 2),
}
for seed in range(4):
    CASES[f"random_{seed}"] = _graph(seed)[:5]
CASES["giant_component"] = _graph(9, n_rows=30, n_cols=6, n_edges=150, block=(4, 2))[:5]


def _as_lists(blocks):
    return [(list(map(int, r)), list(map(int, c)), d) for r, c, d in blocks]


@pytest.mark.parametrize("case", sorted(CASES))
def test_kernel_equals_reference(case):
    rows, cols, weights, n_rows, n_cols = CASES[case]
    got = _as_lists(fraudar_blocks(rows, cols, weights, n_rows, n_cols, n_blocks=3))
    want = reference.fraudar_blocks(rows, cols, weights, n_rows, n_cols, n_blocks=3)
    assert [(r, c) for r, c, _ in got] == [(r, c) for r, c, _ in want]
    assert [d for *_, d in got] == pytest.approx([d for *_, d in want], rel=1e-9)
    assert _as_lists(reference.fraudar_python(rows, cols, weights, n_rows, n_cols, n_blocks=3)) == got


@pytest.mark.parametrize("seed", range(3))
def test_planted_block_found_despite_camouflage(seed):
    plain = _graph(seed, n_rows=200, n_cols=30, n_edges=150, block=(10, 3))
    disguised = _graph(seed, n_rows=200, n_cols=30, n_edges=150, block=(10, 3), camouflage=2)
    for rows, cols, weights, n_rows, n_cols, block_rows, block_cols in (plain, disguised):
        top = fraudar_blocks(rows, cols, np.ones(len(rows)), n_rows, n_cols, n_blocks=1)[0]
        assert set(block_rows) <= set(top[0].tolist()) and set(block_cols) <= set(top[1].tolist())
        assert len(top[0]) <= len(block_rows) + 2


def test_rejects_bad_input():
    with pytest.raises(ValueError, match="one entry per edge"):
        fraudar_blocks(np.array([0]), np.array([0, 1]), np.ones(1), 1, 2)
    with pytest.raises(ValueError, match="out of range"):
        fraudar_blocks(np.array([3]), np.array([0]), np.ones(1), 2, 1)


def test_configuration_randomise_keeps_degrees_and_weights():
    rows, cols, weights, n_rows, n_cols, *_ = _graph(1, n_rows=200, n_cols=30, n_edges=400)
    r, c, w = configuration_randomise(rows, cols, weights, n_cols, seed=7)
    assert w.sum() == pytest.approx(weights.sum())
    # every row keeps its total weight; duplicates merged, so degrees can only shrink
    assert np.allclose(np.bincount(r, w, n_rows), np.bincount(rows, weights, n_rows))
    assert (np.bincount(c, minlength=n_cols) <= np.bincount(cols, minlength=n_cols)).all()
    assert len(np.unique(r * n_cols + c)) == len(r)
    # seeded: the same seed gives the same graph, another seed another one
    again = configuration_randomise(rows, cols, weights, n_cols, seed=7)
    other = configuration_randomise(rows, cols, weights, n_cols, seed=8)
    assert all(np.array_equal(a, b) for a, b in zip((r, c, w), again))
    assert not np.array_equal(c, other[1])


def test_null_densities_are_first_block_densities_of_the_randomised_graphs():
    rows, cols, weights, n_rows, n_cols, *_ = _graph(2, n_rows=300, n_cols=40, n_edges=300, block=(15, 4))
    null = null_densities(rows, cols, weights, n_rows, n_cols, n_null=3, seed=5)
    for i, d in enumerate(null):
        sub_seed = int(np.random.SeedSequence([5, i]).generate_state(1)[0])
        r, c, w = configuration_randomise(rows, cols, weights, n_cols, sub_seed)
        want = reference.fraudar_blocks(r, c, w, n_rows, n_cols, n_blocks=1)[0][2]
        assert d == pytest.approx(want, rel=1e-9)
    # the planted block is far denser than any randomisation of the same degrees finds
    top = fraudar_blocks(rows, cols, weights, n_rows, n_cols, n_blocks=1)[0][2]
    assert top > null.max()


def _roundness_reference(amount, near_share=0.002, n_levels=16):
    """Plain Python: trailing zeros of the cents, or of the round number just above within near_share."""
    if not (amount == amount) or amount <= 0 or amount >= 1e13:
        return 0
    cents, level = int(round(amount * 100)), 0
    if cents <= 0:  # less than half a cent
        return 0
    for k in range(1, n_levels):
        rest = cents % 10 ** k
        if rest == 0 or (k >= 2 and 10 ** k - rest <= near_share * cents):
            level = k
    return level


def test_roundness_kernel_equals_reference():
    rng = np.random.default_rng(0)
    amount = np.concatenate([np.round(np.exp(rng.normal(4, 2, 3000)), 2), rng.integers(1, 100, 500) * 1000.0,
                             rng.integers(1, 100, 500) * 1000.0 - 1, [np.nan, -5.0, 0.0, 1e14, 0.004, 0.01]])
    got = roundness_levels(np.ascontiguousarray(amount), 0.002, 16)
    assert got.tolist() == [_roundness_reference(a) for a in amount]


def test_configuration_randomise_within_strata_keeps_each_stratum_columns():
    rows, cols, weights, n_rows, n_cols, *_ = _graph(3, n_rows=200, n_cols=30, n_edges=400)
    strata = (cols >= 15).astype(np.int64)  # two regions of columns
    r, c, w = configuration_randomise(rows, cols, weights, n_cols, seed=1, strata=strata)
    # a row's edges stay in the regions they were in (its weight per region is kept)
    for region in (0, 1):
        before = np.bincount(rows[strata == region], weights[strata == region], n_rows)
        after = np.bincount(r[(c >= 15) == region], w[(c >= 15) == region], n_rows)
        assert np.allclose(before, after)
    assert not np.array_equal(c, configuration_randomise(rows, cols, weights, n_cols, seed=1)[1])


def _visits(seed, n_txns=600, n_cols=8, n_rows=50):
    """Unusual transactions (column, weight) and a pool of ordinary visits sorted by column."""
    rng = np.random.default_rng(seed)
    cols = rng.integers(0, n_cols, n_txns)
    weights = rng.exponential(5.0, n_txns)
    pool_cols = np.sort(rng.integers(0, n_cols - 1, 4000))  # the last column has no ordinary visit
    pool_rows = rng.integers(0, n_rows, 4000) // (1 + pool_cols % 3)  # columns differ in their customers
    pool_n = np.bincount(pool_cols, minlength=n_cols)
    pool_lo = np.cumsum(pool_n) - pool_n
    rows = rng.integers(0, n_rows, n_txns)
    return cols, weights, pool_rows, pool_lo, pool_n, rows, pool_cols


def test_visit_randomise_keeps_columns_and_weights_and_draws_rows_from_each_columns_visits():
    cols, weights, pool_rows, pool_lo, pool_n, rows, pool_cols = _visits(1)
    n_cols = len(pool_n)
    r, c, w = visit_randomise(cols, weights, pool_rows, pool_lo, pool_n, n_cols, seed=3, rows=rows)
    # every column keeps its transactions' weights: log(1 + sum) per merged pair adds back up
    assert np.allclose(np.bincount(c, np.expm1(w), n_cols), np.bincount(cols, weights, n_cols))
    assert len(np.unique(r * n_cols + c)) == len(r)
    for col in range(n_cols - 1):  # drawn rows are customers of that column
        assert set(r[c == col]) <= set(pool_rows[pool_cols == col])
    # a column without ordinary visits keeps its rows
    last = n_cols - 1
    assert set(r[c == last]) == set(rows[cols == last])
    # rows are drawn in proportion to their visits: column 2's customers are rows 0..16
    many = visit_randomise(np.full(20000, 2), np.ones(20000), pool_rows, pool_lo, pool_n, n_cols, seed=4)
    got = np.bincount(many[0], np.expm1(many[2]), 50) / 20000
    want = np.bincount(pool_rows[pool_cols == 2], minlength=50) / (pool_cols == 2).sum()
    assert np.abs(got - want).max() < 0.02
    again = visit_randomise(cols, weights, pool_rows, pool_lo, pool_n, n_cols, seed=3, rows=rows)
    assert all(np.array_equal(a, b) for a, b in zip((r, c, w), again))


def test_visit_null_densities_are_densest_blocks_of_the_randomisations_on_each_column_set():
    cols, weights, pool_rows, pool_lo, pool_n, rows, _ = _visits(2)
    n_rows, n_cols = 50, len(pool_n)
    within = [np.array([0, 1, 2]), np.array([5]), np.arange(n_cols)]
    null = visit_null_densities(cols, weights, pool_rows, pool_lo, pool_n, n_rows, n_cols, 3, seed=5, rows=rows,
                                within=within)
    whole = visit_null_densities(cols, weights, pool_rows, pool_lo, pool_n, n_rows, n_cols, 3, seed=5, rows=rows)
    assert null.shape == (3, 3) and np.array_equal(null[2], whole)
    for i in range(3):
        sub_seed = int(np.random.SeedSequence([5, i]).generate_state(1)[0])
        r, c, w = visit_randomise(cols, weights, pool_rows, pool_lo, pool_n, n_cols, sub_seed, rows)
        cw = column_weights(c, np.ones(len(c), np.bool_), n_cols, 5.0)  # weights of the whole randomised graph
        for k, cols_k in enumerate(within):
            inside = np.isin(c, cols_k)
            edges = {(int(a), n_rows + int(b)): float(x) for a, b, x in zip(r[inside], c[inside], (w * cw[c])[inside])}
            nodes = {u for e in edges for u in e}
            assert null[k, i] == pytest.approx(reference._peel(edges, nodes)[1], rel=1e-9)
