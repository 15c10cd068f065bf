"""The ETL pipeline without Neo4j: bad input (exact reasons), accounting, duplicates, time zones, no leaks."""

from __future__ import annotations

import csv
import hashlib
import hmac
import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from etl.errors import DropError
from etl.lock import LockedError, etl_lock
from etl.pipeline import run_all, run_drop
from graph.catalog import read_staged
from graph.projection import Projection
from graph.settings import Settings

KEY = b"test-key"
PAN = "6212345678901234"
HEADER = "txn_id,ts,pan,terminal_id,merchant_id,amount,currency,txn_type,entry_mode,response_code,atc,stan,mcc,lat,lon"
GOOD = "X{n},2026-03-01T10:00:0{n}+08:00,{pan},T1,M1,12.50,CNY,purchase,chip,00,{n},{n},5411,31.2,121.4"


def settings(home: Path, **kw) -> Settings:
    return Settings.from_env({"POSGUARD_HOME": str(home)}, token_key=KEY, **kw)


def make_drop(root: Path, txn_lines: list[str], *, header: str = HEADER, extra: dict[str, str] | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "merchants.csv").write_text("merchant_id,name,mcc,owner_id,phone,bank_account\n"
                                       "M1,Shop,5411,OWNER-1,+86 138 0000 0000,6222 0000 1111\n")
    (root / "terminals.csv").write_text("terminal_id,merchant_id,lat,lon\nT1,M1,31.2,121.4\n")
    (root / "transactions.csv").write_text(header + "\n" + "".join(line + "\n" for line in txn_lines))
    for name, text in (extra or {}).items():
        (root / name).write_text(text)
    return root


def good(n: int, pan: str = PAN) -> str:
    return GOOD.format(n=n, pan=pan)


def rejects_of(result) -> list[dict]:
    with open(result.run_path / "rejects.csv") as fh:
        return list(csv.DictReader(fh))


BAD_ROWS = [
    ("missing_value", "ts", "X9,,{pan},T1,M1,1,CNY,purchase,chip,00,1,1,5411,31.2,121.4"),
    ("bad_timestamp", "ts", "X9,yesterday,{pan},T1,M1,1,CNY,purchase,chip,00,1,1,5411,31.2,121.4"),
    ("bad_number", "amount", "X9,2026-03-01T10:00:00Z,{pan},T1,M1,12.5O,CNY,purchase,chip,00,1,1,5411,31.2,121.4"),
    ("wrong_field_count", "", "X9,2026-03-01T10:00:00Z,{pan},T1,M1,12,50,CNY,purchase,chip,00,1,1,5411,31.2,121.4"),
    ("negative_amount", "amount", "X9,2026-03-01T10:00:00Z,{pan},T1,M1,-5,CNY,purchase,chip,00,1,1,5411,31.2,121.4"),
    ("unknown_entry_mode", "entry_mode", "X9,2026-03-01T10:00:00Z,{pan},T1,M1,5,CNY,purchase,telepathy,00,1,1,5411,1,1"),
    ("unknown_txn_type", "txn_type", "X9,2026-03-01T10:00:00Z,{pan},T1,M1,5,CNY,gift,chip,00,1,1,5411,31.2,121.4"),
    ("bad_currency", "currency", "X9,2026-03-01T10:00:00Z,{pan},T1,M1,5,YUAN,purchase,chip,00,1,1,5411,31.2,121.4"),
    ("bad_mcc", "mcc", "X9,2026-03-01T10:00:00Z,{pan},T1,M1,5,CNY,purchase,chip,00,1,1,54x1,31.2,121.4"),
    ("bad_integer", "stan", "X9,2026-03-01T10:00:00Z,{pan},T1,M1,5,CNY,purchase,chip,00,1,1000000,5411,31.2,121.4"),
    ("bad_integer", "atc", "X9,2026-03-01T10:00:00Z,{pan},T1,M1,5,CNY,purchase,chip,00,1.5,1,5411,31.2,121.4"),
    ("bad_coordinates", "lat", "X9,2026-03-01T10:00:00Z,{pan},T1,M1,5,CNY,purchase,chip,00,1,1,5411,95.0,121.4"),
    ("bad_coordinates", "lon", "X9,2026-03-01T10:00:00Z,{pan},T1,M1,5,CNY,purchase,chip,00,1,1,5411,31.2,-181"),
    ("bad_response_code", "response_code", "X9,2026-03-01T10:00:00Z,{pan},T1,M1,5,CNY,purchase,chip,000,1,1,5411,1,1"),
    ("unknown_terminal", "terminal_id", "X9,2026-03-01T10:00:00Z,{pan},T404,M1,5,CNY,purchase,chip,00,1,1,5411,1,1"),
    ("unknown_merchant", "merchant_id", "X9,2026-03-01T10:00:00Z,{pan},T1,M404,5,CNY,purchase,chip,00,1,1,5411,1,1"),
    ("missing_value", "pan", "X9,2026-03-01T10:00:00Z,,T1,M1,5,CNY,purchase,chip,00,1,1,5411,31.2,121.4"),
    # issue 14: impossible values that loaded before (infinity became a merchant's volume, 2099 the newest txn)
    ("non_finite_number", "amount", "X9,2026-03-01T10:00:00Z,{pan},T1,M1,inf,CNY,purchase,chip,00,1,1,5411,1,1"),
    ("non_finite_number", "amount", "X9,2026-03-01T10:00:00Z,{pan},T1,M1,Infinity,CNY,purchase,chip,00,1,1,5411,1,1"),
    ("non_finite_number", "lat", "X9,2026-03-01T10:00:00Z,{pan},T1,M1,5,CNY,purchase,chip,00,1,1,5411,-inf,1"),
    ("bad_integer", "atc", "X9,2026-03-01T10:00:00Z,{pan},T1,M1,5,CNY,purchase,chip,00,inf,1,5411,31.2,121.4"),
    ("implausible_timestamp", "ts", "X9,2099-01-01T10:00:00Z,{pan},T1,M1,5,CNY,purchase,chip,00,1,1,5411,1,1"),
    ("implausible_timestamp", "ts", "X9,1969-12-31,{pan},T1,M1,5,CNY,purchase,chip,00,1,1,5411,1,1"),
    ("nul_byte", "txn_id", "X\x009,2026-03-01T10:00:00Z,{pan},T1,M1,5,CNY,purchase,chip,00,1,1,5411,1,1"),
    ("nul_byte", "terminal_id", "X9,2026-03-01T10:00:00Z,{pan},T1\x00,M1,5,CNY,purchase,chip,00,1,1,5411,1,1"),
    ("field_too_large", "merchant_id", "X9,2026-03-01T10:00:00Z,{pan},T1,M" + "1" * 200_000
     + ",5,CNY,purchase,chip,00,1,1,5411,1,1"),
]


@pytest.mark.parametrize("reason,column,line", BAD_ROWS, ids=[f"{r}-{c}-{i}" for i, (r, c, _) in enumerate(BAD_ROWS)])
def test_bad_row_is_rejected_with_its_reason_and_the_rest_loads(tmp_path, reason, column, line):
    drop = make_drop(tmp_path / "drop", [good(1), line.format(pan=PAN), good(2)])
    result = run_drop(drop, settings(tmp_path / "home"))
    counts = result.counts["transactions"]
    assert counts == {"read": 3, "loaded": 2, "duplicate": 0, "rejected": 1}
    [reject] = rejects_of(result)
    assert (reject["file"], reject["line"], reject["column"], reject["reason"]) == (
        "transactions.csv", "3", column, reason)
    assert PAN not in (result.run_path / "rejects.csv").read_text()


def test_conflicting_and_identical_duplicates(tmp_path):
    conflicting = good(1).replace("12.50", "99.00")
    drop = make_drop(tmp_path / "drop", [good(1), good(1), conflicting, good(2)])
    result = run_drop(drop, settings(tmp_path / "home"))
    assert result.counts["transactions"] == {"read": 4, "loaded": 2, "duplicate": 1, "rejected": 1}
    [reject] = rejects_of(result)
    assert (reject["line"], reject["column"], reject["reason"], reject["value"]) == (
        "4", "txn_id", "conflicting_duplicate", "X1")


def test_duplicates_against_an_earlier_drop(tmp_path):
    home = settings(tmp_path / "home")
    run_drop(make_drop(tmp_path / "d1", [good(1), good(2)]), home)
    second = run_drop(make_drop(tmp_path / "d2", [good(2), good(3), good(1).replace("12.50", "1.00")]), home)
    assert second.counts["transactions"] == {"read": 3, "loaded": 1, "duplicate": 1, "rejected": 1}
    assert rejects_of(second)[0]["reason"] == "conflicting_duplicate"
    staged = read_staged(home.home, "transactions").to_pandas()
    assert sorted(staged["txn_id"]) == ["X1", "X2", "X3"]


def test_same_drop_again_is_skipped(tmp_path):
    home = settings(tmp_path / "home")
    drop = make_drop(tmp_path / "drop", [good(1)])
    first = run_drop(drop, home)
    again = run_drop(drop, home)
    assert again.status == "skipped" and again.run_id == first.run_id
    assert len(list((tmp_path / "home" / "runs").iterdir())) == 1


def test_invalid_utf8_row_is_rejected(tmp_path):
    drop = make_drop(tmp_path / "drop", [good(1)])
    with open(drop / "transactions.csv", "ab") as fh:
        fh.write(good(2).replace("Shop", "").encode().replace(b"T1,M1", b"T1,M\xff1") + b"\n")
    result = run_drop(drop, settings(tmp_path / "home"))
    assert result.counts["transactions"] == {"read": 2, "loaded": 1, "duplicate": 0, "rejected": 1}
    [reject] = rejects_of(result)
    assert (reject["line"], reject["reason"], reject["value"]) == ("3", "invalid_utf8", "merchant_id: 'M\ufffd1'")


def test_invalid_utf8_reject_never_shows_the_pan(tmp_path):
    drop = make_drop(tmp_path / "drop", [good(1)])
    with open(drop / "transactions.csv", "ab") as fh:
        fh.write(good(2).encode().replace(PAN.encode(), PAN.encode() + b"\xfe") + b"\n")
    result = run_drop(drop, settings(tmp_path / "home"))
    [reject] = rejects_of(result)
    assert reject["reason"] == "invalid_utf8" and reject["value"] == "pan: (SECRET, not shown)"
    assert PAN not in (result.run_path / "rejects.csv").read_text()


@pytest.mark.parametrize("case,message", [
    ("missing_column", "required column 'amount' is missing"),  # entry_mode is optional since issue 12
    ("empty_file", "empty file"),
    ("wrong_delimiter", "wrong delimiter"),
    ("parquet_wrong_type", "column 'amount' has Parquet type bool"),
    ("not_parquet", "not a readable Parquet file"),
])
def test_unreadable_files_fail_before_anything_is_written(tmp_path, case, message):
    drop = make_drop(tmp_path / "drop", [good(1)])
    if case == "missing_column":
        (drop / "transactions.csv").write_text(HEADER.replace(",amount", "") + "\n")
    elif case == "empty_file":
        (drop / "transactions-2.csv").write_bytes(b"")
    elif case == "wrong_delimiter":
        (drop / "terminals.csv").write_text("terminal_id;merchant_id\nT1;M1\n")
    elif case == "parquet_wrong_type":
        pq.write_table(pa.table({"txn_id": ["X5"], "ts": ["2026-03-01T00:00:00Z"], "pan": [PAN],
                                 "terminal_id": ["T1"], "merchant_id": ["M1"], "amount": [True],
                                 "entry_mode": ["chip"]}), drop / "transactions-p.parquet")
    else:
        (drop / "transactions-x.parquet").write_text("this is not parquet")
    home = tmp_path / "home"
    with pytest.raises(DropError, match=message) as err:
        run_drop(drop, settings(home))
    assert err.value.file.endswith((".csv", ".parquet"))
    assert not (home / "staging").exists() or not any((home / "staging").rglob("*.parquet"))
    assert not (home / "runs").exists() or not any((home / "runs").rglob("manifest.json"))


def test_header_only_file_is_valid_and_empty(tmp_path):
    drop = make_drop(tmp_path / "drop", [good(1)], extra={"transactions-empty.csv": HEADER + "\n"})
    result = run_drop(drop, settings(tmp_path / "home"))
    assert result.counts["transactions"]["read"] == 1


def test_csv_and_parquet_stage_the_same_rows_and_timezone_rule(tmp_path):
    lines = [good(1), "X2,2026-03-01T10:00:00,{pan},T1,M1,3,,,contactless,,,,,,".format(pan=PAN)]
    csv_drop = make_drop(tmp_path / "csv", lines)
    pq_drop = make_drop(tmp_path / "pq", [])
    frame = pd.read_csv(csv_drop / "transactions.csv", dtype=str, keep_default_na=False)
    (pq_drop / "transactions.csv").unlink()
    pq.write_table(pa.Table.from_pandas(frame.replace("", None), preserve_index=False),
                   pq_drop / "transactions.parquet")
    a = read_staged_after(tmp_path / "h1", csv_drop, source_tz="Asia/Shanghai")
    b = read_staged_after(tmp_path / "h2", pq_drop, source_tz="Asia/Shanghai")
    cols = [c for c in a.columns if c != "run_id"]
    pd.testing.assert_frame_equal(a[cols], b[cols])
    x2 = a[a.txn_id == "X2"].iloc[0]
    assert x2.ts == pd.Timestamp("2026-03-01T02:00:00Z")  # no offset: read in the source zone (+08:00)
    assert (x2.currency, x2.txn_type, x2.response_code) == ("CNY", "purchase", "00")  # contract defaults


def read_staged_after(home: Path, drop: Path, **kw) -> pd.DataFrame:
    run_drop(drop, settings(home, **kw))
    return read_staged(home, "transactions").to_pandas().sort_values("txn_id").reset_index(drop=True)


def test_tokens_follow_the_contract_and_no_secret_is_staged(tmp_path):
    drop = make_drop(tmp_path / "drop", [good(1, pan="6212 3456-7890 1234"), good(2)])
    home = tmp_path / "home"
    result = run_drop(drop, settings(home))
    expected = hmac.new(KEY, b"pan:" + PAN.encode(), hashlib.sha256).hexdigest()[:32]
    staged = read_staged(home, "transactions").to_pandas()
    assert set(staged["card_token"]) == {expected} and set(staged["pan_last4"]) == {"1234"}
    merchants = read_staged(home, "merchants").to_pandas()
    assert merchants.loc[0, "owner_token"] == hmac.new(KEY, b"owner_id:OWNER1", hashlib.sha256).hexdigest()[:32]
    secrets = [PAN, "6212 3456", "OWNER-1", "OWNER1", "13800000000", "138 0000", "622200001111", "6222 0000"]
    for path in list(home.rglob("*")) + [result.run_path / "manifest.json"]:
        if path.is_file():
            data = path.read_bytes()
            assert not any(s.encode() in data for s in secrets), f"a secret leaked into {path}"


def test_run_all_loads_every_new_drop_in_order(tmp_path):
    root = tmp_path / "drops"
    make_drop(root / "2026-03-01", [good(1)])
    make_drop(root / "2026-03-02", [good(2)])
    home = settings(tmp_path / "home")
    results = run_all(root, home)
    assert [r.status for r in results] == ["staged", "staged"]
    make_drop(root / "2026-03-03", [good(3)])
    results = run_all(root, home)
    assert [r.status for r in results] == ["skipped", "skipped", "staged"]
    assert len(read_staged(home.home, "transactions")) == 3
    manifest = json.loads((results[-1].run_path / "manifest.json").read_text())
    assert manifest["counts"]["transactions"] == {"read": 1, "loaded": 1, "duplicate": 0, "rejected": 0}
    assert {i["name"] for i in manifest["inputs"]} == {"merchants.csv", "terminals.csv", "transactions.csv"}
    assert all(len(i["sha256"]) == 64 for i in manifest["inputs"])


def test_a_second_etl_is_locked_out(tmp_path):
    home = settings(tmp_path / "home")
    with etl_lock(home.home):
        with pytest.raises(LockedError, match="another posguard etl is running"):
            run_drop(make_drop(tmp_path / "drop", [good(1)]), home)


def test_each_row_gets_its_own_numeric_reason(tmp_path):
    """A negative amount is rejected even when another row of the file has an unparsable one (it was
    accepted before: the whole column stopped at its first kind of error)."""
    negative = good(3).replace("12.50", "-5")
    unparsable = good(4).replace("12.50", "12.5O")
    far = good(5).replace("31.2,121.4", "95.0,121.4")
    bad_lat = good(6).replace("31.2,121.4", "north,121.4")
    result = run_drop(make_drop(tmp_path / "drop", [good(1), unparsable, negative, bad_lat, far, good(2)]),
                      settings(tmp_path / "home"))
    assert [(r["line"], r["column"], r["reason"]) for r in rejects_of(result)] == [
        ("3", "amount", "bad_number"), ("4", "amount", "negative_amount"), ("5", "lat", "bad_number"),
        ("6", "lat", "bad_coordinates")]
    assert result.counts["transactions"]["loaded"] == 2


def test_line_numbers_count_blank_lines(tmp_path):
    """A reject after a blank line names its real line (the fast CSV path skipped blank lines uncounted)."""
    drop = make_drop(tmp_path / "drop", [good(1), "", good(2).replace("12.50", "-1"), good(3)])
    [reject] = rejects_of(run_drop(drop, settings(tmp_path / "home")))
    assert (reject["line"], reject["reason"]) == ("4", "negative_amount")


def test_optional_entry_mode_merchant_and_per_transaction_fraud_reports(tmp_path):
    """docs/CONTRACT.md: entry_mode may be absent ('unknown'); merchant_id may be empty when the terminal is
    registered (not otherwise: missing_value); fraud_reports may name the fraudulent txn_id, one row per
    transaction and several per card, and every one of them is staged."""
    header = "txn_id,ts,pan,terminal_id,merchant_id,amount"
    lines = ["X1,2026-03-01T10:00:00Z,{pan},T1,,5", "X2,2026-03-01T11:00:00Z,{pan},T1,M1,6",
             "X3,2026-03-01T12:00:00Z,{pan},T404,,7"]
    reports = ("pan,reported_at,first_fraud_at,fraud_type,txn_id\n"
               f"{PAN},2026-03-05T00:00:00Z,,other,X1\n{PAN},2026-03-05T00:00:00Z,,other,X2\n"
               f"{PAN},2026-03-06T00:00:00Z,,counterfeit,\n")
    drop = make_drop(tmp_path / "drop", [line.format(pan=PAN) for line in lines], header=header,
                     extra={"fraud_reports.csv": reports})
    result = run_drop(drop, settings(tmp_path / "home"))
    assert [(r["line"], r["column"], r["reason"]) for r in rejects_of(result)] == [("4", "merchant_id", "missing_value")]
    staged = read_staged(tmp_path / "home", "transactions").to_pandas().sort_values("txn_id")
    assert staged["txn_id"].tolist() == ["X1", "X2"] and staged["entry_mode"].tolist() == ["unknown", "unknown"]
    assert staged["merchant_id"].isna().tolist() == [True, False]
    fr = read_staged(tmp_path / "home", "fraud_reports").to_pandas().sort_values(["reported_at", "txn_id"])
    assert fr["txn_id"].fillna("-").tolist() == ["X1", "X2", "-"] and fr["card_token"].nunique() == 1
    assert PAN not in fr.to_csv()
    p = Projection.from_staging(tmp_path / "home")
    assert p.merchant_ids[p.txn_merchant].tolist() == ["M1", "M1"]
    assert sorted(p.txn_ids[p.report_txn[p.report_txn >= 0]].tolist()) == ["X1", "X2"] and len(p.report_txn) == 3
