"""Fixtures that build small staging-shaped frames for projection and detector tests."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

__all__ = ["make_txns", "busy_supermarket_scenario"]

T0 = pd.Timestamp("2026-03-01T00:00:00Z")


def make_txns(rows: list[dict]) -> pd.DataFrame:
    """Transactions frame with staging columns from short dicts (``hours`` after T0 instead of ``ts``)."""
    out = []
    for i, r in enumerate(rows):
        r = dict(r)
        ts = r.pop("ts", None)
        if ts is None:
            ts = T0 + pd.Timedelta(hours=r.pop("hours", 0.0))
        base = {"txn_id": f"x{i:06d}", "ts": ts, "card_token": "c0", "terminal_id": "T0", "merchant_id": "M0",
                "amount": 10.0, "txn_type": "purchase", "entry_mode": "chip", "response_code": "00",
                "atc": None, "stan": None, "mcc": "5411", "lat": 31.23, "lon": 121.47}
        base.update(r)
        out.append(base)
    frame = pd.DataFrame(out, columns=["txn_id", "ts", "card_token", "terminal_id", "merchant_id", "amount",
                                       "txn_type", "entry_mode", "response_code", "atc", "stan", "mcc", "lat",
                                       "lon"])
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
    frame["atc"] = pd.array(frame["atc"], dtype="Int64")
    frame["stan"] = pd.array(frame["stan"], dtype="Int64")
    return frame


@pytest.fixture()
def txn_factory():
    """The ``make_txns`` builder."""
    return make_txns


def busy_supermarket_scenario(seed: int = 0, n_cards: int = 600, days: int = 120):
    """Two skimmers, one supermarket every card visits weekly, counterfeit use far away after compromise.

    Returns ``(transactions, terminals, fraud_reports, truth)`` with truth = {"skimmers": {terminal_id:
    (start, end) Timestamps}, "supermarket": terminal_id, "victims": set of card tokens}.
    """
    rng = np.random.default_rng(seed)
    n_terms = 40
    lat = 31.2 + rng.random(n_terms) * 0.2
    lon = 121.4 + rng.random(n_terms) * 0.2
    skimmers = {"T01": (30, 40), "T02": (70, 82)}
    rows_card, rows_term, rows_ts, rows_entry, rows_lat, rows_lon = [], [], [], [], [], []

    def add(card, term, t, entry="chip", where=None):
        rows_card.append(card), rows_term.append(term), rows_ts.append(t), rows_entry.append(entry)
        la, lo = where if where else (lat[term], lon[term])
        rows_lat.append(la), rows_lon.append(lo)

    for c in range(n_cards):
        favourites = rng.choice(np.arange(3, n_terms), 5, replace=False)
        for day in range(days):
            if day % 7 == c % 7 and rng.random() < 0.9:
                add(c, 0, day * 86400 + int(rng.integers(8, 21)) * 3600)  # the supermarket
            if rng.random() < 0.3:
                add(c, int(rng.choice(favourites)), day * 86400 + int(rng.integers(8, 22)) * 3600)
            if rng.random() < 0.015:
                add(c, int(rng.choice([1, 2])), day * 86400 + int(rng.integers(8, 22)) * 3600)  # petrol stations
    card = np.array(rows_card)
    term = np.array(rows_term)
    ts = np.array(rows_ts)
    victims = {}
    for name, (a, b) in skimmers.items():
        t = int(name[1:])
        hit = (term == t) & (ts >= a * 86400) & (ts < b * 86400)
        for c, when in zip(card[hit], ts[hit]):
            victims.setdefault(int(c), int(when))
    reports = []
    for c, when in sorted(victims.items()):
        first = when + int(rng.integers(5, 20)) * 86400
        add(c, 3, first, "magstripe", (39.9, 116.4))  # counterfeit use in Beijing
        if rng.random() < 0.7:
            reported = first + int(rng.integers(1, 4)) * 86400
            reports.append((c, reported, first if rng.random() < 0.5 else None, "counterfeit"))
    for c in rng.choice(n_cards, 10, replace=False):  # unrelated reports
        reports.append((int(c), int(rng.integers(20, days)) * 86400, None, "lost_stolen"))
    t0 = pd.Timestamp("2026-01-01T00:00:00Z")
    token = np.array([f"card{c:04d}" for c in range(n_cards)], dtype=object)
    tid = np.array([f"T{t:02d}" for t in range(n_terms)], dtype=object)
    tx = pd.DataFrame({"txn_id": [f"x{i:07d}" for i in range(len(rows_card))], "ts": t0 + pd.to_timedelta(rows_ts, unit="s"),
                       "card_token": token[rows_card], "terminal_id": tid[rows_term],
                       "merchant_id": [f"M{t:02d}" for t in rows_term], "amount": 20.0, "entry_mode": rows_entry,
                       "lat": rows_lat, "lon": rows_lon})
    terminals = pd.DataFrame({"terminal_id": tid, "merchant_id": [f"M{t:02d}" for t in range(n_terms)], "lat": lat,
                              "lon": lon})
    fr = pd.DataFrame({"card_token": [token[c] for c, *_ in reports],
                       "reported_at": [t0 + pd.Timedelta(seconds=r) for _, r, _, _ in reports],
                       "first_fraud_at": [t0 + pd.Timedelta(seconds=f) if f is not None else pd.NaT for _, _, f, _ in reports],
                       "fraud_type": [k for *_, k in reports]})
    truth = {"skimmers": {k: (t0 + pd.Timedelta(days=a), t0 + pd.Timedelta(days=b)) for k, (a, b) in skimmers.items()},
             "supermarket": "T00", "victims": {token[c] for c in victims}}
    return tx, terminals, fr, truth
