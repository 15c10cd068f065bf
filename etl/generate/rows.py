"""Transaction rows as a dict of equally long numpy arrays (codes, not strings), with small helpers."""

from __future__ import annotations

import numpy as np

from etl.generate.config import MCCS, P_NORMAL, PURCHASE

__all__ = ["COLUMNS", "Rows", "make_rows", "concat", "take", "amount_cents", "MCC_CODES"]

# ts: true UTC epoch seconds; shift: seconds the terminal's clock is behind (observed ts = ts - shift);
# amount in cents; mcc as the numeric code; plant: provenance (config.P_*); atc/stan filled late (-1 = none)
COLUMNS = {"ts": np.int64, "card": np.int32, "term": np.int32, "merch": np.int32, "amount": np.int64,
           "ttype": np.int8, "entry": np.int8, "resp": np.int8, "mcc": np.int16, "lat": np.float64,
           "lon": np.float64, "plant": np.int8, "shift": np.int64, "atc": np.int64, "stan": np.int64}
MCC_CODES = np.array([m[0] for m in MCCS], np.int16)

Rows = dict


def make_rows(world, ts, card, term, entry, amount, *, ttype=PURCHASE, resp=0, plant=P_NORMAL, mcc=None,
              lat=None, lon=None, rng=None) -> Rows:
    """Rows at terminals ``term``; merchant, MCC and position default from the terminal (with GPS noise)."""
    n = len(ts)
    term = np.asarray(term, np.int32)
    merch = world.t_merchant[term]
    noise = rng.normal(0.0, 0.0002, (n, 2)) if rng is not None else np.zeros((n, 2))
    rows = {"ts": ts, "card": card, "term": term, "merch": merch, "amount": amount,
            "ttype": np.broadcast_to(ttype, n), "entry": entry, "resp": np.broadcast_to(resp, n),
            "mcc": MCC_CODES[world.m_mcc[merch]] if mcc is None else np.broadcast_to(mcc, n),
            "lat": (world.t_lat[term] if lat is None else lat) + noise[:, 0],
            "lon": (world.t_lon[term] if lon is None else lon) + noise[:, 1],
            "plant": np.broadcast_to(plant, n), "shift": np.zeros(n), "atc": np.full(n, -1),
            "stan": np.full(n, -1)}
    return {k: np.ascontiguousarray(np.asarray(v).astype(COLUMNS[k], copy=False)) for k, v in rows.items()}


def concat(*parts: Rows) -> Rows:
    """Rows of all parts, in order."""
    parts = [p for p in parts if p is not None and len(p["ts"])]
    if not parts:
        return {k: np.zeros(0, t) for k, t in COLUMNS.items()}
    return {k: np.concatenate([p[k] for p in parts]) for k in COLUMNS}


def take(rows: Rows, idx) -> Rows:
    """Rows selected by an index or boolean mask."""
    return {k: v[idx] for k, v in rows.items()}


def amount_cents(rng: np.random.Generator, mcc_idx: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """Log-normal amounts by MCC in cents (at least 1.00)."""
    median = np.array([m[3] for m in MCCS])[mcc_idx] * scale
    sigma = np.array([m[4] for m in MCCS])[mcc_idx]
    return np.maximum(np.round(median * np.exp(rng.normal(0.0, 1.0, len(mcc_idx)) * sigma) * 100), 100).astype(
        np.int64)
