"""The two jobs behind `posguard etl` and `posguard score`, callable from Python (the CLI, the API, a scheduler)."""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import asdict
from pathlib import Path

from tqdm import tqdm

from etl.bulk import BulkUnavailable, bulk_load_run
from etl.load import load_run
from etl.pipeline import run_all
from etl.spark import SparkEngine
from etl.spark_load import load_run_spark
from graph.catalog import new_run_id, write_outputs
from graph.projection import Projection
from graph.scoring import run_detectors
from graph.server import connect
from graph.settings import Settings
from graph.spark_scoring import run_detectors_spark, staged_transactions
from graph.spark_session import spark_session
from graph.writeback import write_back

__all__ = ["etl_job", "score_job", "NothingLoaded"]

log = logging.getLogger("posguard")


class NothingLoaded(ValueError):
    """Scoring was asked for before any drop was loaded."""


def _loader(settings: Settings, db_holder: dict):
    """A loader for etl.pipeline: opens the database on first use and shows progress unless quiet."""
    def load(run_id: str) -> dict:
        if db_holder.pop("bulk", False):
            try:
                stats = bulk_load_run(settings, run_id)
                log.info("bulk-loaded run %s: %s TXN relationships at %s/s", run_id,
                         f"{stats.rows.get('transactions', 0):,}", f"{stats.relationships_per_second:,.0f}")
                return asdict(stats)
            except BulkUnavailable as exc:
                log.warning("not using the bulk path (%s); loading over Bolt", exc)
        if "db" not in db_holder:
            db_holder["db"] = connect(settings)
        bars: dict[str, tqdm] = {}

        def progress(kind: str, rows: int) -> None:
            if kind not in bars:
                for bar in bars.values():
                    bar.close()
                bars[kind] = tqdm(desc=f"load {kind}", unit=" rows", file=sys.stderr, leave=False)
            bars[kind].update(rows)

        stats = load_run(db_holder["db"], settings.home, run_id, progress=None if settings.quiet else progress)
        for bar in bars.values():
            bar.close()
        log.info("loaded run %s into Neo4j: %s TXN relationships at %s/s", run_id,
                 f"{stats.rows.get('transactions', 0):,}", f"{stats.relationships_per_second:,.0f}")
        return asdict(stats)

    return load


def etl_job(settings: Settings, drop_dir: str, *, bulk: bool = False, engine: str = "local") -> list:
    """Validate, tokenize, stage and load one drop (or every drop under ``drop_dir``); returns the run results.

    Parameters
    ----------
    settings : graph.settings.Settings
    drop_dir : str or Path
        A drop, or a directory of drops (each loaded once; a drop already loaded is skipped).
    bulk : bool
        Import a first load with neo4j-admin (falls back to Bolt when it cannot).
    engine : {"local", "spark"}
        Where validation, staging and the load run (``etl.spark``, ``etl.spark_load``).

    Example
    -------
    >>> etl_job(Settings.from_env(), "var/drops/sample")  # doctest: +SKIP
    """
    holder: dict = {"bulk": bulk}
    if engine == "spark":
        spark = spark_session(settings)
        how = {"engine": SparkEngine(spark), "load": lambda run_id: asdict(load_run_spark(spark, settings, run_id))}
    else:
        how = {"load": _loader(settings, holder)}
    try:
        results = run_all(Path(drop_dir), settings, **how)
    finally:
        if "db" in holder:
            holder["db"].close()
    for result in results:
        log.info("%s", result.summary())
    return results


def score_job(settings: Settings, out_dir: str | Path, *, params: dict | None = None, engine: str = "local"):
    """Project the staged data, run every detector, write the Parquet outputs and write back into Neo4j.

    Parameters
    ----------
    settings : graph.settings.Settings
    out_dir : str or Path
        Directory of the five Parquet outputs.
    params : dict, optional
        Per-detector parameters (see ``graph.scoring.run_detectors``).
    engine : {"local", "spark"}
        Where the detectors run (``graph.spark_scoring``); both write the same outputs.

    Returns
    -------
    (graph.scoring.ScoreResult, dict of output name -> Path)

    Example
    -------
    >>> result, written = score_job(Settings.from_env(), "var/out")  # doctest: +SKIP
    """
    started = time.perf_counter()
    nothing = NothingLoaded(f"nothing is loaded in {settings.home}: run `posguard etl DROP_DIR` first")
    if engine == "spark":
        spark = spark_session(settings)
        if staged_transactions(spark, settings.home) is None:
            raise nothing
        result = run_detectors_spark(spark, settings.home, params=params)
    else:
        projection = Projection.from_staging(settings.home)
        if projection.n_txns == 0:
            raise nothing
        log.info("projection: %s transactions, %s cards, %s terminals (%.1fs)", f"{projection.n_txns:,}",
                 f"{projection.n_cards:,}", f"{projection.n_terminals:,}", time.perf_counter() - started)
        result = run_detectors(projection, params=params)
    written = write_outputs(result.frames, Path(out_dir))
    run_id = "score-" + new_run_id(result.created_at)
    with connect(settings) as db:
        write_back(db, result.frames, run_id, result.created_at)
    log.info("%s; written to %s and to Neo4j (run %s)", result.summary(), out_dir, run_id)
    return result, written


