"""The one false-discovery rule: BH q-values, severities, and the tail probabilities detectors build on."""

from __future__ import annotations

import math

import numpy as np
import pytest

from graph.detectors.significance import (REPORT_Q, SEVERITY_Q, binom_sf, bh_qvalues, combine_fisher, poisson_sf,
                                          severity_from_q)


def _bh_reference(p, m):
    """Textbook step-up: q_(i) = min over j >= i of p_(j) m / j."""
    order = sorted(range(len(p)), key=lambda i: p[i])
    q = [0.0] * len(p)
    for pos, i in enumerate(order):
        q[i] = min(1.0, min(p[order[j]] * m / (j + 1) for j in range(pos, len(p))))
    return q


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bh_equals_the_textbook_step_up(seed):
    rng = np.random.default_rng(seed)
    p = rng.uniform(size=40) ** 3
    assert np.allclose(bh_qvalues(p), _bh_reference(list(p), 40))
    assert np.allclose(bh_qvalues(p, m=400), _bh_reference(list(p), 400))


def test_a_larger_family_never_lowers_a_q_value():
    p = np.array([1e-6, 1e-4, 0.01, 0.2])
    assert np.all(bh_qvalues(p, m=1000) >= bh_qvalues(p))
    with pytest.raises(ValueError):
        bh_qvalues(p, m=2)


def test_uniform_p_values_raise_nothing():
    """Under the null, BH at 5% keeps the false-discovery rate: with all nulls, rarely anything at all."""
    rng = np.random.default_rng(7)
    raised = [np.count_nonzero(severity_from_q(bh_qvalues(rng.uniform(size=2000))) != None)  # noqa: E711
              for _ in range(50)]
    assert sum(r > 0 for r in raised) <= 6  # P(any discovery) = alpha = 0.05 under the global null


def test_severity_cut_offs_are_the_documented_ones():
    assert list(SEVERITY_Q) == ["critical", "high", "medium"] and REPORT_Q == 0.05
    q = [0.0, 0.001, 0.0011, 0.01, 0.011, 0.05, 0.051, float("nan")]
    assert severity_from_q(q).tolist() == ["critical", "critical", "high", "high", "medium", "medium", None, None]


def test_tails_match_exact_sums():
    assert poisson_sf([0], [3.0])[0] == 1.0
    exact = 1 - sum(math.exp(-2.5) * 2.5 ** j / math.factorial(j) for j in range(4))
    assert poisson_sf([4], [2.5])[0] == pytest.approx(exact, rel=1e-12)
    assert poisson_sf([60], [2.0])[0] > 0 and poisson_sf([60], [2.0])[0] < 1e-50
    exact = sum(math.comb(30, j) * 0.2 ** j * 0.8 ** (30 - j) for j in range(9, 31))
    assert binom_sf([9], [30], [0.2])[0] == pytest.approx(exact, rel=1e-10)
    assert binom_sf([31], [30], [0.2])[0] == 0.0


def test_fisher_of_two_equals_the_closed_form():
    p1, p2 = 0.02, 0.3
    x = -math.log(p1 * p2)
    assert combine_fisher(np.log([p1 * p2]), np.array([2]))[0] == pytest.approx(math.exp(-x) * (1 + x))
