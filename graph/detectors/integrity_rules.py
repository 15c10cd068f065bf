"""Terminal integrity, the rules per kind: each kind's p-values and details from every terminal's merged evidence."""

from __future__ import annotations

import numpy as np
import pandas as pd

from graph.detectors.integrity_evidence import NO_ZONE
from graph.detectors.integrity_nulls import binom_lower, binom_upper, group_null, with_spread
from graph.kernels.integrity import betabinom_logsf

__all__ = ["HIGH_FEE_MCC", "LOW_FEE_MCC", "rows", "rate_test", "trace_gap", "clock_skew", "relocation",
           "mcc_mismatch", "void_spike", "unapproved_firmware", "tamper_event", "odd_hour_boot", "new_ip"]

# Interchange tiers as acquirers see them: merchants moving volume from the first set to the second
# ("MCC jumping") pay less and hide what they sell.
HIGH_FEE_MCC = frozenset({5944, 7011, 5732, 6051, 6011, 5999, 5311, 5691, 4829, 7995})
LOW_FEE_MCC = frozenset({5411, 5812, 5541, 5300, 5912, 4121, 8211, 8062, 9399})
_HOUR_PSEUDO = 0.5  # pseudo-count per hour of a model's boot-hour histogram


def rows(s, sel, p, details, first, last, events) -> pd.DataFrame:
    """A kind's rows: the terminals of ``s`` selected by ``sel`` with their p-value, details, first and last
    time and number of events."""
    return pd.DataFrame({"terminal_id": s.loc[sel, "terminal_id"].to_numpy(), "p": np.asarray(p, np.float64),
                         "details": list(details), "first": np.asarray(first, np.int64),
                         "last": np.asarray(last, np.int64), "events": np.asarray(events, np.int64)})


def rate_test(k, n, group, enough, prior_terminals: float, trim: float):
    """One-sided beta-binomial p-values of ``k`` of ``n`` against each terminal's group null
    (``graph.detectors.integrity_nulls.group_null``), for the rows with ``enough`` evidence and k >= 1;
    returns (rows, p, mu, rho) for those rows."""
    k, n = np.asarray(k, np.int64), np.asarray(n, np.int64)
    mu, rho = group_null(k, n, group, prior_terminals, trim)
    sel = np.asarray(enough & (k >= 1), bool)
    p = np.exp(betabinom_logsf(k[sel], n[sel], mu[sel], rho[sel]))
    return sel, p, mu[sel], rho[sel]


def trace_gap(s, min_missing: int, prior_terminals: float, trim: float):
    """(kind, terminals tested, rows) of trace_gap: messages hidden by STAN gaps, among the sequence numbers
    the terminal's span used."""
    k = s["gap_missing"].to_numpy()
    numbers = np.where(s["stan_n"].to_numpy() > 1, s["stan_n"].to_numpy() + k, 0)  # STANs the span used
    sel, p, rate, rho = rate_test(k, numbers, s["_model"].to_numpy(), k >= min_missing, prior_terminals, trim)
    d = s[sel]
    details = [f"{r} STAN gaps hide {m} messages of {n}"
               + (f" beyond the {v * 86400:.3g} numbers a day its model spends without one" if v > 0 else "")
               + f" (the model's terminals: {x:.2%} of sequence numbers missing, expected {x * (n + m):.2g})"
               for r, m, n, v, x in zip(d["gap_runs"], d["gap_missing"], d["stan_n"], d["stan_rate"], rate)]
    return "trace_gap", int((numbers > 0).sum()), rows(s, sel, p, with_spread(details, rho), d["gap_first"],
                                                       d["gap_last"], d["gap_runs"])


def clock_skew(s, prior_terminals: float, trim: float):
    """(kind, terminals tested, rows) of clock_skew: messages behind an earlier one in STAN order, among the
    terminal's STAN steps."""
    steps = np.maximum(s["stan_n"].to_numpy() - 1, 0)
    sel, p, rate, rho = rate_test(s["skew_events"].to_numpy(), steps, s["_model"].to_numpy(), True, prior_terminals,
                                  trim)
    d = s[sel]
    details = [f"time went back {e} times in STAN order, at most {h / 3600:.1f} h (expected {x:.2g} at the "
               f"model's rate)" for e, h, x in zip(d["skew_events"], d["skew_max_s"], rate * steps[sel])]
    details = with_spread(details, rho)
    return "clock_skew", int((steps > 0).sum()), rows(s, sel, p, details, d["skew_first"], d["skew_last"],
                                                      d["skew_events"])


def relocation(s, far_km: float, min_far: int, prior_terminals: float, trim: float):
    """(kind, terminals tested, rows) of relocation: transactions and terminal events over ``far_km`` from the
    registered position, among those located."""
    k = (s["far_n"] + s["ev_far"]).to_numpy()
    n = (s["located"] + s["ev_located"]).to_numpy()
    sel, p, rate, rho = rate_test(k, n, s["_model"].to_numpy(), k >= min_far, prior_terminals, trim)
    d = s[sel]
    first = np.minimum(d["far_first"].to_numpy(), d["ev_far_first"].to_numpy())
    last = np.maximum(d["far_last"].to_numpy(), d["ev_far_last"].to_numpy())
    details = [f"{f} of {loc} located transactions and {e} of {el} terminal events over {far_km:g} km from "
               f"the registered position (the model's terminals: {x:.2%} of positions)"
               for f, loc, e, el, x in zip(d["far_n"], d["located"], d["ev_far"], d["ev_located"], rate)]
    return "relocation", int((n > 0).sum()), rows(s, sel, p, with_spread(details, rho), first, last, k[sel])


def mcc_mismatch(s, min_mcc: int, prior_terminals: float, trim: float):
    """(kind, terminals tested, rows) of mcc_mismatch: transactions under another MCC than the merchant's, among
    those with an MCC."""
    k, n = s["mcc_n"].to_numpy(), s["mcc_known"].to_numpy()
    sel, p, rate, rho = rate_test(k, n, s["_mcc"].to_numpy(), k >= min_mcc, prior_terminals, trim)
    d = s[sel]
    downgrade = [r in HIGH_FEE_MCC and m in LOW_FEE_MCC for r, m in zip(d["reg_mcc"], d["mcc_sent"])]
    details = [f"{a} of {b} transactions ({a / max(b, 1):.0%}) sent under MCC {m:04d}, registered {r:04d}"
               + (" (high-fee to low-fee)" if g else "") + f" (merchants of MCC {r:04d}: {x:.2%})"
               for a, b, m, r, g, x in zip(d["mcc_n"], d["mcc_known"], d["mcc_sent"], d["reg_mcc"], downgrade,
                                           rate)]
    details = with_spread(details, rho)
    return "mcc_mismatch", int((n > 0).sum()), rows(s, sel, p, details, d["mcc_first"], d["mcc_last"], d["mcc_n"])


def void_spike(s, window_hours: float, min_voids: int, prior_weight: float):
    """(kind, terminals tested, rows) of void_spike: the densest ``window_hours`` burst of voids and refunds,
    against the terminal's own rate outside it."""
    n, vr = s["n"].to_numpy(np.float64), s["vr_total"].to_numpy(np.float64)
    network = (vr.sum() - vr + 1.0) / (n.sum() - n + 50.0)  # the network's rate without the terminal
    outside_n = n - s["vr_window_n"].to_numpy(np.float64)
    outside_vr = vr - s["vr_window"].to_numpy(np.float64)
    rate = (outside_vr + network * prior_weight) / (outside_n + prior_weight)
    sel = s["vr_window"].to_numpy() >= max(1, min_voids)
    window = int(window_hours * 3600)
    span = np.maximum(s["last_ts"].to_numpy() - s["first_ts"].to_numpy(), 0)
    windows = np.where(s["n"].to_numpy() > 0, np.maximum(1.0, np.ceil(span / max(window, 1))), 1.0)
    p = np.minimum(1.0, binom_upper(s["vr_window"].to_numpy()[sel], s["vr_window_n"].to_numpy()[sel], rate[sel])
                   * windows[sel])
    d = s[sel]
    details = [f"{k} voids/refunds among {m} messages within {window_hours:g} h (usual rate {r:.1%}, "
               f"expected {r * m:.2g}; {w:.0f} windows scanned)"
               for k, m, r, w in zip(d["vr_window"], d["vr_window_n"], rate[sel], windows[sel])]
    return "void_spike", int((s["n"] > 0).sum()), rows(
        s, sel, p, details, d["vr_window_start"], d["vr_window_start"] + window, d["vr_window"])


def unapproved_firmware(s, fw):
    """(kind, terminals tested, rows) of unapproved_firmware: hashes off the model's allow-list or in use before
    their approval, against the reach of the model's approved releases."""
    if not len(fw):
        return "unapproved_firmware", 0, rows(s, np.zeros(len(s), bool), [], [], [], [], [])
    models = s.set_index("terminal_id")["model"]
    fw = fw.assign(model=models.reindex(fw["terminal_id"]).fillna("").to_numpy())
    fleet = s.groupby("model").size()
    users = fw.groupby(["model", "hash"])["terminal_id"].nunique()
    share = users / fleet.reindex(users.index.get_level_values(0)).to_numpy()
    approved = fw[fw["on_list"]].groupby(["model", "hash"]).size().index
    typical = share[share.index.isin(approved)]
    network_f = float(typical.median()) if len(typical) else np.nan
    model_f = typical.groupby(level=0).median()
    bad = fw[fw["bad"] > 0].copy()
    tested = int(fw.loc[fw["timed"], "terminal_id"].nunique())
    if not len(bad):
        return "unapproved_firmware", tested, rows(s, np.zeros(len(s), bool), [], [], [], [], [])
    # the same observation on other terminals of the model: the hash at all (off the list), or early
    early_users = bad[bad["early"]].groupby(["model", "hash"])["terminal_id"].nunique()
    key = pd.MultiIndex.from_arrays([bad["model"], bad["hash"]])
    bad["c"] = np.where(bad["early"], early_users.reindex(key).fillna(0).to_numpy(),
                        users.reindex(key).fillna(0).to_numpy())
    bad["N"] = fleet.reindex(bad["model"]).fillna(0).to_numpy()
    bad["f"] = model_f.reindex(bad["model"]).fillna(network_f).to_numpy()
    known = np.isfinite(bad["f"].to_numpy())
    bad["p"] = 1.0
    if known.any():
        bad.loc[known, "p"] = binom_lower(bad.loc[known, "c"], bad.loc[known, "N"], bad.loc[known, "f"])
    bad = bad.sort_values(["terminal_id", "p", "hash"], kind="stable")
    n_bad = bad.groupby("terminal_id").size()
    best = bad.drop_duplicates("terminal_id").set_index("terminal_id")
    first = bad.groupby("terminal_id")["first"].min()
    last = bad.groupby("terminal_id")["last"].max()
    events = bad.groupby("terminal_id")["bad"].sum()
    p = np.minimum(1.0, best["p"].to_numpy() * n_bad.reindex(best.index).to_numpy())
    details = [f"firmware {h[:12]}… " + (f"in use before its approval on {pd.Timestamp(a, unit='s'):%Y-%m-%d}"
                                         if e else f"is not on the allow-list for model {m or '(unknown)'}")
               + f": seen so on {int(c)} of {int(n)} terminals of the model (an approved release reaches "
               f"{f:.0%} of them)" for h, e, a, m, c, n, f in
               zip(best["hash"].astype(str), best["early"], best["approved_at"], best["model"], best["c"],
                   best["N"], best["f"].fillna(np.nan))]
    sel = s["terminal_id"].isin(best.index).to_numpy()
    order = pd.Index(best.index).get_indexer(s.loc[sel, "terminal_id"])
    return "unapproved_firmware", tested, rows(
        s, sel, p[order], [details[i] for i in order], first.reindex(best.index).to_numpy()[order],
        last.reindex(best.index).to_numpy()[order], events.reindex(best.index).to_numpy()[order])


def tamper_event(s, prior_terminals: float, trim: float):
    """(kind, terminals tested, rows) of tamper_event: tamper events among the terminal's events."""
    k, n = s["tamper_n"].to_numpy(), s["ev_n"].to_numpy()
    sel, p, rate, rho = rate_test(k, n, s["_model"].to_numpy(), True, prior_terminals, trim)
    d = s[sel]
    details = [f"{a} tamper events among {b} events (the model's terminals: {x:.2%} of events, expected "
               f"{x * b:.2g})" for a, b, x in zip(d["tamper_n"], d["ev_n"], rate)]
    return "tamper_event", int((n > 0).sum()), rows(s, sel, p, with_spread(details, rho), d["tamper_first"],
                                                    d["tamper_last"], d["tamper_n"])


def new_ip(s, prior_terminals: float, trim: float):
    """(kind, terminals tested, rows) of new_ip: moves to a network address never used before, among the
    terminal's address reports."""
    k, n = s["ip_new"].to_numpy(), np.maximum(s["ip_n"].to_numpy() - 1, 0)
    sel, p, rate, rho = rate_test(k, n, s["_model"].to_numpy(), True, prior_terminals, trim)
    d = s[sel]
    details = [f"moved to a network address it never used before {a} times in {b} address reports (the "
               f"model's terminals: {x:.2%} of reports, expected {x * b:.2g})"
               for a, b, x in zip(d["ip_new"], n[sel], rate)]
    details = with_spread(details, rho)
    return "new_ip", int((n > 0).sum()), rows(s, sel, p, details, d["ip_first"], d["ip_last"], d["ip_new"])


def odd_hour_boot(s, boots, odd_share: float, prior_terminals: float, trim: float):
    """(kind, terminals tested, rows) of odd_hour_boot: boots at hours rare for the model by both clocks, among
    the terminal's boots."""
    if not len(boots):
        return "odd_hour_boot", 0, rows(s, np.zeros(len(s), bool), [], [], [], [], [])
    t = pd.Index(s["terminal_id"].to_numpy(dtype=object)).get_indexer(boots["terminal_id"])
    b = boots[t >= 0].assign(t=t[t >= 0])
    model = s["_model"].to_numpy()[b["t"].to_numpy()]
    zone = s["zone"].to_numpy(np.int64)[b["t"].to_numpy()]
    hour = b["hour"].to_numpy(np.int64)
    # the hour by the UTC clock and by the solar local one (UTC plus the terminal's zone): a nightly reboot at
    # 03:00 local is one local hour in every zone, but one UTC hour in all of a country that keeps one clock
    # over several solar zones; an hour is odd only when it is rare for the model by both clocks
    local = (hour + np.where(zone == NO_ZONE, 0, zone)) % 24
    shares = []
    for h in (hour, local):
        counts = np.zeros((int(s["_model"].max()) + 1, 24))
        np.add.at(counts, (model, h), b["n"].to_numpy(np.float64))
        share = (counts + _HOUR_PSEUDO) / (counts.sum(axis=1, keepdims=True) + 24 * _HOUR_PSEUDO)
        shares.append(share[model, h])
    share = np.maximum(*shares)
    b = b.assign(odd=share < odd_share, share=share)
    n = np.bincount(b["t"], weights=b["n"], minlength=len(s)).astype(np.int64)
    odd = b[b["odd"]]
    k = np.bincount(odd["t"], weights=odd["n"], minlength=len(s)).astype(np.int64)
    sel, p, rate, rho = rate_test(k, n, s["_model"].to_numpy(), True, prior_terminals, trim)
    g = odd.sort_values("hour").groupby("t").agg(first=("first", "min"), last=("last", "max"),
                                                 hours=("hour", list), share=("share", "sum"))
    g = g.reindex(np.flatnonzero(sel))
    details = [f"{a} of {m} boots at hours when the model's terminals rarely boot ("
               + ", ".join(f"{h:02d}:00" for h in hs) + f" UTC: {sh:.1%} of the model's boots; its terminals"
               f" boot at such hours {x:.2%} of the time, expected {x * m:.2g})"
               for a, m, hs, sh, x in zip(k[sel], n[sel], g["hours"], g["share"], rate)]
    return "odd_hour_boot", int((n > 0).sum()), rows(s, sel, p, with_spread(details, rho), g["first"], g["last"],
                                                     k[sel])
