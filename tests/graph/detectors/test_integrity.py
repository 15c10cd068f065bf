"""Terminal integrity: the kernels against their references, and each finding kind decided against a null
fitted to the data (a background fleet of ordinary terminals of the same models)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from graph.catalog import OUTPUT_SCHEMAS
from graph.detectors import integrity_rules as rules
from graph.detectors.integrity import FINDING_COLUMNS, IntegrityDetector
from graph.detectors.integrity_evidence import NO_ZONE, time_zones
from graph.detectors.significance import REPORT_Q, binom_sf
from graph.kernels.integrity import (IP_STATS, STAN_USE, STATS, address_changes, betabinom_logsf, stan_use,
                                     terminal_stats, unwrap_stan)
from graph.projection import Projection
from graph.references import integrity as reference
from graph.vocabulary import TYPE_REFUND, TYPE_VOID
from tests.graph.conftest import T0, make_txns

VOIDS = np.array([TYPE_VOID, TYPE_REFUND], np.int8)
HOME = {"T0": (31.23, 121.47, "5944"), "T1": (39.90, 116.40, "5812"), "T2": (22.54, 114.06, "5411")}
N_FLEET = 40  # ordinary terminals B00.. of model "PAX S90", like T0..T2, for the null to be fitted on
FIRMWARE = pd.DataFrame({"firmware_hash": ["fw-a", "fw-b"], "model": ["PAX S90", "PAX S90"],
                         "approved_at": [T0 - pd.Timedelta(days=400), T0 + pd.Timedelta(days=10)]})
KEY_TERMINALS = [f"T{i}" for i in range(3)]


def _fleet_ids(n=N_FLEET):
    return [f"B{i:02d}" for i in range(n)]


def _terminals(models=None, n=N_FLEET, **columns):
    ids = KEY_TERMINALS + _fleet_ids(n)
    frame = pd.DataFrame({"terminal_id": ids, "merchant_id": ["M" + t[1:] if t in HOME else "MB" for t in ids],
                          "model": [(models or {}).get(t, "PAX S90") for t in ids],
                          "lat": [HOME.get(t, (30.0, 110.0))[0] for t in ids],
                          "lon": [HOME.get(t, (30.0, 110.0))[1] for t in ids],
                          "firmware_hash": "fw-a", "installed_at": T0 - pd.Timedelta(days=700)})
    for name, values in columns.items():
        frame[name] = values
    return frame


MERCHANTS = pd.DataFrame({"merchant_id": ["M0", "M1", "M2", "MB"], "mcc": ["5944", "5812", "5411", "5411"]})


def _sequence(stans, terminal="T0", start=0.0, **extra):
    """One message an hour at ``terminal`` with the given STANs (and per-row overrides in ``extra``)."""
    lat, lon, mcc = HOME.get(terminal, (30.0, 110.0, "5411"))
    rows = []
    for i, s in enumerate(stans):
        row = {"hours": start + float(i), "stan": s, "terminal_id": terminal,
               "merchant_id": "M" + terminal[1:] if terminal in HOME else "MB", "card_token": f"c{i % 7}",
               "lat": lat, "lon": lon, "mcc": mcc}
        row.update({k: v[i] for k, v in extra.items()})
        rows.append(row)
    return rows


def _fleet(n=N_FLEET, length=200, seed=0):
    """Ordinary traffic of the background fleet: consecutive STANs, home position and MCC, 1% voids."""
    rng = np.random.default_rng(seed)
    rows = []
    for t in _fleet_ids(n):
        first = int(rng.integers(1, 900_000))
        rows += _sequence(range(first, first + length), terminal=t,
                          txn_type=["void" if rng.random() < 0.01 else "purchase" for _ in range(length)])
    return rows


def _fleet_events(n=N_FLEET, boot_hours=(2,), tamper_every=0, ip_change_every=0):
    """Weekly heartbeats and a boot per terminal at one of ``boot_hours`` (UTC), firmware fw-a; a tamper event
    on every ``tamper_every``-th terminal and a new address at every boot of every ``ip_change_every``-th."""
    rows = []
    for i, t in enumerate(_fleet_ids(n)):
        for week in range(8):
            boot = T0 + pd.Timedelta(days=7 * week, hours=boot_hours[(i + week) % len(boot_hours)])
            changes = ip_change_every and i % ip_change_every == 0
            ip = f"10.0.{i}.{week if changes else 0}"
            rows.append({"terminal_id": t, "ts": boot, "event": "boot", "firmware_hash": "fw-a", "ip": ip})
            rows.append({"terminal_id": t, "ts": boot + pd.Timedelta(days=3), "event": "heartbeat",
                         "firmware_hash": "fw-a", "ip": ip})
        if tamper_every and i % tamper_every == 0:
            rows.append({"terminal_id": t, "ts": T0 + pd.Timedelta(days=20), "event": "tamper", "ip": f"10.0.{i}.0"})
    return rows


def _events(rows):
    frame = pd.DataFrame(rows)
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
    return frame


def _findings(rows, events=(), firmware=FIRMWARE, terminals=None, fleet=True, **params):
    """Findings of the detector on ``rows`` plus the ordinary fleet's traffic and events."""
    txns = make_txns(list(rows) + (_fleet() if fleet else []))
    ev = list(events) + (_fleet_events() if fleet else [])
    p = Projection.from_frames(txns, terminals if terminals is not None else _terminals(), MERCHANTS, None, firmware,
                               _events(ev) if ev else None)
    return IntegrityDetector(**params).fit(p).result_


def _kind(found, kind):
    return found[found["kind"] == kind]


# ---------------------------------------------------------------- kernels against their references
def _kernel_args(p: Projection, reg_mcc, min_gap=2, skew=300, far_km=50.0, window_s=86_400, stan_rate=None):
    rate = np.zeros(p.n_terminals) if stan_rate is None else np.asarray(stan_rate, np.float64)[: p.n_terminals]
    return (p.term_indptr, p.term_order, p.txn_ts, p.txn_stan, p.txn_type, p.txn_lat, p.txn_lon, p.txn_mcc,
            p.terminal_lat, p.terminal_lon, reg_mcc, rate, min_gap, skew, far_km, window_s, VOIDS)


def _random_rows(seed: int, n: int):
    rng = np.random.default_rng(seed)
    start = rng.integers(1, 999_999, 3)
    rows = []
    for i in range(n):
        t = int(rng.integers(0, 3))
        start[t] = (start[t] + rng.choice([1, 1, 1, 2, 7]) - 1) % 999_999 + 1
        far = rng.random() < 0.05
        rows.append({"hours": float(rng.integers(0, 24 * 20)) + rng.choice([0.0, 0.0, 0.5]),
                     "terminal_id": f"T{t}", "merchant_id": f"M{t}", "card_token": f"c{i % 11}",
                     "stan": int(start[t]) if rng.random() > 0.05 else None,
                     "txn_type": rng.choice(["purchase", "purchase", "void", "refund"]),
                     "mcc": rng.choice(["5944", "5812", "5411", None]),
                     "lat": 31.23 + (5.0 if far else 0.0), "lon": 121.47})
    return rows


CASES = {
    "empty": [],
    "one": _sequence([5]),
    "wrap_around": _sequence([999_997, 999_998, 999_999, 1, 2, 3]),
    "gap_over_wrap": _sequence([999_990, 999_991, 5, 6]),
    "identical_timestamps": [{"hours": 1.0, "stan": s} for s in (10, 11, 12, 30, 31)],
    "duplicate_stan": _sequence([10, 11, 11, 12]),
    "gap": _sequence([1, 2, 3, 14, 15, 16, 40]),
    "skew": [{"hours": h, "stan": s} for h, s in ((1, 1), (2, 2), (3, 3), (0.5, 4), (0.6, 5), (4, 6))],
    "behind_after_a_late_one": [{"hours": h, "stan": s} for h, s in ((1, 1), (5, 2), (2, 3), (3, 4), (6, 5))],
    "missing_stan": _sequence([None, 4, None, 9]),
    "far_and_mcc": _sequence([1, 2, 3, 4], lat=[31.23, 35.0, 35.0, 31.23], mcc=["5944", "5411", "5411", None]),
    "voids": _sequence(range(1, 9), txn_type=["purchase", "void", "void", "refund", "purchase", "void",
                                              "purchase", "refund"]),
    "random_a": _random_rows(1, 300),
    "random_b": _random_rows(2, 1000),
}
BASE_TERMINALS = _terminals(n=0)


def _case_projection(case):
    rows = CASES[case]
    return (Projection.from_frames(make_txns(rows), BASE_TERMINALS, MERCHANTS) if rows
            else Projection.from_frames(make_txns([{"hours": 0}]).iloc[:0], BASE_TERMINALS))


# numbers a terminal spends per second without a message: none, about one per 2 hours (T0), per 40 min (T1)
STAN_RATES = {"none": None, "spending": [1 / 7200, 1 / 2400, 0.0]}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("window_s", [3_600, 86_400])
@pytest.mark.parametrize("rates", sorted(STAN_RATES))
def test_kernel_equals_reference(case, window_s, rates):
    p = _case_projection(case)
    reg_mcc = np.array([5944, 5812, 5411], np.int32)[: p.n_terminals]
    args = _kernel_args(p, reg_mcc, window_s=window_s, stan_rate=STAN_RATES[rates])
    got = terminal_stats(*args)
    want = reference.terminal_stats(*args)
    assert got.shape == (p.n_terminals, len(STATS))
    for t, expected in enumerate(want):
        assert dict(zip(STATS, got[t].tolist())) == expected, f"terminal {p.terminal_ids[t]}"


@pytest.mark.parametrize("case", sorted(CASES))
def test_stan_use_kernel_equals_reference(case):
    p = _case_projection(case)
    got = stan_use(p.term_indptr, p.term_order, p.txn_ts, p.txn_stan)
    want = reference.stan_use(p.term_indptr, p.term_order, p.txn_ts, p.txn_stan)
    assert got.shape == (p.n_terminals, len(STAN_USE))
    assert [dict(zip(STAN_USE, r.tolist())) for r in got] == want
    if case == "gap":  # 3 -> 14 skips 10, 16 -> 40 skips 23, over the 6 hourly steps
        assert want[0] == {"stan_steps": 6, "stan_skipped": 33, "stan_seconds": 6 * 3600}


def test_time_spent_numbers_are_not_gaps_and_numbers_beyond_them_are():
    """At one number per 2 hours, a 3-hour step may skip 2 numbers (rounded 1.5) plus min_gap - 1 = 1."""
    rows = _sequence([1, 2, 5, 6, 10], hours=[0.0, 1.0, 4.0, 5.0, 8.0])  # skips 2 and 3 over 3-hour steps
    p = Projection.from_frames(make_txns(rows), BASE_TERMINALS, MERCHANTS)
    reg_mcc = np.array([5944], np.int32)
    none = dict(zip(STATS, terminal_stats(*_kernel_args(p, reg_mcc))[0].tolist()))
    spent = dict(zip(STATS, terminal_stats(*_kernel_args(p, reg_mcc, stan_rate=[1 / 7200]))[0].tolist()))
    assert (none["gap_runs"], none["gap_missing"]) == (2, 5)
    assert (spent["gap_runs"], spent["gap_missing"]) == (0, 0)  # 2 - 2 = 0 and 3 - 2 = 1 < min_gap
    big = _sequence([1, 2, 9, 10], hours=[0.0, 1.0, 4.0, 5.0])  # skips 6 over 3 hours: 4 beyond the 2 spent
    p = Projection.from_frames(make_txns(big), BASE_TERMINALS, MERCHANTS)
    spent = dict(zip(STATS, terminal_stats(*_kernel_args(p, reg_mcc, stan_rate=[1 / 7200]))[0].tolist()))
    assert (spent["gap_runs"], spent["gap_missing"]) == (1, 4)
    assert spent["gap_first"] == int((T0 + pd.Timedelta(hours=1)).timestamp())


def test_stan_rates_are_the_models_seconds_weighted_median():
    day = 86_400
    use = pd.DataFrame({
        "terminal_id": ["a1", "a2", "a3", "a4", "b1", "b2", "c1"],
        "model": ["A", "A", "A", "A", "B", "B", "C"],
        "stan_steps": [100, 30, 20, 10, 50, 50, 0],
        # A: a number a day at three terminals, one terminal hiding many more (it cannot move the median);
        # B: a busy terminal observed long (0.5 a day) outweighs a short-lived one (3 a day); C: no steps
        "stan_skipped": [80, 40, 30, 300, 45, 3, 0],
        "stan_seconds": [80 * day, 40 * day, 30 * day, 60 * day, 90 * day, 1 * day, 0]})
    rates = IntegrityDetector.stan_rates(use)
    assert rates.to_dict() == {"A": pytest.approx(1 / day), "B": pytest.approx(0.5 / day), "C": 0.0}
    assert IntegrityDetector.stan_rates(use.iloc[::-1]).equals(rates)  # the order of the parts does not matter


def test_a_message_behind_the_clock_counts_even_after_the_clock_moved_forward_again():
    rows = CASES["behind_after_a_late_one"]  # 1h, 5h, then 2h and 3h: both behind the 5h message
    p = Projection.from_frames(make_txns(rows), BASE_TERMINALS, MERCHANTS)
    got = dict(zip(STATS, terminal_stats(*_kernel_args(p, np.array([5944, 5812, 5411], np.int32)))[0].tolist()))
    assert got["skew_events"] == 2 and got["skew_max_s"] == 3 * 3600


ADDRESS_CASES = {
    "none": ([], []),
    "steady": ([0, 0, 0], [1, 1, 1]),
    "back_and_forth": ([0, 0, 0, 0, 0], [1, 2, 1, 2, 3]),
    "missing_between": ([0, 0, 0, 0], [1, -1, 1, 4]),
    "two_terminals": ([0, 1, 0, 1, 1], [5, 5, 6, 5, 7]),
    "first_missing": ([1, 1], [-1, 3]),
}


@pytest.mark.parametrize("case", sorted(ADDRESS_CASES))
def test_address_changes_kernel_equals_reference(case):
    term, ip = (np.asarray(a, np.int64) for a in ADDRESS_CASES[case])
    ts = np.arange(len(term), dtype=np.int64) * 60 + 1_000
    order = np.lexsort((ts, term)).astype(np.int64)
    indptr = np.searchsorted(term[order], np.arange(3)).astype(np.int64)
    got = address_changes(indptr, order, ts, ip)
    want = reference.address_changes(indptr, order, ts, ip)
    assert [dict(zip(IP_STATS, r.tolist())) for r in got] == want
    if case == "back_and_forth":
        assert want[0]["ip_new"] == 2  # 2 is new once, back to 1 is not, 3 is new


BETABINOM_CASES = [(0, 10, 0.2, 0.0), (1, 10, 0.2, 0.0), (3, 10, 0.2, 0.3), (10, 10, 0.2, 0.3), (11, 10, 0.2, 0.3),
                   (1, 1, 1e-9, 0.0), (5, 400, 1e-4, 0.0), (5, 400, 1e-4, 1e-3), (60, 120, 0.086, 0.35),
                   (2, 3, 0.5, 0.99), (40, 1000, 0.01, 0.0)]


@pytest.mark.parametrize("k, n, mu, rho", BETABINOM_CASES)
def test_betabinomial_tail_equals_reference(k, n, mu, rho):
    got = float(np.exp(betabinom_logsf(np.array([k]), np.array([n]), np.array([mu]), np.array([rho]))[0]))
    want = reference.betabinom_sf(k, n, mu, rho)
    assert got == pytest.approx(want, rel=1e-9, abs=1e-300)
    if rho == 0:
        assert got == pytest.approx(float(binom_sf([k], [n], [mu])[0]), rel=1e-9, abs=1e-300)


def test_overdispersion_weakens_the_same_count():
    """The same 5 of 400 is far less surprising when the group's terminals differ (rho > 0)."""
    p = np.exp(betabinom_logsf(np.array([5, 5]), np.array([400, 400]), np.array([1e-3, 1e-3]), np.array([0.0, 0.05])))
    assert p[0] < 1e-3 < 0.01 < p[1]


def test_unwrap_stan_crosses_the_wrap_and_keeps_late_messages_in_place():
    assert unwrap_stan(np.array([999_998, 999_999, 1, 2], np.int64)).tolist() == [999_998, 999_999,
                                                                                   1_000_000, 1_000_001]
    assert unwrap_stan(np.array([10, 14, 12], np.int64)).tolist() == [10, 14, 12]


# ---------------------------------------------------------------- firmware: direct evidence only
def test_installed_before_approval_but_updated_after_it_is_not_flagged():
    """Registered fw-b (approved on day 10), installed two years ago: the update event after approval is
    what the data shows, and installed_at says nothing about when fw-b arrived."""
    terminals = _terminals()
    terminals.loc[terminals["terminal_id"] == "T0", "firmware_hash"] = "fw-b"
    update = [{"terminal_id": "T0", "ts": T0 + pd.Timedelta(days=d), "event": e, "firmware_hash": h, "ip": "10.9.9.9"}
              for d, e, h in ((1, "heartbeat", "fw-a"), (20, "firmware_update", "fw-b"), (20.01, "boot", "fw-b"),
                              (27, "heartbeat", "fw-b"))]
    found = _findings(_sequence(range(1, 40)), events=update, terminals=terminals)
    assert "unapproved_firmware" not in set(found["kind"]), found.to_string()


def test_firmware_reported_in_an_event_before_its_approval_is_flagged():
    early = [{"terminal_id": "T0", "ts": T0 + pd.Timedelta(days=d), "event": e, "firmware_hash": "fw-b",
              "ip": "10.9.9.9"} for d, e in ((3, "firmware_update"), (3.01, "boot"), (8, "heartbeat"))]
    fw = _kind(_findings(_sequence(range(1, 40)), events=early), "unapproved_firmware")
    assert fw["terminal_id"].tolist() == ["T0"] and fw["events"].tolist() == [3]
    assert "before its approval" in fw["details"].iloc[0]
    assert fw["first_seen"].iloc[0] == T0 + pd.Timedelta(days=3)
    assert fw["last_seen"].iloc[0] == T0 + pd.Timedelta(days=8)
    assert fw["q_value"].iloc[0] <= 0.01


def test_a_one_off_hash_is_stronger_than_one_many_terminals_of_the_model_run():
    """The model's approved releases: fw-a on two thirds of the fleet, fw-c on a third. fw-x is on T0 only; fw-y
    on T1 and on a third of the fleet: both off the allow-list, but fw-y looks like a release missing from the
    list rather than tampering."""
    terminals = _terminals()
    terminals.loc[terminals["terminal_id"].isin(_fleet_ids()[1::3]), "firmware_hash"] = "fw-c"
    firmware = pd.concat([FIRMWARE, pd.DataFrame({"firmware_hash": ["fw-c"], "model": ["PAX S90"],
                                                  "approved_at": [T0 - pd.Timedelta(days=100)]})])
    events = [{"terminal_id": "T0", "ts": T0 + pd.Timedelta(days=5), "event": "boot", "firmware_hash": "fw-x"},
              {"terminal_id": "T1", "ts": T0 + pd.Timedelta(days=5), "event": "boot", "firmware_hash": "fw-y"}]
    events += [{"terminal_id": t, "ts": T0 + pd.Timedelta(days=6), "event": "heartbeat", "firmware_hash": "fw-y"}
               for t in _fleet_ids()[::3]]
    fleet_events = _fleet_events()
    for e in fleet_events:
        e["firmware_hash"] = terminals.set_index("terminal_id").loc[e["terminal_id"], "firmware_hash"]
    txns = make_txns(_sequence(range(1, 40)) + _sequence(range(1, 40), terminal="T1") + _fleet())
    p = Projection.from_frames(txns, terminals, MERCHANTS, None, firmware, _events(events + fleet_events))
    det = IntegrityDetector().fit(p)
    fw = _kind(det.result_, "unapproved_firmware").set_index("terminal_id")
    assert list(fw.index) == ["T0"] and "not on the allow-list" in fw.loc["T0", "details"]
    assert "seen so on 1 of 43 terminals" in fw.loc["T0", "details"]
    s = det.stats_.merge(det.event_evidence(p.terminal_ids, p.terminals, p.terminal_events, p.approved_firmware)[0],
                         on="terminal_id")
    _, _, frame = rules.unapproved_firmware(s, det.event_evidence(p.terminal_ids, p.terminals, p.terminal_events,
                                                                  p.approved_firmware)[2])
    p_of = frame.set_index("terminal_id")["p"]
    assert p_of["T0"] < 1e-9 and p_of["T1"] > 1e-3  # seen on 15 of 43 terminals of the model


@pytest.mark.parametrize("loaded_day, flagged", [(4, True), (15, False)])
def test_registered_firmware_counts_only_with_its_own_time(loaded_day, flagged):
    """The registry's fw-b is evidence only through ``firmware_updated_at`` (approval on day 10): loaded on
    day 4 it ran before its approval, on day 15 it did not; ``installed_at`` (day 12 here) plays no part."""
    terminals = _terminals(installed_at=T0 + pd.Timedelta(days=12),
                           firmware_updated_at=pd.Series(pd.NaT, index=range(3 + N_FLEET), dtype="datetime64[ns, UTC]"))
    t0 = terminals["terminal_id"] == "T0"
    terminals.loc[t0, "firmware_hash"] = "fw-b"
    terminals.loc[t0, "firmware_updated_at"] = T0 + pd.Timedelta(days=loaded_day)
    fw = _kind(_findings(_sequence(range(1, 40)), terminals=terminals), "unapproved_firmware")
    assert fw["terminal_id"].tolist() == (["T0"] if flagged else [])
    if flagged:
        assert fw["first_seen"].iloc[0] == T0 + pd.Timedelta(days=4)


def test_no_allow_list_no_firmware_finding():
    events = [{"terminal_id": "T0", "ts": T0, "event": "boot", "firmware_hash": "fw-evil"}]
    found = _findings(_sequence(range(1, 40)), events=events, firmware=FIRMWARE.iloc[:0])
    assert "unapproved_firmware" not in set(found["kind"])


# ---------------------------------------------------------------- transaction kinds, decided by q
def test_deleted_messages_are_a_trace_gap_that_says_how_many():
    rows = _sequence([*range(100, 110), *range(120, 130), *range(131, 140), *range(160, 170), *range(190, 200)])
    gaps = _kind(_findings(rows), "trace_gap")
    assert gaps["terminal_id"].tolist() == ["T0"]
    assert gaps["details"].iloc[0].startswith("3 STAN gaps hide 50 messages")  # the single-message gap is noise
    assert gaps["first_seen"].iloc[0] == T0 + pd.Timedelta(hours=9)
    assert 0 < gaps["p_value"].iloc[0] <= gaps["q_value"].iloc[0] <= REPORT_Q


def _daily_close(terminal, rng, days=90, mean_gap_h=16.0, deleted=()):
    """Quiet traffic of a model that spends a STAN at every daily batch close (midnight UTC): a message every
    ``mean_gap_h`` hours on average, STAN +1 per message and +1 per midnight (about 40% of the numbers skipped);
    ``deleted``: (first message, length) blocks removed after numbering (hidden sales)."""
    hours = np.cumsum(rng.exponential(mean_gap_h, size=int(days * 24 / mean_gap_h * 2)))
    hours = hours[hours < days * 24]
    stans = int(rng.integers(1, 900_000)) + np.arange(len(hours)) + (hours // 24).astype(np.int64)
    keep = np.ones(len(hours), bool)
    for first, length in deleted:
        keep[first:first + length] = False
    return _sequence([int(x) for x in stans[keep]], terminal=terminal, hours=[float(h) for h in hours[keep]])


def test_a_block_of_sales_deleted_where_the_model_skips_a_number_a_day_is_a_trace_gap():
    """Every terminal of the model skips a number at each daily close, so quiet terminals skip ~40% of the
    numbers and a quiet week skips 7: that is the model's use of time, not a gap. One terminal had 2 blocks of
    3 sales deleted: that is. (The old rule, jumps of more than min_gap against the model's share of numbers
    in such jumps, found nothing here: the natural skips made the null too wide.)"""
    rng = np.random.default_rng(7)
    rows = _daily_close("T0", rng, deleted=((30, 3), (90, 3)))
    for t in _fleet_ids():
        rows += _daily_close(t, rng)
    txns = make_txns(rows)
    p = Projection.from_frames(txns, _terminals(), MERCHANTS)
    det = IntegrityDetector().fit(p)
    assert det.stan_rates_["PAX S90"] * 86_400 == pytest.approx(1.0, rel=0.02)
    gaps = _kind(det.result_, "trace_gap")
    assert gaps["terminal_id"].tolist() == ["T0"], det.result_.to_string()
    runs, hidden = (int(x) for x in gaps["details"].iloc[0].split(" messages")[0].split(" STAN gaps hide "))
    assert runs == 2 and 6 - 2 <= hidden <= 6 + 2  # each block's 3, give or take the rounding of the close
    per_day = float(gaps["details"].iloc[0].split("beyond the ")[1].split(" numbers a day its model spends")[0])
    assert per_day == pytest.approx(1.0, rel=0.02)
    assert gaps["q_value"].iloc[0] <= 0.001
    # the evidence the fleet's natural skips give, at the model's rate: none
    fleet = det.stats_[det.stats_["terminal_id"].str.startswith("B")]
    assert (fleet["gap_runs"] == 0).all()
    assert (fleet["stan_n"] > 100).all()


def test_gaps_as_common_as_the_models_are_not_a_finding():
    """The same three gaps at T0, but every terminal of its model loses messages that often: no finding
    (the old fixed ``min_missing`` reported it)."""
    rows = _sequence([*range(100, 110), *range(120, 130), *range(131, 140), *range(160, 170), *range(190, 200)])
    fleet = _fleet(length=50)
    for i, r in enumerate(fleet):  # 3 jumps hiding 16 messages each in every fleet terminal
        r["stan"] = r["stan"] + 16 * (i % 50 // 13)
    p = Projection.from_frames(make_txns(rows + fleet), _terminals(), MERCHANTS, None, FIRMWARE)
    found = IntegrityDetector().fit(p).result_
    assert "trace_gap" not in set(found["kind"]), found.to_string()


def test_clock_going_back_in_stan_order_is_skew_and_small_jitter_is_not():
    back = _sequence(range(1, 30), hours=[float(h) for h in range(10)] + [h - 6.0 for h in range(10, 20)]
                     + [float(h) for h in range(20, 29)])
    skew = _kind(_findings(back), "clock_skew")
    assert skew["terminal_id"].tolist() == ["T0"] and skew["events"].tolist() == [5]  # 4h..8h: behind 9h
    assert "at most 5.0 h" in skew["details"].iloc[0]
    jitter = _sequence(range(1, 30), hours=[h - (0.01 if h % 2 else 0.0) for h in range(29)])  # 36 s back
    assert "clock_skew" not in set(_findings(jitter)["kind"])


def test_relocation_from_transactions_and_from_terminal_events():
    moved = _sequence(range(1, 21), lat=[31.23] * 10 + [30.27] * 10, lon=[121.47] * 10 + [120.16] * 10)
    found = _kind(_findings(moved), "relocation")
    assert found["terminal_id"].tolist() == ["T0"] and found["events"].tolist() == [10]
    events = [{"terminal_id": "T1", "ts": T0 + pd.Timedelta(days=d), "event": "heartbeat", "lat": la, "lon": lo}
              for d, (la, lo) in enumerate([(39.9, 116.4)] + [(31.2, 121.5)] * 4 + [(39.9, 116.4)])]
    by_events = _kind(_findings(_sequence(range(1, 5), terminal="T1"), events=events), "relocation")
    assert by_events["terminal_id"].tolist() == ["T1"]
    near = _sequence(range(1, 21), lat=[31.25] * 20)  # 2 km: noise
    assert "relocation" not in set(_findings(near)["kind"])


def test_mcc_jumping_is_flagged_and_named():
    jeweller = _sequence(range(1, 21), mcc=["5944"] * 10 + ["5411"] * 10)  # registered 5944, sends 5411
    restaurant = _sequence(range(1, 21), terminal="T1", mcc=["5812"] * 10 + ["5999"] * 10)
    mism = _kind(_findings(jeweller + restaurant), "mcc_mismatch").set_index("terminal_id")
    assert set(mism.index) == {"T0", "T1"}
    assert "high-fee to low-fee" in mism.loc["T0", "details"] and "high-fee" not in mism.loc["T1", "details"]


def test_void_burst_is_flagged_and_a_steady_void_rate_is_not():
    rng = np.random.default_rng(3)
    steady = [{"hours": h * 2.0, "stan": h + 1, "txn_type": "void" if rng.random() < 0.03 else "purchase",
               "mcc": "5944"} for h in range(600)]
    assert "void_spike" not in set(_findings(steady)["kind"])
    burst = [dict(r) for r in steady]
    for r in burst[300:312]:
        r["txn_type"] = "void"
    spike = _kind(_findings(burst), "void_spike")
    assert len(spike) == 1 and spike["events"].iloc[0] >= 12
    assert spike["first_seen"].iloc[0] <= T0 + pd.Timedelta(hours=600) <= spike["last_seen"].iloc[0]


# ---------------------------------------------------------------- terminal events, rare for the model
def _tamper_at(terminal, day=30):
    return {"terminal_id": terminal, "ts": T0 + pd.Timedelta(days=day), "event": "tamper", "ip": "10.1.1.1"}


def test_a_tamper_event_is_weaker_where_tamper_events_are_common():
    """T0 (model RARE: no other tamper event among 200 terminals) and T1 (model COMMON: half of its 200 report
    one) each report two tamper events; only T0's are a finding, and its p-value is far smaller."""
    fleet = [f"R{i:03d}" for i in range(200)] + [f"C{i:03d}" for i in range(200)]
    terminals = pd.DataFrame({"terminal_id": ["T0", "T1"] + fleet, "merchant_id": "MB",
                              "model": ["RARE", "COMMON"] + ["RARE"] * 200 + ["COMMON"] * 200})
    events = [{"terminal_id": t, "ts": T0 + pd.Timedelta(days=7 * w), "event": "heartbeat", "ip": "10.1.1.1"}
              for t in ["T0", "T1"] + fleet for w in range(8)]
    events += [_tamper_at(t) for t in fleet[200::2]] + [_tamper_at(t, d) for t in ("T0", "T1") for d in (30, 31)]
    txns = make_txns(_sequence(range(1, 30)) + _sequence(range(1, 30), terminal="T1"))
    p = Projection.from_frames(txns, terminals, MERCHANTS, None, FIRMWARE, _events(events))
    det = IntegrityDetector().fit(p)
    tamper = _kind(det.result_, "tamper_event")
    assert tamper["terminal_id"].tolist() == ["T0"]
    assert tamper["details"].iloc[0].startswith("2 tamper events among 10 events")
    assert tamper["first_seen"].iloc[0] == T0 + pd.Timedelta(days=30)
    evidence = det.event_evidence(p.terminal_ids, p.terminals, p.terminal_events, p.approved_firmware)
    s = det.stats_.merge(evidence[0], on="terminal_id")
    s["_model"] = pd.factorize(s["model"])[0]
    _, tested, frame = rules.tamper_event(s, det.prior_terminals, det.trim)
    p_of = frame.set_index("terminal_id")["p"]
    assert tested == 402 and p_of["T0"] * 100 < p_of["T1"]


def test_a_boot_at_an_hour_the_model_never_boots_is_odd_and_one_at_its_usual_hour_is_not():
    boots = [{"terminal_id": t, "ts": T0 + pd.Timedelta(days=d, hours=h), "event": "boot", "ip": "10.2.2.2"}
             for t, h in (("T0", 14), ("T1", 2)) for d in (5, 12, 19)]
    found = _findings(_sequence(range(1, 30)) + _sequence(range(1, 30), terminal="T1"), events=boots)
    odd = _kind(found, "odd_hour_boot")
    assert odd["terminal_id"].tolist() == ["T0"]
    assert odd["details"].iloc[0].startswith("3 of 3 boots at hours when the model's terminals rarely boot "
                                               "(14:00 UTC")
    assert odd["first_seen"].iloc[0] == T0 + pd.Timedelta(days=5, hours=14)


def test_a_new_address_is_a_finding_only_where_the_model_keeps_its_addresses():
    moves = [{"terminal_id": "T0", "ts": T0 + pd.Timedelta(days=d), "event": "heartbeat", "ip": ip}
             for d, ip in enumerate(["10.3.3.3"] * 4 + ["117.1.1.1"] * 2 + ["10.3.3.3"] * 2 + ["117.2.2.2"] * 2)]
    rows = _sequence(range(1, 30))
    stable = _kind(_findings(rows, events=moves), "new_ip")
    assert stable["terminal_id"].tolist() == ["T0"] and stable["events"].tolist() == [2]
    txns = make_txns(rows + _fleet())
    p = Projection.from_frames(txns, _terminals(), MERCHANTS, None, FIRMWARE,
                               _events(moves + _fleet_events(ip_change_every=2)))  # half the fleet moves weekly
    assert "new_ip" not in set(IntegrityDetector().fit(p).result_["kind"])


# ---------------------------------------------------------------- the output
def test_output_columns_follow_the_contract_then_p_and_q():
    assert FINDING_COLUMNS[:7] == OUTPUT_SCHEMAS["terminal_findings"].names
    assert FINDING_COLUMNS[7:9] == ["p_value", "q_value"]
    for rows in ([], _sequence([1, 2, 30])):
        p = (Projection.from_frames(make_txns(rows), BASE_TERMINALS, MERCHANTS) if rows
             else Projection.from_frames(make_txns([{"hours": 0}]).iloc[:0], BASE_TERMINALS, MERCHANTS))
        found = IntegrityDetector().fit(p).result_
        assert list(found.columns) == FINDING_COLUMNS
        assert str(found["first_seen"].dtype) == "datetime64[us, UTC]"
        assert found["p_value"].dtype == np.float64 and found["q_value"].dtype == np.float64
        assert found["events"].dtype == np.int64
    found = _findings(_sequence([*range(100, 110), *range(130, 140), *range(150, 160), *range(190, 200)]))
    assert len(found) and (found["q_value"] <= REPORT_Q).all() and (found["p_value"] <= found["q_value"]).all()
    assert found["q_value"].is_monotonic_increasing
    assert found["score"].between(0, 1).all() and found["score"].is_monotonic_decreasing


def test_boot_hours_are_compared_within_a_time_zone():
    # 120 terminals reboot at 09:00 local: 02:00 UTC at lon 110 (zone 7), but 22:00 UTC for the two in zone 11
    # (lon 165); by the UTC clock 22:00 is rare for the model (1.7% of its boots), by the local one it is its
    # usual hour
    far = _fleet_ids(120)[-2:]
    terminals = _terminals(n=120)
    terminals.loc[terminals["terminal_id"].isin(far), "lon"] = 165.0
    events = [dict(e, ts=e["ts"] - pd.Timedelta(hours=4)) if e["terminal_id"] in far else e
              for e in _fleet_events(n=120)]
    boots = [{"terminal_id": "T0", "ts": T0 + pd.Timedelta(days=d, hours=14), "event": "boot", "ip": "10.2.2.2"}
             for d in (5, 12, 19)]
    txns = make_txns(_sequence(range(1, 30)) + _fleet(n=120))
    p = Projection.from_frames(txns, terminals, MERCHANTS, None, FIRMWARE, _events(events + boots))
    odd = _kind(IntegrityDetector().fit(p).result_, "odd_hour_boot")
    assert odd["terminal_id"].tolist() == ["T0"]  # 14:00 UTC is odd in its own zone; the far two are not
    assert list(time_zones(far + ["T0", "nowhere"], terminals)) == [11] * 2 + [8, NO_ZONE]
