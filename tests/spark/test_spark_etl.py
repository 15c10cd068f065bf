"""--engine spark stages exactly what the local engine stages: rows, row hashes, rejects and counts."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pandas as pd
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from etl.errors import DropError
from etl.pipeline import run_drop
from etl.spark import SparkEngine
from graph.catalog import STAGED_SCHEMAS, read_staged
from graph.settings import Settings

KEY = b"spark-test-key"
PAN = "6212345678901234"
DIRTY_ROWS = [  # every kind of reject the pipeline knows, and rows that need the slow CSV parser
    "Z1,,{pan},{t},{m},1,CNY,purchase,chip,00,1,1,5411,31.2,121.4",
    "Z2,yesterday,{pan},{t},{m},1,CNY,purchase,chip,00,1,1,5411,31.2,121.4",
    "Z3,2026-03-01T10:00:00Z,{pan},{t},{m},12.5O,CNY,purchase,chip,00,1,1,5411,31.2,121.4",
    "Z4,2026-03-01T10:00:00Z,{pan},{t},{m},12,50,CNY,purchase,chip,00,1,1,5411,31.2,121.4",
    "Z5,2026-03-01T10:00:00Z,{pan},{t},{m},-5,CNY,purchase,chip,00,1,1,5411,31.2,121.4",
    "Z6,2026-03-01T10:00:00Z,{pan},{t},{m},5,CNY,purchase,telepathy,00,1,1,5411,1,1",
    "Z7,2026-03-01T10:00:00Z,{pan},T404,{m},5,CNY,purchase,chip,00,1,1,5411,1,1",
    "Z8,2026-03-01T10:00:00Z,{pan},{t},M404,5,CNY,purchase,chip,00,1,1,5411,1,1",
    'Z9,2026-03-01T10:00:00Z,{pan},{t},{m},5,CNY,purchase,chip,00,1,1,"54\n11",31.2,121.4',
    "",
    "Z10,2026-03-01T10:00:00Z,,{t},{m},5,CNY,purchase,chip,00,1,1,5411,31.2,121.4",
]


def settings(home: Path) -> Settings:
    return Settings.from_env({"POSGUARD_HOME": str(home)}, token_key=KEY)


def dirty_copy(sample: Path, out: Path) -> Path:
    """The sample drop with rejects, duplicates, conflicts, quoted newlines, blank lines and invalid UTF-8
    spread over the file (so that they fall on chunk boundaries), and one file as multi-row-group Parquet."""
    shutil.copytree(sample, out, ignore=shutil.ignore_patterns("truth"))
    files = sorted(out.glob("transactions*.csv"))
    first = files[0]
    lines = first.read_bytes().split(b"\n")
    header, body = lines[0], [line for line in lines[1:] if line]
    names = next(csv.reader([header.decode()]))
    row = dict(zip(names, next(csv.reader([body[0].decode()]))))
    dirty = [r.format(pan=PAN, t=row["terminal_id"], m=row["merchant_id"]).encode() for r in DIRTY_ROWS]
    parts = next(csv.reader([body[5].decode()]))
    parts[names.index("amount")] = "99999.99"
    conflicting = ",".join(f'"{v}"' for v in parts).encode()  # same txn_id, other content
    out_rows = []
    for i, line in enumerate(body):
        out_rows.append(line)
        if i % 97 == 3:  # every ~100 rows: a dirty row, a repeat, a conflict, a bad byte
            out_rows.append(dirty[(i // 97) % len(dirty)])
            out_rows.append(body[i])
            out_rows.append(conflicting)
            out_rows.append(b"Y%d,2026-03-01T10:00:00Z,%s,bad\xff\xfebyte" % (i, PAN.encode()))
    first.write_bytes(b"\r\n".join([header] + out_rows) + b"\r\n")
    last = files[-1]
    table = pacsv.read_csv(last, convert_options=pacsv.ConvertOptions(
        column_types={n: "string" for n in pacsv.read_csv(last).column_names}))
    pq.write_table(table, last.with_suffix(".parquet"), row_group_size=700)
    last.unlink()
    return out


def staged(home: Path) -> dict[str, pd.DataFrame]:
    out = {}
    for kind, schema in STAGED_SCHEMAS.items():
        cols = [c for c in schema.names if c != "run_id"]
        frame = read_staged(home, kind).to_pandas()[cols]
        out[kind] = frame.sort_values(cols[:2] + ["row_hash"], kind="stable").reset_index(drop=True)
    return out


def rejects(result) -> pd.DataFrame:
    frame = pd.read_csv(result.run_path / "rejects.csv", dtype=str, keep_default_na=False)
    return frame.sort_values(["file", "line", "reason"], key=lambda s: s.astype(int) if s.name == "line" else s,
                             kind="stable").reset_index(drop=True)


@pytest.fixture(scope="module")
def dirty_drop(sample_drop, tmp_path_factory) -> Path:
    return dirty_copy(sample_drop, tmp_path_factory.mktemp("dirty") / "drop")


def test_same_staging_rejects_and_counts_as_the_local_engine(spark, dirty_drop, tmp_path):
    local = run_drop(dirty_drop, settings(tmp_path / "local"))
    # 40 kB chunks: the 2 MB transaction files are cut into ~50 chunks each, some inside quoted fields
    distributed = run_drop(dirty_drop, settings(tmp_path / "spark"), engine=SparkEngine(spark, chunk_bytes=40_000))
    assert distributed.counts == local.counts
    counts = local.counts["transactions"]
    assert counts["rejected"] > 40 and counts["duplicate"] > 30  # the dirty rows are really there
    expected, got = staged(tmp_path / "local"), staged(tmp_path / "spark")
    for kind in STAGED_SCHEMAS:
        pd.testing.assert_frame_equal(got[kind], expected[kind], obj=kind)
    assert len(expected["transactions"]) == counts["loaded"]
    local_rejects, spark_rejects = rejects(local), rejects(distributed)
    pd.testing.assert_frame_equal(spark_rejects, local_rejects)
    assert {"invalid_utf8", "wrong_field_count", "conflicting_duplicate", "bad_mcc", "unknown_terminal",
            "missing_value"} <= set(local_rejects["reason"])
    assert PAN not in (distributed.run_path / "rejects.csv").read_text()

    manifest = json.loads((distributed.run_path / "manifest.json").read_text())
    local_manifest = json.loads((local.run_path / "manifest.json").read_text())
    assert manifest["engine"] == "spark" and manifest["inputs"] == local_manifest["inputs"]


def test_second_drop_duplicates_and_reruns_match(spark, sample_drop, tmp_path):
    """Against earlier runs: the same drop is skipped; an overlapping drop counts duplicates and conflicts."""
    second = tmp_path / "second"
    second.mkdir()
    first_txns = sorted(sample_drop.glob("transactions*.csv"))[0]
    lines = first_txns.read_text().splitlines()
    header = next(csv.reader([lines[0]]))
    changed = next(csv.reader([lines[2]]))
    changed[header.index("amount")] = "123456.00"
    (second / "transactions.csv").write_text("\n".join([lines[0], lines[1], ",".join(changed)]) + "\n")
    results = {}
    for name, engine in (("local", None), ("spark", SparkEngine(spark, chunk_bytes=1 << 20))):
        s = settings(tmp_path / name)
        run_drop(sample_drop, s, engine=engine)
        assert run_drop(sample_drop, s, engine=engine).status == "skipped"
        results[name] = run_drop(second, s, engine=engine)
    assert results["spark"].counts == results["local"].counts == {
        "transactions": {"read": 2, "loaded": 0, "duplicate": 1, "rejected": 1}}
    pd.testing.assert_frame_equal(rejects(results["spark"]), rejects(results["local"]))


def test_file_errors_are_the_local_engines(spark, tmp_path):
    drop = tmp_path / "drop"
    drop.mkdir()
    (drop / "transactions.csv").write_text("txn_id;ts;pan\n1;2;3\n")
    with pytest.raises(DropError, match="semicolons"):
        run_drop(drop, settings(tmp_path / "home"), engine=SparkEngine(spark))
    assert not (tmp_path / "home" / "staging").exists() or not any((tmp_path / "home" / "staging").rglob("*.parquet"))
