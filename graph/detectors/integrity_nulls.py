"""Terminal integrity, the nulls of the counting kinds: each terminal's beta-binomial fitted to the other
terminals of its group (model, or MCC), and binomial tails that stay accurate when tiny.
"""

from __future__ import annotations

import math

import numpy as np

from graph.kernels.tails import log_binom_sf

__all__ = ["binom_lower", "binom_upper", "group_null", "with_spread"]


def group_null(k, n, group, prior_terminals: float, trim: float) -> tuple[np.ndarray, np.ndarray]:
    """Each terminal's null: a beta-binomial fitted to the terminals of its group (model, or MCC).

    Its mean is the group's pooled rate *without the terminal itself*, shrunk towards the network's (also
    without it; half a success keeps it above 0) with the weight of ``prior_terminals`` average terminals'
    trials. Its overdispersion ``rho`` (0: binomial, every terminal alike; larger: rates differ between
    terminals, e.g. some renew their address daily and others never) is the method-of-moments estimate over
    the group without the ``trim`` share (rounded down) of terminals with the highest rates ``k / n``, so
    that a few tampered terminals cannot widen the null that tests them.

    Returns
    -------
    (mu, rho) : float64 arrays, one value per terminal.
    """
    k, n, group = np.asarray(k, np.float64), np.asarray(n, np.float64), np.asarray(group, np.int64)
    mu, rho = np.full(len(k), 0.5), np.zeros(len(k))
    active = n > 0
    if not active.any():
        return mu, rho
    net = (k.sum() - k + 0.5) / (n.sum() - n + 1.0)
    prior = prior_terminals * n[active].mean()
    kg = np.bincount(group, weights=k)[group] - k
    ng = np.bincount(group, weights=n)[group] - n
    mu = np.clip((kg + prior * net) / (ng + prior), 1e-12, 1.0 - 1e-9)
    rate = k / np.maximum(n, 1.0)
    for g in np.unique(group[active]):
        idx = np.flatnonzero(active & (group == g))
        keep = idx[np.argsort(rate[idx], kind="stable")[: len(idx) - int(math.floor(trim * len(idx)))]]
        kk, nn = k[keep], n[keep]
        m = kk.sum() / nn.sum() if nn.sum() > 0 else 0.0
        den = (nn * (nn - 1.0)).sum() * m * (1.0 - m)
        if den > 0:
            num = ((kk - nn * m) ** 2 - nn * m * (1.0 - m)).sum()
            rho[group == g] = min(max(num / den, 0.0), 0.99)
    return mu, rho


def with_spread(details: list, rho: np.ndarray) -> list:
    """``details`` with the null's overdispersion where terminals of the group differ (rho > 0)."""
    return [d + (f" (rates differ between its terminals: overdispersion {r:.2g})" if r > 0 else "")
            for d, r in zip(details, rho)]


def binom_upper(k, n, rate) -> np.ndarray:
    """P(X >= k), X ~ Binomial(n, rate), per element (1 where k < 1)."""
    k, n, rate = (np.asarray(a, np.float64) for a in (k, n, rate))
    out = np.ones(len(k))
    for i in np.flatnonzero(k >= 1):
        out[i] = math.exp(log_binom_sf(float(k[i]), float(n[i]), float(rate[i])))
    return out


def binom_lower(c, n, f) -> np.ndarray:
    """P(X <= c), X ~ Binomial(n, f), per element, through the upper tail of n - X (accurate when tiny)."""
    c, n, f = (np.asarray(a, np.float64) for a in (c, n, f))
    return binom_upper(n - c, n, 1.0 - f) if len(c) else np.zeros(0)
