"""Common-point-of-compromise kernels: exposure visits, window scan (the explain-away in ``skimming_explain``, the
tails in ``tails``, both re-exported here)."""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from graph.kernels.geo import haversine_km
from graph.kernels.skimming_explain import explain_away, explain_away_modes
from graph.kernels.tails import log_binom_sf, log_hypergeom_sf

__all__ = ["log_hypergeom_sf", "log_binom_sf", "window_presence", "fallback_cut", "active_days", "terminal_presence",
           "exposure_visits", "cards_seen", "visit_terminals", "transpose_csr", "explain_away", "explain_away_modes",
           "scan_window", "point_windows", "clone_uses", "terminal_share"]

_NO_TIME = np.iinfo(np.int64).max


@njit(cache=True)
def active_days(card_indptr, ts, present, day0, n_days, window_days):
    """Distinct cards with a present transaction in the ``window_days`` days before each day (from ``day0``).

    A sum over cards: the sum of this over disjoint sets of cards is the value for their union (the Spark
    engine adds up the arrays of its card partitions).

    Returns
    -------
    float64[n_days + 1]
    """
    n_cards = card_indptr.shape[0] - 1
    active = np.zeros(n_days + 1, dtype=np.float64)
    for c in range(n_cards):
        covered = -1
        for i in range(card_indptr[c], card_indptr[c + 1]):
            if present[i]:
                covered = _cover(active, (ts[i] - day0) // 86400, covered, window_days, n_days)
    for d in range(1, n_days + 1):
        active[d] += active[d - 1]
    return active


@njit(cache=True)
def window_presence(term_indptr, term_order, card_indptr, txn_card, ts, present, terms, day0, n_days, window_days):
    """Share of active cards that used each listed terminal in the ``window_days`` days before each day.

    ``out[r, d]`` = distinct cards with a present transaction at ``terms[r]`` on days ``[d - window_days, d)``
    over distinct cards with any present transaction on those days (days counted from ``day0`` seconds):
    the chance that a random card, watched over an exposure window ending on day ``d``, visited the terminal.

    Returns
    -------
    float32[len(terms), n_days]
    """
    active = active_days(card_indptr, ts, present, day0, n_days, window_days)
    return terminal_presence(term_indptr, term_order, card_indptr.shape[0] - 1, txn_card, ts, present, terms, day0,
                             n_days, window_days, active)


@njit(cache=True)
def terminal_presence(term_indptr, term_order, n_cards, txn_card, ts, present, terms, day0, n_days, window_days,
                      active):
    """``window_presence`` given the ``active_days`` denominator (of all cards, wherever it was counted)."""
    out = np.zeros((terms.shape[0], n_days), dtype=np.float32)
    last = np.full(n_cards, -1, dtype=np.int64)
    stamp = np.full(n_cards, -1, dtype=np.int64)
    diff = np.zeros(n_days + 1, dtype=np.float64)
    for r in range(terms.shape[0]):
        t = terms[r]
        diff[:] = 0.0
        for j in range(term_indptr[t], term_indptr[t + 1]):
            i = term_order[j]
            if not present[i]:
                continue
            c = txn_card[i]
            if stamp[c] != r:
                stamp[c], last[c] = r, -1
            last[c] = _cover(diff, (ts[i] - day0) // 86400, last[c], window_days, n_days)
        run = 0.0
        for d in range(n_days):
            run += diff[d]
            if active[d] > 0.0:
                out[r, d] = run / active[d]
    return out


@njit(cache=True)
def _cover(diff, v, covered, window_days, n_days):
    """Add days (v, v + window_days] not yet covered (up to ``covered``) to a difference array."""
    lo = max(v + 1, covered + 1, 0)
    hi = min(v + window_days, n_days - 1)
    if lo <= hi:
        diff[lo] += 1.0
        diff[hi + 1] -= 1.0
    return max(covered, v + window_days)


@njit(cache=True)
def fallback_cut(card_indptr, ts, entry, lat, lon, located, cards, after, far_km):
    """Per card: time of its first magstripe/fallback use at or after ``after[k]`` that lies at least
    ``far_km`` from its latest located chip/contactless use before it (int64 max when none).

    That use is taken as the counterfeit itself: the exposure window ends there.
    """
    out = np.full(cards.shape[0], _NO_TIME, dtype=np.int64)
    for k in range(cards.shape[0]):
        c = cards[k]
        chip = -1
        for i in range(card_indptr[c], card_indptr[c + 1]):
            e = entry[i]
            if (e == 0 or e == 1) and located[i]:
                chip = i
            elif (e == 2 or e == 3) and ts[i] >= after[k] and located[i] and chip >= 0:
                if haversine_km(lat[chip], lon[chip], lat[i], lon[i]) >= far_km:
                    out[k] = ts[i]
                    break
    return out


@njit(cache=True)
def exposure_visits(card_indptr, ts, present, cards, starts, ends):
    """CSR over compromised cards (position in ``cards``) of their present transactions in [start, end).

    Returns
    -------
    indptr : int64[len(cards) + 1]; txn : int64[nnz] (card-then-time order)
    """
    m = cards.shape[0]
    indptr = np.zeros(m + 1, dtype=np.int64)
    for k in range(m):
        c = cards[k]
        n = 0
        for i in range(card_indptr[c], card_indptr[c + 1]):
            if present[i] and starts[k] <= ts[i] < ends[k]:
                n += 1
        indptr[k + 1] = indptr[k] + n
    txn = np.empty(indptr[m], dtype=np.int64)
    for k in range(m):
        c = cards[k]
        n = indptr[k]
        for i in range(card_indptr[c], card_indptr[c + 1]):
            if present[i] and starts[k] <= ts[i] < ends[k]:
                txn[n] = i
                n += 1
    return indptr, txn


@njit(cache=True)
def cards_seen(term_indptr, term_order, txn_card, ts, present, n_cards, span_start, span_end):
    """Distinct present cards per terminal in [span_start, span_end), and distinct active cards overall."""
    n_terms = term_indptr.shape[0] - 1
    seen = np.zeros(n_terms, dtype=np.int64)
    mark = np.full(n_cards, -1, dtype=np.int64)
    active = np.zeros(n_cards, dtype=np.bool_)
    for t in range(n_terms):
        for j in range(term_indptr[t], term_indptr[t + 1]):
            i = term_order[j]
            if present[i] and span_start <= ts[i] < span_end:
                c = txn_card[i]
                active[c] = True
                if mark[c] != t:
                    mark[c] = t
                    seen[t] += 1
    return seen, int(active.sum())


@njit(cache=True)
def visit_terminals(indptr, txn, txn_terminal, n_terminals):
    """Distinct terminals of each row of a CSR of transactions -> CSR (indptr, terminals), first-use order."""
    m = indptr.shape[0] - 1
    mark = np.full(n_terminals, -1, dtype=np.int64)
    out_ptr = np.zeros(m + 1, dtype=np.int64)
    out = np.empty(txn.shape[0], dtype=np.int64)
    n = 0
    for k in range(m):
        for j in range(indptr[k], indptr[k + 1]):
            t = txn_terminal[txn[j]]
            if mark[t] != k:
                mark[t] = k
                out[n] = t
                n += 1
        out_ptr[k + 1] = n
    return out_ptr, out[:n].copy()


@njit(cache=True)
def transpose_csr(indptr, indices, n_cols):
    """Transpose of a CSR pattern: for each column, the rows holding it (ascending)."""
    counts = np.zeros(n_cols + 1, dtype=np.int64)
    for j in range(indices.shape[0]):
        counts[indices[j] + 1] += 1
    out_ptr = np.cumsum(counts)
    fill = out_ptr[:-1].copy()
    out = np.empty(indices.shape[0], dtype=np.int64)
    for r in range(indptr.shape[0] - 1):
        for j in range(indptr[r], indptr[r + 1]):
            col = indices[j]
            out[fill[col]] = r
            fill[col] += 1
    return out_ptr, out


@njit(cache=True)
def clone_uses(card_indptr, ts, entry, lat, lon, located, far_km):
    """Per transaction: a magstripe/fallback use at least ``far_km`` from the card's latest located
    chip/contactless use before it (the counterfeit itself: the card was not there), as in ``fallback_cut``."""
    out = np.zeros(ts.shape[0], dtype=np.bool_)
    for c in range(card_indptr.shape[0] - 1):
        chip = -1
        for i in range(card_indptr[c], card_indptr[c + 1]):
            e = entry[i]
            if (e == 0 or e == 1) and located[i]:
                chip = i
            elif (e == 2 or e == 3) and located[i] and chip >= 0:
                if haversine_km(lat[chip], lon[chip], lat[i], lon[i]) >= far_km:
                    out[i] = True
    return out


@njit(cache=True)
def terminal_share(term_indptr, term_order, ts, present, span_start, span_end):
    """Present visits per terminal in [span_start, span_end) (float64) and their total."""
    n_terms = term_indptr.shape[0] - 1
    out = np.zeros(n_terms, dtype=np.float64)
    total = 0.0
    for t in range(n_terms):
        for j in range(term_indptr[t], term_indptr[t + 1]):
            i = term_order[j]
            if present[i] and span_start <= ts[i] < span_end:
                out[t] += 1.0
        total += out[t]
    return out, total


@njit(cache=True)
def scan_window(comp_times, all_times):
    """Compromise window of one terminal: the interval [comp_times[i], comp_times[j]] maximising Kulldorff's
    Poisson log-likelihood ratio of compromised visits against all visits (first maximum on ties).

    Both arrays are sorted; ``all_times`` holds every present visit in the span (compromised ones included),
    so the interval's expectation is ``K * n / N`` with ``n`` visits of ``N`` inside it. Returns (start, end),
    (-1, -1) without compromised visits.
    """
    big_k = comp_times.shape[0]
    big_n = all_times.shape[0]
    if big_k == 0:
        return -1, -1
    best, s, e = -1.0, comp_times[0], comp_times[0]
    for i in range(big_k):
        lo = np.searchsorted(all_times, comp_times[i], side="left")
        for j in range(i, big_k):
            k = j - i + 1.0
            n = np.searchsorted(all_times, comp_times[j], side="right") - lo
            ex = big_k * n / max(big_n, 1)
            if k <= ex:
                llr = 0.0
            elif k >= big_k:
                llr = k * math.log(k / ex)
            else:
                llr = k * math.log(k / ex) + (big_k - k) * math.log((big_k - k) / (big_k - ex))
            if llr > best + 1e-12:
                best, s, e = llr, comp_times[i], comp_times[j]
    return s, e


@njit(cache=True)
def point_windows(visit_ptr, visit_times, terminals, term_indptr, term_order, ts, present, span_start, span_end):
    """``scan_window`` for each listed terminal; ``visit_ptr``/``visit_times`` is the CSR (aligned with
    ``terminals``) of sorted compromised visit times. Returns int64 start and end arrays."""
    m = terminals.shape[0]
    starts = np.full(m, -1, dtype=np.int64)
    ends = np.full(m, -1, dtype=np.int64)
    for k in range(m):
        t = terminals[k]
        lo, hi = term_indptr[t], term_indptr[t + 1]
        times = np.empty(hi - lo, dtype=np.int64)
        n = 0
        for j in range(lo, hi):
            i = term_order[j]
            if present[i] and span_start <= ts[i] < span_end:
                times[n] = ts[i]
                n += 1
        starts[k], ends[k] = scan_window(visit_times[visit_ptr[k]:visit_ptr[k + 1]], times[:n])
    return starts, ends
