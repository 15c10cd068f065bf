"""`posguard bench`: throughput of ETL, Neo4j load and scoring on a generated drop, measured in one run."""

from __future__ import annotations

import json
import logging
import platform
import resource
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from app.bench import bench_app
from etl.generate import generate
from etl.load import load_run
from etl.pipeline import run_drop
from etl.spark import SparkEngine
from graph.projection import Projection
from graph.scoring import run_detectors
from graph.server import LocalServer, connect
from graph.spark_scoring import run_detectors_spark
from graph.spark_session import spark_session
from graph.writeback import write_back
from posguard.kernel_bench import fraudar_speed, kernel_ratios

__all__ = ["run_bench"]

log = logging.getLogger("posguard.bench")


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _bench_etl(settings, drop: Path) -> dict:
    started = time.perf_counter()
    result = run_drop(drop, settings)
    seconds = time.perf_counter() - started
    rows = sum(c["read"] for c in result.counts.values())
    txns = result.counts["transactions"]["read"]
    return {"run_id": result.run_id, "transactions": txns, "rows_all_kinds": rows, "seconds": round(seconds, 2),
            "transactions_per_s": round(txns / seconds), "steps_s": {k: round(v, 2) for k, v in result.seconds.items()},
            "peak_rss_mb": round(_peak_rss_mb())}


def _bench_load(settings, run_id: str, batch_size: int) -> dict:
    with connect(settings) as db:
        db.clear()
        stats = load_run(db, settings.home, run_id, batch_size=batch_size)
    return {"rows": stats.rows, "seconds": {k: round(v, 2) for k, v in stats.seconds.items()},
            "txn_relationships_per_s": round(stats.relationships_per_second), "batch_size": batch_size}


def _bench_score(settings) -> tuple[dict, object]:
    """Scoring figures, and the ScoreResult (the explorer's benchmark writes it back)."""
    started = time.perf_counter()
    projection = Projection.from_staging(settings.home)
    projection_s = time.perf_counter() - started
    run_detectors(projection)  # first call compiles or loads the numba cache
    result = run_detectors(projection)

    kernels = kernel_ratios(projection) + [fraudar_speed(1_000_000)]
    return {"kernels_vs_reference": kernels, "transactions": projection.n_txns, "projection_s": round(projection_s, 2),
            "bytes_per_txn_arrays": round(projection.nbytes_per_txn()),
            "detectors_s": {k: round(v, 3) for k, v in result.seconds.items()},
            "total_s": round(projection_s + sum(result.seconds.values()), 2), "outputs": result.summary()}, result


def bench_engines(settings, drop: Path, root: Path) -> dict:
    """ETL (validate + stage, no load) and scoring of ``drop`` by each engine, in fresh homes under ``root``,
    one after the other in this run; with the ratio spark / local of each step."""
    out: dict = {}
    for name in ("local", "spark"):
        engine_settings = settings.with_(home=root / f"{name}-home")
        spark = spark_session(engine_settings) if name == "spark" else None
        started = time.perf_counter()
        result = run_drop(drop, engine_settings, engine=SparkEngine(spark) if spark else None)
        etl_s = time.perf_counter() - started
        started = time.perf_counter()
        if spark:
            scored = run_detectors_spark(spark, engine_settings.home)
        else:
            scored = run_detectors(Projection.from_staging(engine_settings.home))
        score_s = time.perf_counter() - started
        out[name] = {"etl_s": round(etl_s, 2), "score_s": round(score_s, 2),
                     "transactions": result.counts["transactions"]["read"],
                     "detectors_s": {k: round(v, 2) for k, v in scored.seconds.items()}}
        log.info("%s engine: etl %.1fs, score %.1fs", name, etl_s, score_s)
    out["spark_over_local"] = {k: round(out["spark"][k] / max(out["local"][k], 1e-9), 2) for k in ("etl_s", "score_s")}
    return out


def _bench_explorer(settings, result, alerts: int) -> dict:
    with connect(settings) as db:
        db.ensure_schema()
        write_back(db, result.frames, "score-bench", result.created_at)
        return bench_app(db, settings.token_key, alerts=alerts)


def run_bench(settings, *, txns: int = 1_000_000, load_txns: bool = True, batch_size: int = 20_000,
              out: Path | None = None, app_alerts: int = 100_000, engines: bool = False) -> dict:
    """Generate a drop of ``txns`` transactions and measure ETL, Neo4j load and scoring on it.

    Everything runs in a temporary POSGUARD_HOME with its own local Neo4j server (or ``NEO4J_URI`` when
    set: its database is cleared first). Results are returned and, with ``out``, written as JSON.

    Parameters
    ----------
    settings : graph.settings.Settings
        Used for the token key and an external Neo4j; ``home`` is replaced by a temporary one.
    txns : int
        Transactions to generate.
    load_txns : bool
        Measure the Neo4j load (the slowest part), then the explorer on the loaded graph.
    app_alerts : int
        Queue size (padded with synthetic alerts) for the explorer's measurements; 0 skips them.
    batch_size : int
        Rows per Neo4j transaction.
    out : Path, optional
        Where to write the JSON results.
    engines : bool
        Only compare the local and the Spark engine (ETL without load, scoring) on the drop.

    Returns
    -------
    dict
    """
    with tempfile.TemporaryDirectory(prefix="posguard-bench-") as tmp:
        tmp = Path(tmp)
        bench_settings = settings.with_(home=tmp / "home", bolt_port=0, http_port=0, heap="1g", pagecache="1g")
        results: dict = {"started_at": datetime.now(timezone.utc).isoformat(), "machine": {
            "cpus": __import__("os").cpu_count(), "python": platform.python_version(),
            "platform": platform.platform()}, "txns_requested": txns}
        started = time.perf_counter()
        generate(tmp / "drop", seed=11, txns=txns, fmt="parquet")
        results["generate_s"] = round(time.perf_counter() - started, 2)
        log.info("generated %s transactions in %.1fs", f"{txns:,}", results["generate_s"])
        if engines:
            results["engines"] = bench_engines(bench_settings, tmp / "drop", tmp)
            if out is not None:
                Path(out).write_text(json.dumps(results, indent=2))
            return results
        results["etl"] = _bench_etl(bench_settings, tmp / "drop")
        log.info("etl: %s transactions/s", f"{results['etl']['transactions_per_s']:,}")
        results["score"], scored = _bench_score(bench_settings)
        log.info("score: %.1fs in all", results["score"]["total_s"])
        if load_txns:
            try:
                results["load"] = _bench_load(bench_settings, results["etl"]["run_id"], batch_size)
                log.info("load: %s TXN relationships/s", f"{results['load']['txn_relationships_per_s']:,}")
                if app_alerts:
                    results["explorer"] = _bench_explorer(bench_settings, scored, app_alerts)
            finally:
                if not bench_settings.external:
                    LocalServer(bench_settings).stop()
    if out is not None:
        Path(out).write_text(json.dumps(results, indent=2))
    return results
