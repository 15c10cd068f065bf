"""Terminal integrity, the evidence phases that need no parameters of the decision: each terminal's use of
sequence numbers (``stan_use``), each model's rate of numbers spent without a message (``stan_rates``), and the
evidence of the reference tables (``event_evidence``: terminal events, the registry, the firmware allow-list).

``graph.detectors.integrity.IntegrityDetector`` calls these for one projection; the Spark engine calls the same
functions per bucket of terminals (``stan_use``) and in the driver (``stan_rates``, ``event_evidence``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from graph.kernels.geo import haversine_km_array
from graph.kernels.integrity import IP_STATS, NO_TIME, STAN_USE, address_changes
from graph.kernels.integrity import stan_use as stan_use_kernel
from graph.projection import Projection, to_epoch_seconds

__all__ = ["EvidenceFrames", "FIRMWARE_TIME_COLUMN", "NO_ZONE", "event_evidence", "model_names", "model_of",
           "stan_rates", "stan_use", "time_zones", "weighted_median"]

# A column of ``terminals`` giving the time the registered firmware was loaded (not ``installed_at``).
FIRMWARE_TIME_COLUMN = "firmware_updated_at"

EvidenceFrames = tuple  # (per-terminal event evidence, boots per terminal and hour, firmware per terminal and hash)


def model_names(values) -> np.ndarray:
    """Model names as compared: upper-cased and stripped, "" when missing."""
    return pd.Series(values, dtype=object).fillna("").astype(str).str.strip().str.upper().to_numpy(dtype=object)



def model_of(terminal_ids: np.ndarray, terminals: pd.DataFrame) -> np.ndarray:
    """Each terminal's model (upper-cased, stripped; "" when unknown)."""
    if not len(terminals) or "model" not in terminals.columns:
        return np.full(len(terminal_ids), "", dtype=object)
    model = pd.Series(terminals["model"].astype(object).to_numpy(), index=terminals["terminal_id"].astype(object))
    model = model[~model.index.duplicated(keep="last")]
    return model_names(model.reindex(pd.Index(terminal_ids, dtype=object)).to_numpy())



def weighted_median(values: np.ndarray, weights: np.ndarray) -> float:
    """The lower weighted median of ``values`` (0 when no weight)."""
    values, weights = np.asarray(values, np.float64), np.asarray(weights, np.float64)
    keep = weights > 0
    if not keep.any():
        return 0.0
    order = np.argsort(values[keep], kind="stable")
    cum = np.cumsum(weights[keep][order])
    return float(values[keep][order][np.searchsorted(cum, cum[-1] / 2.0)])



def stan_use(p: Projection) -> pd.DataFrame:
    """Per terminal (any subset of terminals may be given): its model and ``STAN_USE`` (steps in STAN
    order, sequence numbers they skipped, seconds they took)."""
    use = pd.DataFrame(stan_use_kernel(p.term_indptr, p.term_order, p.txn_ts, p.txn_stan), columns=list(STAN_USE))
    use.insert(0, "terminal_id", p.terminal_ids.astype(object))
    use.insert(1, "model", model_of(p.terminal_ids, p.terminals))
    return use


def stan_rates(use: pd.DataFrame) -> pd.Series:
    """Each model's rate of sequence numbers spent without a message, from ``stan_use`` of *every* terminal.

    The seconds-weighted median over the model's terminals of ``stan_skipped / stan_seconds``: a terminal
    counts by the time it was observed, and the few that hide messages cannot move it.

    Returns
    -------
    Series
        model -> numbers per second (0 for a model whose terminals use every number).
    """
    use = use.sort_values("terminal_id", kind="stable")
    seconds = use["stan_seconds"].to_numpy(np.float64)
    rate = use["stan_skipped"].to_numpy(np.float64) / np.maximum(seconds, 1.0)
    model = use["model"].fillna("").to_numpy(dtype=object)
    names = sorted(set(model))
    return pd.Series([weighted_median(rate[model == m], seconds[model == m]) for m in names],
                     index=pd.Index(names, dtype=object), dtype=np.float64)



NO_ZONE = -99  # the time zone of a terminal without a registered position


def time_zones(terminal_ids, terminals: pd.DataFrame) -> np.ndarray:
    """Per terminal its solar time zone, ``round(registered lon / 15)`` hours ahead of UTC (``NO_ZONE`` without a
    position): UTC plus the zone is about the local clock (within an hour or two of civil time and daylight
    saving), so that a nightly reboot at 03:00 local is one hour for terminals in every zone."""
    ids = pd.Index(np.asarray(terminal_ids, dtype=object))
    if terminals is None or "lon" not in terminals.columns or not len(ids):
        return np.full(len(ids), NO_ZONE, dtype=np.int64)
    reg = terminals.drop_duplicates("terminal_id", keep="last").set_index("terminal_id")
    lon = pd.to_numeric(reg["lon"], errors="coerce").reindex(ids).to_numpy(np.float64)
    return np.where(np.isfinite(lon), np.round(np.nan_to_num(lon) / 15.0), NO_ZONE).astype(np.int64)


def event_evidence(terminal_ids, terminals: pd.DataFrame, events: pd.DataFrame, approved: pd.DataFrame,
                   far_km: float) -> EvidenceFrames:
    """Per-terminal evidence from the reference tables (terminal events, registry, firmware allow-list).

    Parameters
    ----------
    terminal_ids : array of str
        The terminals scored (events of others are ignored).
    terminals, events, approved : DataFrame
        As in ``Projection`` (``terminals``, ``terminal_events``, ``approved_firmware``).

    Returns
    -------
    (per_terminal, boots, firmware) : DataFrames
        per_terminal: terminal_id, model, zone (``time_zones``), ev_n, ev_located, ev_far, ev_far_first,
        ev_far_last, tamper_n, tamper_first, tamper_last, ``IP_STATS``; boots: terminal_id, hour (UTC), n, first, last;
        firmware: terminal_id, hash, on_list (on the allow-list for the terminal's model), timed (reported
        with a time), bad (timed reports off the list or before approval), early, first, last, approved_at.
    """
    ids = np.asarray(terminal_ids, dtype=object)
    n_t = len(ids)
    terminals = terminals if terminals is not None else pd.DataFrame({"terminal_id": []})
    model = model_of(ids, terminals)
    per = pd.DataFrame({"terminal_id": ids, "model": model, "zone": time_zones(ids, terminals)})
    for c in ("ev_n", "ev_located", "ev_far", "tamper_n"):
        per[c] = np.zeros(n_t, np.int64)
    for c in ("ev_far_first", "tamper_first"):
        per[c] = np.full(n_t, NO_TIME, np.int64)
    for c in ("ev_far_last", "tamper_last"):
        per[c] = np.full(n_t, -1, np.int64)
    ev = events if events is not None else pd.DataFrame({"terminal_id": [], "ts": []})
    term = (pd.Index(ids).get_indexer(ev["terminal_id"].astype(object)) if len(ev) and n_t
            else np.zeros(len(ev), np.int64))
    ts = to_epoch_seconds(ev["ts"]) if len(ev) else np.zeros(0, np.int64)
    ok = (term >= 0) & (ts >= 0)
    term, ts = term[ok].astype(np.int64), ts[ok]
    kind = (ev["event"].astype(object).fillna("").astype(str).str.strip().str.lower().to_numpy()[ok]
            if "event" in ev.columns else np.full(len(term), "", dtype=object))
    per["ev_n"] = np.bincount(term, minlength=n_t)
    _far_events(per, ev, ok, term, ts, ids, terminals, far_km)
    tamper = kind == "tamper"
    if tamper.any():
        g = pd.DataFrame({"t": term[tamper], "ts": ts[tamper]}).groupby("t")["ts"].agg(["size", "min", "max"])
        per.loc[g.index, "tamper_n"] = g["size"].to_numpy()
        per.loc[g.index, "tamper_first"] = g["min"].to_numpy()
        per.loc[g.index, "tamper_last"] = g["max"].to_numpy()
    ip = (pd.factorize(ev["ip"].astype(object).to_numpy()[ok], use_na_sentinel=True)[0].astype(np.int64)
          if "ip" in ev.columns else np.full(len(term), -1, np.int64))
    order = np.lexsort((ts, term)).astype(np.int64)
    indptr = np.searchsorted(term[order], np.arange(n_t + 1)).astype(np.int64)
    ips = address_changes(indptr, order, np.ascontiguousarray(ts), np.ascontiguousarray(ip))
    for j, c in enumerate(IP_STATS):
        per[c] = ips[:, j]
    boot = kind == "boot"
    boots = (pd.DataFrame({"terminal_id": ids[term[boot]], "hour": (ts[boot] // 3600) % 24, "ts": ts[boot]})
             .groupby(["terminal_id", "hour"])["ts"].agg(n="size", first="min", last="max").reset_index())
    firmware = _firmware_evidence(ids, model, terminals, ev, ok, term, ts, approved)
    return per, boots, firmware


def _far_events(per, ev, ok, term, ts, ids, terminals, far_km: float) -> None:
    if not len(term) or "lat" not in ev.columns or "lon" not in ev.columns or "lat" not in terminals.columns:
        return
    reg = terminals.drop_duplicates("terminal_id", keep="last").set_index(
        terminals.drop_duplicates("terminal_id", keep="last")["terminal_id"].astype(object))
    home_lat = pd.to_numeric(reg["lat"], errors="coerce").reindex(pd.Index(ids)).to_numpy(np.float64)
    home_lon = pd.to_numeric(reg["lon"], errors="coerce").reindex(pd.Index(ids)).to_numpy(np.float64)
    lat = pd.to_numeric(ev["lat"], errors="coerce").to_numpy(np.float64)[ok]
    lon = pd.to_numeric(ev["lon"], errors="coerce").to_numpy(np.float64)[ok]
    located = np.isfinite(lat) & np.isfinite(lon) & np.isfinite(home_lat[term]) & np.isfinite(home_lon[term])
    dist = np.full(len(term), np.nan)
    dist[located] = haversine_km_array(lat[located], lon[located], home_lat[term[located]],
                                       home_lon[term[located]])
    far = located & (dist > far_km)
    per["ev_located"] = np.bincount(term[located], minlength=len(ids))
    if far.any():
        g = pd.DataFrame({"t": term[far], "ts": ts[far]}).groupby("t")["ts"].agg(["size", "min", "max"])
        per.loc[g.index, "ev_far"] = g["size"].to_numpy()
        per.loc[g.index, "ev_far_first"] = g["min"].to_numpy()
        per.loc[g.index, "ev_far_last"] = g["max"].to_numpy()


def _firmware_evidence(ids, model, terminals, ev, ok, term, ts, approved) -> pd.DataFrame:
    columns = ["terminal_id", "hash", "on_list", "timed", "bad", "early", "first", "last", "approved_at"]
    if approved is None or not len(approved) or "firmware_hash" not in approved.columns:
        return pd.DataFrame({c: [] for c in columns})
    seen = []  # (terminal, ts or -1, hash): events, and the registry (timed only by firmware_updated_at)
    if "firmware_hash" in ev.columns and len(term):
        seen.append(pd.DataFrame({"t": term, "ts": ts, "hash": ev["firmware_hash"].astype(object).to_numpy()[ok]}))
    if len(terminals) and "firmware_hash" in terminals.columns:
        t = pd.Index(ids).get_indexer(terminals["terminal_id"].astype(object)) if len(ids) else \
            np.full(len(terminals), -1)
        when = (to_epoch_seconds(terminals[FIRMWARE_TIME_COLUMN]) if FIRMWARE_TIME_COLUMN in terminals.columns
                else np.full(len(terminals), -1, np.int64))
        hashes = terminals["firmware_hash"].astype(object).to_numpy()
        seen.append(pd.DataFrame({"t": t, "ts": when, "hash": hashes}))
    if not seen:
        return pd.DataFrame({c: [] for c in columns})
    fw = pd.concat(seen, ignore_index=True)
    fw = fw[(fw["t"] >= 0) & fw["hash"].notna()]
    fw["hash"] = fw["hash"].astype(str).str.strip()
    fw = fw[fw["hash"] != ""]
    allow = approved.dropna(subset=["firmware_hash"]).drop_duplicates("firmware_hash", keep="last")
    listed = pd.Index(allow["firmware_hash"].astype(str).str.strip())
    allow_at = pd.Series(to_epoch_seconds(allow["approved_at"]) if "approved_at" in allow.columns
                         else np.full(len(allow), -1, np.int64), index=listed)
    allow_model = pd.Series(model_names(allow["model"]) if "model" in allow.columns else "", index=listed)
    t_model = model[fw["t"].to_numpy()]
    listed_for = fw["hash"].map(allow_model)
    on_list = listed_for.notna().to_numpy() & ((listed_for.fillna("").to_numpy() == "") | (t_model == "")
                                               | (listed_for.fillna("").to_numpy() == t_model))
    at = fw["hash"].map(allow_at).fillna(-1).to_numpy(np.int64)
    timed = fw["ts"].to_numpy() >= 0
    early = on_list & timed & (at >= 0) & (fw["ts"].to_numpy() < at)
    bad = timed & (~on_list | early)
    frame = pd.DataFrame({"terminal_id": ids[fw["t"].to_numpy()], "hash": fw["hash"].to_numpy(), "on_list": on_list,
                          "timed": timed, "bad": bad, "early": early,
                          "bad_ts": np.where(bad, fw["ts"].to_numpy(), -1), "approved_at": at})
    frame["first"] = frame["bad_ts"].where(frame["bad"], NO_TIME)
    frame["last"] = frame["bad_ts"]
    return (frame.groupby(["terminal_id", "hash"], sort=True)
            .agg(on_list=("on_list", "all"), timed=("timed", "any"), bad=("bad", "sum"), early=("early", "any"),
                 first=("first", "min"), last=("last", "max"), approved_at=("approved_at", "max"))
            .reset_index()[columns])
