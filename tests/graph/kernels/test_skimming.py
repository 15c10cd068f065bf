"""The skimming kernels equal their plain-Python references (graph/references/) on edge cases."""

from __future__ import annotations


import numpy as np
import pytest

from graph.kernels import skimming as k

from graph.references import significance as tails, skimming as reference


@pytest.mark.parametrize("population,successes,draws", [(1, 0, 0), (1, 1, 1), (10, 3, 4), (10, 10, 5), (50, 7, 50),
                                                        (100, 5, 0), (200, 20, 30), (2000, 40, 900)])
def test_log_hypergeom_sf_equals_exact(population, successes, draws):
    for kk in range(0, min(successes, draws) + 3):
        exact = tails.hypergeom_sf(kk, population, successes, draws)
        got = k.log_hypergeom_sf(float(kk), float(population), float(successes), float(draws))
        if exact == 0.0:
            assert got == -np.inf
        else:
            assert got == pytest.approx(tails.log_exact(exact), abs=1e-9, rel=1e-9)


def test_log_hypergeom_sf_weighted_is_monotone_and_tiny_tails_finite():
    vals = [k.log_hypergeom_sf(x, 1000.0, 12.5, 80.0) for x in np.linspace(0.0, 12.5, 60)]
    assert all(a >= b - 1e-12 for a, b in zip(vals, vals[1:]))
    assert -1000 < k.log_hypergeom_sf(60.0, 1_000_000.0, 60.0, 100.0) < -500  # far below float's 1e-308


def _scenario(seed, n_cards=25, n_terms=7, n_txn=220):
    rng = np.random.default_rng(seed)
    card = np.sort(rng.integers(0, n_cards, n_txn))
    ts = np.empty(n_txn, dtype=np.int64)
    for c in range(n_cards):
        sel = card == c
        ts[sel] = np.sort(rng.integers(0, 100, sel.sum()))
    card_indptr = np.searchsorted(card, np.arange(n_cards + 1)).astype(np.int64)
    term = rng.integers(0, n_terms, n_txn).astype(np.int32)
    present = rng.random(n_txn) < 0.9
    term_order = np.lexsort((ts, term)).astype(np.int64)
    term_indptr = np.searchsorted(term[term_order], np.arange(n_terms + 1)).astype(np.int64)
    cards = np.sort(rng.choice(n_cards, int(rng.integers(0, 10)), replace=False)).astype(np.int64)
    starts = rng.integers(0, 60, len(cards)).astype(np.int64)
    ends = starts + rng.integers(0, 50, len(cards))
    return card, ts, card_indptr, term, present, term_order, term_indptr, cards, starts, ends, n_terms, n_cards


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("explain", [True, False])
def test_pipeline_equals_reference(seed, explain):
    card, ts, card_indptr, term, present, term_order, term_indptr, cards, starts, ends, n_terms, n_cards = \
        _scenario(seed)
    span = (int(starts.min()) if len(cards) else 0, int(ends.max()) if len(cards) else 0)
    ptr, txn = k.exposure_visits(card_indptr, ts, present, cards, starts, ends)
    ref_visits = reference.exposure_visits(card_indptr, ts, present, cards, starts, ends)
    assert [txn[ptr[i]:ptr[i + 1]].tolist() for i in range(len(cards))] == ref_visits

    seen, active = k.cards_seen(term_indptr, term_order, card, ts, present, n_cards, *span)
    ref_seen, ref_active, seen_sets = reference.terminal_stats(card, term, ts, present, n_terms, *span)
    assert seen.tolist() == ref_seen and active == ref_active

    comp_ptr, comp_terms = k.visit_terminals(ptr, txn, term, n_terms)
    term_ptr, term_comps = k.transpose_csr(comp_ptr, comp_terms, n_terms)
    span_ptr, span_txn = k.exposure_visits(card_indptr, ts, present, cards, np.full(len(cards), span[0]),
                                           np.full(len(cards), span[1]))
    span_ptr, span_terms = k.visit_terminals(span_ptr, span_txn, term, n_terms)
    weights = np.ones(len(cards))
    no_q = np.zeros((0, 1), dtype=np.float32), np.full(n_terms, -1, dtype=np.int64), np.zeros(len(cards), np.int64)
    for min_comp in (1, 2):
        order, logp_acc, k_acc, _ = k.explain_away(comp_ptr, comp_terms, term_ptr, term_comps, span_ptr, span_terms,
                                                   weights, seen, active, min_comp, explain, *no_q)
        ref = reference.explain_away(ref_visits, cards, weights, term, seen_sets, ref_active, min_comp, explain)
        assert order.tolist() == [t for t, _, _ in ref]
        assert [k_acc[t] for t in order] == [kk for _, _, kk in ref]
        for t, p, _ in ref:
            assert logp_acc[t] == pytest.approx(tails.log_exact(p), abs=1e-9)


def test_explain_away_empty():
    z = np.zeros(1, dtype=np.int64)
    e = np.zeros(0, dtype=np.int64)
    order, logp_acc, k_acc, logp_final = k.explain_away(z, e, np.zeros(4, np.int64), e, z, e, np.zeros(0),
                                                        np.zeros(3, np.int64), 0, 2, True, np.zeros((0, 1), np.float32),
                                                        np.full(3, -1, np.int64), e)
    assert len(order) == 0 and logp_final.tolist() == [0.0, 0.0, 0.0]


@pytest.mark.parametrize("comp,all_", [
    ([], [1, 2, 3]),
    ([5], [1, 5, 9]),
    ([5, 5, 5], [5, 5, 5]),  # identical timestamps
    ([10, 11, 12, 50], list(range(0, 100))),
    ([1, 2, 40, 41, 42, 43, 90], sorted(list(range(0, 100, 3)) + [1, 2, 40, 41, 42, 43, 90])),
])
def test_scan_window_equals_reference(comp, all_):
    got = k.scan_window(np.array(comp, dtype=np.int64), np.array(all_, dtype=np.int64))
    ref = reference.scan_window(comp, all_)
    assert got == ((-1, -1) if ref is None else ref)


@pytest.mark.parametrize("seed", range(5))
def test_scan_window_random(seed):
    rng = np.random.default_rng(seed)
    all_ = np.sort(rng.integers(0, 200, 80))
    comp = np.sort(rng.choice(all_, int(rng.integers(1, 12)), replace=False))
    assert k.scan_window(comp, all_) == reference.scan_window(comp.tolist(), all_.tolist())


def test_scan_window_finds_dense_burst():
    background = list(range(0, 1000, 2))
    burst = [500, 503, 507, 510, 512, 515]
    comp = sorted([100, 800] + burst)
    assert k.scan_window(np.array(comp), np.array(sorted(background + comp))) == (500, 515)


def test_fallback_cut():
    card_indptr = np.array([0, 4], dtype=np.int64)
    ts = np.array([0, 10, 20, 30], dtype=np.int64)
    entry = np.array([0, 2, 3, 3], dtype=np.int8)  # chip, magstripe near home, fallback far, fallback far
    lat = np.array([31.2, 31.21, 39.9, 39.9])
    lon = np.array([121.4, 121.41, 116.4, 116.4])
    located = np.ones(4, dtype=np.bool_)
    cards = np.array([0], dtype=np.int64)
    assert k.fallback_cut(card_indptr, ts, entry, lat, lon, located, cards, np.array([0]), 50.0).tolist() == [20]
    assert k.fallback_cut(card_indptr, ts, entry, lat, lon, located, cards, np.array([25]), 50.0).tolist() == [30]
    assert k.fallback_cut(card_indptr, ts, entry, lat, lon, located, cards, np.array([0]), 0.0).tolist() == [10]
    assert k.fallback_cut(card_indptr, ts, entry, lat, lon, located, cards, np.array([31]), 0.0)[0] == np.iinfo(np.int64).max


@pytest.mark.parametrize("n,p", [(0, 0.3), (1, 0.5), (7, 0.0), (7, 1.0), (12, 0.2), (40, 0.97), (200, 0.01)])
def test_log_binom_sf_equals_exact(n, p):
    for kk in range(0, n + 3):
        exact = tails.binom_sf(kk, n, p)
        got = k.log_binom_sf(float(kk), float(n), p)
        if exact == 0.0:
            assert got == -np.inf
        else:
            assert got == pytest.approx(tails.log_exact(exact), abs=1e-9, rel=1e-9)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("explain", [True, False])
def test_matched_null_equals_reference(seed, explain):
    card, ts, card_indptr, term, present, term_order, term_indptr, cards, starts, ends, n_terms, n_cards = \
        _scenario(seed)
    ts = ts * 86400 // 10  # 100 time units -> 10 days
    starts, ends = starts * 86400 // 10, ends * 86400 // 10
    window_days, n_days = 3, 12
    ptr, txn = k.exposure_visits(card_indptr, ts, present, cards, starts, ends)
    comp_ptr, comp_terms = k.visit_terminals(ptr, txn, term, n_terms)
    term_ptr, term_comps = k.transpose_csr(comp_ptr, comp_terms, n_terms)
    terms = np.flatnonzero(np.diff(term_ptr) > 0).astype(np.int64)
    qmat = k.window_presence(term_indptr, term_order, card_indptr, card, ts, present, terms, 0, n_days, window_days)
    ref_share = reference.window_presence(card, term, ts, present, terms, 0, n_days, window_days)
    np.testing.assert_allclose(qmat, np.array(ref_share).reshape(qmat.shape), rtol=1e-6)
    q_row = np.full(n_terms, -1, dtype=np.int64)
    q_row[terms] = np.arange(len(terms))
    card_day = (ends // 86400).astype(np.int64)
    e = np.zeros(len(cards) + 1, dtype=np.int64)
    weights = np.ones(len(cards))
    visits = reference.exposure_visits(card_indptr, ts, present, cards, starts, ends)
    share = {int(t): [float(x) for x in qmat[r]] for r, t in enumerate(terms)}
    for min_comp in (1, 2):
        order, logp_acc, k_acc, _ = k.explain_away(comp_ptr, comp_terms, term_ptr, term_comps, e, np.zeros(0, np.int64),
                                                   weights, np.zeros(n_terms, np.int64), 0, min_comp, explain, qmat,
                                                   q_row, card_day)
        ref = reference.explain_away_matched(visits, weights, term, share, card_day, min_comp, explain)
        assert order.tolist() == [t for t, _, _ in ref]
        for t, p, kk in ref:
            assert k_acc[t] == kk
            assert logp_acc[t] == pytest.approx(tails.log_exact(p), abs=1e-6)
