"""One false-discovery rule for every detector: p-values -> Benjamini-Hochberg q-values -> severity.

Every detector tests a family of hypotheses (one per terminal, card, dense block, merchant group,
terminal and finding kind) against a null model fitted to the data at hand and reports, for each row it
outputs, ``p_value`` (one-sided: the chance that a row of the family would show evidence at least this
strong if nothing were wrong) and ``q_value`` (Benjamini-Hochberg over the *whole* family it tested, not only
the rows it kept). The queue then turns ``q_value`` into a severity with the same cut-offs for every
detector, so "critical" and "high" mean the same thing everywhere:

=========  ==============  ================================================================
severity   q_value          meaning (BH: expected share of false discoveries at or above it)
=========  ==============  ================================================================
critical   <= 0.001        at most 1 in 1,000 alerts of this level or above is a false one
high       <= 0.01         at most 1 in 100
medium     <= 0.05         at most 1 in 20
(none)     > 0.05          not raised
=========  ==============  ================================================================
"""

from __future__ import annotations

from math import lgamma

import numpy as np

from graph.vocabulary import SEVERITIES

__all__ = ["bh_qvalues", "severity_from_q", "SEVERITY_Q", "REPORT_Q", "combine_fisher", "poisson_sf",
           "binom_sf"]

# Upper q-value of each severity, most severe first; a row above REPORT_Q raises no alert.
SEVERITY_Q: dict[str, float] = dict(zip(SEVERITIES, (1e-3, 1e-2, 5e-2)))  # critical, high, medium
REPORT_Q: float = SEVERITY_Q["medium"]


def bh_qvalues(p_values, m: int | None = None) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (q-values), the family being ``m`` hypotheses.

    Parameters
    ----------
    p_values : array-like of float
        The p-values of the hypotheses that were kept (any order); NaN counts as 1.
    m : int, optional
        The size of the family that was tested (default ``len(p_values)``). Pass the number of all
        entities scored when only the most promising ones carry a p-value: the others are taken as
        p = 1, which leaves the q-values of the kept ones exactly as if all had been listed.

    Returns
    -------
    ndarray of float
        ``q[i] = min_{j: p_j >= p_i} p_j * m / rank_j``, clipped to [0, 1], in the input's order.

    Example
    -------
    >>> bh_qvalues([0.01, 0.04, 0.03, 0.5]).round(3).tolist()
    [0.04, 0.053, 0.053, 0.5]
    """
    p = np.asarray(p_values, dtype=np.float64).copy()
    n = len(p)
    if n == 0:
        return p
    m = n if m is None else int(m)
    if m < n:
        raise ValueError(f"the family ({m}) cannot be smaller than the number of p-values ({n})")
    p[~np.isfinite(p)] = 1.0
    p = np.clip(p, 0.0, 1.0)
    order = np.argsort(p, kind="stable")
    ranked = p[order] * m / np.arange(1, n + 1)
    ranked = np.minimum.accumulate(ranked[::-1])[::-1]
    q = np.empty(n)
    q[order] = np.clip(ranked, 0.0, 1.0)
    return q


def severity_from_q(q_values) -> np.ndarray:
    """Severity of each q-value (object array): critical, high, medium, or None when above ``REPORT_Q``.

    Example
    -------
    >>> severity_from_q([1e-5, 0.005, 0.03, 0.2]).tolist()
    ['critical', 'high', 'medium', None]
    """
    q = np.asarray(q_values, dtype=np.float64)
    q = np.where(np.isfinite(q), q, 1.0)
    return np.select([q <= SEVERITY_Q["critical"], q <= SEVERITY_Q["high"], q <= SEVERITY_Q["medium"]],
                     list(SEVERITIES), None).astype(object)


def combine_fisher(log_p: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Fisher's combined p-value of ``k`` independent p-values whose logs sum to ``log_p`` (vectorised).

    ``X = -2 sum log p`` is chi-square with ``2k`` degrees of freedom under the null; its survival function
    for even degrees of freedom is ``exp(-X/2) sum_{i<k} (X/2)^i / i!``, computed here in log space.

    Example
    -------
    >>> round(float(combine_fisher(np.log([0.05]), np.array([1]))[0]), 12)
    0.05
    """
    half = -np.asarray(log_p, dtype=np.float64)  # X/2 = -sum log p
    k = np.asarray(k, dtype=np.int64)
    out = np.ones(len(half))
    for idx in range(len(half)):
        if k[idx] <= 0:
            continue
        x = max(half[idx], 0.0)
        term, total = 1.0, 1.0
        for i in range(1, int(k[idx])):
            term *= x / i
            total += term
        out[idx] = min(1.0, np.exp(-x + np.log(total)))
    return out


def poisson_sf(k, mu) -> np.ndarray:
    """P(X >= k) for X ~ Poisson(mu), vectorised, accurate in the far tail (log-space series).

    Example
    -------
    >>> round(float(poisson_sf([3], [1.0])[0]), 6)
    0.080301
    """
    k = np.asarray(k, dtype=np.int64)
    mu = np.asarray(mu, dtype=np.float64)
    k, mu = np.broadcast_arrays(k, mu)
    out = np.ones(k.shape, dtype=np.float64)
    for idx in np.ndindex(k.shape):
        kk, m = int(k[idx]), float(mu[idx])
        if kk <= 0:
            continue
        if m <= 0:
            out[idx] = 0.0
            continue
        # sum_{j >= k} e^-m m^j / j!: start at j = k in log space and add terms until they vanish
        log_term = -m + kk * np.log(m) - _lgamma(kk + 1)
        total, term, j = 1.0, 1.0, kk
        while term > 1e-17 * total and j < kk + 10_000:
            j += 1
            term *= m / j
            total += term
        out[idx] = min(1.0, float(np.exp(log_term + np.log(total))))
    return out


def binom_sf(k, n, p) -> np.ndarray:
    """P(X >= k) for X ~ Binomial(n, p), vectorised (exact sum in log space; n up to a few 10^5).

    Example
    -------
    >>> round(float(binom_sf([2], [10], [0.1])[0]), 6)
    0.263901
    """
    k, n, p = np.broadcast_arrays(np.asarray(k, dtype=np.int64), np.asarray(n, dtype=np.int64),
                                  np.asarray(p, dtype=np.float64))
    out = np.ones(k.shape, dtype=np.float64)
    for idx in np.ndindex(k.shape):
        kk, nn, pp = int(k[idx]), int(n[idx]), float(p[idx])
        if kk <= 0:
            continue
        if kk > nn or pp <= 0.0:
            out[idx] = 0.0
            continue
        if pp >= 1.0:
            continue
        j = np.arange(kk, nn + 1)
        logs = (_lgamma_vec(nn + 1) - _lgamma_vec(j + 1) - _lgamma_vec(nn - j + 1)
                + j * np.log(pp) + (nn - j) * np.log1p(-pp))
        top = logs.max()
        out[idx] = min(1.0, float(np.exp(top) * np.exp(logs - top).sum()))
    return out


def _lgamma(x: float) -> float:
    return float(_lgamma_vec(np.asarray([x], dtype=np.float64))[0])


def _lgamma_vec(x) -> np.ndarray:
    return np.vectorize(lgamma, otypes=[np.float64])(np.asarray(x, dtype=np.float64))
