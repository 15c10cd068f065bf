"""Transaction rows of the adversarial generator: a dict of equally long numpy arrays (codes, not strings)."""

from __future__ import annotations

import numpy as np

__all__ = ["COLUMNS", "GENUINE", "CLONE", "AT_TERMINAL", "RING", "FRAUD_KINDS", "new_rows", "concat", "take"]

# ts: true UTC seconds; obs: the ts written (offline uploads arrive later); amount in cents; mcc code;
# fraud: GENUINE or a planted kind; atc/stan: -1 until the counters fill them (atc stays -1 = none)
COLUMNS = {"ts": np.int64, "obs": np.int64, "card": np.int64, "term": np.int64, "amount": np.int64,
           "ttype": np.int8, "entry": np.int8, "resp": np.int8, "mcc": np.int16, "lat": np.float64,
           "lon": np.float64, "fraud": np.int8, "atc": np.int64, "stan": np.int64}
GENUINE, CLONE, AT_TERMINAL, RING = range(4)
FRAUD_KINDS = {CLONE: "clone", AT_TERMINAL: "at_terminal", RING: "ring"}


def new_rows(world, ts, card, term, amount, entry, *, ttype=0, resp=0, fraud=GENUINE, mcc=None, rng=None) -> dict:
    """Rows at terminals ``term`` (position from the terminal with a few metres of GPS noise)."""
    n = len(ts)
    term = np.asarray(term, np.int64)
    noise = rng.normal(0.0, 0.00015, (n, 2)) if rng is not None else np.zeros((n, 2))
    code = world.mcc_code[world.m_mcc[world.t_merchant[term]]] if mcc is None else np.broadcast_to(mcc, n)
    rows = {"ts": ts, "obs": np.array(ts, np.int64, copy=True), "card": card, "term": term, "amount": amount,
            "ttype": np.broadcast_to(ttype, n),
            "entry": entry, "resp": np.broadcast_to(resp, n), "mcc": code,
            "lat": world.t_lat[term] + noise[:, 0], "lon": world.t_lon[term] + noise[:, 1],
            "fraud": np.broadcast_to(fraud, n), "atc": np.full(n, -1), "stan": np.full(n, -1)}
    return {k: np.array(v, COLUMNS[k], copy=True) for k, v in rows.items()}


def concat(*parts: dict) -> dict:
    """Rows of all non-empty parts, in order."""
    parts = [p for p in parts if p is not None and len(p["ts"])]
    if not parts:
        return {k: np.zeros(0, t) for k, t in COLUMNS.items()}
    return {k: np.concatenate([p[k] for p in parts]) for k in COLUMNS}


def take(rows: dict, idx) -> dict:
    """Rows selected by index or mask."""
    return {k: v[idx] for k, v in rows.items()}
