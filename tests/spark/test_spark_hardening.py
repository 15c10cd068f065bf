"""Issue 14 on the Spark engine: compressed files, the new reject reasons and PAN redaction equal the local engine's."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pandas as pd

from etl.pipeline import run_drop
from etl.spark import SparkEngine
from graph.catalog import STAGED_SCHEMAS
from tests.etl.test_pipeline import HEADER, good, make_drop, settings
from tests.spark.test_spark_etl import rejects, staged

LUHN_PAN = "4270206457093894"


def hostile_drop(root: Path) -> Path:
    rows = [good(1), good(2).replace("12.50", "inf"), good(3).replace("2026-03-01T10:00:03+08:00", "2099-01-01"),
            good(4).replace(",T1,", ",T\x001,"), good(5).replace(",M1,", ",M1" + "x" * 200_000 + ","),
            good(6).replace(",T1,", f",{LUHN_PAN},"), good(7).replace("2026-03-01T10:00:07+08:00", "1969-12-31")]
    drop = make_drop(root, rows[:4])
    (drop / "transactions-2.csv.gz").write_bytes(gzip.compress((HEADER + "\n" + "\n".join(rows[4:] + [good(8)])
                                                               + "\n").encode()))
    (drop / "notes.txt").write_text("not read")
    return drop


def test_hostile_drop_gives_the_same_staging_and_rejects_on_both_engines(spark, tmp_path):
    drop = hostile_drop(tmp_path / "drop")
    local = run_drop(drop, settings(tmp_path / "local"))
    distributed = run_drop(drop, settings(tmp_path / "spark"), engine=SparkEngine(spark, chunk_bytes=100))
    assert distributed.counts == local.counts
    assert local.counts["transactions"] == {"read": 8, "loaded": 2, "duplicate": 0, "rejected": 6}
    expected, got = staged(tmp_path / "local"), staged(tmp_path / "spark")
    for kind in STAGED_SCHEMAS:
        pd.testing.assert_frame_equal(got[kind], expected[kind], obj=kind)
    local_rejects = rejects(local)
    pd.testing.assert_frame_equal(rejects(distributed), local_rejects)
    assert set(local_rejects["reason"]) == {"non_finite_number", "implausible_timestamp", "nul_byte",
                                            "field_too_large", "unknown_terminal"}
    assert LUHN_PAN not in (distributed.run_path / "rejects.csv").read_text()
    manifests = [json.loads((r.run_path / "manifest.json").read_text()) for r in (local, distributed)]
    assert manifests[0]["ignored"] == manifests[1]["ignored"] == [
        {"name": "notes.txt", "reason": manifests[0]["ignored"][0]["reason"]}]
    assert "transactions-2.csv.gz" in {i["name"] for i in manifests[1]["inputs"]}
