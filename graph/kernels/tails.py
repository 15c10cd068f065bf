"""Binomial and hypergeometric upper tails in log space, exact for integers and smooth for weighted counts."""

from __future__ import annotations

import math

import numpy as np
from numba import njit

__all__ = ["log_binom_sf", "log_hypergeom_sf"]


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
