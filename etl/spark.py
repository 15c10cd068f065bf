"""The ETL on Apache Spark (``--engine spark``): the same files, rules, rejects and staging as the local engine.

Nothing of the validation is written twice. Each input file is cut into chunks that start on a record
boundary (CSV: a newline outside quotes; Parquet: a row group); a Spark task parses its chunk with
``etl.extract.parse_csv_body`` and validates it with ``etl.validate.validate``, exactly as the local engine
does with a whole file (``mapInPandas``: Arrow batches, no Python call per row). De-duplication against the
drop and against earlier runs is ``etl.rules.duplicate_status``, the local engine's function, called on the
rows of a group of keys (``groupBy(bucket of the key).applyInPandas``) with the staged rows of the same keys
unioned in; every other rule (which ids must be known, row hashes, rejects, counts) is also the one in
``etl.rules``. The staging is written by Spark into the same ``staging/<kind>/run=<run_id>/`` layout, visible
only once the run's manifest is committed.

On a cluster the drop and POSGUARD_HOME must be on a filesystem every executor mounts at the same path.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from etl.errors import DropError
from etl.extract import (check_parquet_schema, csv_header, find_files, is_compressed, parquet_frame, parse_csv_body,
                         read_input, sha256_of, shown_name)
from etl.rules import (VALIDATION_ORDER, check_part, concat_rejects, conflict_rejects, duplicate_status, kind_counts,
                       known_references)
from etl.validate import Limits
from graph.catalog import (DUPLICATE_KEYS, REFERENCE_KEYS, STAGED_SCHEMAS, commit_staged_dir, committed_paths,
                           read_staged, staging_tmp_dir)

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


def _validate_chunk(task: dict, key: bytes, source_tz: str, known: dict, cache: dict, limits: Limits | None = None):
    """One chunk through the local engine's parser and ``etl.rules.check_part``: a frame in ``chunk_schema``."""
    kind = task["kind"]
    frame, lines, bad = _read_chunk(task)
    columns = [f.name for f in STAGED_SCHEMAS[kind] if f.name != "run_id"]
    if not len(frame) and not bad:  # a chunk inside one long record (a field larger than the chunk): no rows
        return pd.DataFrame({c: pd.Series([], dtype=object) for c in columns + ["_fidx", "_line"] + _REJ})
    checked = check_part(kind, frame, lines, shown_name(task["path"]), bad, key=key, source_tz=source_tz,
                         known=known, token_cache=cache, limits=limits or Limits())
    valid = checked.valid
    good = valid[columns].assign(_fidx=task["fidx"], _line=valid["_line"].astype(np.int64))
    for c in _REJ:
        good[c] = pd.Series([None] * len(good), dtype=object)
    rejects = checked.rejects
    rej = pd.DataFrame({c: pd.Series([None] * len(rejects), dtype=object) for c in columns})
    rej = rej.assign(_fidx=task["fidx"], _line=rejects["line"].to_numpy(np.int64),
                     _rej_column=rejects["column"].to_numpy(dtype=object),
                     _rej_reason=rejects["reason"].to_numpy(dtype=object),
                     _rej_value=rejects["value"].astype(object).to_numpy(dtype=object))
    return _single_chunk(pd.concat([good, rej], ignore_index=True) if len(rej) else good)


def _flag_group(kind: str, rows: pd.DataFrame) -> pd.DataFrame:
    """The drop's valid rows of a group of keys with their ``status`` (``etl.rules.duplicate_status``, given
    the group's staged rows, ``_staged``), conflicts with their reject fields (``etl.rules.conflict_rejects``)."""
    staged = rows["_staged"].to_numpy(bool)
    mine = rows[~staged].drop(columns=["_staged", "_b"])
    mine = mine.assign(_fidx=mine["_fidx"].astype(np.int64), _line=mine["_line"].astype(np.int64)).sort_values(
        ["_fidx", "_line"], kind="stable")  # the drop's order: the first row of a key is kept
    status = duplicate_status(kind, mine, rows[staged])
    conflict = status == "conflict"
    if conflict.any():
        found = conflict_rejects(kind, mine[conflict], mine["_fidx"].to_numpy()[conflict])
        for column, field in zip(_REJ, ("column", "reason", "value")):
            values = mine[column].to_numpy(dtype=object).copy()
            values[conflict] = found[field].to_numpy(dtype=object)
            mine[column] = values
    return _single_chunk(mine.assign(status=status))


def _single_chunk(frame: pd.DataFrame) -> pd.DataFrame:
    """Arrow-backed string columns as Python objects: pyarrow's CSV reader gives a file of more than one block
    (about 1 MB) as chunked arrays, which ``mapInPandas`` cannot send back to Spark."""
    strings = [c for c in frame.columns if isinstance(frame[c].dtype, pd.StringDtype)]
    return frame.assign(**{c: frame[c].astype(object).where(frame[c].notna(), None) for c in strings})


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
        known: dict = {"terminal_id": None, "merchant_id": None}
        names = {p["fidx"]: shown_name(p["path"]) for p in plans}
        kept_ids: dict[str, set] = {}
        for kind in VALIDATION_ORDER:
            kind_plans = [p for p in plans if p["kind"] == kind]
            known = known_references(home, kind, known, kept_ids)
            if not kind_plans:
                continue
            t0 = time.perf_counter()
            out = self._validated(kind, kind_plans, settings, known, limits)
            flagged = self._flag(kind, out, home, sum(len(p["chunks"]) for p in kind_plans)).persist()
            tally = {r["status"]: r["n"] for r in flagged.groupBy("status").count().withColumnRenamed(
                "count", "n").collect()}
            per_file = dict(flagged.groupBy("_fidx").count().collect())
            for plan in kind_plans:  # inputs and plans both follow find_files' order
                inputs[plan["fidx"]]["rows"] = int(per_file.get(plan["fidx"], 0))
            counts[kind] = kind_counts(sum(tally.values()), tally.get("kept", 0), tally.get("duplicate", 0))
            rejects.append(self._rejects(flagged, names))
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
        return counts, concat_rejects(rejects), timings

    # -- steps
    def _validated(self, kind: str, plans: list[dict], settings, known: dict, limits: Limits):
        """The chunks of one kind through ``_validate_chunk``, one Spark task per chunk."""
        from pyspark.sql import types as T  # optional dependency (the [spark] extra)

        tasks = [t for p in plans for t in _chunk_tasks(p)]
        sc = self.spark.sparkContext
        key, tz = settings.token_key, settings.source_tz
        shared = sc.broadcast(known)

        def run(batches):
            cache: dict = {}  # tokens of this task's values, in memory only
            for batch in batches:
                for text in batch["task"]:
                    yield _validate_chunk(json.loads(text), key, tz, shared.value, cache, limits)

        rows = sc.parallelize([(json.dumps(t),) for t in tasks], len(tasks))
        frame = self.spark.createDataFrame(rows, T.StructType([T.StructField("task", T.StringType())]))
        return frame.mapInPandas(run, chunk_schema(kind))

    def _staged(self, home: Path, kind: str, columns: list[str]):
        """Committed staged rows of ``kind`` as a Spark DataFrame, or None.

        Reference kinds (small tables, the latest row per key) through ``graph.catalog.read_staged``, as the
        local engine reads them; the other kinds read by Spark (every staged row counts).
        """
        paths = [str(p) for p in committed_paths(home, kind)]
        if not paths:
            return None
        if kind in REFERENCE_KEYS:
            frame = read_staged(home, kind, columns).to_pandas()  # keys and row hashes: strings
            return self.spark.createDataFrame(frame.astype(object).where(frame.notna(), None),
                                              ", ".join(f"{c} string" for c in columns))
        return self.spark.read.parquet(*paths).select(*columns)

    def _flag(self, kind: str, out, home: Path, groups: int):
        """Every chunk row with its status: rejected (by validation), conflict, duplicate or kept.

        Spark only groups: the valid rows and the staged rows of the same keys meet in one of ``groups``
        (at least 8) buckets of the key, where ``_flag_group`` applies the local engine's rule.
        """
        from pyspark.sql import functions as F, types as T  # optional dependency (the [spark] extra)

        keys = list(DUPLICATE_KEYS[kind])
        valid = out.where(F.col("_rej_reason").isNull()).withColumn("_staged", F.lit(False))
        staged = self._staged(home, kind, keys + ["row_hash"])
        if staged is not None:
            staged = staged.select(*[F.col(f.name) if f.name in keys + ["row_hash"] else
                                     F.lit(None).cast(f.dataType).alias(f.name) for f in out.schema])
            valid = valid.unionByName(staged.withColumn("_staged", F.lit(True)))
        n = max(8, 4 * self.spark.sparkContext.defaultParallelism, int(groups))
        schema = T.StructType(list(out.schema) + [T.StructField("status", T.StringType())])
        flagged = (valid.withColumn("_b", F.pmod(F.xxhash64(*keys), F.lit(n))).groupBy("_b")
                   .applyInPandas(lambda rows: _flag_group(kind, rows), schema))
        rejected = out.where(F.col("_rej_reason").isNotNull()).withColumn("status", F.lit("rejected"))
        return flagged.unionByName(rejected)

    def _rejects(self, flagged, names: dict) -> pd.DataFrame:
        """The rejected and conflicting rows' reject fields, in file and line order."""
        from pyspark.sql import functions as F  # optional dependency (the [spark] extra)

        rows = flagged.where(F.col("status").isin("rejected", "conflict")).select(
            "_fidx", "_line", *_REJ).orderBy("_fidx", "_line").toPandas()
        return pd.DataFrame({"file": rows["_fidx"].map(names).to_numpy(dtype=object),
                             "line": rows["_line"].to_numpy(np.int64),
                             "column": rows["_rej_column"].to_numpy(object),
                             "reason": rows["_rej_reason"].to_numpy(object),
                             "value": rows["_rej_value"].to_numpy(object)})

    def _write(self, home: Path, run_id: str, kind: str, kept) -> None:
        """Write the kept rows as ``staging/<kind>/run=<run_id>/part-*.parquet`` (temp dir, then rename)."""
        from pyspark.sql import functions as F  # optional dependency (the [spark] extra)

        schema = STAGED_SCHEMAS[kind]
        frame = kept.withColumn("run_id", F.lit(run_id)).select(*schema.names)
        tmp = staging_tmp_dir(home, kind, run_id)
        frame.write.option("compression", "zstd").mode("overwrite").parquet(str(tmp))
        commit_staged_dir(home, kind, run_id, tmp)
