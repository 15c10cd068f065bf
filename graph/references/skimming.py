"""Slow, obviously correct plain-Python references for the skimming kernels (graph/kernels/skimming.py)."""

from __future__ import annotations

import math

from graph.references.significance import binom_sf, hypergeom_sf

__all__ = ["count_compromised_in_window", "count_compromised_ever", "exposure_visits", "terminal_stats", "explain_away",
           "explain_away_matched", "window_presence", "scan_window"]

def exposure_visits(card_indptr, ts, present, cards, starts, ends):
    """Per compromised card (index into ``cards``), its present transactions with start <= ts < end."""
    return [[i for i in range(card_indptr[c], card_indptr[c + 1]) if present[i] and starts[k] <= ts[i] < ends[k]]
            for k, c in enumerate(cards)]


def count_compromised_in_window(visits, txn_terminal, n_terminals):
    """Naive baseline: distinct compromised cards per terminal inside their exposure windows."""
    out = [0] * n_terminals
    for rows in visits:
        for t in {txn_terminal[i] for i in rows}:
            out[t] += 1
    return out


def count_compromised_ever(card_indptr, txn_terminal, cards, n_terminals):
    """Naive baseline ignoring time: distinct compromised cards that ever used each terminal."""
    out = [0] * n_terminals
    for c in cards:
        for t in {txn_terminal[i] for i in range(card_indptr[c], card_indptr[c + 1])}:
            out[t] += 1
    return out


def terminal_stats(txn_card, txn_terminal, ts, present, n_terminals, span_start, span_end):
    """Distinct present cards per terminal and in total with span_start <= ts < span_end."""
    seen = [set() for _ in range(n_terminals)]
    active = set()
    for i in range(len(ts)):
        if present[i] and span_start <= ts[i] < span_end:
            seen[txn_terminal[i]].add(txn_card[i])
            active.add(txn_card[i])
    return [len(s) for s in seen], len(active), seen


def explain_away(visits, cards, weights, txn_terminal, seen_sets, population, min_compromised, explain=True):
    """Greedy explain-away by definition (unit or zero weights): accept the terminal with the smallest exact
    hypergeometric tail (ties: more compromised cards, then lower index), retire the compromised cards it
    explains from the urn and from every terminal's card set, repeat. Returns [(terminal, p, k), ...]."""
    alive = {k for k, rows in enumerate(visits) if rows and weights[k] > 0}
    terms_of = [{txn_terminal[i] for i in rows} for rows in visits]
    seen = [set(s) for s in seen_sets]
    done, out = set(), []
    while True:
        candidates = []
        for t in range(len(seen)):
            ks = sorted(k for k in alive if t in terms_of[k])
            if t in done or len(ks) < min_compromised:
                continue
            candidates.append((hypergeom_sf(len(ks), population, len(alive), len(seen[t])), -len(ks), t, ks))
        if not candidates:
            return out
        p, _, t, ks = min(candidates)
        out.append((t, p, len(ks)))
        done.add(t)
        if explain:
            for k in ks:
                alive.discard(k)
                population -= 1
                for s in seen:
                    s.discard(cards[k])


def window_presence(txn_card, txn_terminal, ts, present, terms, day0, n_days, window_days):
    """share[r][d]: cards using terms[r] on days [d - window_days, d) over cards active on those days."""
    out = []
    day = [(t - day0) // 86400 for t in ts]
    for t in terms:
        row = []
        for d in range(n_days):
            inside = [i for i in range(len(ts)) if present[i] and d - window_days <= day[i] < d]
            active = {txn_card[i] for i in inside}
            here = {txn_card[i] for i in inside if txn_terminal[i] == t}
            row.append(len(here) / len(active) if active else 0.0)
        out.append(row)
    return out


def explain_away_matched(visits, weights, txn_terminal, share, card_day, min_compromised, explain=True):
    """Greedy explain-away under the matched null (unit or zero weights): k ~ Binomial(alive, mu / alive) with
    mu = sum over alive victims of share[t][card_day]. ``share`` maps terminal -> list over days."""
    alive = {k for k, rows in enumerate(visits) if rows and weights[k] > 0}
    terms_of = [{txn_terminal[i] for i in rows} for rows in visits]
    done, out = set(), []
    while True:
        candidates = []
        for t in sorted(share):
            ks = sorted(k for k in alive if t in terms_of[k])
            if t in done or len(ks) < min_compromised:
                continue
            mu = sum(share[t][card_day[k]] for k in alive)
            candidates.append((binom_sf(len(ks), len(alive), min(1.0, mu / len(alive))), -len(ks), t, ks))
        if not candidates:
            return out
        p, _, t, ks = min(candidates)
        out.append((t, p, len(ks)))
        done.add(t)
        if explain:
            alive -= set(ks)


def scan_window(comp_times, all_times):
    """Interval [s_i, s_j] between compromised visit times maximising Kulldorff's Poisson log-likelihood ratio.

    ``comp_times`` and ``all_times`` are sorted; returns (start, end).
    """
    big_k, big_n = len(comp_times), len(all_times)
    if big_k == 0:
        return None
    best, arg = -1.0, (comp_times[0], comp_times[0])
    for i in range(big_k):
        for j in range(i, big_k):
            k = j - i + 1
            n = sum(1 for t in all_times if comp_times[i] <= t <= comp_times[j])
            e = big_k * n / big_n
            if k <= e:
                llr = 0.0
            elif k == big_k:
                llr = k * math.log(k / e)
            else:
                llr = k * math.log(k / e) + (big_k - k) * math.log((big_k - k) / (big_k - e))
            if llr > best + 1e-12:
                best, arg = llr, (comp_times[i], comp_times[j])
    return arg
