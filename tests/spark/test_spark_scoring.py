"""--engine spark scores like the local engine (equal rows, scores within float tolerance), and loads Neo4j
in parallel to the same graph, idempotently."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import pytest

from etl.pipeline import run_drop
from etl.spark_load import load_run_spark
from graph.catalog import committed_runs
from graph.projection import Projection
from graph.scoring import run_detectors
from graph.server import connect
from graph.settings import Settings
from graph.spark_scoring import run_detectors_spark
from graph.spark_session import spark_session
from tests.helpers import posguard, server_env

AT = datetime(2026, 5, 1, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def staged_home(sample_drop, tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("staged")
    run_drop(sample_drop, Settings.from_env({"POSGUARD_HOME": str(home)}, token_key=b"k"))
    return home


def assert_same_outputs(got: dict, expected: dict) -> None:
    for name, frame in expected.items():
        pd.testing.assert_frame_equal(got[name].reset_index(drop=True), frame.reset_index(drop=True),
                                      check_dtype=False, rtol=1e-9, obj=name)


def test_detectors_give_the_local_engines_outputs(spark, staged_home):
    local = run_detectors(Projection.from_staging(staged_home), created_at=AT)
    distributed = run_detectors_spark(spark, staged_home, created_at=AT, buckets=5)
    assert_same_outputs(distributed.frames, local.frames)
    # the comparison is not vacuous: every detector found something on the planted drop
    for name in ("skimming_points", "cloned_cards", "rings", "terminal_findings", "exposed_cards", "alerts"):
        assert len(local.frames[name]) > 0, name
    assert set(local.frames["rings"]["kind"]) >= {"cash_out"}
    # the driver held candidate subgraphs, not the whole drop
    assert 0 < distributed.seconds["subgraph_rings_txns"] < Projection.from_staging(staged_home).n_txns


def test_parameters_reach_the_partitions(spark, staged_home):
    params = {"cloned": {"max_speed_kmh": 300.0}, "integrity": {"far_km": 20.0, "min_voids": 3},
              "skimming": {"exposure_days": 30.0}}
    local = run_detectors(Projection.from_staging(staged_home), created_at=AT, params=params)
    distributed = run_detectors_spark(spark, staged_home, created_at=AT, params=params, buckets=3)
    assert_same_outputs(distributed.frames, local.frames)
    default = run_detectors(Projection.from_staging(staged_home), created_at=AT)
    changed = [n for n in ("cloned_cards", "terminal_findings", "skimming_points")
               if not local.frames[n].equals(default.frames[n])]
    assert "terminal_findings" in changed and "skimming_points" in changed, changed


GRAPH_COUNTS = """
CALL () { MATCH (n) UNWIND labels(n) AS label RETURN label AS what, count(*) AS n
          UNION ALL MATCH ()-[r]->() RETURN type(r) AS what, count(*) AS n }
RETURN what, sum(n) AS n ORDER BY what
"""


def graph_counts(env: dict) -> dict:
    with connect(Settings.from_env(env), start=False) as db:
        return {r["what"]: r["n"] for r in db.read(GRAPH_COUNTS)}


def test_posguard_run_engine_spark_matches_local_end_to_end(sample_drop, tmp_path):
    """The command line, each engine with its own real Neo4j server: same Parquet outputs, same graph,
    and a second Spark load of the same run changes nothing."""
    envs = {name: server_env(tmp_path / name, POSGUARD_SPARK_MASTER="local[2]") for name in ("local", "spark")}
    try:
        for name, env in envs.items():
            extra = ["--engine", "spark"] if name == "spark" else []
            result = posguard("run", str(sample_drop), "--out", str(tmp_path / name / "out"), "--quiet", *extra,
                              env=env, timeout=900)
            assert result.returncode == 0, result.stderr[-3000:]
        for output in ("skimming_points", "cloned_cards", "rings", "terminal_findings", "exposed_cards", "alerts"):
            frames = [pd.read_parquet(tmp_path / name / "out" / f"{output}.parquet") for name in envs]
            if output == "alerts":
                frames = [f.drop(columns=["created_at"]) for f in frames]
            pd.testing.assert_frame_equal(frames[1], frames[0], check_dtype=False, rtol=1e-9, obj=output)
        counts = {name: graph_counts(env) for name, env in envs.items()}
        assert counts["spark"] == counts["local"]
        assert counts["spark"]["TXN"] > 10_000 and counts["spark"]["Card"] > 1_000
        # the same staged run loaded again from Spark: idempotent

        settings = Settings.from_env(envs["spark"])
        [run_id] = committed_runs(settings.home)
        stats = load_run_spark(spark_session(settings), settings, run_id, grid=3)
        assert stats.rows["transactions"] == counts["spark"]["TXN"]
        assert graph_counts(envs["spark"]) == counts["spark"]
    finally:
        for env in envs.values():
            posguard("neo4j", "stop", env=env)
