"""Terminal events: boots, weekly heartbeats and firmware updates (approved ones, and planted unapproved ones)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from etl.generate.config import DAY, HOUR, MINUTE, T0, Plan
from etl.generate.entities import World

__all__ = ["terminal_events", "EVENT_COLUMNS"]

EVENT_COLUMNS = ["terminal", "ts", "event", "firmware_hash", "ip", "lat", "lon"]


def _ips(rng: np.random.Generator, n: int, first: int) -> np.ndarray:
    octets = rng.integers(1, 255, (n, 3))
    return np.array([f"{first}.{a}.{b}.{c}" for a, b, c in octets], dtype=object)


def terminal_events(world: World, plan: Plan, relocations: pd.DataFrame, unapproved: pd.DataFrame,
                    rng: np.random.Generator) -> pd.DataFrame:
    """Events of every terminal over the period.

    Each terminal boots in the first three days and sends a heartbeat about weekly; a quarter install the
    newest approved firmware some days after its approval (``firmware_update`` then ``boot``). Planted
    unapproved updates (``unapproved``: terminal, ts, firmware_hash) are followed by a boot, and later events
    report that hash. A relocated terminal (``relocations``: terminal, start, end, lat, lon) boots at its new
    place, where its events carry the new position and another IP address.

    Returns
    -------
    DataFrame
        ``EVENT_COLUMNS`` (terminal index, UTC epoch seconds, ...), sorted by ts and terminal.
    """
    n_t = world.n_terminals
    ip = _ips(rng, n_t, 10)
    boot = T0 + rng.integers(0, 3 * DAY, n_t)
    beats = plan.days // 7
    term = np.repeat(np.arange(n_t), beats + 1)
    k = np.tile(np.arange(beats + 1), n_t)
    ts = np.repeat(boot, beats + 1) + k * 7 * DAY + np.where(k > 0, rng.integers(-12 * HOUR, 12 * HOUR, len(k)), 0)
    event = np.where(k == 0, "boot", "heartbeat").astype(object)
    # approved updates to the model's newest version
    newest = world.t_model.astype(np.int64) * 3 + 2
    bad = set(unapproved["terminal"].tolist())
    upd = np.flatnonzero((rng.random(n_t) < 0.25) & (world.t_fw != newest) & ~np.isin(np.arange(n_t), list(bad)))
    upd_ts = world.fw_approved[newest[upd]] + (rng.uniform(1, plan.days - 12, len(upd)) * DAY).astype(np.int64)
    upd_ts = np.minimum(upd_ts, T0 + plan.days * DAY - DAY)
    u_term = np.concatenate([upd, unapproved["terminal"].to_numpy(np.int64)])
    u_ts = np.concatenate([upd_ts, unapproved["ts"].to_numpy(np.int64)])
    u_hash = np.concatenate([world.fw_hash[newest[upd]], unapproved["firmware_hash"].to_numpy(object)])
    r_term = relocations["terminal"].to_numpy(np.int64)
    r_ts = relocations["start"].to_numpy(np.int64) + rng.integers(HOUR, 8 * HOUR, len(r_term))
    term = np.concatenate([term, u_term, u_term, r_term])
    ts = np.concatenate([ts, u_ts, u_ts + rng.integers(MINUTE, 3 * MINUTE, len(u_ts)), r_ts])
    event = np.concatenate([event, np.full(len(u_ts), "firmware_update", object),
                            np.full(len(u_ts) + len(r_term), "boot", object)])
    # the firmware each event reports: registered, or the update's once it happened
    fw = world.fw_hash[world.t_fw[term]].astype(object)
    changed_at = np.full(n_t, np.iinfo(np.int64).max)
    changed_at[u_term] = u_ts
    new_hash = np.empty(n_t, object)
    new_hash[u_term] = u_hash
    after = ts >= changed_at[term]
    fw[after] = new_hash[term[after]]
    lat = world.t_lat[term] + rng.normal(0, 0.0002, len(term))
    lon = world.t_lon[term] + rng.normal(0, 0.0002, len(term))
    ips = ip[term]
    away_ip = _ips(rng, len(r_term), 117)
    for i, row in enumerate(relocations.itertuples(index=False)):
        sel = (term == row.terminal) & (ts >= row.start) & (ts < row.end)
        lat[sel] = row.lat + rng.normal(0, 0.0002, sel.sum())
        lon[sel] = row.lon + rng.normal(0, 0.0002, sel.sum())
        ips[sel] = away_ip[i]
    frame = pd.DataFrame({"terminal": term.astype(np.int32), "ts": ts.astype(np.int64), "event": event,
                          "firmware_hash": fw, "ip": ips, "lat": lat, "lon": lon})
    frame = frame[frame["ts"] < T0 + plan.days * DAY]
    return frame.sort_values(["ts", "terminal"], kind="stable").reset_index(drop=True)
