"""Both engines call the same rule functions: the Spark engine's default chunking stages what the local
engine stages, and the Spark modules reach no private helper of another module."""

from __future__ import annotations

import ast
import shutil
import time
from pathlib import Path

import pandas as pd

from etl.pipeline import run_drop
from etl.spark import SparkEngine
from graph.catalog import STAGED_SCHEMAS
from tests.spark.test_spark_etl import rejects, settings, staged

ROOT = Path(__file__).resolve().parents[2]


def one_file(sample: Path, out: Path) -> Path:
    """The sample drop with all its transactions in one CSV file of about 3 MB."""
    shutil.copytree(sample, out, ignore=shutil.ignore_patterns("truth", "transactions*"))
    files = sorted(sample.glob("transactions*.csv"))
    body = [f.read_bytes().split(b"\n", 1) for f in files]
    (out / "transactions.csv").write_bytes(body[0][0] + b"\n" + b"".join(rest for _, rest in body))
    return out


def test_default_chunks_stage_what_the_local_engine_stages(spark, sample_drop, tmp_path):
    """A whole 3 MB file per task (the default 64 MiB chunks): pyarrow gives its strings as chunked arrays
    (1 MB blocks), which must still reach Spark; staging, counts and rejects are the local engine's."""
    drop = one_file(sample_drop, tmp_path / "drop")
    assert (drop / "transactions.csv").stat().st_size > 2 << 20
    local = run_drop(drop, settings(tmp_path / "local"))
    distributed = run_drop(drop, settings(tmp_path / "spark"), engine=SparkEngine(spark))
    assert distributed.counts == local.counts
    assert local.counts["transactions"]["loaded"] > 10_000
    expected, got = staged(tmp_path / "local"), staged(tmp_path / "spark")
    for kind in STAGED_SCHEMAS:
        pd.testing.assert_frame_equal(got[kind], expected[kind], obj=kind)
    pd.testing.assert_frame_equal(rejects(distributed), rejects(local))


def _private_imports(path: Path) -> list[str]:
    """Names starting with an underscore that ``path`` imports from posguard's own packages."""
    tree = ast.parse(path.read_text())
    return [f"{node.module}.{alias.name}" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
            and (node.module or "").split(".")[0] in ("etl", "graph", "app")
            for alias in node.names if alias.name.startswith("_")]


def test_spark_engine_uses_only_public_helpers():
    """The Spark engine supplies partitioning; the rules it shares with the local engine are public."""
    for name in ("etl/spark.py", "etl/spark_load.py", "graph/spark_scoring.py"):
        assert _private_imports(ROOT / name) == [], name


def test_reference_updates_against_earlier_runs_follow_the_latest_run(spark, sample_drop, tmp_path):
    """A merchant changed in a second drop is an update (kept), the unchanged one a duplicate; a third drop
    bringing back the first version is an update again (compared with the latest row, not any earlier one)."""
    lines = (sample_drop / "merchants.csv").read_text().splitlines()
    changed = lines[2].replace('"Shanghai', '"Renamed', 1)
    assert changed != lines[2]
    drops = []
    for i, rows in enumerate(([lines[1], changed], [lines[2]])):
        drop = tmp_path / f"drop{i + 2}"
        drop.mkdir()
        (drop / "merchants.csv").write_text("\n".join([lines[0], *rows]) + "\n")
        (drop / "transactions.csv").write_text((sample_drop / "transactions-2026-03-01.csv").read_text())
        drops.append(drop)
    results = {}
    for name, engine in (("local", None), ("spark", SparkEngine(spark, chunk_bytes=1 << 20))):
        s = settings(tmp_path / name)
        results[name] = []
        for d in (sample_drop, *drops):
            results[name].append(run_drop(d, s, engine=engine).counts)
            time.sleep(1.1)  # run ids sort by the second: two runs in one second have no "latest" of the two
    assert results["spark"] == results["local"]
    assert results["local"][1]["merchants"] == {"read": 2, "loaded": 1, "duplicate": 1, "rejected": 0}
    assert results["local"][2]["merchants"] == {"read": 1, "loaded": 1, "duplicate": 0, "rejected": 0}
    assert results["local"][2]["transactions"]["duplicate"] == results["local"][2]["transactions"]["read"] > 0
    expected, got = staged(tmp_path / "local"), staged(tmp_path / "spark")
    for kind in STAGED_SCHEMAS:
        pd.testing.assert_frame_equal(got[kind], expected[kind], obj=kind)
