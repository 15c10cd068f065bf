"""Per-card cloned-card evidence over time-ordered transactions: travel, ATC, fallback and parallel use."""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from graph.kernels.geo import haversine_km

__all__ = ["REASONS", "IMPOSSIBLE_TRAVEL", "ATC_REPLAY", "ATC_REGRESSION", "FALLBACK_AFTER_CHIP", "PARALLEL_USE",
           "FALLBACK_FAR", "FALLBACK_BURST", "FALLBACK_AMOUNT", "FALLBACK_NEW_MERCHANT", "NO_TIME",
           "cloned_card_evidence", "evidence_csr", "hypergeom_tail", "binom_tail"]

IMPOSSIBLE_TRAVEL, ATC_REPLAY, ATC_REGRESSION, FALLBACK_AFTER_CHIP, PARALLEL_USE, FALLBACK_FAR = 0, 1, 2, 3, 4, 5
FALLBACK_BURST, FALLBACK_AMOUNT, FALLBACK_NEW_MERCHANT = 6, 7, 8
REASONS = ("impossible_travel", "atc_replay", "atc_regression", "fallback_after_chip", "parallel_use", "fallback_far",
           "fallback_burst", "fallback_amount", "fallback_new_merchant")
NO_TIME = np.iinfo(np.int64).max  # "no evidence" in first-evidence times

_CHIP, _CONTACTLESS, _MAGSTRIPE, _FALLBACK = 0, 1, 2, 3
_VOID, _COMPLETION = 2, 4  # transaction types that are no card presentation


@njit(cache=True)
def _note(c, reason, t, i, counts, first, evidence):
    counts[c, reason] += 1
    if t < first[c, reason]:
        first[c, reason] = t
    evidence[i] |= np.uint8(1 << reason)


@njit(cache=True)
def hypergeom_tail(k, n, successes, draws):
    """P(X >= k) for X ~ Hypergeometric(population n, ``successes``, ``draws``), by summing the pmf."""
    hi = min(successes, draws)
    if k <= max(0, draws - (n - successes)):
        return 1.0
    if k > hi:
        return 0.0
    log_all = math.lgamma(n + 1) - math.lgamma(draws + 1) - math.lgamma(n - draws + 1)
    total = 0.0
    for j in range(k, hi + 1):
        total += math.exp(math.lgamma(successes + 1) - math.lgamma(j + 1) - math.lgamma(successes - j + 1)
                          + math.lgamma(n - successes + 1) - math.lgamma(draws - j + 1)
                          - math.lgamma(n - successes - draws + j + 1) - log_all)
    return min(1.0, total)


@njit(cache=True)
def binom_tail(k, n, r):
    """P(X >= k) for X ~ Binomial(n, r), by summing the pmf (small n)."""
    if k <= 0:
        return 1.0
    if k > n or r <= 0.0:
        return 0.0
    if r >= 1.0:
        return 1.0
    total = 0.0
    for j in range(k, n + 1):
        total += math.exp(math.lgamma(n + 1) - math.lgamma(j + 1) - math.lgamma(n - j + 1)
                          + j * math.log(r) + (n - j) * math.log1p(-r))
    return min(1.0, total)


@njit(cache=True)
def cloned_card_evidence(card_indptr, ts, lat, lon, located, entry, atc, atc_ok, amount, merchant, ttype,
                         max_speed_kmh, min_distance_km, slack_s, parallel_km, parallel_window_s,
                         parallel_min_switches, fallback_far_km, offline_delay_s, burst_window_s, burst_min):
    """Per-card counts, first times and per-transaction evidence bits of the nine cloning reasons.

    Transactions are in card-then-time order (``card_indptr`` is the CSR index of each card's slice).

    - impossible_travel: consecutive located transactions at least ``min_distance_km`` apart that no plane
      could link: ``distance > max_speed_kmh * (elapsed + slack_s)`` (``slack_s`` absorbs clock error and
      rounding); counted per pair, both marked. The worst pair per card (highest ``distance / (elapsed +
      slack)``) is returned as its distance and elapsed seconds.
    - atc_replay: an ATC value the card already used (``atc_ok`` rows only); counted per repeat, all copies
      marked.
    - atc_regression: an ATC value not used before but lower than one used more than ``offline_delay_s``
      earlier (an offline transaction whose ATC arrives within the delay is expected, not evidence).
    - fallback_after_chip: a magstripe/fallback transaction after the card's first chip/contactless use that
      is not fallback_far (within ``fallback_far_km`` of some located chip/contactless use of the card, not
      located, or before any located chip/contactless use).
    - fallback_far: a located magstripe/fallback transaction after a located chip/contactless use, at least
      ``fallback_far_km`` from every located chip/contactless use of the card, before or after it: a place the
      genuine card was never seen (a copy used far away, rather than a worn chip at home or a traveller who
      swipes once and inserts the chip in the same city). The two fallback reasons are exclusive.
    - parallel_use: a "switch" is a consecutive located pair at least ``parallel_km`` apart; a switch counts
      when at least ``parallel_min_switches`` switches (itself and earlier ones) lie within
      ``parallel_window_s`` seconds before it; counted per switch in any such window, both ends marked.
    - fallback_burst: among the card's card-present uses after its first chip use (``n`` of them, ``F``
      magstripe/fallback), the window (a fallback use and the uses after it less than ``burst_window_s``
      later) with the smallest
      hypergeometric tail ``P(Hyper(n, F, uses in window) >= fallbacks in window)`` among windows holding at
      least ``burst_min`` fallbacks (earliest on ties). Its p-value is ``min(1, F * tail)`` (Bonferroni over
      the F windows): under the null the card's fallbacks fall on its uses at random, whatever their
      number; counted as the fallbacks in that window, each marked. ``burst_min <= 0`` turns it off.
    - fallback_amount: of the card's ``F`` fallback uses among its ``n`` card-present uses after the first chip
      use, ``k`` are among its ``F`` largest amounts (ties ranked against the fallbacks; missing amounts
      smallest); p-value ``P(Hyper(n, F, F) >= k)``: under the null a fallback is as large as any other use of
      the card. Counted as ``k`` (when >= 1), those uses marked.
    - fallback_new_merchant: of the card's ``F`` fallback_after_chip uses that present the card (not a void or
      completion), ``S`` are at merchants where the card is never used by chip or contactless; p-value
      ``P(Binomial(F, r) >= S)`` with ``r = (singles + 1) / (chip uses + 2)``, ``singles`` the card's chip and
      contactless uses at a merchant where it has no other such use: under the null a swipe is at a merchant new
      to the card as often as its chip uses are. A copy used near home shops where the card never shops. Counted
      as ``S`` (when >= 1); no evidence bit (those uses are fallback_after_chip evidence already).

    Parameters
    ----------
    card_indptr : int64[n_cards + 1]
    ts : int64[n] seconds; lat, lon : float64[n] degrees
    located : bool[n]
        Rows usable for travel (card present, finite position).
    entry : int8[n]
        Entry-mode codes of graph.projection.
    atc : int64[n]; atc_ok : bool[n]
        ATC values and the rows whose ATC is meaningful (present, chip-generated, not a void/completion).
    amount : float64[n]
        Transaction amounts (NaN when missing).
    merchant : int64[n]
        Merchant index (-1 when unknown: never new). ttype : int8[n] transaction type codes.
    max_speed_kmh, min_distance_km, parallel_km, fallback_far_km : float
    slack_s, parallel_window_s, parallel_min_switches, offline_delay_s, burst_window_s, burst_min : int

    Returns
    -------
    counts : int64[n_cards, 9]
        Events per reason (columns in ``REASONS`` order).
    first : int64[n_cards, 9]
        Time of the first evidence per reason, ``NO_TIME`` when none.
    evidence : uint8[n]
        Bit ``r`` set when the transaction is evidence of reason ``r``.
    travel_km, travel_s : float64[n_cards], int64[n_cards]
        Distance and elapsed seconds of each card's worst impossible pair (NaN and -1 when none).
    burst_p, amount_p, new_p : float64[n_cards]
        The fallback_burst, fallback_amount and fallback_new_merchant p-values (1.0 when the card shows none).
    """
    n_cards = card_indptr.shape[0] - 1
    n = ts.shape[0]
    counts = np.zeros((n_cards, len(REASONS)), dtype=np.int64)
    first = np.full((n_cards, len(REASONS)), NO_TIME, dtype=np.int64)
    burst_p = np.ones(n_cards)
    amount_p = np.ones(n_cards)
    new_p = np.ones(n_cards)
    evidence = np.zeros(n, dtype=np.uint8)
    travel_km = np.full(n_cards, np.nan)
    travel_s = np.full(n_cards, -1, dtype=np.int64)
    for c in range(n_cards):
        lo, hi = card_indptr[c], card_indptr[c + 1]
        sw_t = np.empty(hi - lo, dtype=np.int64)
        sw_a = np.empty(hi - lo, dtype=np.int64)
        sw_b = np.empty(hi - lo, dtype=np.int64)
        rows = np.empty(hi - lo, dtype=np.int64)
        vals = np.empty(hi - lo, dtype=np.int64)
        # travel: consecutive located transactions
        prev, nsw = -1, 0
        worst = -1.0
        for i in range(lo, hi):
            if not located[i]:
                continue
            if prev >= 0:
                d = haversine_km(lat[prev], lon[prev], lat[i], lon[i])
                if d >= min_distance_km:
                    dt = ts[i] - ts[prev]
                    allowed = max_speed_kmh * (dt + slack_s) / 3600.0
                    if d > allowed:
                        _note(c, IMPOSSIBLE_TRAVEL, ts[i], i, counts, first, evidence)
                        evidence[prev] |= np.uint8(1 << IMPOSSIBLE_TRAVEL)
                        ratio = d / max(dt + slack_s, 1)
                        if ratio > worst:
                            worst = ratio
                            travel_km[c], travel_s[c] = d, dt
                if d >= parallel_km:
                    sw_t[nsw], sw_a[nsw], sw_b[nsw] = ts[i], prev, i
                    nsw += 1
            prev = i
        # parallel use: dense switching between distant places
        left, marked = 0, -1
        for k in range(nsw):
            while sw_t[k] - sw_t[left] > parallel_window_s:
                left += 1
            if k - left + 1 >= parallel_min_switches:
                for s in range(max(left, marked + 1), k + 1):
                    _note(c, PARALLEL_USE, sw_t[k], sw_b[s], counts, first, evidence)
                    evidence[sw_a[s]] |= np.uint8(1 << PARALLEL_USE)
                marked = k
        # fallback after chip, near or far from the latest located chip use
        chip_seen = False
        t_chip = NO_TIME
        last_chip = -1
        for i in range(lo, hi):
            e = entry[i]
            if (e == _MAGSTRIPE or e == _FALLBACK) and chip_seen and ts[i] > t_chip:
                far = located[i] and last_chip >= 0
                if far:  # far from every located chip use of the card, before or after it
                    for j in range(lo, hi):
                        if located[j] and (entry[j] == _CHIP or entry[j] == _CONTACTLESS) and haversine_km(
                                lat[j], lon[j], lat[i], lon[i]) < fallback_far_km:
                            far = False
                            break
                _note(c, FALLBACK_FAR if far else FALLBACK_AFTER_CHIP, ts[i], i, counts, first, evidence)
            elif e == _CHIP or e == _CONTACTLESS:
                if not chip_seen:
                    chip_seen, t_chip = True, ts[i]
                if located[i]:
                    last_chip = i
        # fallback at a merchant new to the card: its chip/contactless merchants, sorted
        n_m = 0
        for i in range(lo, hi):
            if (entry[i] == _CHIP or entry[i] == _CONTACTLESS) and merchant[i] >= 0:
                vals[n_m] = merchant[i]
                n_m += 1
        if n_m > 0:
            known = np.sort(vals[:n_m])
            singles = 0
            for j in range(n_m):
                if (j == 0 or known[j - 1] != known[j]) and (j == n_m - 1 or known[j + 1] != known[j]):
                    singles += 1
            n_near, n_new, t_new = 0, 0, NO_TIME
            for i in range(lo, hi):
                if evidence[i] >> FALLBACK_AFTER_CHIP & 1 and ttype[i] != _VOID and ttype[i] != _COMPLETION:
                    n_near += 1
                    if merchant[i] >= 0:
                        at = np.searchsorted(known, merchant[i])
                        if at >= n_m or known[at] != merchant[i]:
                            n_new += 1
                            t_new = min(t_new, ts[i])
            if n_new > 0:
                counts[c, FALLBACK_NEW_MERCHANT] = n_new
                first[c, FALLBACK_NEW_MERCHANT] = t_new
                new_p[c] = binom_tail(n_new, n_near, (singles + 1.0) / (n_m + 2.0))
        # fallback burst: card-present uses after the first chip use, fallbacks clustered in time
        if chip_seen:
            n_use, n_fb = 0, 0
            for i in range(lo, hi):
                if ts[i] > t_chip and 0 <= entry[i] <= _FALLBACK:
                    rows[n_use] = i
                    n_use += 1
                    if entry[i] == _MAGSTRIPE or entry[i] == _FALLBACK:
                        n_fb += 1
            best, best_a, best_b = 2.0, -1, -1
            if burst_min > 0 and n_fb >= burst_min:
                b = 0
                for a in range(n_use):
                    ea = entry[rows[a]]
                    if not (ea == _MAGSTRIPE or ea == _FALLBACK):
                        continue
                    if b < a:
                        b = a
                    while b + 1 < n_use and ts[rows[b + 1]] < ts[rows[a]] + burst_window_s:
                        b += 1
                    k = 0
                    for j in range(a, b + 1):
                        if entry[rows[j]] == _MAGSTRIPE or entry[rows[j]] == _FALLBACK:
                            k += 1
                    if k >= burst_min:
                        tail = hypergeom_tail(k, n_use, n_fb, b - a + 1)
                        if tail < best:
                            best, best_a, best_b = tail, a, b
            if best_a >= 0:
                burst_p[c] = min(1.0, n_fb * best)
                for j in range(best_a, best_b + 1):
                    if entry[rows[j]] == _MAGSTRIPE or entry[rows[j]] == _FALLBACK:
                        _note(c, FALLBACK_BURST, ts[rows[j]], rows[j], counts, first, evidence)
            # fallback amounts among the card's largest (ties: the other uses first; missing: smallest)
            if n_fb >= 1 and n_use > n_fb:
                key = np.empty(n_use, dtype=np.float64)
                for j in range(n_use):
                    amt = amount[rows[j]]
                    key[j] = -amt if amt == amt else np.inf
                fb = np.empty(n_use, dtype=np.int64)
                for j in range(n_use):
                    fb[j] = 1 if (entry[rows[j]] == _MAGSTRIPE or entry[rows[j]] == _FALLBACK) else 0
                pre = np.concatenate((np.flatnonzero(fb == 0), np.flatnonzero(fb == 1)))  # ties: others first
                top = pre[np.argsort(key[pre], kind="mergesort")[:n_fb]]
                k = 0
                for j in top:
                    k += fb[j]
                if k >= 1:
                    amount_p[c] = hypergeom_tail(k, n_use, n_fb, n_fb)
                    for j in top:
                        if fb[j] == 1:
                            _note(c, FALLBACK_AMOUNT, ts[rows[j]], rows[j], counts, first, evidence)
        # ATC: replay (a value used before) and regression (below a value used more than the delay earlier)
        m = 0
        for i in range(lo, hi):
            if atc_ok[i]:
                rows[m] = i
                vals[m] = atc[i]
                m += 1
        if m < 2:
            continue
        order = np.argsort(vals[:m], kind="mergesort")  # stable: equal ATCs stay in time order
        replay = np.zeros(m, dtype=np.bool_)
        g = 0
        while g < m:
            h = g + 1
            while h < m and vals[order[h]] == vals[order[g]]:
                h += 1
            if h - g >= 2:
                for s in range(g + 1, h):
                    replay[order[s]] = True
                    _note(c, ATC_REPLAY, ts[rows[order[s]]], rows[order[s]], counts, first, evidence)
                evidence[rows[order[g]]] |= np.uint8(1 << ATC_REPLAY)
            g = h
        best_before = np.int64(-1)  # highest ATC among rows more than the delay before the current one
        k = 0
        for j in range(m):
            while k < m and ts[rows[k]] < ts[rows[j]] - offline_delay_s:
                best_before = max(best_before, vals[k])
                k += 1
            if not replay[j] and vals[j] < best_before:
                _note(c, ATC_REGRESSION, ts[rows[j]], rows[j], counts, first, evidence)
    return counts, first, evidence, travel_km, travel_s, burst_p, amount_p, new_p


@njit(cache=True)
def evidence_csr(card_indptr, evidence):
    """CSR (indptr, indices) of the transactions with any evidence bit, per card.

    Parameters
    ----------
    card_indptr : int64[n_cards + 1]
    evidence : uint8[n]

    Returns
    -------
    indptr : int64[n_cards + 1]
    indices : int64[nnz]
        Transaction indices in card-then-time order.
    """
    n_cards = card_indptr.shape[0] - 1
    indptr = np.zeros(n_cards + 1, dtype=np.int64)
    for c in range(n_cards):
        k = 0
        for i in range(card_indptr[c], card_indptr[c + 1]):
            if evidence[i] != 0:
                k += 1
        indptr[c + 1] = indptr[c] + k
    indices = np.empty(indptr[n_cards], dtype=np.int64)
    k = 0
    for i in range(evidence.shape[0]):
        if evidence[i] != 0:
            indices[k] = i
            k += 1
    return indptr, indices
