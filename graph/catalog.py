"""The catalog: where every dataset of a posguard home lives, its schema, and how it is read and written.

One owner per dataset, whichever engine runs the pipeline (the local one or Spark):

- ``POSGUARD_HOME/staging/<kind>/run=<run_id>/part-<n>.parquet``: tokenized input rows (the scoring's input),
  one folder per ETL run and kind, visible once the run's manifest is committed;
- ``POSGUARD_HOME/runs/<run_id>/``: the run's manifest and rejects (written by ``etl.manifest``);
- a scoring run's output folder: the contract's six Parquet outputs, written all or nothing.

Reference kinds (terminals, merchants, approved firmware) keep one row per key: the latest run wins
(:func:`latest_per_key`, the one statement of that rule).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq


__all__ = ["STAGED_SCHEMAS", "REFERENCE_KEYS", "DUPLICATE_KEYS", "TXN_COLUMNS", "REQUIRED_TXN_COLUMNS",
           "REFERENCE_KINDS", "OUTPUT_SCHEMAS", "staging_dir", "staged_run_dir", "staging_tmp_dir", "commit_staged_dir",
           "runs_dir", "run_dir", "new_run_id", "write_staged", "read_staged",
           "committed_runs", "committed_paths", "staged_row_hashes", "staged_reference", "latest_per_key",
           "discard_uncommitted", "output_table", "write_outputs"]

_TS = pa.timestamp("us", tz="UTC")
_S = pa.string()
STAGED_SCHEMAS: dict[str, pa.Schema] = {
    "transactions": pa.schema([
        ("txn_id", _S), ("ts", _TS), ("card_token", _S), ("pan_last4", _S), ("terminal_id", _S),
        ("merchant_id", _S), ("amount", pa.float64()), ("currency", _S), ("txn_type", _S), ("entry_mode", _S),
        ("response_code", _S), ("atc", pa.int64()), ("stan", pa.int64()), ("mcc", _S), ("lat", pa.float64()),
        ("lon", pa.float64()), ("row_hash", _S), ("run_id", _S)]),
    "terminals": pa.schema([
        ("terminal_id", _S), ("merchant_id", _S), ("serial_no", _S), ("model", _S), ("firmware_hash", _S),
        ("lat", pa.float64()), ("lon", pa.float64()), ("installed_at", _TS), ("row_hash", _S), ("run_id", _S)]),
    "merchants": pa.schema([
        ("merchant_id", _S), ("name", _S), ("mcc", _S), ("owner_token", _S), ("phone_token", _S),
        ("bank_account_token", _S), ("address", _S), ("city", _S), ("lat", pa.float64()), ("lon", pa.float64()),
        ("agent_id", _S), ("onboarded_at", _TS), ("row_hash", _S), ("run_id", _S)]),
    "fraud_reports": pa.schema([
        ("card_token", _S), ("pan_last4", _S), ("reported_at", _TS), ("first_fraud_at", _TS), ("fraud_type", _S),
        ("txn_id", _S), ("row_hash", _S), ("run_id", _S)]),
    "approved_firmware": pa.schema([
        ("firmware_hash", _S), ("model", _S), ("approved_at", _TS), ("row_hash", _S), ("run_id", _S)]),
    "terminal_events": pa.schema([
        ("terminal_id", _S), ("ts", _TS), ("event", _S), ("firmware_hash", _S), ("ip", _S),
        ("lat", pa.float64()), ("lon", pa.float64()), ("row_hash", _S), ("run_id", _S)]),
}
_ROWS_PER_PART = 2_000_000

# Reference kinds: one row per key in a drop (a later run replaces it).
REFERENCE_KEYS = {"terminals": ("terminal_id",), "merchants": ("merchant_id",),
                  "approved_firmware": ("firmware_hash",)}
# What makes two rows "the same row again" (a duplicate if identical, else a conflict for unique ids).
DUPLICATE_KEYS = {"transactions": ("txn_id",), **REFERENCE_KEYS,
                  "fraud_reports": ("card_token", "reported_at", "fraud_type", "txn_id"),
                  "terminal_events": ("terminal_id", "ts", "event")}
# The staged transaction columns the scoring reads (both engines).
TXN_COLUMNS = ["txn_id", "ts", "card_token", "terminal_id", "merchant_id", "amount", "txn_type",
               "entry_mode", "response_code", "atc", "stan", "mcc", "lat", "lon"]
REQUIRED_TXN_COLUMNS = TXN_COLUMNS[:4]  # txn_id, ts, card_token, terminal_id: a projection needs these
# The kinds besides transactions that the projection takes, as ``Projection.from_frames`` arguments.
REFERENCE_KINDS = ("terminals", "merchants", "fraud_reports", "approved_firmware", "terminal_events")

# The contract's output columns and their Arrow types, in the contract's order; detectors may add columns after.
# The contract's columns and their Arrow types, in the contract's order; detectors may add columns after.
OUTPUT_SCHEMAS: dict[str, pa.Schema] = {
    "skimming_points": pa.schema([
        ("terminal_id", pa.string()), ("merchant_id", pa.string()), ("rank", pa.int64()), ("score", pa.float64()),
        ("p_value", pa.float64()), ("compromised_cards", pa.int64()), ("cards_seen", pa.int64()),
        ("window_start", _TS), ("window_end", _TS)]),
    "cloned_cards": pa.schema([
        ("card_token", pa.string()), ("score", pa.float64()), ("reasons", pa.string()),
        ("first_evidence_at", _TS), ("evidence_txn_ids", pa.list_(pa.string()))]),
    "rings": pa.schema([
        ("ring_id", pa.string()), ("kind", pa.string()), ("score", pa.float64()), ("member_type", pa.string()),
        ("member_id", pa.string())]),
    "terminal_findings": pa.schema([
        ("terminal_id", pa.string()), ("merchant_id", pa.string()), ("kind", pa.string()), ("score", pa.float64()),
        ("details", pa.string()), ("first_seen", _TS), ("last_seen", _TS)]),
    "exposed_cards": pa.schema([
        ("card_token", pa.string()), ("terminal_id", pa.string()), ("mode", pa.string()), ("first_exposed_at", _TS),
        ("p_compromised", pa.float64()), ("reported", pa.bool_()), ("recommended_action", pa.string())]),
    "alerts": pa.schema([
        ("alert_id", pa.string()), ("entity_type", pa.string()), ("entity_id", pa.string()), ("kind", pa.string()),
        ("score", pa.float64()), ("severity", pa.string()), ("created_at", _TS), ("summary", pa.string())]),
}


def staging_dir(home: Path) -> Path:
    """``POSGUARD_HOME/staging``."""
    return Path(home) / "staging"


def staged_run_dir(home: Path, kind: str, run_id: str) -> Path:
    """The folder of one run's staged rows of ``kind``."""
    return staging_dir(home) / kind / f"run={run_id}"


def runs_dir(home: Path) -> Path:
    """``POSGUARD_HOME/runs``: one folder per ETL run (manifest, rejects)."""
    return Path(home) / "runs"


def run_dir(home: Path, run_id: str) -> Path:
    """The folder of one ETL run's manifest and rejects."""
    return runs_dir(home) / run_id


def new_run_id(now: datetime | None = None) -> str:
    """``YYYYMMDDTHHMMSSffffffZ-<8 hex>``: sorts by time to the microsecond, so that "the latest run wins" is an
    order of ids, also for two runs started within the same second (the random part only separates runs
    started in the same microsecond, on different machines)."""
    now = now or datetime.now(timezone.utc)
    return now.strftime("%Y%m%dT%H%M%S%fZ") + "-" + secrets.token_hex(4)


def latest_per_key(frame: pd.DataFrame, keys) -> pd.DataFrame:
    """One row per key of a reference kind: the latest run's (by ``run_id``; without it, the last row's).

    Example
    -------
    >>> f = pd.DataFrame({"terminal_id": ["T1", "T1"], "model": ["old", "new"], "run_id": ["r1", "r2"]})
    >>> latest_per_key(f, ["terminal_id"])["model"].tolist()
    ['new']
    """
    keys = list(keys)
    if "run_id" in frame.columns:
        frame = frame.sort_values("run_id", kind="stable")
    return frame.drop_duplicates(keys, keep="last").reset_index(drop=True)


def committed_runs(home: Path) -> list[str]:
    """Run ids whose staging is complete (their manifest says so), oldest first."""
    root = runs_dir(home)
    done = []
    for manifest in sorted(root.glob("*/manifest.json")) if root.exists() else []:
        try:
            status = json.loads(manifest.read_text()).get("staged")
        except ValueError:
            continue
        if status:
            done.append(manifest.parent.name)
    return done


def discard_uncommitted(home: Path) -> list[str]:
    """Remove staged run directories without a committed manifest (left by a crash); return their ids."""
    committed = set(committed_runs(home))
    removed = set()
    root = staging_dir(home)
    for run_dir in root.glob("*/run=*") if root.exists() else []:
        run_id = run_dir.name.removeprefix("run=")
        if run_id not in committed:
            shutil.rmtree(run_dir, ignore_errors=True)
            removed.add(run_id)
    shutil.rmtree(root / ".tmp", ignore_errors=True)
    return sorted(removed)


def staging_tmp_dir(home: Path, kind: str, run_id: str) -> Path:
    """An empty temporary folder for one run's parts of ``kind`` (what :func:`commit_staged_dir` moves into place)."""
    tmp = staging_dir(home) / ".tmp" / f"{kind}-{run_id}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    return tmp


def commit_staged_dir(home: Path, kind: str, run_id: str, tmp: Path) -> Path:
    """Move a finished temporary folder of Parquet parts into ``staging/<kind>/run=<run_id>`` (replacing any
    earlier attempt of the same run), dropping writers' side files (``_SUCCESS``, ``.crc``); returns the folder.
    Both engines stage through it, so that a run's parts appear at once or not at all."""
    for junk in list(tmp.glob("_*")) + list(tmp.glob(".*.crc")):
        junk.unlink()
    final = staged_run_dir(home, kind, run_id)
    final.parent.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    return final


def write_staged(home: Path, run_id: str, kind: str, frame: pd.DataFrame) -> list[Path]:
    """Write one kind of one run as Parquet parts with the staged schema; visible only when complete.

    Parts are written in a temporary directory and renamed into ``staging/<kind>/run=<run_id>``; the run
    counts as staged only once its manifest is committed (:func:`committed_runs`).
    """
    schema = STAGED_SCHEMAS[kind]
    frame = frame.assign(run_id=run_id)
    table = pa.Table.from_pandas(frame[schema.names], schema=schema, preserve_index=False)
    tmp = staging_tmp_dir(home, kind, run_id)
    tmp.mkdir()
    names = []
    for i, start in enumerate(range(0, max(table.num_rows, 1), _ROWS_PER_PART)):
        names.append(f"part-{i}.parquet")
        pq.write_table(table.slice(start, _ROWS_PER_PART), tmp / names[-1], compression="zstd")
    final = commit_staged_dir(home, kind, run_id, tmp)
    return [final / name for name in names]


def committed_paths(home: Path, kind: str) -> list[Path]:
    """The Parquet parts of every committed run of ``kind``, oldest run first (both engines read these)."""
    return [p for r in committed_runs(home) for p in sorted(staged_run_dir(home, kind, r).glob("*.parquet"))]


def read_staged(home: Path, kind: str, columns: list[str] | None = None) -> pa.Table:
    """All committed staged rows of ``kind``; for reference kinds only the latest run's row per key.

    Parameters
    ----------
    home : Path
        POSGUARD_HOME.
    kind : str
        An input kind.
    columns : list of str, optional
        Columns to read (``run_id`` is always available).

    Returns
    -------
    pyarrow.Table
        With the staged schema (empty when nothing is staged).
    """
    schema = STAGED_SCHEMAS[kind]
    paths = committed_paths(home, kind)
    wanted = list(columns) if columns else schema.names
    if not paths:
        return schema.empty_table().select(wanted)
    keys = REFERENCE_KEYS.get(kind, ())
    read_cols = list(dict.fromkeys(wanted + list(keys) + (["run_id"] if keys else [])))
    table = ds.dataset(paths, schema=schema, format="parquet").to_table(columns=read_cols)
    if keys:
        frame = latest_per_key(table.to_pandas(), keys).sort_values(list(keys))
        table = pa.Table.from_pandas(frame[read_cols], schema=pa.schema([schema.field(c) for c in read_cols]),
                                     preserve_index=False)
    return table.select(wanted)


def staged_row_hashes(home: Path, kind: str, keys: tuple[str, ...]) -> pd.DataFrame:
    """Key columns and row_hash of every committed staged row of ``kind`` (for duplicate detection)."""
    return read_staged(home, kind, columns=list(keys) + ["row_hash"]).to_pandas()


def staged_reference(home: str | Path) -> dict[str, pd.DataFrame | None]:
    """The staged reference kinds as ``Projection.from_frames`` keyword arguments (None for a kind never staged)."""
    return {name: read_staged(home, name).to_pandas() if (staging_dir(home) / name).exists() else None
            for name in REFERENCE_KINDS}


def output_table(name: str, frame: pd.DataFrame) -> pa.Table:
    """``frame`` as an Arrow table: the contract's columns first, in its types (also when empty), then extras."""
    schema = OUTPUT_SCHEMAS[name]
    missing = [c for c in schema.names if c not in frame.columns]
    if missing:
        raise ValueError(f"{name}: the detector's output lacks the contract's columns {missing}")
    extra = [c for c in frame.columns if c not in schema.names]
    if not len(frame):  # nothing to infer a type from: the contract's types; numbers stay numbers, else strings
        fields = list(schema) + [pa.field(n, pa.from_numpy_dtype(frame[n].dtype) if frame[n].dtype.kind in "biuf"
                                          else pa.string()) for n in extra]
        return pa.schema(fields).empty_table()
    table = pa.Table.from_pandas(frame[schema.names + extra], preserve_index=False)
    columns = [table.column(n).cast(schema.field(n).type) for n in schema.names]
    fields = list(schema) + [table.schema.field(n) for n in extra]
    return pa.Table.from_arrays(columns + [table.column(n) for n in extra], schema=pa.schema(fields))


def write_outputs(frames: dict[str, pd.DataFrame], out_dir: Path) -> dict[str, Path]:
    """Write every output as ``out_dir/<name>.parquet``, all or nothing.

    Every frame is converted first (a frame that breaks the contract raises before anything is written), the
    files are written into a temporary folder inside ``out_dir`` and only then renamed into place together;
    on any error the previous outputs stay as they were and the temporary folder is removed.

    Raises
    ------
    ValueError
        An output is missing or lacks the contract's columns.
    """
    out_dir = Path(out_dir)
    missing = [name for name in OUTPUT_SCHEMAS if name not in frames]
    if missing:
        raise ValueError(f"scoring produced no {', '.join(missing)}: nothing written")
    tables = {name: output_table(name, frames[name]) for name in OUTPUT_SCHEMAS}
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".score-", dir=out_dir))
    try:
        for name, table in tables.items():
            pq.write_table(table, tmp / f"{name}.parquet")
        written = {}
        for name in tables:
            written[name] = out_dir / f"{name}.parquet"
            os.replace(tmp / f"{name}.parquet", written[name])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return written
