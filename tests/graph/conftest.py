"""Fixtures that build small staging-shaped frames for projection and detector tests."""

from __future__ import annotations

import pandas as pd
import pytest

__all__ = ["make_txns"]

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
