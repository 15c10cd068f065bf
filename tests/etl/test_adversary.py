"""Tests of the adversarial generator (etl.adversary): determinism, a reject-free ETL, truth consistent with the
transactions, genuine noise at the stated rates, a clean drop that plants nothing, flights below plane speed."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from etl.adversary import ADV_TRUTH_SCHEMAS, generate_adversarial
from etl.adversary.region import CITIES, HOUR, PLANE_KMH, distance_km, stream
from etl.adversary.traffic import genuine_traffic, make_flights
from etl.adversary.world import build_world, make_plan
from posguard.cli import main
from etl.pipeline import run_drop
from graph.settings import Settings

TXNS = 60_000
KINDS = ("transactions", "terminals", "merchants", "fraud_reports", "approved_firmware", "terminal_events")
TIMES = ("ts", "installed_at", "onboarded_at", "reported_at", "first_fraud_at", "approved_at")


def read_kind(drop: Path, kind: str) -> pd.DataFrame:
    """All files of a kind as text (as the ETL reads them), timestamps parsed to UTC."""
    frame = pd.concat([pd.read_csv(p, dtype=str) for p in sorted(drop.glob(f"{kind}*.csv"))], ignore_index=True)
    for col in TIMES:
        if col in frame.columns:
            frame[col] = pd.to_datetime(frame[col], format="ISO8601", utc=True)
    for col in ("lat", "lon", "amount", "atc", "stan"):
        if col in frame.columns:
            frame[col] = pd.to_numeric(frame[col])
    return frame


def load(drop: Path) -> dict[str, pd.DataFrame]:
    data = {k: read_kind(drop, k) for k in KINDS}
    data.update({n: pq.read_table(drop / "truth" / f"{n}.parquet").to_pandas() for n in ADV_TRUTH_SCHEMAS})
    tx = data["transactions"]
    tx["t"] = (tx["ts"] - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)
    tx["fraud"] = tx["txn_id"].isin(set(data["fraud_txns"]["txn_id"]))
    return data


def digests(drop: Path) -> dict[str, str]:
    return {str(p.relative_to(drop)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(drop.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def planted(tmp_path_factory) -> Path:
    return generate_adversarial(tmp_path_factory.mktemp("adv") / "drop", seed=5, txns=TXNS).out_dir


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> Path:
    return generate_adversarial(tmp_path_factory.mktemp("adv") / "clean", seed=5, txns=TXNS, plant=False).out_dir


@pytest.fixture(scope="module")
def data(planted) -> dict[str, pd.DataFrame]:
    return load(planted)


@pytest.fixture(scope="module")
def clean_data(clean) -> dict[str, pd.DataFrame]:
    return load(clean)


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path, planted):
    again = generate_adversarial(tmp_path / "again", seed=5, txns=TXNS).out_dir
    assert digests(again) == digests(planted)
    other = generate_adversarial(tmp_path / "other", seed=6, txns=TXNS).out_dir
    assert digests(other)["merchants.csv"] != digests(planted)["merchants.csv"]
    assert not list(tmp_path.glob(".*tmp*")), "the temporary folder is renamed, never left behind"


def test_the_etl_stages_every_row_with_no_reject(tmp_path, planted):
    result = run_drop(planted, Settings.from_env({"POSGUARD_HOME": str(tmp_path / "home")}, token_key=b"k"))
    assert result.status == "staged"
    for kind in KINDS:
        counts = result.counts[kind]
        assert counts["read"] > 0 and counts["loaded"] == counts["read"], (kind, counts)
        assert counts["rejected"] == 0 and counts["duplicate"] == 0, (kind, counts)
    assert result.counts["transactions"]["read"] == pytest.approx(TXNS, rel=0.08)


def test_contract_shapes_and_assumptions_unlike_the_first_generator(data):
    tx = data["transactions"]
    assert tx["txn_id"].is_unique and (tx["currency"] == "EUR").all()
    assert tx["pan"].str.len().eq(16).all() and tx["pan"].str.isdigit().all()
    assert set(tx["merchant_id"]) <= set(data["merchants"]["merchant_id"])
    assert set(tx["terminal_id"]) <= set(data["terminals"]["terminal_id"])
    vol = tx["terminal_id"].value_counts()
    assert vol.iloc[0] > 8 * vol.median(), "a few very busy terminals"
    assert (tx["stan"].between(1, 999_999)).all()


def test_local_offsets_follow_eu_daylight_saving(planted):
    raw = pd.concat([pd.read_csv(p, dtype=str, usecols=["ts", "lon"]) for p in planted.glob("transactions*.csv")])
    utc = pd.to_datetime(raw["ts"], format="ISO8601", utc=True)
    offset = raw["ts"].str[-6:]
    summer = utc >= pd.Timestamp("2026-03-29T01:00Z")
    lisbon_like = pd.to_numeric(raw["lon"]) < -5  # Lisbon and Dublin: UTC+0 in winter, +1 in summer
    assert set(offset[lisbon_like & ~summer]) == {"+00:00"} and set(offset[lisbon_like & summer]) == {"+01:00"}
    assert {"+01:00", "+02:00", "+03:00"} <= set(offset[summer])


def test_every_cloned_card_was_skimmed_in_a_window_and_used_later_elsewhere(data):
    tx, skim, cloned = data["transactions"], data["skimmers"], data["cloned_cards"]
    assert len(skim) >= 2 and len(cloned) >= 10 and set(cloned["source"]) == {"skimmer"}
    fraud = data["fraud_txns"]
    clones = tx[tx["txn_id"].isin(fraud.loc[fraud["kind"] == "clone", "txn_id"])]
    assert set(clones["pan"]) == set(cloned["pan"])
    assert clones["entry_mode"].isin(["magstripe", "fallback"]).all()
    first_clone = clones.groupby("pan")["ts"].min()
    visits = tx.merge(skim, on="terminal_id")
    visits = visits[(visits["ts"] >= visits["window_start"]) & (visits["ts"] < visits["window_end"])
                    & visits["entry_mode"].isin(["chip", "magstripe", "fallback"]) & ~visits["fraud"]]
    skimmed = visits.groupby("pan")["ts"].min()
    lag = first_clone - skimmed.reindex(first_clone.index)
    assert lag.notna().all(), "every cloned card visited a skimmer inside its window"
    assert (lag >= pd.Timedelta(days=6)).all() and (lag <= pd.Timedelta(days=62)).all()
    assert not clones["terminal_id"].isin(skim["terminal_id"]).any()
    reported = data["fraud_reports"]["pan"].isin(cloned["pan"]).sum()
    assert 0.4 * len(cloned) <= reported <= 0.9 * len(cloned), "about a quarter of clones never reported"


def test_at_terminal_fraud_lies_inside_its_window_at_its_terminal_and_victims_are_reported(data):
    tx, points = data["transactions"], data["compromise_points"]
    fraud = data["fraud_txns"]
    assert set(points["mode"]) == {"skimming", "at_terminal"}
    at = points[points["mode"] == "at_terminal"]
    assert len(at) >= 2 and set(points.loc[points["mode"] == "skimming", "terminal_id"]) == set(
        data["skimmers"]["terminal_id"])
    rows = tx[tx["txn_id"].isin(fraud.loc[fraud["kind"] == "at_terminal", "txn_id"])].merge(at, on="terminal_id")
    assert len(rows) == (fraud["kind"] == "at_terminal").sum() and len(rows) > 20
    assert ((rows["ts"] >= rows["window_start"]) & (rows["ts"] < rows["window_end"])).all()
    assert set(rows["terminal_id"]) == set(at["terminal_id"])
    reports = data["fraud_reports"]
    share = rows["pan"].drop_duplicates().isin(reports["pan"]).mean()
    assert 0.6 <= share <= 0.97
    ev = data["terminal_events"].merge(at, on="terminal_id")
    before = ev[(ev["ts"] < ev["window_start"]) & (ev["ts"] >= ev["window_start"] - pd.Timedelta(days=4))]
    assert (before["event"] == "tamper").any(), "a tamper event shortly before a window"


def test_compromised_cards_cover_every_victim_and_the_exposed_ones(data):
    comp, fraud, cloned = data["compromised_cards"], data["fraud_txns"], data["cloned_cards"]
    skimmed = comp[comp["mode"] == "skimming"]
    assert set(cloned["pan"]) <= set(skimmed["pan"]) and set(skimmed["terminal_id"]) == set(
        data["skimmers"]["terminal_id"])
    tx = data["transactions"]
    first = tx[tx["fraud"]].groupby("pan")["ts"].min()
    expected = comp["pan"].map(first)
    assert (comp["first_fraud_at"].isna() == expected.isna()).all(), "null: no fraud (yet) in the drop"
    assert (comp["first_fraud_at"].dropna() == expected.dropna()).all()
    assert (skimmed["first_fraud_at"].dropna() > skimmed.dropna()["compromised_at"]).all()
    at = comp[comp["mode"] == "at_terminal"]
    assert set(at["pan"]) == set(fraud.loc[fraud["kind"] == "at_terminal", "pan"])
    win = skimmed.merge(data["skimmers"], on="terminal_id")
    assert ((win["compromised_at"] >= win["window_start"]) & (win["compromised_at"] < win["window_end"])).all()


def test_ring_members_transact_with_each_other_with_camouflage(data):
    tx, rings, fraud = data["transactions"], data["rings"], data["fraud_txns"]
    assert set(rings["kind"]) == {"cash_out"} and rings["ring_id"].nunique() >= 1
    ring_tx = tx[tx["txn_id"].isin(fraud.loc[fraud["kind"] == "ring", "txn_id"])]
    for rid, members in rings.groupby("ring_id"):
        cards = set(members.loc[members["member_type"] == "card", "member_id"])
        merchants = set(members.loc[members["member_type"] == "merchant", "member_id"])
        assert 4 <= len(merchants) <= 10 and 15 <= len(cards) <= 60
        mine = ring_tx[ring_tx["pan"].isin(cards)]
        assert set(mine["merchant_id"]) <= merchants and set(mine["pan"]) == cards
        assert set(mine["merchant_id"]) == merchants
        assert (mine["amount"] % 50 == 0).all()
        local_hour = pd.to_datetime(mine["ts"]).dt.tz_convert("Europe/Paris").dt.hour
        assert local_hour.isin([22, 23, 0, 1, 2, 3, 4, 5]).mean() > 0.5
        # camouflage: ring cards shop elsewhere too, ring merchants serve other cards
        genuine = tx[~tx["fraud"]]
        assert genuine["pan"].isin(cards).sum() > 3 * len(cards)
        assert (genuine["merchant_id"].isin(merchants) & ~genuine["pan"].isin(cards)).any()
        merch = data["merchants"].set_index("merchant_id").loc[sorted(merchants)]
        assert merch["phone"].nunique() < len(merchants) and merch["bank_account"].nunique() < len(merchants)


def test_fraud_txns_cover_every_fraudulent_transaction(data):
    tx, fraud = data["transactions"], data["fraud_txns"]
    assert fraud["txn_id"].is_unique and set(fraud["kind"]) == {"clone", "at_terminal", "ring"}
    joined = fraud.merge(tx[["txn_id", "pan"]], on="txn_id", suffixes=("", "_tx"))
    assert len(joined) == len(fraud) and (joined["pan"] == joined["pan_tx"]).all()


def test_terminal_cases_are_visible_in_the_data(data):
    cases, tx, ev = data["terminal_cases"], data["transactions"], data["terminal_events"]
    assert set(cases["kind"]) == {"relocation", "trace_gap", "unapproved_firmware"}
    approved = data["approved_firmware"].set_index("firmware_hash")["approved_at"]
    for t in cases.loc[cases["kind"] == "unapproved_firmware", "terminal_id"]:
        upd = ev[(ev["terminal_id"] == t) & (ev["event"] == "firmware_update")]
        when = upd["firmware_hash"].map(approved)
        assert (when.isna() | (upd["ts"] < when)).any()
    terms = data["terminals"].set_index("terminal_id")
    for t in cases.loc[cases["kind"] == "relocation", "terminal_id"]:
        rows = tx[tx["terminal_id"] == t]
        far = distance_km(rows["lat"], rows["lon"], terms.at[t, "lat"], terms.at[t, "lon"]) > 100
        assert far.sum() >= 5
        assert not (ev[ev["terminal_id"] == t]["lat"].sub(terms.at[t, "lat"]).abs() > 0.5).any(), "no record"


def test_trace_gaps_are_longer_where_messages_were_deleted(data, clean_data):
    def longest_gap(tx: pd.DataFrame) -> pd.Series:
        s = tx.sort_values(["terminal_id", "stan"])
        step = s.groupby("terminal_id")["stan"].diff()
        return step.groupby(s["terminal_id"]).max()
    planted = longest_gap(data["transactions"])
    cases = data["terminal_cases"]
    gaps = planted.reindex(cases.loc[cases["kind"] == "trace_gap", "terminal_id"])
    assert (gaps >= 4).all()
    genuine = longest_gap(clean_data["transactions"])
    assert (genuine >= 2).mean() > 0.2, "genuine gaps: batch closes spend a STAN on some models"


def test_genuine_noise_at_the_stated_rates(clean_data):
    tx, terms, ev, fw = (clean_data[k] for k in ("transactions", "terminals", "terminal_events",
                                                  "approved_firmware"))
    merchants = clean_data["merchants"].set_index("merchant_id")
    city = tx["merchant_id"].map(merchants["city"])
    home = city.groupby(tx["pan"]).agg(lambda c: c.value_counts().index[0])
    away = (city != tx["pan"].map(home)).groupby(tx["pan"]).any()
    assert 0.025 <= away.mean() <= 0.08, away.mean()
    purchases = tx[tx["txn_type"] == "purchase"]
    fallback = purchases["entry_mode"].isin(["magstripe", "fallback"]).mean()
    assert 0.01 <= fallback <= 0.04, fallback
    # offline uploads: the ATC goes back within a card's day in written order
    s = tx.dropna(subset=["atc"]).sort_values(["pan", "ts", "txn_id"])
    back = (s.groupby("pan")["atc"].diff() < 0) & (s["ts"].dt.date == s.groupby("pan")["ts"].shift().dt.date)
    assert back.sum() > 10
    # firmware: installed before the approval of what runs today, updates only after approval
    approved = fw.set_index("firmware_hash")["approved_at"]
    assert (terms["installed_at"] < terms["firmware_hash"].map(approved)).mean() > 0.5
    upd = ev[ev["event"] == "firmware_update"]
    assert len(upd) > 0.2 * len(terms) and (upd["ts"] > upd["firmware_hash"].map(approved)).all()
    # recorded moves: boots at a new place (a few km), maintenance reboots at night, heartbeats
    assert {"heartbeat", "boot", "firmware_update", "tamper"} == set(ev["event"])
    pos = ev.groupby("terminal_id")[["lat", "lon"]].agg(lambda v: v.max() - v.min())
    assert ((pos["lat"] > 0.005) | (pos["lon"] > 0.005)).sum() >= 1
    assert set(clean_data["fraud_reports"]["fraud_type"]) <= {"card_not_present", "account_takeover"}


def test_clean_drop_plants_nothing(clean, clean_data):
    for name, schema in ADV_TRUTH_SCHEMAS.items():
        table = pq.read_table(clean / "truth" / f"{name}.parquet")
        assert table.num_rows == 0 and table.schema.equals(schema), name
    ev = clean_data["terminal_events"]
    tampers = ev.loc[ev["event"] == "tamper", "terminal_id"]
    assert 0 < tampers.nunique() <= 0.015 * len(clean_data["terminals"]), "only genuine service alarms"
    assert not ev["ip"].str.startswith("185.220.").any()
    tx = clean_data["transactions"]
    purchases = tx[tx["txn_type"] == "purchase"]
    assert (purchases["amount"].ge(100) & (purchases["amount"] % 50 == 0)).mean() < 0.001
    assert tx["currency"].eq("EUR").all()


def test_genuine_travel_never_beats_a_plane(data, clean_data):
    checked = 0
    for d in (data, clean_data):
        tx = d["transactions"]
        g = tx[~tx["fraud"]].sort_values(["pan", "ts", "txn_id"])
        same = g["pan"].eq(g["pan"].shift())
        km = distance_km(g["lat"].shift(), g["lon"].shift(), g["lat"], g["lon"])
        hours = (g["t"] - g["t"].shift()) / 3600
        flight = same & (km > 150)
        checked += int(flight.sum())
        assert (km[flight] / hours[flight].clip(lower=1e-9) <= PLANE_KMH).all()
    assert checked > 50, "flights happen"


def test_flights_take_plane_time_and_no_purchase_happens_around_them():
    plan = make_plan(9, TXNS)
    world = build_world(plan, stream(9, "world"))
    flights = make_flights(world, plan, stream(9, "flights"))
    fly = flights.flying
    assert 0.035 <= fly.mean() <= 0.065
    lat, lon = np.array([c[1] for c in CITIES]), np.array([c[2] for c in CITIES])
    home, dest = world.c_city[fly], flights.dest[fly]
    km = distance_km(lat[home], lon[home], lat[dest], lon[dest])
    assert (km > 150).all()
    for a, b in ((flights.dep, flights.arr), (flights.ret, flights.back)):
        assert (km / ((b[fly] - a[fly]) / 3600) < PLANE_KMH).all()
    assert ((flights.ret - flights.arr)[fly] >= 36 * HOUR).all()
    rows = genuine_traffic(world, flights, plan, stream(9, "traffic"))
    card, ts = rows["card"], rows["ts"]
    for a, b in ((flights.dep, flights.arr), (flights.ret, flights.back)):
        during = (ts >= a[card] - HOUR) & (ts < b[card] + HOUR // 2)
        assert not during.any(), "no purchase within an hour before take-off or 30 min after landing"
    away = (ts >= flights.arr[card]) & (ts < flights.ret[card])
    city = world.m_city[world.t_merchant[rows["term"]]]
    assert away.sum() > 50 and (city[away] == flights.dest[card[away]]).all()


def test_txn_labels_write_one_report_per_fraudulent_transaction(tmp_path):
    drop = generate_adversarial(tmp_path / "labels", seed=7, txns=30_000, txn_labels=True).out_dir
    data = load(drop)
    reports, fraud = data["fraud_reports"], data["fraud_txns"]
    labelled = reports.dropna(subset=["txn_id"])
    assert labelled["txn_id"].is_unique and set(labelled["txn_id"]) <= set(fraud["txn_id"])
    assert labelled.groupby("pan").size().max() > 1
    assert reports.groupby("pan")["txn_id"].apply(lambda v: v.isna().all() or v.notna().all()).all()
    result = run_drop(drop, Settings.from_env({"POSGUARD_HOME": str(tmp_path / "home")}, token_key=b"k"))
    assert result.counts["fraud_reports"]["rejected"] == 0
    assert result.counts["fraud_reports"]["loaded"] == len(reports)
    plain = generate_adversarial(tmp_path / "plain", seed=7, txns=30_000).out_dir
    per_card = read_kind(plain, "fraud_reports")
    assert "txn_id" not in per_card.columns and per_card["pan"].is_unique


def test_cli_generator_option(tmp_path, capsys):
    assert main(["generate", "--generator", "adversarial", "--out", str(tmp_path / "d"), "--seed", "3",
                 "--txns", "25000", "--clean", "--quiet"]) == 0
    assert (tmp_path / "d" / "truth" / "compromise_points.parquet").exists()
    assert main(["generate", "--out", str(tmp_path / "e"), "--txn-labels", "--quiet"]) == 2
    assert main(["generate", "--generator", "adversarial", "--out", str(tmp_path / "f"), "--txns", "500",
                 "--quiet"]) == 2


def test_parquet_drop_loads_with_no_reject(tmp_path):
    drop = generate_adversarial(tmp_path / "pq", seed=4, txns=25_000, fmt="parquet").out_dir
    assert not list(drop.glob("*.csv")) and list(drop.glob("transactions-*.parquet"))
    tx = pq.read_table(sorted(drop.glob("transactions-*.parquet"))[0])
    assert str(tx.schema.field("ts").type) == "timestamp[us, tz=UTC]"
    result = run_drop(drop, Settings.from_env({"POSGUARD_HOME": str(tmp_path / "home")}, token_key=b"k"))
    assert all(c["rejected"] == 0 and c["loaded"] == c["read"] > 0 for c in result.counts.values())


def test_writing_into_an_existing_folder_replaces_the_drop_and_keeps_other_files(tmp_path):
    out = tmp_path / "existing"
    (out / "truth").mkdir(parents=True)
    (out / "notes.txt").write_text("keep me")
    (out / "transactions-1999-01.csv").write_text("stale")
    (out / "truth" / "old.parquet").write_bytes(b"stale")
    generate_adversarial(out, seed=4, txns=25_000, plant=False)
    assert (out / "notes.txt").read_text() == "keep me"
    assert not (out / "transactions-1999-01.csv").exists() and not (out / "truth" / "old.parquet").exists()
    assert {p.stem for p in (out / "truth").glob("*.parquet")} == set(ADV_TRUTH_SCHEMAS)
    assert [p.name for p in tmp_path.iterdir()] == ["existing"], "no temporary folder left behind"
