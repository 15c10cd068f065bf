"""Load a staged run into Neo4j from Spark executors, in parallel, without two writers on one node.

The local loader's Cypher (``etl.load.CYPHER``) and its idempotency are kept; only who writes changes:

1. reference data (merchants, allow-listed firmware, terminals) and firmware events from the driver: small,
   and their rows share owner/phone/account/firmware nodes, so parallel writers would queue on those locks;
2. the run's cards, its transactions' terminals and its fraud reports by key partition: every node of a
   label in exactly one partition, so no two tasks lock the same node;
3. TXN relationships in ``k`` rounds over a ``k x k`` grid of (card bucket, terminal bucket): round ``r``
   writes the cells ``(i, (i - r) mod k)`` as ``k`` parallel tasks, which share neither a card nor a
   terminal (creating a relationship locks both end nodes). Each batch is the local loader's
   ``write_rows``: CREATE, or, for a batch the txn_id constraint refuses (a repeated load), the
   query that skips ids already present.
"""

from __future__ import annotations

import time
from pathlib import Path

import pyarrow as pa

from etl.load import (DISTINCT_COLUMNS, LOAD_COLUMNS, LoadStats, distinct_rows, epoch_millis, record_run,
                      staged_batches, write_rows)
from graph.catalog import staged_run_dir
from graph.db import Database
from graph.server import connect, credentials
from graph.spark_session import bucket_column

__all__ = ["load_run_spark"]


def _write(frame, creds: tuple, kind: str, batch_size: int) -> int:
    """Write every partition of ``frame`` with the local loader's query for ``kind`` (Arrow batches in,
    one Neo4j connection per task); returns the rows written."""
    def write(batches):
        uri, auth, database = creds
        written = 0
        with Database(uri, auth, database) as db:
            for batch in batches:
                if not batch.num_rows:
                    continue
                rows = epoch_millis(pa.Table.from_batches([batch])).to_pylist()
                written += write_rows(db, kind, rows, batch_size)
        yield pa.RecordBatch.from_pydict({"n": [written]})

    return int(sum(r["n"] for r in frame.mapInArrow(write, "n long").collect()))


def _distinct(txns, kind: str, k: int):
    """``etl.load.distinct_rows`` of the transactions, per partition of ``k`` by key (every key in one)."""
    columns = DISTINCT_COLUMNS[kind]

    def part(batches):
        batches = [b for b in batches if b.num_rows]
        if batches:
            yield from distinct_rows(pa.Table.from_batches(batches), kind).to_batches()

    return txns.select(*columns).repartition(k, columns[0]).mapInArrow(
        part, ", ".join(f"{c} string" for c in columns))


def load_run_spark(spark, settings, run_id: str, *, batch_size: int = 10_000, grid: int | None = None) -> LoadStats:
    """Write the staged run ``run_id`` into Neo4j: reference data from the driver, the rest from executors.

    Parameters
    ----------
    spark : pyspark.sql.SparkSession
    settings : graph.settings.Settings
        The database (``NEO4J_URI`` or the local server) and POSGUARD_HOME.
    run_id : str
    batch_size : int
        Rows per Neo4j transaction.
    grid : int, optional
        ``k`` of the k x k relationship grid (default: the session's parallelism): ``k`` writers at a time.

    Returns
    -------
    LoadStats
        Rows and seconds per step, as the local loader reports them.
    """
    from pyspark.sql import functions as F  # optional dependency (the [spark] extra)

    home = Path(settings.home)
    creds = credentials(settings)
    k = grid or max(2, spark.sparkContext.defaultParallelism)
    stats = LoadStats()
    with connect(settings) as db:
        db.ensure_schema()
        for kind in ("merchants", "approved_firmware", "terminals"):
            started = time.perf_counter()
            stats.rows[kind] = sum(write_rows(db, kind, rows, batch_size)
                                   for rows in staged_batches(home, kind, run_id, batch_size))
            stats.seconds[kind] = time.perf_counter() - started

        def staged(kind):
            path = staged_run_dir(home, kind, run_id)
            return spark.read.parquet(str(path)) if path.exists() and any(path.glob("*.parquet")) else None

        txns = staged("transactions")
        if txns is not None:
            txns = txns.persist()
            for kind in DISTINCT_COLUMNS:  # cards, transaction_terminals
                started = time.perf_counter()
                stats.rows[kind] = _write(_distinct(txns, kind, k), creds, kind, batch_size)
                stats.seconds[kind] = time.perf_counter() - started
            started = time.perf_counter()
            cols = LOAD_COLUMNS["transactions"]
            grid_txns = txns.select(*cols).withColumn("_cb", bucket_column("card_token", k)).withColumn(
                "_tb", bucket_column("terminal_id", k))
            written = 0
            for r in range(k):
                cell = grid_txns.where(F.pmod(F.col("_cb") - F.col("_tb"), F.lit(k)) == r)
                written += _write(cell.repartition(k, "_cb").drop("_tb", "_cb"), creds, "transactions", batch_size)
            stats.rows["transactions"] = written
            stats.seconds["transactions"] = time.perf_counter() - started
            txns.unpersist()
        reports = staged("fraud_reports")
        if reports is not None:
            started = time.perf_counter()
            reports = reports.select("card_token", "pan_last4", "reported_at", "first_fraud_at", "fraud_type")
            stats.rows["fraud_reports"] = _write(reports.repartition(k, "card_token"), creds, "fraud_reports",
                                                 batch_size)
            stats.seconds["fraud_reports"] = time.perf_counter() - started
        started = time.perf_counter()
        stats.rows["terminal_events"] = sum(write_rows(db, "terminal_events", rows, batch_size)
                                            for rows in staged_batches(home, "terminal_events", run_id, batch_size))
        stats.seconds["terminal_events"] = time.perf_counter() - started
        record_run(db, run_id, stats)
    return stats
