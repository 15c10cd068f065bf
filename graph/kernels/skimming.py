"""Common-point-of-compromise kernels: exposure visits, hypergeometric tails, explain-away, window scan."""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from graph.kernels.geo import haversine_km

__all__ = ["log_hypergeom_sf", "log_binom_sf", "window_presence", "fallback_cut", "active_days", "terminal_presence",
           "exposure_visits", "cards_seen", "visit_terminals", "transpose_csr", "explain_away", "explain_away_modes",
           "scan_window", "point_windows", "clone_uses", "terminal_share"]

_NO_TIME = np.iinfo(np.int64).max


@njit(cache=True)
def _log_comb(a, b):
    return math.lgamma(a + 1.0) - math.lgamma(b + 1.0) - math.lgamma(a - b + 1.0)


@njit(cache=True)
def log_hypergeom_sf(k, population, successes, draws):
    """Natural log of P(X >= k), X ~ Hypergeometric(population, successes, draws), via lgamma in log space.

    Exact for integer arguments; real ``k``/``successes`` (weighted counts) evaluate the same lgamma form at
    ``k, k+1, ...`` as a smooth extension. Returns 0.0 when ``k`` is at or below the support's minimum and
    ``-inf`` above its maximum.
    """
    if k <= 0.0:
        return 0.0
    lo = max(0.0, draws - (population - successes))
    hi = min(successes, draws)
    if k <= lo:
        return 0.0
    if k > hi + 1e-9:
        return -np.inf
    base = _log_comb(population, draws)
    top = -np.inf
    acc = 0.0
    j = k
    while j <= hi + 1e-9:
        term = _log_comb(successes, j) + _log_comb(population - successes, draws - j) - base
        if term > top:
            acc = acc * math.exp(top - term) + 1.0 if top > -np.inf else 1.0
            top = term
        else:
            acc += math.exp(term - top)
            if term < top - 40.0:  # past the mode (terms only fall from here): negligible
                break
        j += 1.0
    return min(0.0, top + math.log(acc))


@njit(cache=True)
def log_binom_sf(k, n, p):
    """Natural log of P(X >= k), X ~ Binomial(n, p), via lgamma in log space (real ``k``/``n`` allowed as a
    smooth extension, exact for integers)."""
    if k <= 0.0:
        return 0.0
    if k > n + 1e-9 or p <= 0.0:
        return -np.inf
    if p >= 1.0:
        return 0.0
    lp, lq = math.log(p), math.log1p(-p)
    top = -np.inf
    acc = 0.0
    j = k
    while j <= n + 1e-9:
        term = _log_comb(n, j) + j * lp + (n - j) * lq
        if term > top:
            acc = acc * math.exp(top - term) + 1.0 if top > -np.inf else 1.0
            top = term
        else:
            acc += math.exp(term - top)
            if term < top - 40.0:
                break
        j += 1.0
    return min(0.0, top + math.log(acc))


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
def _all_logp(k_int, k_w, seen, population, successes, mu, q_row, done, out):
    matched = mu.shape[0] > 0
    for t in range(k_int.shape[0]):
        if done[t]:
            continue
        if k_int[t] < 1 or k_w[t] <= 0.0:
            out[t] = 0.0
        elif matched:
            share = min(1.0, max(0.0, mu[q_row[t]]) / successes) if successes > 0.0 else 1.0
            out[t] = log_binom_sf(k_w[t], successes, share)
        else:
            out[t] = log_hypergeom_sf(k_w[t], population, successes, seen[t])


@njit(cache=True)
def explain_away(comp_ptr, comp_terms, term_ptr, term_comps, span_ptr, span_terms, weights, seen, population,
                 min_compromised, explain, qmat, q_row, card_day):
    """Greedy common-point-of-compromise selection with explain-away.

    Repeatedly accept the terminal with the smallest tail log p of its (weighted) count ``k`` of alive
    compromised cards, among terminals with at least ``min_compromised`` of them; then, when ``explain``,
    retire the cards it explains from every count and from the null, and repeat. Two nulls:

    - span (``qmat`` with 0 rows): k ~ Hypergeometric(population, alive weight, ``seen[t]``): the terminal's
      distinct cards in the span drawn from the active cards; retired cards also leave ``seen``.
    - matched (``qmat[q_row[t], day]``: share of active cards that used ``t`` in the exposure-window length
      before ``day``): k ~ Binomial(alive weight, mu_t / alive weight) with
      ``mu_t = sum_alive w_c * qmat[q_row[t], card_day[c]]``, each victim matched to random cards watched
      over the same window.

    Parameters
    ----------
    comp_ptr, comp_terms : CSR compromised card -> distinct terminals inside its exposure window
    term_ptr, term_comps : its transpose, terminal -> compromised cards
    span_ptr, span_terms : CSR compromised card -> distinct terminals used in the analysed span
    weights : float64 per compromised card (fraud-type weight; 0 = ignored)
    seen : int64 per terminal, distinct cards in the span; population : int, active cards in the span
    min_compromised : int; explain : bool
    qmat : float32[n_rows, n_days]; q_row : int64 per terminal (-1: no row); card_day : int64 per card

    Returns
    -------
    order : int64[n_accepted] terminals in acceptance order
    logp_accept : float64 per terminal (log p when accepted; 0 otherwise)
    k_accept : int64 per terminal (compromised cards it explained when accepted; 0 otherwise)
    logp_final : float64 per terminal (log p in the final state, for terminals never accepted)
    """
    n_terms = term_ptr.shape[0] - 1
    m = comp_ptr.shape[0] - 1
    no_at = np.zeros(m + 1, dtype=np.int64)
    order, logp_accept, k_accept, logp_final = explain_away_modes(
        comp_ptr, comp_terms, term_ptr, term_comps, span_ptr, span_terms, weights, seen, population, min_compromised,
        explain, qmat, q_row, card_day, no_at, np.zeros(0, dtype=np.int64), np.zeros(n_terms + 1, dtype=np.int64),
        np.zeros(0, dtype=np.int64), np.zeros(m), np.zeros(n_terms), np.zeros(0, dtype=np.bool_), np.zeros(0),
        np.ones(m, dtype=np.bool_))
    return order, logp_accept[:n_terms].copy(), k_accept[:n_terms].copy(), logp_final[:n_terms].copy()


@njit(cache=True)
def explain_away_modes(comp_ptr, comp_terms, term_ptr, term_comps, span_ptr, span_terms, weights, seen, population,
                       min_compromised, explain, qmat, q_row, card_day, at_ptr, at_terms, at_term_ptr, at_term_comps,
                       at_weights, at_share, at_genuine, at_mass, at_elsewhere):
    """``explain_away`` over two kinds of point at once: skimming (hypothesis ``t``) and at-terminal
    (hypothesis ``n_terminals + t``), with one pool of compromised cards.

    The skimming block is exactly ``explain_away``'s (same arguments, same null). The at-terminal block holds,
    per compromised card, the distinct terminals of its fraud visits (``at_ptr``/``at_terms``, transposed in
    ``at_term_ptr``/``at_term_comps``) with weight ``at_weights[c]`` and per entry the card's fraud mass there
    (``at_mass``, summing to 1 per card): with ``F`` the alive weighted card-terminal fraud pairs and ``M`` the
    alive weighted mass, the weighted count ``k`` at ``t`` is tested against Binomial(F, ``at_share[t]``) and
    its weighted mass against Binomial(M, ``at_share[t]``), the terminal's share of all visits (fraud falling
    where traffic falls); log p is the smaller of the two plus log 2 (Bonferroni). Each step accepts the most
    significant hypothesis of either kind; with ``explain`` its cards leave its own block, and the other
    block only where the other kind is no better explanation: an accepted at-terminal point retires from the
    skimming block the cards whose fraud there was ``at_genuine`` (the genuine card at the terminal: a
    counterfeit's use says the data was taken elsewhere), an accepted skimming point retires from the
    at-terminal block the cards flagged ``at_elsewhere`` (their fraud was used where the card was not, or
    their fraud type speaks for skimming).

    Returns
    -------
    order : int64 hypotheses in acceptance order (``t`` or ``n_terminals + t``)
    logp_accept, k_accept, logp_final : per hypothesis (length ``2 * n_terminals``), as in ``explain_away``
    """
    n_terms = term_ptr.shape[0] - 1
    m = comp_ptr.shape[0] - 1
    n_rows = qmat.shape[0]
    seen = seen.astype(np.float64)
    k_int = np.zeros(n_terms, dtype=np.int64)
    k_w = np.zeros(n_terms, dtype=np.float64)
    ka_int = np.zeros(n_terms, dtype=np.int64)
    ka_w = np.zeros(n_terms, dtype=np.float64)
    ka_m = np.zeros(n_terms, dtype=np.float64)
    mu = np.zeros(n_rows, dtype=np.float64)
    alive = np.zeros(m, dtype=np.bool_)
    alive_a = np.zeros(m, dtype=np.bool_)
    successes = 0.0
    pairs = 0.0
    mass = 0.0
    for c in range(m):
        if weights[c] > 0.0 and comp_ptr[c + 1] > comp_ptr[c]:
            alive[c] = True
            successes += weights[c]
            for j in range(comp_ptr[c], comp_ptr[c + 1]):
                k_int[comp_terms[j]] += 1
                k_w[comp_terms[j]] += weights[c]
            for r in range(n_rows):
                mu[r] += weights[c] * qmat[r, card_day[c]]
        if at_weights[c] > 0.0 and at_ptr[c + 1] > at_ptr[c]:
            alive_a[c] = True
            for j in range(at_ptr[c], at_ptr[c + 1]):
                ka_int[at_terms[j]] += 1
                ka_w[at_terms[j]] += at_weights[c]
                ka_m[at_terms[j]] += at_weights[c] * at_mass[j]
                pairs += at_weights[c]
                mass += at_weights[c] * at_mass[j]
    pop = float(population)
    done = np.zeros(2 * n_terms, dtype=np.bool_)
    logp = np.zeros(2 * n_terms, dtype=np.float64)
    logp_accept = np.zeros(2 * n_terms, dtype=np.float64)
    k_accept = np.zeros(2 * n_terms, dtype=np.int64)
    order = np.empty(2 * n_terms, dtype=np.int64)
    n_acc = 0
    while True:
        _all_logp(k_int, k_w, seen, pop, successes, mu, q_row, done[:n_terms], logp[:n_terms])
        _at_logp(ka_int, ka_w, pairs, ka_m, mass, at_share, done[n_terms:], logp[n_terms:])
        best = -1
        best_kw = 0.0
        for h in range(2 * n_terms):
            t = h % n_terms
            ki, kw = (k_int[t], k_w[t]) if h < n_terms else (ka_int[t], ka_w[t])
            if done[h] or ki < min_compromised or kw <= 0.0:
                continue
            if best < 0 or logp[h] < logp[best] or (logp[h] == logp[best] and kw > best_kw):
                best, best_kw = h, kw
        if best < 0:
            break
        done[best] = True
        order[n_acc] = best
        n_acc += 1
        logp_accept[best] = logp[best]
        tb = best % n_terms
        if best < n_terms:
            k_accept[best] = k_int[tb]
            lo, hi, members = term_ptr[tb], term_ptr[tb + 1], term_comps
        else:
            k_accept[best] = ka_int[tb]
            lo, hi, members = at_term_ptr[tb], at_term_ptr[tb + 1], at_term_comps
        if not explain:
            continue
        for j in range(lo, hi):
            c = members[j]
            if alive[c] and (best < n_terms or at_genuine[j]):
                alive[c] = False
                successes = max(0.0, successes - weights[c])
                pop -= 1.0
                for q in range(comp_ptr[c], comp_ptr[c + 1]):
                    k_int[comp_terms[q]] -= 1
                    k_w[comp_terms[q]] -= weights[c]
                for q in range(span_ptr[c], span_ptr[c + 1]):
                    seen[span_terms[q]] -= 1.0
                for r in range(n_rows):
                    mu[r] -= weights[c] * qmat[r, card_day[c]]
            if alive_a[c] and (best >= n_terms or at_elsewhere[c]):
                alive_a[c] = False
                for q in range(at_ptr[c], at_ptr[c + 1]):
                    ka_int[at_terms[q]] -= 1
                    ka_w[at_terms[q]] -= at_weights[c]
                    ka_m[at_terms[q]] -= at_weights[c] * at_mass[q]
                    pairs = max(0.0, pairs - at_weights[c])
                    mass = max(0.0, mass - at_weights[c] * at_mass[q])
    _all_logp(k_int, k_w, seen, pop, successes, mu, q_row, done[:n_terms], logp[:n_terms])
    _at_logp(ka_int, ka_w, pairs, ka_m, mass, at_share, done[n_terms:], logp[n_terms:])
    logp_final = np.where(done, 0.0, logp)
    return order[:n_acc].copy(), logp_accept, k_accept, logp_final


@njit(cache=True)
def _at_logp(k_int, k_w, pairs, k_m, mass, share, done, out):
    """Per terminal: the smaller of the card-count and the fraud-mass tails, times 2 (Bonferroni)."""
    for t in range(k_int.shape[0]):
        if done[t]:
            continue
        if k_int[t] < 1 or k_w[t] <= 0.0:
            out[t] = 0.0
        else:
            s = min(1.0, max(share[t], 0.0))
            by_count = log_binom_sf(k_w[t], max(pairs, k_w[t]), s)
            by_mass = log_binom_sf(k_m[t], max(mass, k_m[t]), s) if k_m[t] > 0.0 else 0.0
            out[t] = min(0.0, min(by_count, by_mass) + math.log(2.0))


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
