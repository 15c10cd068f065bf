"""Tests of `posguard generate`: determinism, the data contract, plausible noise and visible planted cases."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest

from etl.generate import TRUTH_SCHEMAS, generate
from etl.generate.config import haversine_km

KINDS = ("transactions", "terminals", "merchants", "fraud_reports", "approved_firmware", "terminal_events")
REQUIRED = {"transactions": ["txn_id", "ts", "pan", "terminal_id", "merchant_id", "amount", "entry_mode"],
            "terminals": ["terminal_id", "merchant_id"], "merchants": ["merchant_id"],
            "fraud_reports": ["pan", "reported_at"], "approved_firmware": ["firmware_hash"],
            "terminal_events": ["terminal_id", "ts"]}
STRINGS = ["txn_id", "pan", "terminal_id", "merchant_id", "mcc", "response_code", "owner_id", "phone",
           "bank_account", "firmware_hash", "agent_id", "serial_no"]
TIMES = {"ts", "installed_at", "onboarded_at", "reported_at", "first_fraud_at", "approved_at"}
CHIPLIKE = ("chip", "contactless")


def read_kind(drop: Path, kind: str) -> pd.DataFrame:
    """All files of one kind, as the ETL would read them (ids as strings, timestamps as UTC)."""
    frames = []
    for path in sorted(drop.glob(f"{kind}*")):
        if path.suffix == ".csv":
            names = pcsv.read_csv(path).column_names
            types = {c: pa.string() for c in names if c in STRINGS or c in TIMES}
            table = pcsv.read_csv(path, convert_options=pcsv.ConvertOptions(column_types=types))
        else:
            table = pq.read_table(path)
        frames.append(table.to_pandas())
    frame = pd.concat(frames, ignore_index=True)
    for col in TIMES & set(frame.columns):
        if frame[col].dtype.kind != "M":
            frame[col] = pd.to_datetime(frame[col], format="ISO8601", utc=True)
    return frame


def load(drop: Path) -> dict[str, pd.DataFrame]:
    data = {k: read_kind(drop, k) for k in KINDS}
    data.update({f"truth/{n}": pq.read_table(drop / "truth" / f"{n}.parquet").to_pandas() for n in TRUTH_SCHEMAS})
    tx = data["transactions"]
    tx["t"] = (tx["ts"] - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)
    return data


def digests(drop: Path) -> dict[str, str]:
    return {str(p.relative_to(drop)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(drop.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def drop(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("drop")
    generate(out, seed=7, scale="small")
    return out


@pytest.fixture(scope="module")
def data(drop) -> dict[str, pd.DataFrame]:
    return load(drop)


def cloned(data) -> set[str]:
    return set(data["truth/cloned_cards"]["pan"])


def cases(data, kind: str) -> set[str]:
    tc = data["truth/terminal_cases"]
    return set(tc.loc[tc["kind"] == kind, "terminal_id"])


def stan_steps(tx: pd.DataFrame) -> pd.DataFrame:
    """Per terminal, consecutive messages in time order with their STAN step (mod the wrap)."""
    s = tx.sort_values(["terminal_id", "ts", "stan"], kind="stable")
    same = s["terminal_id"].eq(s["terminal_id"].shift())
    step = (s["stan"] - s["stan"].shift()) % 999_999
    return pd.DataFrame({"terminal_id": s["terminal_id"][same], "step": step[same],
                         "wrap": (s["stan"] < s["stan"].shift())[same]})


# ------------------------------------------------------------------ determinism and size
def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    a, b, c = (generate(tmp_path / n, seed=s, txns=3000) for n, s in (("a", 3), ("b", 3), ("c", 4)))
    assert digests(a.out_dir) == digests(b.out_dir)
    da, dc = digests(a.out_dir), digests(c.out_dir)
    assert da.keys() == dc.keys() and all(da[k] != dc[k] for k in da)


def test_txns_honoured_and_parquet_format(tmp_path):
    generate(tmp_path, seed=1, txns=2000)  # an earlier CSV drop in the same directory is replaced
    (tmp_path / "notes.txt").write_text("kept")
    r = generate(tmp_path, seed=1, txns=6000, fmt="parquet")
    assert (tmp_path / "notes.txt").exists()
    assert 0.9 * 6000 <= r.counts["transactions"] <= 1.15 * 6000
    assert not list(tmp_path.glob("*.csv")) and len(list(tmp_path.glob("transactions-*.parquet"))) > 3
    tx = read_kind(tmp_path, "transactions")
    assert len(tx) == r.counts["transactions"] and str(tx["ts"].dt.tz) == "UTC"


def test_bad_arguments_raise():
    for kwargs in ({"scale": "huge"}, {"txns": 10}, {"fmt": "xml"}, {"seed": -1}):
        with pytest.raises(ValueError):
            generate("/nonexistent/never-written", **kwargs)


# ------------------------------------------------------------------ contract
def test_contract_columns_and_types(drop, data):
    for kind in KINDS:
        assert list(drop.glob(f"{kind}*.csv")), kind
        assert set(REQUIRED[kind]) <= set(data[kind].columns), kind
    tx = data["transactions"]
    assert tx["txn_id"].is_unique and (tx["amount"] >= 0).all()
    assert set(tx["entry_mode"]) == {"chip", "contactless", "magstripe", "fallback", "manual"}
    assert set(tx["txn_type"]) == {"purchase", "refund", "void", "preauth", "completion"}
    assert set(tx["response_code"]) <= {"00", "05", "51", "55"} and (tx["response_code"] == "00").mean() > 0.9
    assert (tx["currency"] == "CNY").all() and tx["mcc"].str.fullmatch(r"\d{4}").all()
    assert tx["stan"].between(1, 999_999).all() and tx["lat"].notna().all()
    assert tx.loc[~tx["entry_mode"].isin(CHIPLIKE), "atc"].isna().all()
    assert tx["amount"].map(lambda a: round(a, 2) == a).all()
    assert data["fraud_reports"]["fraud_type"].isin(["counterfeit", "lost_stolen", "card_not_present",
                                                     "account_takeover", "cash_out", "other"]).all()
    assert set(data["terminal_events"]["event"]) <= {"heartbeat", "boot", "firmware_update", "tamper"}
    first_line = (drop / "transactions-2026-03-01.csv").read_text().splitlines()[1]
    assert "+08:00" in first_line
    events_line = (drop / "terminal_events.csv").read_text().splitlines()[1]
    assert "+" not in events_line.split(",")[1] and "Z" not in events_line.split(",")[1]  # naive = UTC


def test_pans_are_luhn_valid_strings(data):
    pans = pd.concat([data["transactions"]["pan"], data["fraud_reports"]["pan"]]).unique()
    assert all(len(p) == 16 and p.isdigit() and p[0] in "456" for p in pans)
    digits = np.array([[int(ch) for ch in p] for p in pans])
    doubled = digits[:, -2::-2] * 2
    total = digits[:, -1::-2].sum(axis=1) + np.where(doubled > 9, doubled - 9, doubled).sum(axis=1)
    assert (total % 10 == 0).all()


def test_references_resolve(data):
    tx, terms, merch = data["transactions"], data["terminals"], data["merchants"]
    assert set(tx["terminal_id"]) <= set(terms["terminal_id"]) and set(tx["merchant_id"]) <= set(merch["merchant_id"])
    pair = terms.set_index("terminal_id")["merchant_id"]
    assert (tx["merchant_id"].to_numpy() == pair.loc[tx["terminal_id"]].to_numpy()).all()
    assert set(terms["firmware_hash"]) <= set(data["approved_firmware"]["firmware_hash"])
    assert set(data["fraud_reports"]["pan"]) <= set(tx["pan"])


# ------------------------------------------------------------------ noise stays innocent
def test_atc_increases_per_card_outside_planted_clones(data):
    tx = data["transactions"]
    ok = tx[tx["atc"].notna() & ~tx["txn_type"].isin(["void", "completion"]) & ~tx["pan"].isin(cloned(data))]
    s = ok.sort_values(["pan", "t", "atc"], kind="stable")
    same = s["pan"].eq(s["pan"].shift())
    step = (s["atc"] - s["atc"].shift())[same]
    assert (step >= 1).all() and (step <= 3).mean() > 0.99 and (step == 1).mean() > 0.95  # >3: trace gaps
    clones = tx[tx["pan"].isin(cloned(data)) & tx["atc"].notna()].sort_values(["pan", "t"], kind="stable")
    replays = clones.duplicated(["pan", "atc"]) | (clones.groupby("pan")["atc"].diff() < 0)
    assert replays.sum() >= 3  # the planted ATC clones


def test_stan_is_contiguous_with_wraps_outside_trace_gaps(data):
    tx = data["transactions"]
    steps = stan_steps(tx[~tx["terminal_id"].isin(cases(data, "trace_gap") | cases(data, "clock_skew"))])
    assert (steps["step"] == 1).all()
    assert steps["wrap"].sum() >= 3
    skew = stan_steps(tx[tx["terminal_id"].isin(cases(data, "clock_skew"))].sort_values("stan"))
    assert (skew["step"] >= 1).all()


def test_normal_travel_is_plausible(data):
    tx = data["transactions"]
    tx = tx[(tx["entry_mode"] != "manual") & ~tx["pan"].isin(cloned(data))].sort_values(["pan", "t"], kind="stable")
    same = tx["pan"].eq(tx["pan"].shift()).to_numpy()
    lat, lon, t = tx["lat"].to_numpy(), tx["lon"].to_numpy(), tx["t"].to_numpy()
    d = haversine_km(lat[:-1], lon[:-1], lat[1:], lon[1:])[same[1:]]
    dt = (t[1:] - t[:-1])[same[1:]]
    far = d >= 50
    assert far.sum() > 50  # people do travel
    assert (d[far] / np.maximum(dt[far], 1) * 3600 < 800).all()


def test_magstripe_only_cards_never_use_chip(data):
    tx = data["transactions"]
    tx = tx[~tx["pan"].isin(cloned(data))]
    mag = set(tx.loc[tx["entry_mode"] == "magstripe", "pan"])
    assert mag and not (mag & set(tx.loc[tx["entry_mode"].isin(CHIPLIKE), "pan"]))


# ------------------------------------------------------------------ truth and planted cases
def test_truth_files_and_references(drop, data):
    for name, schema in TRUTH_SCHEMAS.items():
        assert pq.read_schema(drop / "truth" / f"{name}.parquet").names == schema.names
    terms, tx = set(data["terminals"]["terminal_id"]), data["transactions"]
    sk, tc, rings = data["truth/skimmers"], data["truth/terminal_cases"], data["truth/rings"]
    assert 3 <= len(sk) <= 5 and set(sk["terminal_id"]) <= terms
    assert ((sk["window_end"] - sk["window_start"]) >= pd.Timedelta(days=5)).all()
    assert cloned(data) <= set(tx["pan"])
    assert (tc["kind"].value_counts() >= 2).all() and tc["kind"].nunique() == 6 and set(tc["terminal_id"]) <= terms
    ids = {"card": set(tx["pan"]), "terminal": terms, "merchant": set(data["merchants"]["merchant_id"])}
    assert all(set(g["member_id"]) <= ids[t] for t, g in rings.groupby("member_type"))
    assert {"cash_out", "merchant_network"} == set(rings["kind"])
    assert rings["ring_id"].str.match(r"(ring|net)-\d+$").all()


def test_skimmed_cards_are_used_far_away_by_magstripe(data):
    tx, sk = data["transactions"], data["truth/skimmers"]
    busiest = tx["merchant_id"].value_counts().index[0]
    assert busiest in set(data["terminals"].set_index("terminal_id").loc[sk["terminal_id"], "merchant_id"])
    cards = data["truth/cloned_cards"]
    skimmed = set(cards.loc[cards["source"] == "skimmer", "pan"])
    fake = tx[tx["pan"].isin(skimmed) & tx["entry_mode"].isin(["magstripe", "fallback"])]
    assert fake["pan"].nunique() == len(skimmed) and fake["atc"].isna().all()
    reports = data["fraud_reports"].set_index("pan")
    reported = skimmed & set(reports.index)
    assert 0.5 * len(skimmed) <= len(reported) < len(skimmed)
    assert (reports.loc[list(reported), "fraud_type"] == "counterfeit").all()
    for row in sk.itertuples():  # every skimmer is findable: a few reported victims visited it in its window
        seen = tx[(tx["terminal_id"] == row.terminal_id) & tx["ts"].between(row.window_start, row.window_end)]
        victims = set(seen["pan"]) & skimmed
        assert len(victims) >= 5 and len(victims & reported) >= 3


def test_planted_trace_gaps_are_visible(data):
    tx = data["transactions"]
    steps = stan_steps(tx[~tx["terminal_id"].isin(cases(data, "clock_skew"))])
    gaps = steps[steps["step"] > 1]
    assert set(gaps["terminal_id"]) == cases(data, "trace_gap")
    assert (gaps.groupby("terminal_id")["step"].agg(lambda s: (s >= 6).sum()) >= 3).all()


def test_terminal_cases_are_visible(data):
    tx, terms, ev = data["transactions"], data["terminals"].set_index("terminal_id"), data["terminal_events"]
    for t in cases(data, "clock_skew"):
        s = tx[tx["terminal_id"] == t].sort_values("stan")
        assert (s["t"].diff() < -3600).sum() >= 1
    for t in cases(data, "relocation"):
        s = tx[tx["terminal_id"] == t]
        d = haversine_km(s["lat"], s["lon"], terms.loc[t, "lat"], terms.loc[t, "lon"])
        assert (d > 50).sum() >= 10
    merch_mcc = data["merchants"].set_index("merchant_id")["mcc"]
    for t in cases(data, "mcc_mismatch"):
        s = tx[tx["terminal_id"] == t]
        assert merch_mcc[terms.loc[t, "merchant_id"]] in ("5944", "7011") and (s["mcc"] == "5411").sum() + (
            s["mcc"] == "5812").sum() >= 5
    for t in cases(data, "void_spike"):
        s = tx[tx["terminal_id"] == t]
        assert s["txn_type"].isin(["void", "refund"]).sum() >= 15
    approved = set(data["approved_firmware"]["firmware_hash"])
    bad = ev[~ev["firmware_hash"].isin(approved)]
    assert set(bad["terminal_id"]) == cases(data, "unapproved_firmware")
    for t in cases(data, "unapproved_firmware"):
        assert (tx.loc[tx["terminal_id"] == t, "t"] > bad.loc[bad["terminal_id"] == t, "ts"].min().timestamp()).any()


def test_rings_trade_round_amounts_at_night(data):
    tx, rings = data["transactions"], data["truth/rings"]
    for rid, g in rings[rings["kind"] == "cash_out"].groupby("ring_id"):
        cards, merch = set(g.loc[g.member_type == "card", "member_id"]), set(g.loc[g.member_type == "merchant",
                                                                                  "member_id"])
        assert 8 <= len(cards) <= 20 and 2 <= len(merch) <= 5
        inner = tx[tx["pan"].isin(cards) & tx["merchant_id"].isin(merch) & (tx["amount"] >= 4999)]
        assert len(inner) >= 5 * len(cards)
        assert ((inner["ts"].dt.tz_convert("Asia/Shanghai").dt.hour.between(1, 3))).all()
        assert tx[tx["pan"].isin(cards) & ~tx["merchant_id"].isin(merch)]["pan"].nunique() >= len(cards) // 2
        assert tx[tx["merchant_id"].isin(merch) & ~tx["pan"].isin(cards)].shape[0] > 0
    merchants = data["merchants"].set_index("merchant_id")
    for rid, g in rings[rings["kind"] == "merchant_network"].groupby("ring_id"):
        m = merchants.loc[g["member_id"]]
        assert 3 <= len(m) <= 6
        shared = sum(m[c].duplicated(keep=False) for c in ("owner_id", "phone", "bank_account"))
        assert (shared > 0).all()  # every member shares an identifier with another one


def test_clean_drop_has_empty_truth_and_no_anomalies(tmp_path):
    r = generate(tmp_path, seed=11, txns=8000, plant=False)
    assert all(len(v) == 0 for v in r.truth.values())
    data = load(tmp_path)
    assert all(len(data[f"truth/{n}"]) == 0 for n in TRUTH_SCHEMAS)
    tx = data["transactions"]
    assert (stan_steps(tx)["step"] == 1).all()
    ok = tx[tx["atc"].notna() & ~tx["txn_type"].isin(["void", "completion"])].sort_values(["pan", "t"])
    assert (ok.groupby("pan")["atc"].diff().dropna() >= 1).all()
    assert "counterfeit" not in set(data["fraud_reports"]["fraud_type"])
    assert data["terminal_events"]["firmware_hash"].isin(set(data["approved_firmware"]["firmware_hash"])).all()
