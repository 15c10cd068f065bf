"""Points of compromise, explain-away: accept the strongest terminal, take the cards it explains out of the
others' evidence, re-test the rest, for one mode (``explain_away``) or for skimming and at-terminal points at once
(``explain_away_modes``)."""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from graph.kernels.tails import log_binom_sf, log_hypergeom_sf

__all__ = ["explain_away", "explain_away_modes"]


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
