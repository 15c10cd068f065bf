"""Terminal events: heartbeats, maintenance reboots, firmware updates after approval, cellular ip churn,
recorded moves, and the planted tamper / odd-hour boot / new ip / unapproved-firmware events."""

from __future__ import annotations

import numpy as np
import pandas as pd

from etl.adversary.region import DAY, HOUR, MINUTE, MODELS, T0, local_to_utc
from etl.adversary.traffic import CITY_BASE
from etl.adversary.world import AdvPlan, World

__all__ = ["terminal_events", "firmware_updates", "CELLULAR_SHARE", "UPDATE_SHARE", "SERVICE_TAMPER_SHARE"]

CELLULAR_SHARE = 0.2  # terminals on a mobile network: their ip changes often
SERVICE_TAMPER_SHARE = 0.006  # terminals opened for service (battery, reader swap): a genuine tamper alarm
UPDATE_SHARE = 0.35  # terminals that install the version approved during the period


def _ip(prefix: str, rng, n: int) -> np.ndarray:
    a, b, c = rng.integers(0, 256, n), rng.integers(0, 256, n), rng.integers(1, 255, n)
    return np.char.add(np.char.add(np.char.add(np.char.add(np.char.add(prefix, a.astype(str)), "."),
                                               b.astype(str)), "."), c.astype(str)) if n else np.zeros(0, str)


def firmware_updates(world: World, plan: AdvPlan, blocked_t: np.ndarray, rng) -> pd.DataFrame:
    """``UPDATE_SHARE`` of terminals install their model's newest version 1-30 days after its approval.

    Returns
    -------
    DataFrame terminal, ts, fw (firmware index)
    """
    newest = world.t_model * 5 + 4
    ts = world.fw_approved[newest] + rng.integers(DAY, 30 * DAY, world.n_terminals)
    pick = np.flatnonzero((rng.random(world.n_terminals) < UPDATE_SHARE) & (ts < plan.t_end - HOUR) & ~blocked_t)
    return pd.DataFrame({"terminal": pick, "ts": ts[pick], "fw": newest[pick]})


def terminal_events(world: World, plan: AdvPlan, updates: pd.DataFrame, moves: pd.DataFrame,
                    unapproved: pd.DataFrame, pre_window: pd.DataFrame, rng) -> tuple[pd.DataFrame, np.ndarray]:
    """Events of every terminal over the period.

    Heartbeats every ~3 days; models with a maintenance reboot boot every night between 02:00 and 04:00 local
    (Castles) or every Sunday night (Ingenico); other terminals power-cycle about monthly in business hours;
    ``SERVICE_TAMPER_SHARE`` of terminals raise a genuine ``tamper`` alarm when opened for service (then boot).
    Updates: ``firmware_update`` with the new hash, then a boot; later events report the new hash. Recorded
    moves: a boot at the new place with a new ip. Planted: ``unapproved`` (terminal, ts, firmware_hash) as
    updates, ``pre_window`` (terminal, ts, event, new_ip) as given, a new ip staying from then on.

    Returns
    -------
    (DataFrame terminal/ts/event/firmware_hash/ip/lat/lon sorted by ts, the firmware index each terminal runs
     at the end of the period (-1: an unapproved hash))
    """
    n_t = world.n_terminals
    city = world.m_city[world.t_merchant]
    parts = []
    k = plan.days // 3
    hb_t = np.repeat(np.arange(n_t), k)
    hb_ts = T0 + np.tile(np.arange(k), n_t) * 3 * DAY + np.repeat(rng.integers(0, 3 * DAY, n_t), k) \
        + rng.integers(-HOUR, HOUR, n_t * k)
    parts.append((hb_t, hb_ts, np.zeros(len(hb_t), np.int8)))
    nightly = np.flatnonzero(np.array([m[2] for m in MODELS])[world.t_model] == 1)
    weekly = world.t_model[nightly] == 0
    days = np.arange(plan.days)
    nb_t = np.repeat(nightly, plan.days)
    nb_day = np.tile(days, len(nightly))
    keep = ~np.repeat(weekly, plan.days) | (nb_day % 7 == 6)
    nb_t, nb_day = nb_t[keep], nb_day[keep]
    nb_ts = local_to_utc(T0 + (nb_day + 1) * DAY + 2 * HOUR + rng.integers(0, 2 * HOUR, len(nb_t)),
                         CITY_BASE[city[nb_t]])
    parts.append((nb_t, nb_ts, np.ones(len(nb_t), np.int8)))
    others = np.setdiff1d(np.arange(n_t), nightly)
    n_pc = rng.poisson(plan.days / 30, len(others))
    pc_t = np.repeat(others, n_pc)
    pc_day = rng.integers(0, plan.days, len(pc_t))
    pc_ts = local_to_utc(T0 + pc_day * DAY + rng.integers(8 * HOUR, 20 * HOUR, len(pc_t)), CITY_BASE[city[pc_t]])
    parts.append((pc_t, pc_ts, np.ones(len(pc_t), np.int8)))
    up_t = np.concatenate([updates["terminal"].to_numpy(np.int64), unapproved["terminal"].to_numpy(np.int64)])
    up_ts = np.concatenate([updates["ts"].to_numpy(np.int64), unapproved["ts"].to_numpy(np.int64)])
    parts.append((up_t, up_ts, np.full(len(up_t), 2, np.int8)))
    parts.append((up_t, up_ts + rng.integers(MINUTE, 4 * MINUTE, len(up_t)), np.ones(len(up_t), np.int8)))
    mv_t, mv_ts = moves["terminal"].to_numpy(np.int64), moves["ts"].to_numpy(np.int64)
    parts.append((mv_t, mv_ts + rng.integers(HOUR, 6 * HOUR, len(mv_t)), np.ones(len(mv_t), np.int8)))
    sv_t = np.flatnonzero(rng.random(n_t) < SERVICE_TAMPER_SHARE)
    sv_ts = local_to_utc(T0 + rng.integers(0, plan.days, len(sv_t)) * DAY + rng.integers(9 * HOUR, 18 * HOUR,
                                                                                        len(sv_t)),
                         CITY_BASE[city[sv_t]])
    parts.append((sv_t, sv_ts, np.full(len(sv_t), 3, np.int8)))
    parts.append((sv_t, sv_ts + rng.integers(10 * MINUTE, HOUR, len(sv_t)), np.ones(len(sv_t), np.int8)))
    pw_t, pw_ts = pre_window["terminal"].to_numpy(np.int64), pre_window["ts"].to_numpy(np.int64)
    pw_ev = np.where(pre_window["event"].to_numpy() == "tamper", 3, 1).astype(np.int8)
    parts.append((pw_t, pw_ts, pw_ev))
    term = np.concatenate([p[0] for p in parts]).astype(np.int64)
    ts = np.concatenate([p[1] for p in parts]).astype(np.int64)
    event = np.concatenate([p[2] for p in parts])
    # firmware reported: the start version, or the update's once it happened
    fw_idx = world.t_fw0[term].astype(np.int64)
    end_fw = world.t_fw0.astype(np.int64).copy()
    hashes = world.fw_hash[fw_idx].astype(object)
    changed_at = np.full(n_t, np.iinfo(np.int64).max)
    new_hash = np.empty(n_t, object)
    u_t = updates["terminal"].to_numpy(np.int64)
    changed_at[u_t] = updates["ts"].to_numpy(np.int64)
    new_hash[u_t] = world.fw_hash[updates["fw"].to_numpy(np.int64)]
    end_fw[u_t] = updates["fw"].to_numpy(np.int64)
    b_t = unapproved["terminal"].to_numpy(np.int64)
    changed_at[b_t] = unapproved["ts"].to_numpy(np.int64)
    new_hash[b_t] = unapproved["firmware_hash"].to_numpy(object)
    end_fw[b_t] = -1
    after = ts >= changed_at[term]
    hashes[after] = new_hash[term[after]]
    # ip: fixed for wired terminals, churning for cellular ones; a recorded move or a planted new ip changes it
    cellular = rng.random(n_t) < CELLULAR_SHARE
    ip = _ip("10.", rng, n_t).astype(object)
    ips = ip[term].copy()
    churn = cellular[term] & (rng.random(len(term)) < 0.4)
    ips[churn] = _ip("100.64.", rng, int(churn.sum()))[:int(churn.sum())] if churn.any() else ips[churn]
    for row in moves.drop_duplicates("terminal").itertuples(index=False):
        ips[(term == row.terminal) & (ts >= row.ts)] = _ip("10.", rng, 1)[0]
    for row in pre_window[pre_window["new_ip"]].itertuples(index=False):
        ips[(term == row.terminal) & (ts >= row.ts)] = _ip("185.220.", rng, 1)[0]
    lat, lon = world.t_lat[term].copy(), world.t_lon[term].copy()
    for row in moves.itertuples(index=False):
        before = (term == row.terminal) & (ts < row.ts)
        lat[before] = row.old_lat
        lon[before] = row.old_lon
    lat += rng.normal(0, 0.00005, len(term))
    lon += rng.normal(0, 0.00005, len(term))
    frame = pd.DataFrame({"terminal": term, "ts": ts, "event": event, "firmware_hash": hashes, "ip": ips,
                          "lat": lat, "lon": lon})
    frame = frame[(frame["ts"] >= T0) & (frame["ts"] < plan.t_end)]
    return frame.sort_values(["ts", "terminal", "event"], kind="stable").reset_index(drop=True), end_fw
