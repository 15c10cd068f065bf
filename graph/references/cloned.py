"""Slow, obviously correct plain-Python reference for the cloned-card kernels (graph/kernels/cloned*.py)."""

from __future__ import annotations

import itertools
import math
from collections import defaultdict

from graph.references.significance import hypergeom_sf

__all__ = ["haversine_km", "cloned_card_evidence", "combined_tail"]

REASONS = ("impossible_travel", "atc_replay", "atc_regression", "fallback_after_chip", "parallel_use", "fallback_far",
           "fallback_burst", "fallback_amount", "fallback_new_merchant")


def haversine_km(lat1, lon1, lat2, lon2):
    p1, p2 = math.radians(lat1), math.radians(lat2)
    a = math.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2
    return 2 * 6371.0088 * math.asin(math.sqrt(min(1.0, a)))


def cloned_card_evidence(card_indptr, ts, lat, lon, located, entry, atc, atc_ok, amount, merchant, ttype,
                         max_speed_kmh, min_distance_km, slack_s, parallel_km, parallel_window_s,
                         parallel_min_switches, fallback_far_km, offline_delay_s, burst_window_s, burst_min):
    """Same contract as graph.kernels.cloned.cloned_card_evidence; returns (counts, first, evidence, travel,
    burst_p, amount_p, new_p) as lists.

    ``first`` uses None for "no evidence"; ``evidence`` is a list of sets of reason numbers per transaction;
    ``travel`` is, per card, None or (km, seconds) of the pair with the highest km / (seconds + slack).
    """
    n_cards = len(card_indptr) - 1
    counts = [[0] * 9 for _ in range(n_cards)]
    first = [[None] * 9 for _ in range(n_cards)]
    evidence = [set() for _ in range(len(ts))]
    travel = [None] * n_cards
    burst_p = [1.0] * n_cards
    amount_p = [1.0] * n_cards
    new_p = [1.0] * n_cards

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
        chip_merchants = [merchant[i] for i in rows if entry[i] in (0, 1) and merchant[i] >= 0]
        near = [i for i in rows if 3 in evidence[i] and ttype[i] not in (2, 4)]  # not a void or completion
        new = [i for i in near if merchant[i] >= 0 and merchant[i] not in chip_merchants]
        if chip_merchants and new:
            singles = sum(1 for m in chip_merchants if chip_merchants.count(m) == 1)
            r = (singles + 1) / (len(chip_merchants) + 2)
            counts[c][8] = len(new)
            first[c][8] = min(ts[i] for i in new)
            new_p[c] = min(1.0, sum(math.comb(len(near), j) * r ** j * (1 - r) ** (len(near) - j)
                                    for j in range(len(new), len(near) + 1)))
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
    return counts, first, evidence, travel, burst_p, amount_p, new_p


def combined_tail(tails, levels, widths):
    """Same contract as graph.kernels.cloned_combine.combined_tail over every card: each combination of levels
    enumerated."""
    out = []
    for t, lv in zip(tails, levels):
        def surprise(r, k):
            return -math.log(max(t[r][k], 1e-300))
        observed = sum(surprise(r, k) for r, k in enumerate(lv))
        if observed <= 0:
            out.append(1.0)
            continue
        total = 0.0
        for combo in itertools.product(*[range(w) for w in widths]):
            value = sum(surprise(r, k) for r, k in enumerate(combo))
            if value >= observed - 1e-9 * max(1.0, observed):
                total += math.prod(min(max(t[r][k] - t[r][k + 1], 0.0), 1.0) for r, k in enumerate(combo))
        out.append(min(1.0, total))
    return out
