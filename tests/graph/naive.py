"""Slow, obviously correct plain-Python references for the skimming and cloned-card kernels."""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from fractions import Fraction

__all__ = ["haversine_km", "cloned_card_evidence", "poisson_binomial_sf", "hypergeom_sf", "binom_sf", "log_exact",
           "count_compromised_in_window",
           "count_compromised_ever", "exposure_visits", "terminal_stats", "explain_away", "explain_away_matched",
           "window_presence", "scan_window"]

REASONS = ("impossible_travel", "atc_replay", "atc_regression", "fallback_after_chip", "parallel_use", "fallback_far",
           "fallback_burst", "fallback_amount")


def haversine_km(lat1, lon1, lat2, lon2):
    p1, p2 = math.radians(lat1), math.radians(lat2)
    a = math.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2
    return 2 * 6371.0088 * math.asin(math.sqrt(min(1.0, a)))


def cloned_card_evidence(card_indptr, ts, lat, lon, located, entry, atc, atc_ok, amount, max_speed_kmh,
                         min_distance_km, slack_s, parallel_km, parallel_window_s, parallel_min_switches,
                         fallback_far_km, offline_delay_s, burst_window_s, burst_min):
    """Same contract as graph.kernels.cloned.cloned_card_evidence; returns (counts, first, evidence, travel,
    burst_p, amount_p) as lists.

    ``first`` uses None for "no evidence"; ``evidence`` is a list of sets of reason numbers per transaction;
    ``travel`` is, per card, None or (km, seconds) of the pair with the highest km / (seconds + slack).
    """
    n_cards = len(card_indptr) - 1
    counts = [[0] * 8 for _ in range(n_cards)]
    first = [[None] * 8 for _ in range(n_cards)]
    evidence = [set() for _ in range(len(ts))]
    travel = [None] * n_cards
    burst_p = [1.0] * n_cards
    amount_p = [1.0] * n_cards

    def note(c, r, t, *txns):
        counts[c][r] += 1
        first[c][r] = t if first[c][r] is None else min(first[c][r], t)
        for i in txns:
            evidence[i].add(r)

    for c in range(n_cards):
        rows = list(range(card_indptr[c], card_indptr[c + 1]))
        here = [i for i in rows if located[i]]
        switches = []
        worst = []
        for a, b in zip(here, here[1:]):
            d = haversine_km(lat[a], lon[a], lat[b], lon[b])
            dt = ts[b] - ts[a]
            reachable = max_speed_kmh * (dt + slack_s) / 3600  # km the fastest plane covers in that time
            if d >= min_distance_km and d > reachable:
                note(c, 0, ts[b], a, b)
                worst.append((-(d / max(dt + slack_s, 1)), len(worst), d, dt))
            if d >= parallel_km:
                switches.append((ts[b], a, b))
        if worst:
            _, _, d, dt = min(worst)
            travel[c] = (d, dt)
        in_window = set()
        for k, (tk, _, _) in enumerate(switches):
            recent = [s for s in range(k + 1) if tk - switches[s][0] <= parallel_window_s]
            if len(recent) >= parallel_min_switches:
                for s in recent:
                    if s not in in_window:
                        in_window.add(s)
                        note(c, 4, tk, switches[s][1], switches[s][2])
        chip_times = [ts[i] for i in rows if entry[i] in (0, 1)]
        for i in rows:
            if entry[i] in (2, 3) and chip_times and ts[i] > min(chip_times):
                before = [j for j in rows if j < i and entry[j] in (0, 1) and located[j]]
                chips = [j for j in rows if entry[j] in (0, 1) and located[j]]  # before or after i
                far = located[i] and before and all(haversine_km(lat[j], lon[j], lat[i], lon[i]) >= fallback_far_km
                                                    for j in chips)
                note(c, 5 if far else 3, ts[i], i)
        if chip_times:
            uses = [i for i in rows if ts[i] > min(chip_times) and entry[i] in (0, 1, 2, 3)]
            fallback = [i for i in uses if entry[i] in (2, 3)]
            windows = []
            for start in fallback:
                after = uses[uses.index(start) + 1:]  # the opening use, then those less than the window later
                inside = [start] + [i for i in after if ts[i] < ts[start] + burst_window_s]
                k = sum(1 for i in inside if entry[i] in (2, 3))
                if burst_min > 0 and len(fallback) >= burst_min and k >= burst_min:
                    tail = float(hypergeom_sf(k, len(uses), len(fallback), len(inside)))
                    windows.append((tail, ts[start], inside))
            if windows:
                tail, _, inside = min(windows, key=lambda w: (w[0], w[1]))
                burst_p[c] = min(1.0, len(fallback) * tail)
                for i in inside:
                    if entry[i] in (2, 3):
                        note(c, 6, ts[i], i)
            if fallback and len(uses) > len(fallback):
                def largest_first(i):  # missing amounts are the smallest; on ties the other uses come first
                    a = amount[i]
                    return (math.inf if a != a else -a, entry[i] in (2, 3), uses.index(i))
                top = sorted(uses, key=largest_first)[:len(fallback)]
                hits = [i for i in top if entry[i] in (2, 3)]
                if hits:
                    amount_p[c] = float(hypergeom_sf(len(hits), len(uses), len(fallback), len(fallback)))
                    for i in hits:
                        note(c, 7, ts[i], i)
        with_atc = [i for i in rows if atc_ok[i]]
        by_value = defaultdict(list)
        for i in with_atc:
            by_value[atc[i]].append(i)
        replays = set()
        for same in by_value.values():
            for i in same[1:]:
                replays.add(i)
                note(c, 1, ts[i], i)
            if len(same) > 1:
                evidence[same[0]].add(1)
        for j in with_atc:
            if j not in replays and any(ts[i] < ts[j] - offline_delay_s and atc[i] > atc[j] for i in with_atc):
                note(c, 2, ts[j], j)
    return counts, first, evidence, travel, burst_p, amount_p


# --- skimming --------------------------------------------------------------------------------------------

def _log_comb(n, k):
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def hypergeom_sf(k, population, successes, draws):
    """P(X >= k) for X ~ Hypergeometric(population, successes, draws), by summing the pmf exactly."""
    total = 0  # exact integer arithmetic
    for j in range(max(int(math.ceil(k)), 0), min(successes, draws) + 1):
        if draws - j > population - successes:
            continue
        total += math.comb(successes, j) * math.comb(population - successes, draws - j)
    return min(Fraction(1), Fraction(total, math.comb(population, draws)))


def binom_sf(k, n, p):
    """P(X >= k) for X ~ Binomial(n, p), exactly (a Fraction of the binary value of ``p``)."""
    p = Fraction(p)
    return min(Fraction(1), sum(math.comb(n, j) * p ** j * (1 - p) ** (n - j) for j in range(max(k, 0), n + 1)))


def log_exact(x):
    """Natural log of a positive Fraction without underflow."""
    return math.log(x.numerator) - math.log(x.denominator)


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


def poisson_binomial_sf(k: int, probs) -> float:
    """P(sum of independent Bernoulli(p_i) >= k), by enumerating every outcome (short lists only)."""
    total = 0.0
    for outcome in itertools.product((0, 1), repeat=len(probs)):
        if sum(outcome) >= k:
            weight = 1.0
            for hit, p in zip(outcome, probs):
                weight *= p if hit else 1.0 - p
            total += weight
    return total
