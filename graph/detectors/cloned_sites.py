"""Cloned cards, far swipes per terminal: where the run's far-from-home swipes happen (``far_sites``), the
terminals where fraud is committed at the terminal itself (``at_terminal_points``: explained away, not copies),
the beta prior of each terminal's far-swipe rate (``terminal_prior``, ``far_event_rates``) and a card's tail
over its far swipes at their terminals' rates (``site_tails``)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from graph.detectors.significance import REPORT_Q, bh_qvalues, binom_sf

__all__ = ["at_terminal_points", "binom_tail_small_k", "far_event_rates", "far_sites", "far_sources",
           "reports_at_points", "site_names", "site_tails", "terminal_prior"]


def binom_tail_small_k(k: int, n, rho) -> np.ndarray:
    """``P(Binomial(n, rho) >= k)`` for a small ``k`` (<= 5), vectorised over ``n`` and ``rho``, accurate in the
    far tail.

    Where the tail is above one half it is ``1 - cdf``; elsewhere the pmf summed from ``k`` upwards (no
    cancellation).

    Example
    -------
    >>> round(float(binom_tail_small_k(2, np.array([10]), 0.1)[0]), 6)
    0.263901
    """
    n, rho = np.broadcast_arrays(np.asarray(n, dtype=np.float64), np.asarray(rho, dtype=np.float64))
    n, rho = n.ravel(), np.clip(rho.ravel(), 0.0, 1.0)
    if k <= 0:
        return np.ones(len(n))
    out = np.where(rho >= 1.0, (n >= k).astype(np.float64), 0.0)
    inner = (rho > 0.0) & (rho < 1.0) & (n >= k)
    if not inner.any():
        return out
    nn, r = n[inner], rho[inner]
    log_r, log_q = np.log(r), np.log1p(-r)

    def pmf(j):
        log_comb = np.zeros(len(nn))
        for i in range(j):
            log_comb += np.log(nn - i) - np.log(i + 1)
        return np.exp(log_comb + j * log_r + (nn - j) * log_q)

    cdf = sum(pmf(j) for j in range(k))
    tail = np.where(cdf < 0.5, 1.0 - cdf, 0.0)
    low = cdf >= 0.5
    if low.any():
        m, rl = nn[low], r[low]
        term = pmf(k)[low]
        total = term.copy()
        j = k
        while np.any((term > 1e-17 * total) & (j < m)):
            term = term * np.maximum(m - j, 0.0) / (j + 1) * (rl / (1.0 - rl))
            total += term
            j += 1
        tail[low] = np.minimum(total, 1.0)
    out[inner] = tail
    return out


def far_sites(cards: pd.DataFrame, ev: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The fallback_far events of ``cards`` and the located uses of their terminals over the whole run.

    Returns
    -------
    (card, site, uses): per event its card row and terminal index (-1 for an unknown terminal), and per terminal
    index its located uses in the run (summed over the evidence table's terminal rows, buckets included).
    """
    terms = ev[ev["terminal_id"].notna()].groupby("terminal_id", sort=True)["located_uses"].sum()
    lists = cards["far_terminal_ids"].tolist()
    card = np.repeat(np.arange(len(cards)), [len(v) for v in lists]).astype(np.int64)
    names = [t for v in lists for t in v]
    site = pd.Index(terms.index, dtype=object).get_indexer(pd.Index(names, dtype=object)).astype(np.int64)
    return card, site, terms.to_numpy(np.int64)


def site_names(ev: pd.DataFrame) -> pd.Index:
    """The terminal ids of the evidence table's terminal rows, sorted: the terminal index of ``far_sites``."""
    return pd.Index(ev[ev["terminal_id"].notna()].groupby("terminal_id", sort=True).size().index, dtype=object)


def far_sources(sites: tuple, out: np.ndarray) -> tuple[int, np.ndarray]:
    """The independent sources of the fallback_far events of the cards not in ``out``: each terminal with such
    events once (however many cards show them there), and each card's events at unknown terminals once. Returns
    their number and, per card, how many of them are the card's alone (left out of the rate that judges it)."""
    card, site, _ = sites
    own = np.zeros(len(out), dtype=np.int64)
    live = ~out[card]
    known = live & (site >= 0)
    pairs = np.unique(np.column_stack([site[known], card[known]]), axis=0) if known.any() else np.zeros((0, 2), int)
    terms, first, per_term = np.unique(pairs[:, 0], return_index=True, return_counts=True)
    alone = pairs[first[per_term == 1], 1]
    np.add.at(own, alone, 1)
    unknown = np.unique(card[live & (site < 0)])
    own[unknown] += 1
    return int(len(terms) + len(unknown)), own


def at_terminal_points(sites: tuple, n_cards: int, prior: float):
    """Terminals whose fallback_far cards show that anomaly nowhere else: fraud committed at the terminal.

    A (card, terminal) pair is *sole* when all the card's fallback_far events are at that terminal (one known
    terminal). Under the null a terminal's far cards are like the run's: each pair is sole with the share ``w``
    of sole pairs at the other terminals (``(sole + prior) / (pairs + 2 prior)``). A sole card is explained by
    its terminal on the evidence of the *other* cards there (one card alone says nothing about the terminal): a
    terminal with ``s`` sole pairs out of ``n`` has ``p = P(Binomial(n - 1, w) >= s - 1)`` (1 without a sole
    pair), and Benjamini-Hochberg over the terminals with such events accepts those with ``q <= REPORT_Q``.

    Returns
    -------
    (points, explained, card_explained): per terminal index with such events its far and sole cards, p- and
    q-value and acceptance (``site`` = terminal index); per event whether its terminal is accepted; per card
    whether all its fallback_far events are at accepted terminals.
    """
    card, site, uses = sites
    n_sites = len(uses)
    p = np.ones(n_sites)
    q = np.ones(n_sites)
    known = site >= 0
    if not known.any():
        empty = pd.DataFrame({"site": np.zeros(0, np.int64), "far_cards": np.zeros(0, np.int64),
                              "sole_cards": np.zeros(0, np.int64), "p_value": np.zeros(0), "q_value": np.zeros(0),
                              "accepted": np.zeros(0, dtype=bool)})
        return empty, np.zeros(len(card), dtype=bool), np.zeros(n_cards, dtype=bool)
    pairs = np.unique(np.column_stack([card[known], site[known]]), axis=0)
    per_card = np.bincount(pairs[:, 0], minlength=n_cards)
    unknown = np.bincount(card[~known], minlength=n_cards)
    sole = (per_card[pairs[:, 0]] == 1) & (unknown[pairs[:, 0]] == 0)
    n_t = np.bincount(pairs[:, 1], minlength=n_sites)
    s_t = np.bincount(pairs[:, 1], weights=sole, minlength=n_sites).astype(np.int64)
    tested = np.flatnonzero(n_t > 0)
    w = (s_t.sum() - s_t[tested] + prior) / (n_t.sum() - n_t[tested] + 2.0 * prior)
    p[tested] = np.where(s_t[tested] > 0, binom_sf(s_t[tested] - 1, n_t[tested] - 1, w), 1.0)
    q[tested] = bh_qvalues(p[tested], m=len(tested))
    accepted = q <= REPORT_Q
    explained = known & accepted[np.maximum(site, 0)]
    far = np.bincount(card, minlength=n_cards)
    card_explained = (far > 0) & (np.bincount(card[explained], minlength=n_cards) == far)
    points = pd.DataFrame({"site": tested, "far_cards": n_t[tested].astype(np.int64),
                           "sole_cards": s_t[tested].astype(np.int64), "p_value": p[tested], "q_value": q[tested],
                           "accepted": accepted[tested]})
    return points, explained, card_explained


def reports_at_points(cards: pd.DataFrame, ev: pd.DataFrame, accepted: np.ndarray) -> np.ndarray:
    """Per card, whether every terminal its counterfeit reports name as the first fraud is an accepted
    at-terminal point (and there is at least one)."""
    terms = site_names(ev)
    out = np.zeros(len(cards), dtype=bool)
    if not accepted.any():
        return out
    for i, named in enumerate(cards["report_terminal_ids"]):
        if len(named):
            idx = terms.get_indexer(pd.Index(list(named), dtype=object))
            out[i] = bool(((idx >= 0) & accepted[np.maximum(idx, 0)]).all())
    return out


def terminal_prior(x: np.ndarray, u: np.ndarray) -> float:
    """The strength ``M`` (in uses) of the beta prior of the terminals' event rates, by the method of moments of a
    beta-binomial: ``sum_T (x_T - u_T rho)^2 / u_T`` is ``rho (1 - rho) sum_T (1 + (u_T - 1) / (M + 1))``. ``inf``
    when the terminals vary no more than binomial draws of one rate (every terminal at the run-wide rate)."""
    keep = u > 0
    x, u = x[keep].astype(np.float64), u[keep].astype(np.float64)
    if len(u) < 2 or x.sum() <= 0:
        return np.inf
    rho = x.sum() / u.sum()
    excess = ((x - u * rho) ** 2 / u).sum() / (rho * (1.0 - rho)) - len(u)
    spread = (u - 1.0).sum()
    if excess <= 0 or spread <= 0:
        return np.inf
    return max(spread / excess - 1.0, 0.0)


def far_event_rates(sites: tuple, out: np.ndarray, rho: np.ndarray) -> tuple[np.ndarray, float]:
    """Per fallback_far event, the chance that a located use at its terminal is one under the null: the terminal's
    rate over the other cards not in ``out`` (events / located uses, leaving out the card's own events there),
    shrunk towards the card's run-wide rate ``rho`` by the beta prior fitted to the terminals (``terminal_prior``).

    A terminal where many cards show the reason (a merchant keying or swiping stolen card data) explains the event:
    its rate is high and one such event is weak; a terminal where no other card shows it leaves the event as rare
    as the run-wide rate says. Returns the rates and the prior's strength ``M``.
    """
    card, site, uses = sites
    n_sites = len(uses)
    known = site >= 0
    live = known & ~out[card]
    x_all = np.bincount(site[live], minlength=n_sites).astype(np.float64)
    u_all = uses.astype(np.float64) - np.bincount(site[known & out[card]], minlength=n_sites)
    strength = terminal_prior(x_all, u_all)
    pi = rho[card].astype(np.float64).copy()
    if not np.isfinite(strength) or not known.any():
        return pi, float(strength)
    key = card[known] * max(n_sites, 1) + site[known]  # the card's own events at the terminal
    _, inverse, own = np.unique(key, return_inverse=True, return_counts=True)
    own = own[inverse] * ~out[card[known]]
    x = x_all[site[known]] - own
    u = u_all[site[known]] - own
    r = rho[card[known]]
    pi[known] = np.where(u > 0, (x + strength * r) / (u + strength), r)
    return np.clip(pi, 0.0, 1.0), float(strength)


def site_tails(card: np.ndarray, pi: np.ndarray, chances: np.ndarray, rho: np.ndarray, cap: int) -> np.ndarray:
    """``P(X >= k)``, k = 1..cap, per card: ``X`` = its events at their terminals' rates ``pi`` (Bernoulli each)
    plus ``Binomial(chances - events, rho)`` over its other located uses."""
    n_cards = len(chances)
    events = np.bincount(card, minlength=n_cards)
    out = np.zeros((n_cards, cap))
    rest = np.maximum(chances - events, 0)
    binom = np.ones((n_cards, cap + 1))  # P(B >= j), j = 0..cap
    for j in range(1, cap + 1):
        binom[:, j] = binom_tail_small_k(j, rest, rho)
    # distribution of the card's Bernoulli sum, truncated at cap (the last cell: >= cap)
    dist = np.zeros((n_cards, cap + 1))
    dist[:, 0] = 1.0
    for c, q in zip(card, pi):
        d = dist[c]
        moved = d * q
        d *= 1.0 - q
        d[1:] += moved[:-1]
        d[cap] += moved[cap]
    for k in range(1, cap + 1):
        tail = dist[:, k:].sum(axis=1)
        for j in range(k):
            tail = tail + dist[:, j] * binom[:, k - j]
        out[:, k - 1] = np.minimum(tail, 1.0)
    return out
