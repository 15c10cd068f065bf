"""The ETL on Apache Spark (``--engine spark``): the same files, rules, rejects and staging as the local engine.

Nothing of the validation is written twice. Each input file is cut into chunks that start on a record
boundary (CSV: a newline outside quotes; Parquet: a row group); a Spark task parses its chunk with
``etl.extract.parse_csv_body`` and validates it with ``etl.validate.validate``, exactly as the local engine
does with a whole file (``mapInPandas``: Arrow batches, no Python call per row). De-duplication against the
drop and against earlier runs is Spark SQL (windows and joins); the staging is written by Spark into the
same ``staging/<kind>/run=<run_id>/`` layout, visible only once the run's manifest is committed.

On a cluster the drop and POSGUARD_HOME must be on a filesystem every executor mounts at the same path.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from etl.errors import DropError
from etl.extract import (check_parquet_schema, csv_header, find_files, is_compressed, parquet_frame, parse_csv_body,
                         read_input, sha256_of, shown_name)
from etl.pipeline import VALIDATION_ORDER, _row_hash
from etl.validate import Limits, REJECT_COLUMNS, validate
from graph.catalog import DUPLICATE_KEYS, REFERENCE_KEYS, STAGED_SCHEMAS, committed_paths, staged_run_dir, staging_dir

__all__ = ["SparkEngine", "plan_chunks", "CHUNK_BYTES"]

log = logging.getLogger("posguard.etl.spark")

CHUNK_BYTES = 64 << 20  # a task's share of a CSV file (the HDFS block size most clusters use)
_REJ = ["_rej_column", "_rej_reason", "_rej_value"]
_WINDOW = 1 << 20


def _spark_type(arrow_type):
    from pyspark.sql import types as T  # optional dependency (the [spark] extra)

    if pa.types.is_timestamp(arrow_type):
        return T.TimestampType()
    if pa.types.is_floating(arrow_type):
        return T.DoubleType()
    if pa.types.is_integer(arrow_type):
        return T.LongType()
    return T.StringType()


def chunk_schema(kind: str):
    """Spark schema of a validated chunk: the staged columns (no run_id), file index, line, reject fields."""
    from pyspark.sql import types as T  # optional dependency (the [spark] extra)

    fields = [T.StructField(f.name, _spark_type(f.type)) for f in STAGED_SCHEMAS[kind] if f.name != "run_id"]
    fields += [T.StructField("_fidx", T.LongType()), T.StructField("_line", T.LongType())]
    fields += [T.StructField(c, T.StringType()) for c in _REJ]
    return T.StructType(fields)


# ---------------------------------------------------------------- planning (driver)
def _file_plan(fidx: int, kind: str, path: Path, chunk_bytes: int) -> dict:
    """Header/metadata checks of one file (the local engine's DropErrors) and its nominal chunks."""
    size = path.stat().st_size
    if path.suffix.lower() == ".parquet":
        try:
            meta = pq.ParquetFile(path).metadata
        except Exception as exc:  # pyarrow raises ArrowInvalid or OSError for a file that is not Parquet
            raise DropError(str(path), f"not a readable Parquet file ({exc})") from None
        check_parquet_schema(path, kind, meta.schema.to_arrow_schema())
        rows = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
        first = np.concatenate([[1], 1 + np.cumsum(rows)[:-1]]) if rows else []
        chunks = [{"unit": i, "first_line": int(f)} for i, f in enumerate(first)]
        return {"fidx": fidx, "kind": kind, "path": str(path), "fmt": "parquet", "size": size, "chunks": chunks}
    if is_compressed(path):  # one task reads the whole file: a compressed stream has no seekable boundaries
        head = read_input(path)[:_WINDOW]
        names, header_bytes = csv_header(path, kind, head)
        return {"fidx": fidx, "kind": kind, "path": str(path), "fmt": "csv", "size": size, "names": names,
                "header_bytes": header_bytes, "compressed": True,
                "chunks": [{"unit": 0, "start": header_bytes, "end": size}]}
    with open(path, "rb") as fh:
        head = fh.read(_WINDOW)
    names, header_bytes = csv_header(path, kind, head)
    bounds = list(range(header_bytes, size, chunk_bytes)) or [header_bytes]
    chunks = [{"unit": i, "start": b, "end": bounds[i + 1] if i + 1 < len(bounds) else size}
              for i, b in enumerate(bounds)]
    return {"fidx": fidx, "kind": kind, "path": str(path), "fmt": "csv", "size": size, "names": names,
            "header_bytes": header_bytes, "chunks": chunks}


def _block_counts(path: str, start: int, end: int) -> tuple[int, int]:
    """(quote characters, newlines) in a byte range of a file."""
    quotes = newlines = 0
    with open(path, "rb") as fh:
        fh.seek(start)
        left = end - start
        while left > 0:
            data = fh.read(min(_WINDOW * 16, left))
            if not data:
                break
            quotes += data.count(b'"')
            newlines += data.count(b"\n")
            left -= len(data)
    return quotes, newlines


def plan_chunks(spark, files: list[tuple[str, Path]], chunk_bytes: int = CHUNK_BYTES) -> list[dict]:
    """One plan per file; CSV chunks carry the quote parity and newline count before their nominal start.

    Counting quotes and newlines of every chunk is a Spark job over the chunks (it reads each byte once);
    a chunk task then moves its start to the first newline outside quotes (RFC 4180: quotes inside fields
    are doubled, so the parity of the quotes before a newline tells whether it ends a record).
    """
    plans = [_file_plan(i, kind, Path(path), chunk_bytes) for i, (kind, path) in enumerate(files)]
    ranges = [(p["fidx"], c["unit"], p["path"], c["start"], c["end"]) for p in plans if p["fmt"] == "csv"
              and len(p["chunks"]) > 1 for c in p["chunks"]]
    counted = {}
    if ranges:
        rdd = spark.sparkContext.parallelize(ranges, min(len(ranges), 512))
        counted = dict(rdd.map(lambda r: ((r[0], r[1]), _block_counts(r[2], r[3], r[4]))).collect())
    for p in plans:
        if p["fmt"] != "csv":
            continue
        quotes_before = 0
        newlines_before = 1  # the header line (csv_header stops at its newline)
        for c in p["chunks"]:
            c["parity"], c["newlines_before"] = quotes_before % 2, newlines_before
            q, n = counted.get((p["fidx"], c["unit"]), (0, 0))
            quotes_before += q
            newlines_before += n
    return plans


# ---------------------------------------------------------------- chunk tasks (executors)
def _record_start(fh, pos: int, parity: int, size: int) -> tuple[int, int]:
    """(offset after the first newline at or after ``pos`` outside quotes, newlines skipped to get there)."""
    skipped = 0
    fh.seek(pos)
    while pos < size:
        data = np.frombuffer(fh.read(_WINDOW), dtype=np.uint8)
        if not len(data):
            break
        inside = (parity + np.cumsum(data == 34)) & 1
        ends = np.flatnonzero((data == 10) & (inside == 0))
        if len(ends):
            return pos + int(ends[0]) + 1, skipped + int(np.count_nonzero(data[:ends[0] + 1] == 10))
        parity = int(inside[-1])
        skipped += int(np.count_nonzero(data == 10))
        pos += len(data)
    return size, skipped


def _read_chunk(task: dict) -> tuple[pd.DataFrame, np.ndarray, list]:
    """Raw rows of one chunk with their source lines, as ``etl.extract.read_file`` gives them for the file."""
    if task["fmt"] == "parquet":
        table = pq.ParquetFile(task["path"]).read_row_group(int(task["unit"]))
        frame = parquet_frame(table)
        return frame, np.arange(task["first_line"], task["first_line"] + len(frame), dtype=np.int64), []
    if task.get("compressed"):
        body = read_input(Path(task["path"]))[task["start"]:]
        return parse_csv_body(body, task["names"], first_line=2)
    size = task["size"]
    with open(task["path"], "rb") as fh:
        start, skipped = (task["start"], 0) if task["unit"] == 0 else _record_start(
            fh, task["start"], task["parity"], size)
        end = size if task["last"] else _record_start(fh, task["end"], task["next_parity"], size)[0]
        if end <= start:
            return parse_csv_body(b"", task["names"], 1)
        fh.seek(start)
        body = fh.read(end - start)
    return parse_csv_body(body, task["names"], first_line=task["newlines_before"] + skipped + 1)


def _validate_chunk(task: dict, key: bytes, source_tz: str, known_terminals, known_merchants, cache: dict,
                    limits: Limits | None = None):
    """One chunk through the local engine's parser and validator: a frame in the ``chunk_schema`` columns."""
    kind = task["kind"]
    frame, lines, bad = _read_chunk(task)
    if not len(frame) and not bad:  # a chunk inside one long record (a field larger than the chunk): no rows
        columns = [f.name for f in STAGED_SCHEMAS[kind] if f.name != "run_id"] + ["_fidx", "_line"] + _REJ
        return pd.DataFrame({c: pd.Series([], dtype=object) for c in columns})
    name = shown_name(task["path"])
    checked = validate(kind, frame, lines, name, key=key, source_tz=source_tz,
                       known_terminals=known_terminals if kind != "terminals" else None,
                       known_merchants=known_merchants if kind != "merchants" else None, token_cache=cache,
                       limits=limits or Limits())
    valid = checked.valid
    valid["row_hash"] = _row_hash(valid, kind) if len(valid) else pd.Series([], dtype=object)
    columns = [f.name for f in STAGED_SCHEMAS[kind] if f.name != "run_id"]
    good = valid[columns].assign(_fidx=task["fidx"], _line=valid["_line"].astype(np.int64))
    for c in _REJ:
        good[c] = pd.Series([None] * len(good), dtype=object)
    rejects = checked.rejects
    if bad:
        rejects = pd.concat([rejects, pd.DataFrame([(name, line, None, reason, value) for line, reason, value in bad],
                                                   columns=REJECT_COLUMNS)], ignore_index=True)
    rej = pd.DataFrame({c: pd.Series([None] * len(rejects), dtype=object) for c in columns})
    rej = rej.assign(_fidx=task["fidx"], _line=rejects["line"].to_numpy(np.int64),
                     _rej_column=rejects["column"].to_numpy(dtype=object),
                     _rej_reason=rejects["reason"].to_numpy(dtype=object),
                     _rej_value=rejects["value"].astype(object).to_numpy(dtype=object))
    return pd.concat([good, rej], ignore_index=True) if len(rej) else good


def _chunk_tasks(plan: dict) -> list[dict]:
    tasks = []
    chunks = plan["chunks"]
    for i, c in enumerate(chunks):
        task = {k: plan[k] for k in ("fidx", "kind", "path", "fmt", "size")} | dict(c)
        if plan["fmt"] == "csv":
            task["names"] = plan["names"]
            task["compressed"] = plan.get("compressed", False)
            task["last"] = i + 1 == len(chunks)
            task["next_parity"] = chunks[i + 1]["parity"] if i + 1 < len(chunks) else 0
            task.setdefault("parity", 0)
            task.setdefault("newlines_before", 1)
        tasks.append(task)
    return tasks


# ---------------------------------------------------------------- the engine
class SparkEngine:
    """``etl.pipeline.run_drop``'s engine on Spark: same inputs, same staging, same rejects.

    Parameters
    ----------
    spark : pyspark.sql.SparkSession
    chunk_bytes : int
        Bytes of CSV per task (default 64 MiB).
    """

    name = "spark"

    def __init__(self, spark, chunk_bytes: int = CHUNK_BYTES):
        self.spark = spark
        self.chunk_bytes = int(chunk_bytes)

    def inspect(self, drop: Path):
        """Checksums of every file (one Spark task per file) and the chunk plan; file-level errors raise here."""
        files = find_files(drop)
        paths = [str(p) for _, p in files]
        sums = self.spark.sparkContext.parallelize(paths, max(1, len(paths))).map(
            lambda p: (p, sha256_of(p))).collect() if paths else []
        digest = dict(sums)
        plans = plan_chunks(self.spark, files, self.chunk_bytes)
        inputs = [{"name": shown_name(p), "kind": kind, "sha256": digest[str(p)], "bytes": Path(p).stat().st_size,
                   "rows": 0} for kind, p in files]
        return inputs, (plans, inputs)

    def stage(self, state, settings, home: Path, run_id: str, limits: Limits | None = None):
        """Validate, de-duplicate and write every kind; returns (counts, rejects, timings) like the local engine."""
        plans, inputs = state
        limits = limits or Limits()
        timings = {"validate": 0.0, "stage": 0.0}
        counts: dict[str, dict[str, int]] = {}
        rejects: list[pd.DataFrame] = []
        known = {"terminal_id": None, "merchant_id": None}
        names = {p["fidx"]: shown_name(p["path"]) for p in plans}
        kept_ids: dict[str, set] = {}
        for kind in VALIDATION_ORDER:
            kind_plans = [p for p in plans if p["kind"] == kind]
            if kind in ("transactions", "terminals", "terminal_events") and known["merchant_id"] is None:
                known["merchant_id"] = self._staged_ids(home, "merchants", "merchant_id") | kept_ids.get(
                    "merchants", set())
            if kind in ("transactions", "terminal_events") and known["terminal_id"] is None:
                known["terminal_id"] = self._staged_ids(home, "terminals", "terminal_id") | kept_ids.get(
                    "terminals", set())
            if not kind_plans:
                continue
            t0 = time.perf_counter()
            out = self._validated(kind, kind_plans, settings, known, limits)
            flagged = self._flag(kind, out, home).persist()
            tally = {r["status"]: r["n"] for r in flagged.groupBy("status").count().withColumnRenamed(
                "count", "n").collect()}
            per_file = dict(flagged.groupBy("_fidx").count().collect())
            for plan in kind_plans:  # inputs and plans both follow find_files' order
                inputs[plan["fidx"]]["rows"] = int(per_file.get(plan["fidx"], 0))
            read = sum(tally.values())
            loaded, duplicates = tally.get("kept", 0), tally.get("duplicate", 0)
            counts[kind] = {"read": read, "loaded": loaded, "duplicate": duplicates,
                            "rejected": read - loaded - duplicates}
            rejects.append(self._rejects(kind, flagged, names))
            timings["validate"] += time.perf_counter() - t0
            t0 = time.perf_counter()
            kept = flagged.where("status = 'kept'")
            if kind in ("merchants", "terminals"):  # the ids later kinds must reference
                key = REFERENCE_KEYS[kind][0]
                kept_ids[kind] = {r[0] for r in kept.select(key).distinct().collect()}
            self._write(home, run_id, kind, kept)
            flagged.unpersist()
            timings["stage"] += time.perf_counter() - t0
            log.info("spark: %s %s", kind, counts[kind])
        all_rejects = pd.concat([r for r in rejects if len(r)], ignore_index=True) if any(
            len(r) for r in rejects) else pd.DataFrame(columns=REJECT_COLUMNS)
        return counts, all_rejects, timings

    # -- steps
    def _validated(self, kind: str, plans: list[dict], settings, known: dict, limits: Limits):
        """The chunks of one kind through ``_validate_chunk``, one Spark task per chunk."""
        from pyspark.sql import types as T  # optional dependency (the [spark] extra)

        tasks = [t for p in plans for t in _chunk_tasks(p)]
        sc = self.spark.sparkContext
        key, tz = settings.token_key, settings.source_tz
        terminals = sc.broadcast(known["terminal_id"]) if known["terminal_id"] is not None else None
        merchants = sc.broadcast(known["merchant_id"]) if known["merchant_id"] is not None else None

        def run(batches):
            cache: dict = {}  # tokens of this task's values, in memory only
            for batch in batches:
                for text in batch["task"]:
                    yield _validate_chunk(json.loads(text), key, tz, terminals.value if terminals else None,
                                          merchants.value if merchants else None, cache, limits)

        rows = sc.parallelize([(json.dumps(t),) for t in tasks], len(tasks))
        frame = self.spark.createDataFrame(rows, T.StructType([T.StructField("task", T.StringType())]))
        return frame.mapInPandas(run, chunk_schema(kind))

    def _staged(self, home: Path, kind: str, columns: list[str]):
        """Committed staged rows of ``kind`` as a Spark DataFrame (reference kinds: the latest row per key)."""
        from pyspark.sql import Window, functions as F  # optional dependency (the [spark] extra)

        paths = [str(p) for p in committed_paths(home, kind)]
        if not paths:
            return None
        keys = list(REFERENCE_KEYS.get(kind, ()))
        df = self.spark.read.parquet(*paths).select(*dict.fromkeys(columns + keys + ["run_id"]))
        if keys:
            w = Window.partitionBy(*keys).orderBy(F.col("run_id").desc())
            df = df.withColumn("_n", F.row_number().over(w)).where("_n = 1").drop("_n")
        return df.select(*columns)

    def _staged_ids(self, home: Path, kind: str, key: str) -> set:
        df = self._staged(home, kind, [key])
        return set() if df is None else {r[0] for r in df.distinct().collect()}

    def _flag(self, kind: str, out, home: Path):
        """Every chunk row with its status: rejected (by validation), conflict, duplicate or kept."""
        from pyspark.sql import Window, functions as F  # optional dependency (the [spark] extra)

        keys = list(DUPLICATE_KEYS[kind])
        valid = out.where(F.col("_rej_reason").isNull())
        first = F.row_number().over(Window.partitionBy(*keys).orderBy("_fidx", "_line")) == 1
        same = F.row_number().over(Window.partitionBy(*keys, "row_hash").orderBy("_fidx", "_line")) > 1
        valid = valid.withColumn("_first", first).withColumn("_same", same)
        staged = self._staged(home, kind, keys + ["row_hash"])
        if staged is not None:
            exact = staged.dropDuplicates().withColumn("_dup_staged", F.lit(True))
            by_key = staged.select(*keys).dropDuplicates().withColumn("_key_staged", F.lit(True))
            valid = valid.join(exact, on=keys + ["row_hash"], how="left").join(by_key, on=keys, how="left")
        else:
            valid = valid.withColumn("_dup_staged", F.lit(None).cast("boolean")).withColumn(
                "_key_staged", F.lit(None).cast("boolean"))
        dup_staged = F.coalesce(F.col("_dup_staged"), F.lit(False))
        key_staged = F.coalesce(F.col("_key_staged"), F.lit(False))
        duplicate = (~F.col("_first") & F.col("_same")) | (F.col("_first") & dup_staged)
        conflict = ~F.col("_first") & ~F.col("_same")
        if kind not in REFERENCE_KEYS:
            conflict = conflict | (F.col("_first") & key_staged & ~dup_staged)
        status = F.when(duplicate, "duplicate").when(conflict, "conflict").otherwise("kept")
        valid = valid.withColumn("status", status).drop("_first", "_same", "_dup_staged", "_key_staged")
        rejected = out.where(F.col("_rej_reason").isNotNull()).withColumn("status", F.lit("rejected"))
        return valid.unionByName(rejected)

    def _rejects(self, kind: str, flagged, names: dict) -> pd.DataFrame:
        from pyspark.sql import functions as F  # optional dependency (the [spark] extra)

        key = DUPLICATE_KEYS[kind][0]
        rows = flagged.where(F.col("status").isin("rejected", "conflict")).select(
            "_fidx", "_line",
            F.when(F.col("status") == "conflict", F.lit(key)).otherwise(F.col("_rej_column")).alias("column"),
            F.when(F.col("status") == "conflict", F.lit("conflicting_duplicate")).otherwise(
                F.col("_rej_reason")).alias("reason"),
            F.when(F.col("status") == "conflict", F.col(key).cast("string")).otherwise(
                F.col("_rej_value")).alias("value")).orderBy("_fidx", "_line").toPandas()
        return pd.DataFrame({"file": rows["_fidx"].map(names).to_numpy(dtype=object),
                             "line": rows["_line"].to_numpy(np.int64), "column": rows["column"].to_numpy(object),
                             "reason": rows["reason"].to_numpy(object), "value": rows["value"].to_numpy(object)})

    def _write(self, home: Path, run_id: str, kind: str, kept) -> None:
        """Write the kept rows as ``staging/<kind>/run=<run_id>/part-*.parquet`` (temp dir, then rename)."""
        from pyspark.sql import functions as F  # optional dependency (the [spark] extra)

        schema = STAGED_SCHEMAS[kind]
        frame = kept.withColumn("run_id", F.lit(run_id)).select(*schema.names)
        tmp = staging_dir(home) / ".tmp" / f"{kind}-{run_id}"
        shutil.rmtree(tmp, ignore_errors=True)
        frame.write.option("compression", "zstd").mode("overwrite").parquet(str(tmp))
        for junk in list(tmp.glob("_*")) + list(tmp.glob(".*.crc")):
            junk.unlink()
        final = staged_run_dir(home, kind, run_id)
        final.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
