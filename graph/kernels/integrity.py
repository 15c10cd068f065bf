"""Per-terminal integrity kernels: STAN use, STAN gaps, clock skew, relocation, MCC mismatch, void bursts, address
changes, and the beta-binomial tail of the overdispersed nulls."""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from graph.kernels.geo import haversine_km

__all__ = ["STAN_MODULUS", "STATS", "N_STATS", "NO_TIME", "IP_STATS", "STAN_USE", "unwrap_stan", "stan_use",
           "terminal_stats", "address_changes", "betabinom_logsf"]

STAN_MODULUS = 999_999  # STAN runs 1..999999 and wraps to 1
NO_TIME = np.iinfo(np.int64).max
# Columns of the int64 statistics matrix returned by ``terminal_stats``, one row per terminal.
STATS = ("n", "stan_n", "gap_runs", "gap_missing", "gap_first", "gap_last",
         "skew_events", "skew_max_s", "skew_first", "skew_last",
         "located", "far_n", "far_first", "far_last",
         "mcc_known", "mcc_n", "mcc_first", "mcc_last", "mcc_sent",
         "vr_total", "vr_window", "vr_window_n", "vr_window_start")
N_STATS = len(STATS)
# column positions, compile-time constants for the kernel
_N = 0
_STAN_N = 1
_GAP_RUNS = 2
_GAP_MISSING = 3
_GAP_FIRST = 4
_GAP_LAST = 5
_SKEW_EVENTS = 6
_SKEW_MAX_S = 7
_SKEW_FIRST = 8
_SKEW_LAST = 9
_LOCATED = 10
_FAR_N = 11
_FAR_FIRST = 12
_FAR_LAST = 13
_MCC_KNOWN = 14
_MCC_N = 15
_MCC_FIRST = 16
_MCC_LAST = 17
_MCC_SENT = 18
_VR_TOTAL = 19
_VR_WINDOW = 20
_VR_WINDOW_N = 21
_VR_WINDOW_START = 22


@njit(cache=True)
def unwrap_stan(stan):
    """STANs in arrival order -> unwrapped sequence numbers (first = its STAN), undoing the 999999 -> 1 wrap.

    Each step is taken as the signed difference modulo ``STAN_MODULUS`` closest to zero, so messages that
    arrive out of order (a clock running behind) keep their place in the terminal's sequence.
    """
    n = len(stan)
    out = np.empty(n, np.int64)
    if n == 0:
        return out
    out[0] = stan[0]
    half = STAN_MODULUS // 2
    for i in range(1, n):
        d = (stan[i] - stan[i - 1]) % STAN_MODULUS
        if d > half:
            d -= STAN_MODULUS
        out[i] = out[i - 1] + d
    return out


@njit(cache=True)
def _stan_sequence(lo, hi, term_order, stan):
    """The messages of one terminal (rows ``lo:hi`` of ``term_order``) that carry a STAN, in STAN order.

    Returns
    -------
    (idx, u) : int64 arrays
        Transaction indices and unwrapped sequence numbers, sorted by ``u`` (ties keep time order).
    """
    m = 0
    for k in range(lo, hi):
        if stan[term_order[k]] > 0:
            m += 1
    idx = np.empty(m, np.int64)
    s = np.empty(m, np.int64)
    j = 0
    for k in range(lo, hi):
        i = term_order[k]
        if stan[i] > 0:
            idx[j] = i
            s[j] = stan[i]
            j += 1
    u = unwrap_stan(s)
    order = np.argsort(u, kind="mergesort")
    return idx[order], u[order]


# Columns of the int64 matrix returned by ``stan_use``, one row per terminal.
STAN_USE = ("stan_steps", "stan_skipped", "stan_seconds")


@njit(cache=True)
def stan_use(term_indptr, term_order, ts, stan):
    """How many sequence numbers each terminal skipped between its messages, and over how much time.

    Parameters
    ----------
    term_indptr, term_order : int64 arrays
        CSR of each terminal's transactions in (ts, stan) order (``Projection.term_order``).
    ts, stan : int arrays per transaction
        Epoch seconds; STAN (< 1 = missing).

    Returns
    -------
    int64 array, shape (n_terminals, len(STAN_USE)): steps between consecutive messages in STAN order; numbers
    skipped by those steps (``jump - 1``, none for a repeated number); seconds they took (time going back counts
    as none). Their ratio is the rate at which the terminal spends numbers without a message in the drop
    (batch closes, echo tests, reversals and deleted sales alike).
    """
    n_terms = len(term_indptr) - 1
    out = np.zeros((n_terms, 3), np.int64)
    for t in range(n_terms):
        idx, u = _stan_sequence(term_indptr[t], term_indptr[t + 1], term_order, stan)
        for q in range(1, len(u)):
            out[t, 0] += 1
            out[t, 1] += max(u[q] - u[q - 1] - 1, 0)
            out[t, 2] += max(ts[idx[q]] - ts[idx[q - 1]], 0)
    return out


@njit(cache=True)
def terminal_stats(term_indptr, term_order, ts, stan, ttype, lat, lon, mcc, t_lat, t_lon, reg_mcc, stan_rate,
                   min_gap, skew_tolerance_s, far_km, window_s, void_codes):
    """Integrity statistics of every terminal (see ``STATS`` for the columns).

    Parameters
    ----------
    term_indptr, term_order : int64 arrays
        CSR of each terminal's transactions in (ts, stan) order (``Projection.term_order``).
    ts, stan, ttype : int arrays per transaction
        Epoch seconds; STAN (< 1 = missing); transaction type code.
    lat, lon : float64 arrays per transaction
        Reported position (NaN = missing).
    mcc : int32 per transaction (< 0 = missing); t_lat, t_lon, reg_mcc : registered position and MCC per
        terminal (NaN / < 0 = unknown).
    stan_rate : float64 per terminal
        Sequence numbers per second the terminal spends without a message in the drop (its model's rate,
        e.g. one per daily batch close; 0: every number is a message).
    min_gap : int
        A step in STAN order that skips at least ``min_gap`` numbers more than ``stan_rate`` times its
        duration (rounded) explains is a gap; it hides that many messages.
    skew_tolerance_s : int
        In STAN order, a message whose time is earlier than that of an earlier message by more than this
        is behind the clock (``skew_events`` counts such messages, ``skew_max_s`` the largest lag).
    far_km : float
        A transaction this far from the terminal's registered position counts as away.
    window_s : int
        Width of the sliding window for void/refund bursts.
    void_codes : int array
        Transaction type codes counted as void or refund.

    Returns
    -------
    int64 array, shape (n_terminals, len(STATS)); times are epoch seconds (``NO_TIME`` when none).
    """
    n_terms = len(term_indptr) - 1
    out = np.zeros((n_terms, N_STATS), np.int64)
    for t in range(n_terms):
        lo, hi = term_indptr[t], term_indptr[t + 1]
        row = out[t]
        row[_N] = hi - lo
        row[_GAP_FIRST] = row[_SKEW_FIRST] = row[_FAR_FIRST] = row[_MCC_FIRST] = row[_VR_WINDOW_START] = NO_TIME
        row[_GAP_LAST] = row[_SKEW_LAST] = row[_FAR_LAST] = row[_MCC_LAST] = row[_MCC_SENT] = -1
        # STAN order: the unwrapped sequence of the messages carrying a STAN
        idx, u = _stan_sequence(lo, hi, term_order, stan)
        m = len(u)
        row[_STAN_N] = m
        if m > 1:
            latest = ts[idx[0]]  # the latest time of the messages so far in STAN order
            for q in range(1, m):
                a, b = idx[q - 1], idx[q]
                spent = math.floor(stan_rate[t] * max(ts[b] - ts[a], 0) + 0.5)  # numbers the model spends meanwhile
                hidden = u[q] - u[q - 1] - 1 - spent
                if hidden >= min_gap:
                    row[_GAP_RUNS] += 1
                    row[_GAP_MISSING] += hidden
                    row[_GAP_FIRST] = min(row[_GAP_FIRST], ts[a])
                    row[_GAP_LAST] = max(row[_GAP_LAST], ts[b])
                back = latest - ts[b]
                latest = max(latest, ts[b])
                if back > skew_tolerance_s:
                    row[_SKEW_EVENTS] += 1
                    row[_SKEW_MAX_S] = max(row[_SKEW_MAX_S], back)
                    row[_SKEW_FIRST] = min(row[_SKEW_FIRST], ts[b])
                    row[_SKEW_LAST] = max(row[_SKEW_LAST], ts[b])
        # position and MCC against the registration, and void/refund bursts, in time order
        home_known = not (np.isnan(t_lat[t]) or np.isnan(t_lon[t]))
        w = lo
        vr_in = 0
        for k in range(lo, hi):
            i = term_order[k]
            if home_known and not (np.isnan(lat[i]) or np.isnan(lon[i])):
                row[_LOCATED] += 1
                if haversine_km(lat[i], lon[i], t_lat[t], t_lon[t]) > far_km:
                    row[_FAR_N] += 1
                    row[_FAR_FIRST] = min(row[_FAR_FIRST], ts[i])
                    row[_FAR_LAST] = max(row[_FAR_LAST], ts[i])
            if reg_mcc[t] >= 0 and mcc[i] >= 0:
                row[_MCC_KNOWN] += 1
                if mcc[i] != reg_mcc[t]:
                    row[_MCC_N] += 1
                    row[_MCC_FIRST] = min(row[_MCC_FIRST], ts[i])
                    row[_MCC_LAST] = max(row[_MCC_LAST], ts[i])
                    row[_MCC_SENT] = mcc[i]
            is_vr = False
            for code in void_codes:
                if ttype[i] == code:
                    is_vr = True
            if is_vr:
                row[_VR_TOTAL] += 1
                vr_in += 1
            while ts[term_order[w]] <= ts[i] - window_s:  # slide the window's left edge
                leaving = term_order[w]
                for code in void_codes:
                    if ttype[leaving] == code:
                        vr_in -= 1
                w += 1
            if vr_in > row[_VR_WINDOW]:
                row[_VR_WINDOW] = vr_in
                row[_VR_WINDOW_N] = k - w + 1
                row[_VR_WINDOW_START] = ts[term_order[w]]
    return out


# Columns of the int64 matrix returned by ``address_changes``, one row per terminal.
IP_STATS = ("ip_n", "ip_new", "ip_first", "ip_last")


@njit(cache=True)
def address_changes(ev_indptr, ev_order, ts, ip):
    """Network addresses each terminal reported, and how often it moved to one it had never used before.

    Parameters
    ----------
    ev_indptr, ev_order : int64 arrays
        CSR of each terminal's events in time order (``ev_order`` indexes ``ts`` and ``ip``).
    ts : int64 array
        Epoch seconds of each event.
    ip : int64 array
        Code of the event's address (< 0 = missing; equal codes = equal addresses).

    Returns
    -------
    int64 array, shape (n_terminals, len(IP_STATS)): events with an address; events whose address differs
    from the previous one and was never reported by the terminal before; first and last time of those
    (``NO_TIME`` / -1 when none).
    """
    n_terms = len(ev_indptr) - 1
    out = np.zeros((n_terms, 4), np.int64)
    for t in range(n_terms):
        row = out[t]
        row[2] = NO_TIME
        row[3] = -1
        seen = {np.int64(-1)}  # typed for numba; -1 is never looked up (missing addresses are skipped)
        prev = np.int64(-1)
        for k in range(ev_indptr[t], ev_indptr[t + 1]):
            i = ev_order[k]
            a = ip[i]
            if a < 0:
                continue
            row[0] += 1
            if prev >= 0 and a != prev and a not in seen:
                row[1] += 1
                row[2] = min(row[2], ts[i])
                row[3] = max(row[3], ts[i])
            seen.add(a)
            prev = a
    return out


@njit(cache=True)
def _log_pmf(j, n, mu, rho):
    """log P(X = j): beta-binomial with mean ``mu`` and intra-class correlation ``rho`` (0: binomial)."""
    lchoose = math.lgamma(n + 1.0) - math.lgamma(j + 1.0) - math.lgamma(n - j + 1.0)
    if rho <= 0.0:
        return lchoose + j * math.log(mu) + (n - j) * math.log1p(-mu)
    a = mu * (1.0 - rho) / rho
    b = (1.0 - mu) * (1.0 - rho) / rho
    return (lchoose + math.lgamma(j + a) + math.lgamma(n - j + b) - math.lgamma(n + a + b)
            - (math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)))


@njit(cache=True)
def betabinom_logsf(k, n, mu, rho):
    """Natural log of P(X >= k) per element, X beta-binomial(n, mean ``mu``, intra-class correlation ``rho``).

    Parameters
    ----------
    k, n : int64 arrays
        Successes and trials per terminal.
    mu, rho : float64 arrays
        Mean rate (0 < mu < 1) and overdispersion (0 <= rho < 1; 0 is the binomial) per terminal.

    Returns
    -------
    float64 array: 0 where k <= 0, -inf where k > n.
    """
    out = np.zeros(len(k))
    for i in range(len(k)):
        kk, nn = k[i], n[i]
        if kk <= 0:
            continue
        if kk > nn:
            out[i] = -np.inf
            continue
        terms = np.empty(nn - kk + 1)
        for j in range(kk, nn + 1):
            terms[j - kk] = _log_pmf(j, nn, mu[i], rho[i])
        top = terms.max()
        out[i] = min(0.0, top + math.log(np.exp(terms - top).sum()))
    return out
