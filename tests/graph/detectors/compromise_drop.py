"""A small simulator-like drop with both kinds of point of compromise, for the compromise tests.

Cards shop at a few favourite terminals whose popularity is heavy-tailed (a naive count of reported cards
favours busy terminals). Planted:

- at-terminal compromises: for ``days_at`` days every transaction at the terminal is fraudulent (as in the
  public simulator's hijacked terminals);
- skimmers: cards that used the terminal in its window are cloned and used later, magstripe, far away;
- background fraud: a share of cards get a counterfeit or other fraud at a random terminal (by traffic), and
  some lost/stolen and card-not-present reports.

``labels`` chooses what the fraud reports say: ``"txn"`` one row per fraudulent transaction with its txn_id,
``"first"`` one row per card with first_fraud_at, ``"reported"`` one row per card with reported_at only.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["compromise_drop", "average_precision", "naive_reported_count"]

T0 = pd.Timestamp("2026-01-01T00:00:00Z")
DAY = 86_400


def compromise_drop(seed: int = 0, labels: str = "txn", n_cards: int = 2500, n_terms: int = 250, days: int = 90,
                    n_at: int = 4, n_skim: int = 2, days_at: int = 12, background: float = 0.04,
                    skim_reported: float = 1.0, lag_days: tuple[int, int] = (1, 5)):
    """Returns ``(transactions, terminals, fraud_reports, truth, pans)``; truth has ``at_terminal`` and
    ``skimmers`` frames (terminal_id, window_start, window_end), ``victims`` (skimmed card tokens),
    ``unreported`` (skimmed cards left unreported: a share ``1 - skim_reported`` of them) and ``events`` (the
    terminal events: daily boots at 03:00 UTC on every terminal, and a tamper event plus a new ip two days
    before the first at-terminal window). Reports come ``lag_days`` (a range of whole days) after the fraud."""
    rng = np.random.default_rng(seed)
    popularity = 1.0 / np.arange(1, n_terms + 1) ** 0.9
    popularity = rng.permutation(popularity / popularity.sum())
    lat = 31.1 + rng.random(n_terms) * 0.3
    lon = 121.3 + rng.random(n_terms) * 0.3
    fav = np.array([rng.choice(n_terms, 5, replace=False, p=popularity) for _ in range(n_cards)])
    rows = []  # card, terminal, ts, entry, lat, lon
    for c in range(n_cards):
        n = rng.poisson(0.8 * days)
        ts = np.sort(rng.integers(0, days * DAY, n))
        hour = (ts % DAY)
        ts = ts - hour + 8 * 3600 + hour % (13 * 3600)  # opening hours
        terms = fav[c, rng.integers(0, 5, n)]
        for t, when in zip(terms, ts):
            rows.append((c, int(t), int(when), "chip", lat[t], lon[t]))
    tx = pd.DataFrame(rows, columns=["card", "term", "ts", "entry", "lat", "lon"])
    fraud_txn = np.zeros(len(tx), dtype=bool)
    # at-terminal: every transaction in the window is fraud (terminals of any popularity but the top 10)
    candidates = rng.permutation(np.argsort(-popularity)[10:])
    at_terms, skim_terms = candidates[:n_at], candidates[n_at:n_at + n_skim]
    at_truth = []
    for t in at_terms:
        a = int(rng.integers(10, days - days_at - 5)) * DAY
        hit = (tx["term"].to_numpy() == t) & (tx["ts"].to_numpy() >= a) & (tx["ts"].to_numpy() < a + days_at * DAY)
        fraud_txn |= hit
        at_truth.append((t, a, a + days_at * DAY))
    # skimmers: victims' cards cloned and used magstripe far away a few days later
    skim_truth, extra = [], []
    victims_skim = {}
    for t in skim_terms:
        a = int(rng.integers(10, days - 40)) * DAY
        hit = (tx["term"].to_numpy() == t) & (tx["ts"].to_numpy() >= a) & (tx["ts"].to_numpy() < a + 10 * DAY)
        for c, when in zip(tx["card"].to_numpy()[hit], tx["ts"].to_numpy()[hit]):
            victims_skim.setdefault(int(c), int(when))
        skim_truth.append((t, a, a + 10 * DAY))
    far = rng.integers(0, n_terms, len(victims_skim) + n_cards)
    k = 0
    for c, when in victims_skim.items():
        extra.append((c, int(far[k]), when + int(rng.integers(3, 12)) * DAY, "magstripe", 39.9, 116.4))
        k += 1
    # background: counterfeit/other fraud at a random terminal by traffic, on a share of cards
    bg = rng.choice(n_cards, int(background * n_cards), replace=False)
    bg_terms = rng.choice(n_terms, len(bg), p=popularity)
    for c, t in zip(bg, bg_terms):
        extra.append((int(c), int(t), int(rng.integers(5, days) * DAY + 12 * 3600), "chip", lat[t], lon[t]))
    ex = pd.DataFrame(extra, columns=["card", "term", "ts", "entry", "lat", "lon"])
    fraud_extra = np.ones(len(ex), dtype=bool)
    tx = pd.concat([tx, ex], ignore_index=True)
    fraud_txn = np.concatenate([fraud_txn, fraud_extra])
    tx["txn_id"] = [f"x{i:07d}" for i in range(len(tx))]
    pans = np.array([f"62{c:014d}" for c in range(n_cards)], dtype=object)
    tokens = np.array([f"card{c:05d}" for c in range(n_cards)], dtype=object)
    tids = np.array([f"T{t:04d}" for t in range(n_terms)], dtype=object)
    frame = pd.DataFrame({"txn_id": tx["txn_id"], "ts": T0 + pd.to_timedelta(tx["ts"], unit="s"),
                          "card_token": tokens[tx["card"]], "terminal_id": tids[tx["term"]],
                          "merchant_id": [f"M{t:04d}" for t in tx["term"]], "amount": 25.0,
                          "entry_mode": tx["entry"], "lat": tx["lat"], "lon": tx["lon"]})
    terminals = pd.DataFrame({"terminal_id": tids, "merchant_id": [f"M{t:04d}" for t in range(n_terms)],
                              "lat": lat, "lon": lon})
    # reports: every fraud card is reported, a few days after its first fraud
    f = tx[fraud_txn].assign(txn_id=tx["txn_id"][fraud_txn])
    kinds = {int(c): "counterfeit" for c in victims_skim}
    first = f.groupby("card")["ts"].min()
    skimmed = np.array(sorted(victims_skim), dtype=np.int64)
    silent = set(rng.choice(skimmed, int(round((1 - skim_reported) * len(skimmed))), replace=False).tolist()) \
        if len(skimmed) else set()
    first = first[~first.index.isin(silent)]
    f = f[~f["card"].isin(silent)]
    lag = {int(c): int(rng.integers(*lag_days)) * DAY for c in first.index}
    if labels == "txn":
        rep = pd.DataFrame({"card_token": tokens[f["card"]], "txn_id": f["txn_id"].to_numpy(),
                            "reported_at": T0 + pd.to_timedelta([first[c] + lag[c] for c in f["card"]], unit="s"),
                            "fraud_type": [kinds.get(int(c), "other") for c in f["card"]]})
    else:
        rep = pd.DataFrame({"card_token": tokens[first.index],
                            "reported_at": T0 + pd.to_timedelta([first[c] + lag[c] for c in first.index], unit="s"),
                            "fraud_type": [kinds.get(int(c), "other") for c in first.index]})
        if labels == "first":
            rep["first_fraud_at"] = T0 + pd.to_timedelta(first.to_numpy(), unit="s")
    noise = rng.choice(n_cards, 40, replace=False)
    rep = pd.concat([rep, pd.DataFrame({"card_token": tokens[noise],
                                        "reported_at": T0 + pd.to_timedelta(rng.integers(5, days, 40) * DAY, unit="s"),
                                        "fraud_type": np.where(np.arange(40) % 2, "lost_stolen", "card_not_present")})],
                    ignore_index=True)

    def windows(items):
        return pd.DataFrame({"terminal_id": [tids[t] for t, _, _ in items],
                             "window_start": [T0 + pd.Timedelta(seconds=a) for _, a, _ in items],
                             "window_end": [T0 + pd.Timedelta(seconds=b) for _, _, b in items]})

    boots = pd.DataFrame({"terminal_id": np.repeat(tids, days),
                          "ts": T0 + pd.to_timedelta(np.tile(np.arange(days) * DAY + 3 * 3600, n_terms), unit="s"),
                          "event": "boot", "ip": np.repeat([f"10.0.{t // 250}.{t % 250}" for t in range(n_terms)], days)})
    t_first, a_first, _ = at_truth[0]
    odd = pd.DataFrame({"terminal_id": [tids[t_first]] * 2,
                        "ts": [T0 + pd.Timedelta(seconds=a_first - 2 * DAY + 3600 * h) for h in (1, 2)],
                        "event": ["tamper", "boot"], "ip": [None, "203.0.113.9"]})
    truth = {"at_terminal": windows(at_truth), "skimmers": windows(skim_truth),
             "victims": set(tokens[list(victims_skim)]), "unreported": set(tokens[sorted(silent)]),
             "events": pd.concat([boots, odd], ignore_index=True).sort_values(["terminal_id", "ts"], kind="stable")}
    return frame, terminals, rep, truth, pans


def average_precision(ranked_ids, truth) -> float:
    """Mean over the true ids of the precision at the rank where each is found (0 for those never found)."""
    truth = set(truth)
    hits, total, seen = 0, 0.0, set()
    rank = 0
    for item in ranked_ids:
        if item in seen:
            continue
        seen.add(item)
        rank += 1
        if item in truth:
            hits += 1
            total += hits / rank
    return total / len(truth) if truth else float("nan")


def naive_reported_count(transactions: pd.DataFrame, reports: pd.DataFrame) -> list:
    """Terminals by the number of distinct reported cards that ever used them (the public simulator's baseline)."""
    reported = set(reports["card_token"])
    used = transactions[transactions["card_token"].isin(reported)]
    counts = used.groupby("terminal_id")["card_token"].nunique()
    return counts.sort_values(ascending=False, kind="stable").index.tolist()
