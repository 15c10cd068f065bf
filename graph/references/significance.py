"""Exact tails (integer and Fraction arithmetic) against which graph/detectors/significance.py and the
kernels' tails are checked."""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

__all__ = ["hypergeom_sf", "binom_sf", "log_exact", "poisson_binomial_sf"]


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
