"""The exact tail of a cloned card's evidence summed over independent reasons (``combined_tail``)."""

from __future__ import annotations

import math

import numpy as np
from numba import njit

__all__ = ["combined_tail"]


@njit(cache=True)
def combined_tail(tails, levels, widths, rows):
    """P(S >= s) for the cards ``rows``: ``S = sum_r -log tail_r(L_r)`` over independent levels ``L_r`` in
    ``0..widths[r] - 1`` with ``P(L_r >= l) = tails[card, r, l]``, ``s`` the value at the card's ``levels``.

    Exact: a depth-first walk over the reasons' levels that adds a branch's whole mass once its partial sum
    reaches ``s`` (surprises are >= 0) and drops it once even the largest levels left cannot reach ``s``
    (relative tolerance 1e-9 on ``s``; ``s <= 0`` gives 1).

    Parameters
    ----------
    tails : float64[n_cards, n_reasons, >= max(widths) + 1]
        Non-increasing in the level, 1 at level 0, 0 at level ``widths[r]``.
    levels : int64[n_cards, n_reasons]; widths : int64[n_reasons]; rows : int64[k]

    Returns
    -------
    float64[k]
    """
    n_r = tails.shape[1]
    w_max = tails.shape[2]
    out = np.ones(rows.shape[0])
    sur = np.zeros((n_r, w_max))
    pmf = np.zeros((n_r, w_max))
    rest_max = np.zeros(n_r + 1)
    rest_mass = np.ones(n_r + 1)
    idx = np.full(n_r, -1, dtype=np.int64)
    run = np.zeros(n_r + 1)
    prob = np.ones(n_r + 1)
    for k in range(rows.shape[0]):
        i = rows[k]
        observed = 0.0
        for r in range(n_r):
            for lv in range(widths[r]):
                sur[r, lv] = -math.log(max(tails[i, r, lv], 1e-300))
                pmf[r, lv] = min(max(tails[i, r, lv] - tails[i, r, lv + 1], 0.0), 1.0)
            observed += sur[r, levels[i, r]]
        if observed <= 0.0:
            out[k] = 1.0
            continue
        target = observed - 1e-9 * max(1.0, observed)
        for r in range(n_r - 1, -1, -1):
            top, mass = 0.0, 0.0
            for lv in range(widths[r]):
                mass += pmf[r, lv]
                if pmf[r, lv] > 0.0 and sur[r, lv] > top:
                    top = sur[r, lv]
            rest_max[r] = rest_max[r + 1] + top
            rest_mass[r] = rest_mass[r + 1] * mass
        total = 0.0
        depth = 0
        idx[:] = -1
        run[0], prob[0] = 0.0, 1.0
        while depth >= 0:
            idx[depth] += 1
            lv = idx[depth]
            if lv >= widths[depth]:
                idx[depth] = -1
                depth -= 1
                continue
            p = prob[depth] * pmf[depth, lv]
            if p <= 0.0:
                continue
            v = run[depth] + sur[depth, lv]
            if v >= target:  # every completion reaches it
                total += p * rest_mass[depth + 1]
            elif depth + 1 < n_r and v + rest_max[depth + 1] >= target:
                run[depth + 1], prob[depth + 1] = v, p
                depth += 1
        out[k] = min(1.0, total)
    return out
