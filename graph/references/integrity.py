"""Slow, obviously correct references of graph.kernels.integrity (plain Python, one terminal at a time)."""

from __future__ import annotations

import math

__all__ = ["stan_use", "terminal_stats", "address_changes", "betabinom_sf"]

MOD = 999_999
NO_TIME = 2**63 - 1


def _km(lat1, lon1, lat2, lon2):
    p1, p2 = math.radians(lat1), math.radians(lat2)
    a = math.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2
    return 2 * 6371.0088 * math.asin(math.sqrt(min(1.0, a)))


def _position(stan, first):
    """Messages between ``first`` and ``stan`` along the wrapping counter, in -MOD/2 .. MOD/2."""
    d = (stan - first) % MOD
    return d - MOD if d > MOD // 2 else d


def _stan_order(term_indptr, term_order, stan, t):
    """The terminal's messages with a STAN, sorted by their place along the counter (ties keep time order), and
    those places."""
    with_stan = [int(term_order[k]) for k in range(term_indptr[t], term_indptr[t + 1]) if stan[term_order[k]] > 0]
    if not with_stan:
        return [], []
    first = stan[with_stan[0]]
    seq = sorted(with_stan, key=lambda i: _position(stan[i], first))  # stable: ties keep time order
    return seq, [_position(stan[i], first) for i in seq]


def stan_use(term_indptr, term_order, ts, stan):
    """Same contract as ``graph.kernels.integrity.stan_use``; a list of dicts keyed by ``STAN_USE``."""
    out = []
    for t in range(len(term_indptr) - 1):
        seq, place = _stan_order(term_indptr, term_order, stan, t)
        steps = list(zip(range(len(seq) - 1), range(1, len(seq))))
        out.append({"stan_steps": len(steps),
                    "stan_skipped": sum(max(place[b] - place[a] - 1, 0) for a, b in steps),
                    "stan_seconds": sum(max(int(ts[seq[b]]) - int(ts[seq[a]]), 0) for a, b in steps)})
    return out


def terminal_stats(term_indptr, term_order, ts, stan, ttype, lat, lon, mcc, t_lat, t_lon, reg_mcc, stan_rate,
                   min_gap, skew_tolerance_s, far_km, window_s, void_codes):
    """Same contract as the kernel; returns a list of dicts keyed by ``graph.kernels.integrity.STATS``."""
    out = []
    voids = set(int(c) for c in void_codes)
    for t in range(len(term_indptr) - 1):
        rows = [int(term_order[k]) for k in range(term_indptr[t], term_indptr[t + 1])]  # time order
        r = {"n": len(rows), "gap_runs": 0, "gap_missing": 0, "gap_first": NO_TIME, "gap_last": -1,
             "skew_events": 0, "skew_max_s": 0, "skew_first": NO_TIME, "skew_last": -1, "located": 0, "far_n": 0,
             "far_first": NO_TIME, "far_last": -1, "mcc_known": 0, "mcc_n": 0, "mcc_first": NO_TIME,
             "mcc_last": -1, "mcc_sent": -1, "vr_total": 0, "vr_window": 0, "vr_window_n": 0,
             "vr_window_start": NO_TIME}
        seq, place = _stan_order(term_indptr, term_order, stan, t)
        r["stan_n"] = len(seq)
        if seq:
            for j, (a, b) in enumerate(zip(seq, seq[1:])):
                spent = math.floor(stan_rate[t] * max(int(ts[b]) - int(ts[a]), 0) + 0.5)  # by the model, meanwhile
                hidden = place[j + 1] - place[j] - 1 - spent
                if hidden >= min_gap:
                    r["gap_runs"] += 1
                    r["gap_missing"] += hidden
                    r["gap_first"] = min(r["gap_first"], int(ts[a]))
                    r["gap_last"] = max(r["gap_last"], int(ts[b]))
            for pos, b in enumerate(seq[1:], start=1):
                lag = max(int(ts[x]) for x in seq[:pos]) - int(ts[b])  # behind any message before it
                if lag > skew_tolerance_s:
                    r["skew_events"] += 1
                    r["skew_max_s"] = max(r["skew_max_s"], lag)
                    r["skew_first"] = min(r["skew_first"], int(ts[b]))
                    r["skew_last"] = max(r["skew_last"], int(ts[b]))
        for pos, i in enumerate(rows):
            if not (math.isnan(t_lat[t]) or math.isnan(t_lon[t]) or math.isnan(lat[i]) or math.isnan(lon[i])):
                r["located"] += 1
                if _km(lat[i], lon[i], t_lat[t], t_lon[t]) > far_km:
                    r["far_n"] += 1
                    r["far_first"] = min(r["far_first"], int(ts[i]))
                    r["far_last"] = max(r["far_last"], int(ts[i]))
            if reg_mcc[t] >= 0 and mcc[i] >= 0:
                r["mcc_known"] += 1
                if mcc[i] != reg_mcc[t]:
                    r["mcc_n"] += 1
                    r["mcc_first"] = min(r["mcc_first"], int(ts[i]))
                    r["mcc_last"] = max(r["mcc_last"], int(ts[i]))
                    r["mcc_sent"] = int(mcc[i])
            r["vr_total"] += int(ttype[i]) in voids
            window = [j for j in rows[:pos + 1] if ts[j] > ts[i] - window_s]  # messages of the last window_s
            count = sum(int(ttype[j]) in voids for j in window)
            if count > r["vr_window"]:
                r["vr_window"], r["vr_window_n"], r["vr_window_start"] = count, len(window), int(ts[window[0]])
        out.append(r)
    return out


def address_changes(ev_indptr, ev_order, ts, ip):
    """Same contract as ``graph.kernels.integrity.address_changes``; a list of dicts keyed by ``IP_STATS``."""
    out = []
    for t in range(len(ev_indptr) - 1):
        reported = [int(ev_order[k]) for k in range(ev_indptr[t], ev_indptr[t + 1]) if ip[ev_order[k]] >= 0]
        moves = [b for pos, b in enumerate(reported)
                 if pos > 0 and ip[b] != ip[reported[pos - 1]] and ip[b] not in {ip[x] for x in reported[:pos]}]
        out.append({"ip_n": len(reported), "ip_new": len(moves),
                    "ip_first": min((int(ts[b]) for b in moves), default=NO_TIME),
                    "ip_last": max((int(ts[b]) for b in moves), default=-1)})
    return out


def betabinom_sf(k, n, mu, rho):
    """P(X >= k), X beta-binomial(n, mean mu, intra-class correlation rho; rho = 0: binomial), by summing the
    probability mass function term by term."""
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    total = 0.0
    for j in range(k, n + 1):
        log_choose = math.lgamma(n + 1) - math.lgamma(j + 1) - math.lgamma(n - j + 1)
        if rho == 0:
            total += math.exp(log_choose + j * math.log(mu) + (n - j) * math.log(1 - mu))
        else:
            a, b = mu * (1 - rho) / rho, (1 - mu) * (1 - rho) / rho
            log_beta = (math.lgamma(j + a) + math.lgamma(n - j + b) - math.lgamma(n + a + b)
                        - math.lgamma(a) - math.lgamma(b) + math.lgamma(a + b))
            total += math.exp(log_choose + log_beta)
    return total
