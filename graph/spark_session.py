"""The Spark session of ``--engine spark``: local mode on this machine, or whatever spark-submit gives."""

from __future__ import annotations

import logging
import os
import sys
import warnings

__all__ = ["spark_session", "SparkUnavailable", "bucket_column"]

log = logging.getLogger("posguard.spark")


class SparkUnavailable(RuntimeError):
    """pyspark is not installed, or no Java runtime can start it."""


def spark_session(settings, app_name: str = "posguard"):
    """The active Spark session, or a new one for ``settings.spark_master`` with posguard's settings.

    Under spark-submit the session already exists (its master, executors and settings win). In local mode
    the driver binds to 127.0.0.1, the web UI is off (it would listen on every interface) and the Python
    workers are this interpreter. ``settings.spark_conf`` (``POSGUARD_SPARK_CONF``) is applied last.

    Raises
    ------
    SparkUnavailable
        When pyspark cannot be imported.
    """
    try:
        from pyspark.sql import SparkSession  # optional dependency (the [spark] extra)
    except ImportError as exc:  # the `spark` extra is not installed
        raise SparkUnavailable("--engine spark needs pyspark: pip install 'posguard[spark]'") from exc
    # pyspark 4.3 warns on pandas 3 at every pandas call; tests/spark compares its results with the local
    # engine's under pandas 3, so the warning is noise in the log (workers: through PYTHONWARNINGS)
    warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas", category=FutureWarning)
    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    master = settings.spark_master
    builder = SparkSession.builder.appName(app_name).master(master)
    conf = {
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
        "spark.sql.adaptive.enabled": "true",
        "spark.ui.showConsoleProgress": "false",
        # Arrow batches into the pandas functions: big enough to amortise the numba calls.
        "spark.sql.execution.arrow.maxRecordsPerBatch": "200000",
    }
    if master.startswith("local"):
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        os.environ.setdefault("PYTHONWARNINGS", "ignore::FutureWarning")
        conf |= {"spark.driver.bindAddress": "127.0.0.1", "spark.driver.host": "127.0.0.1",
                 "spark.ui.enabled": "false", "spark.sql.shuffle.partitions": "8",
                 "spark.driver.memory": os.environ.get("POSGUARD_SPARK_DRIVER_MEMORY", "4g"),
                 "spark.local.dir": str(settings.home / "spark-tmp")}
    conf |= dict(settings.spark_conf)
    for key, value in conf.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    log.info("Spark %s on %s (%s cores by default parallelism)", session.version, session.sparkContext.master,
             session.sparkContext.defaultParallelism)
    return session


def bucket_column(column: str, buckets: int):
    """A Spark column: ``pmod(xxhash64(column), buckets)``, the partition key of per-entity work."""
    from pyspark.sql import functions as F  # optional dependency (the [spark] extra)

    return F.pmod(F.xxhash64(F.col(column)), F.lit(buckets)).cast("int")
