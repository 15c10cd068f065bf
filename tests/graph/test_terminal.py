"""Terminal integrity: the kernel against its reference, each finding kind on hand-made cases, and quality."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from graph.detectors.terminal import FINDING_COLUMNS, IntegrityDetector
from graph.kernels.terminal import STATS, terminal_stats, unwrap_stan
from graph.projection import TYPE_REFUND, TYPE_VOID, Projection
from tests.graph import reference_terminal
from tests.graph.conftest import T0, make_txns

VOIDS = np.array([TYPE_VOID, TYPE_REFUND], np.int8)
TERMINALS = pd.DataFrame({"terminal_id": ["T0", "T1", "T2"], "merchant_id": ["M0", "M1", "M2"],
                          "lat": [31.23, 39.90, 22.54], "lon": [121.47, 116.40, 114.06],
                          "firmware_hash": ["fw-a", "fw-a", "fw-a"],
                          "installed_at": [T0 - pd.Timedelta(days=30)] * 3})
MERCHANTS = pd.DataFrame({"merchant_id": ["M0", "M1", "M2"], "mcc": ["5944", "5812", "5411"]})
FIRMWARE = pd.DataFrame({"firmware_hash": ["fw-a"], "approved_at": [T0 - pd.Timedelta(days=90)]})


def _sequence(stans, terminal="T0", **extra):
    """One message an hour at ``terminal`` with the given STANs (and per-row overrides in ``extra``)."""
    rows = []
    for i, s in enumerate(stans):
        row = {"hours": float(i), "stan": s, "terminal_id": terminal,
               "merchant_id": "M" + terminal[1:], "card_token": f"c{i % 7}"}
        row.update({k: v[i] for k, v in extra.items()})
        rows.append(row)
    return rows


def _projection(rows, events=None, firmware=FIRMWARE):
    return Projection.from_frames(make_txns(rows), TERMINALS, MERCHANTS, None, firmware, events)


def _kernel_args(p: Projection, reg_mcc, min_gap=2, skew=300, far_km=50.0, window_s=86_400):
    return (p.term_indptr, p.term_order, p.txn_ts, p.txn_stan, p.txn_type, p.txn_lat, p.txn_lon, p.txn_mcc,
            p.terminal_lat, p.terminal_lon, reg_mcc, min_gap, skew, far_km, window_s, VOIDS)


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
    "missing_stan": _sequence([None, 4, None, 9]),
    "far_and_mcc": _sequence([1, 2, 3, 4], lat=[31.23, 35.0, 35.0, 31.23], mcc=["5944", "5411", "5411", None]),
    "voids": _sequence(range(1, 9), txn_type=["purchase", "void", "void", "refund", "purchase", "void",
                                              "purchase", "refund"]),
    "random_a": _random_rows(1, 300),
    "random_b": _random_rows(2, 1000),
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("window_s", [3_600, 86_400])
def test_kernel_equals_reference(case, window_s):
    rows = CASES[case]
    p = _projection(rows) if rows else Projection.from_frames(make_txns([{"hours": 0}]).iloc[:0], TERMINALS)
    reg_mcc = np.array([5944, 5812, 5411], np.int32)[: p.n_terminals]
    got = terminal_stats(*_kernel_args(p, reg_mcc, window_s=window_s))
    want = reference_terminal.terminal_stats(*_kernel_args(p, reg_mcc, window_s=window_s))
    assert got.shape == (p.n_terminals, len(STATS))
    for t, expected in enumerate(want):
        assert dict(zip(STATS, got[t].tolist())) == expected, f"terminal {p.terminal_ids[t]}"


def test_unwrap_stan_crosses_the_wrap_and_keeps_late_messages_in_place():
    assert unwrap_stan(np.array([999_998, 999_999, 1, 2], np.int64)).tolist() == [999_998, 999_999,
                                                                                   1_000_000, 1_000_001]
    assert unwrap_stan(np.array([10, 14, 12], np.int64)).tolist() == [10, 14, 12]


def _findings(rows, **params):
    events = params.pop("events", None)
    firmware = params.pop("firmware", FIRMWARE)
    return IntegrityDetector(**params).fit(_projection(rows, events, firmware)).findings_


def test_wrap_around_and_declines_are_not_gaps():
    rows = _sequence([999_996, 999_997, 999_998, 999_999, 1, 2, 3, 4],
                     response_code=["00", "05", "00", "51", "00", "00", "05", "00"])
    assert "trace_gap" not in set(_findings(rows, min_missing=1)["kind"])


def test_deleted_messages_are_a_trace_gap_that_says_how_many():
    rows = _sequence([*range(100, 110), *range(120, 130), *range(131, 140)])
    gaps = _findings(rows)
    gaps = gaps[gaps["kind"] == "trace_gap"]
    assert len(gaps) == 1 and gaps["terminal_id"].iloc[0] == "T0"
    assert gaps["details"].iloc[0].startswith("1 STAN gaps hide 10 messages")  # the single-message gap is noise
    assert gaps["first_seen"].iloc[0] == T0 + pd.Timedelta(hours=9)


def test_clock_going_back_in_stan_order_is_skew_and_small_jitter_is_not():
    back = [{"hours": h, "stan": s} for h, s in ((1, 1), (2, 2), (3, 3), (0.5, 4), (0.6, 5), (4, 6))]
    jitter = [{"hours": h, "stan": s} for h, s in ((1, 1), (2, 2), (1.99, 3), (3, 4))]  # 36 s back
    skew = _findings(back)
    assert skew.loc[skew["kind"] == "clock_skew", "events"].tolist() == [1]
    assert "2.5 h" in skew.loc[skew["kind"] == "clock_skew", "details"].iloc[0]
    assert "clock_skew" not in set(_findings(jitter)["kind"])


def test_relocation_from_transactions_and_from_terminal_events():
    moved = _sequence(range(1, 11), lat=[31.23] * 5 + [30.27] * 5, lon=[121.47] * 5 + [120.16] * 5)  # Hangzhou
    found = _findings(moved)
    assert found.loc[found["kind"] == "relocation", "events"].tolist() == [5]
    events = pd.DataFrame({"terminal_id": ["T1"] * 4, "ts": [T0 + pd.Timedelta(days=d) for d in range(4)],
                           "event": "heartbeat", "lat": [39.9, 31.2, 31.2, 39.9], "lon": [116.4, 121.5, 121.5, 116.4]})
    by_events = _findings(_sequence(range(1, 5), terminal="T1"), events=events, min_far=2)
    assert by_events.loc[by_events["kind"] == "relocation", "terminal_id"].tolist() == ["T1"]
    assert "relocation" not in set(_findings(_sequence(range(1, 11), lat=[31.25] * 10))["kind"])  # 2 km: noise


def test_mcc_jumping_from_high_to_low_fee_scores_above_other_mismatches():
    jeweller = _sequence(range(1, 21), mcc=["5944"] * 10 + ["5411"] * 10)  # registered 5944, sends 5411
    restaurant = _sequence(range(1, 21), terminal="T1", mcc=["5812"] * 10 + ["5999"] * 10)
    found = _findings(jeweller + restaurant).set_index("terminal_id")
    mism = found[found["kind"] == "mcc_mismatch"]
    assert mism.loc["T0", "score"] > mism.loc["T1", "score"] > 0
    assert "high-fee to low-fee" in mism.loc["T0", "details"] and "high-fee" not in mism.loc["T1", "details"]


def test_void_burst_is_flagged_and_a_steady_void_rate_is_not():
    rng = np.random.default_rng(3)
    steady = [{"hours": h * 2.0, "stan": h + 1, "txn_type": "void" if rng.random() < 0.03 else "purchase"}
              for h in range(600)]
    assert "void_spike" not in set(_findings(steady)["kind"])
    burst = [dict(r) for r in steady]
    for r in burst[300:312]:
        r["txn_type"] = "void"
    spike = _findings(burst)
    spike = spike[spike["kind"] == "void_spike"]
    assert len(spike) == 1 and spike["events"].iloc[0] >= 12
    assert spike["first_seen"].iloc[0] <= T0 + pd.Timedelta(hours=600) <= spike["last_seen"].iloc[0]


def test_unapproved_firmware_from_events_and_nothing_without_an_allow_list():
    events = pd.DataFrame({"terminal_id": ["T0", "T0"], "ts": [T0, T0 + pd.Timedelta(days=2)],
                           "event": ["firmware_update", "boot"], "firmware_hash": ["fw-evil", "fw-evil"]})
    found = _findings(_sequence(range(1, 5)), events=events)
    fw = found[found["kind"] == "unapproved_firmware"]
    assert fw["terminal_id"].tolist() == ["T0"] and fw["events"].tolist() == [2]
    assert fw["first_seen"].iloc[0] == T0
    early = pd.DataFrame({"firmware_hash": ["fw-a"], "approved_at": [T0 + pd.Timedelta(days=10)]})
    before = _findings(_sequence(range(1, 5)), firmware=early)
    assert set(before.loc[before["kind"] == "unapproved_firmware", "details"].str.contains("before its approval"))\
        == {True}
    assert "unapproved_firmware" not in set(_findings(_sequence(range(1, 5)), events=events,
                                                      firmware=FIRMWARE.iloc[:0])["kind"])


def test_output_columns_follow_the_contract():
    from graph.scoring import OUTPUT_SCHEMAS

    for rows in ([], _sequence([1, 2, 30])):
        p = (_projection(rows) if rows
             else Projection.from_frames(make_txns([{"hours": 0}]).iloc[:0], TERMINALS, MERCHANTS))
        found = IntegrityDetector().fit(p).findings_
        assert list(found.columns) == FINDING_COLUMNS
        assert FINDING_COLUMNS[:7] == OUTPUT_SCHEMAS["terminal_findings"].names
        assert str(found["first_seen"].dtype) == "datetime64[us, UTC]"
