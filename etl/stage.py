"""Staged data under POSGUARD_HOME/staging/<kind>/run=<run_id>/: tokenized Parquet, the scoring's input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from etl.contract import REFERENCE_KEYS

__all__ = ["STAGED_SCHEMAS", "write_staged", "read_staged", "committed_runs", "committed_paths", "staged_row_hashes",
           "discard_uncommitted"]

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


def _staging(home: Path) -> Path:
    return Path(home) / "staging"


def committed_runs(home: Path) -> list[str]:
    """Run ids whose staging is complete (their manifest says so), oldest first."""
    runs_dir = Path(home) / "runs"
    done = []
    for manifest in sorted(runs_dir.glob("*/manifest.json")) if runs_dir.exists() else []:
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
    root = _staging(home)
    for run_dir in root.glob("*/run=*") if root.exists() else []:
        run_id = run_dir.name.removeprefix("run=")
        if run_id not in committed:
            shutil.rmtree(run_dir, ignore_errors=True)
            removed.add(run_id)
    shutil.rmtree(root / ".tmp", ignore_errors=True)
    return sorted(removed)


def write_staged(home: Path, run_id: str, kind: str, frame: pd.DataFrame) -> list[Path]:
    """Write one kind of one run as Parquet parts with the staged schema; visible only when complete.

    Parts are written in a temporary directory and renamed into ``staging/<kind>/run=<run_id>``; the run
    counts as staged only once its manifest is committed (:func:`committed_runs`).
    """
    schema = STAGED_SCHEMAS[kind]
    frame = frame.assign(run_id=run_id)
    table = pa.Table.from_pandas(frame[schema.names], schema=schema, preserve_index=False)
    tmp = _staging(home) / ".tmp" / f"{kind}-{run_id}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    parts = []
    for i, start in enumerate(range(0, max(table.num_rows, 1), _ROWS_PER_PART)):
        part = tmp / f"part-{i}.parquet"
        pq.write_table(table.slice(start, _ROWS_PER_PART), part, compression="zstd")
        parts.append(part)
    final = _staging(home) / kind / f"run={run_id}"
    final.parent.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    return [final / p.name for p in parts]


def committed_paths(home: Path, kind: str) -> list[Path]:
    """The Parquet parts of every committed run of ``kind``, oldest run first (both engines read these)."""
    return [p for r in committed_runs(home) for p in sorted((_staging(home) / kind / f"run={r}").glob("*.parquet"))]


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
        order = pc.sort_indices(table, sort_keys=[("run_id", "descending")])
        frame = table.take(order).to_pandas()
        frame = frame.drop_duplicates(list(keys), keep="first").sort_values(list(keys))
        table = pa.Table.from_pandas(frame[read_cols], schema=pa.schema([schema.field(c) for c in read_cols]),
                                     preserve_index=False)
    return table.select(wanted)


def staged_row_hashes(home: Path, kind: str, keys: tuple[str, ...]) -> pd.DataFrame:
    """Key columns and row_hash of every committed staged row of ``kind`` (for duplicate detection)."""
    return read_staged(home, kind, columns=list(keys) + ["row_hash"]).to_pandas()
