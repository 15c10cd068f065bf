"""What the alert page shows as evidence, from the transactions the explorer reads: a cloned card's impossible-travel
pairs (the cloned-card detector's own rule, with its default parameters) and its ATC steps."""

from __future__ import annotations

import numpy as np
import pandas as pd

from graph.detectors.cloned import ClonedCardDetector
from graph.kernels.geo import haversine_km_array

__all__ = ["travel_pairs", "atc_steps", "TRAVEL_RULE"]

_DEFAULTS = ClonedCardDetector()
# The detector's rule for one impossible-travel pair (its defaults; `posguard score --config` may differ).
TRAVEL_RULE = {"max_speed_kmh": float(_DEFAULTS.max_speed_kmh), "min_distance_km": float(_DEFAULTS.min_distance_km),
               "clock_slack_minutes": float(_DEFAULTS.clock_slack_minutes)}


def travel_pairs(txns: pd.DataFrame, rule: dict | None = None) -> pd.DataFrame:
    """Consecutive located card-present transactions of one card that no plane links: at least
    ``min_distance_km`` apart and farther than ``max_speed_kmh * (elapsed + clock_slack_minutes)``.

    ``txns``: one card's transactions (txn_id, ts, lat, lon, entry_mode, counterpart). Returns one row per pair,
    fastest first: from_txn, to_txn, from_ts, to_ts, from_terminal, to_terminal, from_lat, from_lon, to_lat,
    to_lon, km, hours, kmh (``inf`` for two uses at the same second).
    """
    rule = {**TRAVEL_RULE, **(rule or {})}
    columns = ["from_txn", "to_txn", "from_ts", "to_ts", "from_terminal", "to_terminal", "from_lat", "from_lon",
               "to_lat", "to_lon", "km", "hours", "kmh"]
    if not len(txns):
        return pd.DataFrame(columns=columns)
    t = txns.sort_values(["ts", "txn_id"], kind="stable")
    lat = pd.to_numeric(t["lat"], errors="coerce").to_numpy(np.float64)
    lon = pd.to_numeric(t["lon"], errors="coerce").to_numpy(np.float64)
    located = np.isfinite(lat) & np.isfinite(lon) & (t["entry_mode"].astype(str).to_numpy() != "manual")
    t = t[located]
    lat, lon = lat[located], lon[located]
    if len(t) < 2:
        return pd.DataFrame(columns=columns)
    km = haversine_km_array(np.ascontiguousarray(lat[:-1]), np.ascontiguousarray(lon[:-1]),
                            np.ascontiguousarray(lat[1:]), np.ascontiguousarray(lon[1:]))
    stamps = pd.to_datetime(t["ts"], utc=True).dt.tz_convert(None).to_numpy("datetime64[ns]")
    seconds = (stamps[1:] - stamps[:-1]) / np.timedelta64(1, "s")
    allowed = rule["max_speed_kmh"] * (seconds + rule["clock_slack_minutes"] * 60) / 3600.0
    hit = (km >= rule["min_distance_km"]) & (km > allowed)
    hours = seconds / 3600.0
    with np.errstate(divide="ignore"):
        kmh = np.where(hours > 0, km / np.where(hours > 0, hours, 1), np.inf)
    a, b = t.iloc[:-1][hit], t.iloc[1:][hit]
    pairs = pd.DataFrame({"from_txn": a["txn_id"].to_numpy(), "to_txn": b["txn_id"].to_numpy(),
                          "from_ts": a["ts"].to_numpy(), "to_ts": b["ts"].to_numpy(),
                          "from_terminal": a["counterpart"].to_numpy(), "to_terminal": b["counterpart"].to_numpy(),
                          "from_lat": lat[:-1][hit], "from_lon": lon[:-1][hit], "to_lat": lat[1:][hit],
                          "to_lon": lon[1:][hit], "km": km[hit], "hours": hours[hit], "kmh": kmh[hit]})
    slack = rule["clock_slack_minutes"] / 60.0
    order = np.argsort(-(pairs["km"] / (pairs["hours"] + slack)).to_numpy(), kind="stable")
    return pairs.iloc[order].reset_index(drop=True)


def atc_steps(txns: pd.DataFrame) -> pd.DataFrame:
    """A card's chip transactions with an ATC, in time order, and whether each one repeats an ATC already seen
    (``replay``) or goes below the highest seen (``regression``): a second chip, a copy of the chip data."""
    if not len(txns) or "atc" not in txns.columns:
        return pd.DataFrame(columns=["txn_id", "ts", "atc", "replay", "regression"])
    t = txns[pd.to_numeric(txns["atc"], errors="coerce").notna()].sort_values(["ts", "txn_id"], kind="stable")
    atc = pd.to_numeric(t["atc"]).astype(np.int64).to_numpy()
    seen: set[int] = set()
    replay, regression, top = [], [], -1
    for value in atc:
        replay.append(value in seen)
        regression.append(value < top and value not in seen)
        seen.add(int(value))
        top = max(top, int(value))
    return pd.DataFrame({"txn_id": t["txn_id"].to_numpy(), "ts": t["ts"].to_numpy(), "atc": atc,
                         "replay": replay, "regression": regression})
