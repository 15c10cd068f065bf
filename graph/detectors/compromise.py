"""What follows from an accepted point of compromise: the cards exposed there, and the terminal's own events.

``exposed_cards`` lists, for every accepted point (``SkimmingDetector.result_`` rows with ``accepted`` and
``q_value <= REPORT_Q``, of either mode), the cards that used the terminal inside its estimated window, with
the probability that each was compromised and what the issuer should do (the emergency response).
``event_evidence`` lists a terminal's suspicious events shortly before a window start (tamper, a boot at an
hour when the run's terminals rarely boot, a firmware change, a network address it never used before).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from graph.detectors.base import to_timestamps
from graph.detectors.significance import REPORT_Q
from graph.kernels import skimming as ks
from graph.projection import Projection, to_epoch_seconds
from graph.vocabulary import ENTRY_MANUAL, RECOMMENDED_ACTIONS

__all__ = ["exposed_cards", "event_evidence", "EXPOSED_COLUMNS", "REISSUE_P", "ODD_HOUR_SHARE"]

DAY = 86_400
# p_compromised at or above which an exposed card should be reissued; below it, watched.
REISSUE_P = 0.5
REISSUE, WATCH = RECOMMENDED_ACTIONS
# A boot is at an odd hour when the run's boots at that hour of day are below this share of a uniform day's.
ODD_HOUR_SHARE = 0.25
EXPOSED_COLUMNS = ["card_token", "terminal_id", "mode", "first_exposed_at", "p_compromised", "reported",
                   "recommended_action", "merchant_id", "point_rank", "window_start", "window_end", "victim_rate",
                   "later_clone_use"]


def _empty() -> pd.DataFrame:
    ts = pd.Series([], dtype="datetime64[us, UTC]")
    return pd.DataFrame({"card_token": pd.Series([], dtype=object), "terminal_id": pd.Series([], dtype=object),
                         "mode": pd.Series([], dtype=object), "first_exposed_at": ts,
                         "p_compromised": pd.Series([], dtype=np.float64), "reported": pd.Series([], dtype=bool),
                         "recommended_action": pd.Series([], dtype=object), "merchant_id": pd.Series([], dtype=object),
                         "point_rank": pd.Series([], dtype=np.int64), "window_start": ts.copy(),
                         "window_end": ts.copy(), "victim_rate": pd.Series([], dtype=np.float64),
                         "later_clone_use": pd.Series([], dtype=bool)})


def exposed_cards(projection: Projection, points: pd.DataFrame, *, reissue_p: float = REISSUE_P,
                  far_km: float = 50.0, report_q: float = REPORT_Q) -> pd.DataFrame:
    """Cards that used an accepted point of compromise inside its window, with p_compromised and an action.

    For a point with ``n`` distinct cards in its window of which ``v`` are reported, an unreported card's
    prior is the victim rate ``(v + 1) / (n + 2)`` (Beta(1, 1) posterior mean). Later evidence updates it by a
    likelihood ratio fitted to this run: ``e`` = the card had a counterfeit-looking use after its exposure
    (magstripe/fallback ``far_km`` or more from its last chip use, ``ks.clone_uses``); ``P(e | victim)`` is
    its rate among the reported cards exposed at accepted points of the same mode, ``P(e | other)`` among the
    unreported ones (both with +0.5/+1 smoothing; the unreported include victims, so the ratio is
    conservative). Reported cards get ``p_compromised = 1``. ``recommended_action`` is
    ``reissue`` when ``p_compromised >= reissue_p``, else ``watch``.

    Parameters
    ----------
    projection : Projection
        Must hold the full history of every card that used an accepted point (the local projection does;
        the Spark engine extends its candidate subgraph with those cards first).
    points : DataFrame
        ``SkimmingDetector.result_`` (terminal_id, mode, rank, window_start, window_end, accepted, q_value).
    reissue_p : float
        Action threshold (``REISSUE_P``).
    far_km : float
        Distance that makes a magstripe/fallback use counterfeit-looking.
    report_q : float
        Points with a larger q_value expose nothing.

    Returns
    -------
    DataFrame with ``EXPOSED_COLUMNS``, by point rank then p_compromised (descending) then card_token.
    """
    p = projection
    if points is None or points.empty or not p.n_txns:
        return _empty()
    acc = points[points["accepted"].astype(bool) & (points["q_value"] <= report_q)]
    acc = acc[acc["window_start"].notna() & acc["window_end"].notna()]
    if acc.empty:
        return _empty()
    present = p.txn_entry != ENTRY_MANUAL
    reported = np.zeros(p.n_cards, dtype=bool)
    reported[p.report_card[p.report_card >= 0]] = True
    lat, lon = p.txn_positions()
    clone = ks.clone_uses(p.card_indptr, p.txn_ts, p.txn_entry, lat, lon, np.isfinite(lat) & np.isfinite(lon),
                          float(far_km))
    last_clone = np.full(p.n_cards, -1, dtype=np.int64)
    np.maximum.at(last_clone, p.txn_card[clone], p.txn_ts[clone])
    term_index = pd.Index(p.terminal_ids)
    parts = []
    for row in acc.itertuples(index=False):
        t = term_index.get_loc(row.terminal_id)
        ws, we = to_epoch_seconds([row.window_start])[0], to_epoch_seconds([row.window_end])[0]
        idx = p.term_order[p.term_indptr[t]:p.term_indptr[t + 1]]
        idx = idx[present[idx] & (p.txn_ts[idx] >= ws) & (p.txn_ts[idx] <= we)]
        if not len(idx):
            continue
        visits = pd.DataFrame({"card": p.txn_card[idx], "ts": p.txn_ts[idx]}).groupby("card")["ts"].min()
        cards = visits.index.to_numpy(dtype=np.int64)
        n, v = len(cards), int(reported[cards].sum())
        parts.append(pd.DataFrame({
            "card": cards, "first": visits.to_numpy(dtype=np.int64), "terminal_id": row.terminal_id,
            "mode": row.mode, "merchant_id": row.merchant_id, "point_rank": int(row.rank),
            "window_start": row.window_start, "window_end": row.window_end, "victim_rate": (v + 1.0) / (n + 2.0)}))
    if not parts:
        return _empty()
    out = pd.concat(parts, ignore_index=True)
    card = out["card"].to_numpy()
    out["reported"] = reported[card]
    out["later_clone_use"] = last_clone[card] > out["first"].to_numpy()
    rep, ev = out["reported"].to_numpy(), out["later_clone_use"].to_numpy()
    ratio = np.ones(len(out))
    for mode in pd.unique(out["mode"]):  # the evidence means something else for each kind of point
        m = (out["mode"] == mode).to_numpy()
        p_victim = (ev[m & rep].sum() + 0.5) / ((m & rep).sum() + 1.0)
        p_other = (ev[m & ~rep].sum() + 0.5) / ((m & ~rep).sum() + 1.0)
        ratio[m] = np.where(ev[m], p_victim / p_other, (1.0 - p_victim) / (1.0 - p_other))
    prior = out["victim_rate"].to_numpy()
    odds = prior / (1.0 - prior) * ratio
    out["p_compromised"] = np.where(rep, 1.0, odds / (1.0 + odds))
    out["recommended_action"] = np.where(out["p_compromised"] >= reissue_p, REISSUE, WATCH).astype(object)
    out["card_token"] = p.card_ids[card]
    out["first_exposed_at"] = to_timestamps(out["first"].to_numpy(dtype=np.int64))
    out = out.sort_values(["point_rank", "p_compromised", "card_token"], ascending=[True, False, True],
                          kind="stable").reset_index(drop=True)
    return out[EXPOSED_COLUMNS]


def event_evidence(projection: Projection, terminal_ids, window_starts, lead_days: float = 7.0) -> list[list[str]]:
    """Suspicious events of each terminal in ``[window_start - lead_days, window_start]``, as ``kind@ISO-time``.

    Kinds: ``tamper``; ``firmware_change`` (a firmware_update event, or an event reporting a firmware hash
    other than the terminal's previous one); ``new_ip`` (an address the terminal had not reported before, after
    its first); ``odd_hour_boot`` (a boot at an hour of day (UTC) that holds less than ``ODD_HOUR_SHARE`` of a
    uniform share of all the run's boots; judged only when the run has at least 24 boots).

    Returns
    -------
    list (one per terminal) of lists of strings, oldest first
    """
    ev = projection.terminal_events
    out: list[list[str]] = [[] for _ in range(len(terminal_ids))]
    if ev is None or not len(ev) or "event" not in ev.columns or not len(terminal_ids):
        return out
    ev = ev.assign(_ts=to_epoch_seconds(ev["ts"])).sort_values(["terminal_id", "_ts"], kind="stable")
    ev = ev[ev["_ts"] >= 0]
    kind = ev["event"].astype(str).str.lower()
    flags = pd.DataFrame({"terminal_id": ev["terminal_id"].to_numpy(), "ts": ev["_ts"].to_numpy()})
    flags["tamper"] = (kind == "tamper").to_numpy()
    fw = ev["firmware_hash"] if "firmware_hash" in ev.columns else pd.Series(None, index=ev.index, dtype=object)
    prev_fw = fw.groupby(ev["terminal_id"]).transform(lambda s: s.ffill().shift())
    flags["firmware_change"] = ((kind == "firmware_update") | (fw.notna() & prev_fw.notna() & (fw != prev_fw))).to_numpy()
    ip = ev["ip"] if "ip" in ev.columns else pd.Series(None, index=ev.index, dtype=object)
    first_of_ip = ~pd.DataFrame({"t": ev["terminal_id"], "ip": ip}).duplicated()
    has_earlier = ip.notna().groupby(ev["terminal_id"]).cumsum() > 1
    flags["new_ip"] = (ip.notna() & first_of_ip & has_earlier).to_numpy()
    boots = (kind == "boot").to_numpy()
    hours = (flags["ts"].to_numpy() // 3600) % 24
    odd = np.zeros(len(flags), dtype=bool)
    if boots.sum() >= 24:
        per_hour = np.bincount(hours[boots], minlength=24) / boots.sum()
        odd = boots & (per_hour[hours] < ODD_HOUR_SHARE / 24.0)
    flags["odd_hour_boot"] = odd
    kinds = ["tamper", "firmware_change", "new_ip", "odd_hour_boot"]
    flags = flags[flags[kinds].any(axis=1)]
    by_term = {t: g for t, g in flags.groupby("terminal_id", sort=False)}
    starts = to_epoch_seconds(window_starts)
    for i, (t, ws) in enumerate(zip(terminal_ids, starts)):
        g = by_term.get(t)
        if g is None or ws < 0:
            continue
        g = g[(g["ts"] >= ws - int(lead_days * DAY)) & (g["ts"] <= ws)]
        for r in g.itertuples(index=False):
            stamp = pd.Timestamp(int(r.ts), unit="s", tz="UTC").isoformat()
            out[i] += [f"{k}@{stamp}" for k in kinds if getattr(r, k)]
    return out
