"""Run every detector over one projection and write the contract's five Parquet outputs."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from functools import partial
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from graph.detectors.queue import build_alerts

__all__ = ["ScoreResult", "run_detectors", "fit_detector", "DETECTORS", "write_outputs", "output_table",
           "OUTPUT_SCHEMAS", "assemble_outputs", "timed"]

log = logging.getLogger("posguard.score")

_TS = pa.timestamp("us", tz="UTC")
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


@dataclass
class ScoreResult:
    """The outputs of one scoring run, as DataFrames, with seconds per detector."""

    frames: dict[str, pd.DataFrame]
    seconds: dict[str, float] = field(default_factory=dict)
    created_at: datetime | None = None

    def summary(self) -> str:
        f = self.frames
        return (f"{len(f['skimming_points'])} skimming points, {len(f['cloned_cards'])} cloned cards, "
                f"{f['rings']['ring_id'].nunique() if len(f['rings']) else 0} rings, "
                f"{len(f['terminal_findings'])} terminal findings, {len(f['alerts'])} alerts")


def timed(seconds: dict, name: str, func, logger: logging.Logger = log):
    """``func()``, its seconds recorded as ``seconds[name]`` and logged (both engines time their steps so)."""
    started = time.perf_counter()
    out = func()
    seconds[name] = time.perf_counter() - started
    logger.info("%s: %.2fs", name, seconds[name])
    return out


# detector name -> (module, class, the fitted attribute holding its result table); run in this order.
DETECTORS = {
    "skimming": ("graph.detectors.skimming", "SkimmingDetector", "points_"),
    "cloned": ("graph.detectors.cloned", "ClonedCardDetector", "cards_"),
    "rings": ("graph.detectors.collusion", "RingDetector", "rings_"),
    "networks": ("graph.detectors.merchant_networks", "MerchantNetworkDetector", "rings_"),
    "integrity": ("graph.detectors.terminal", "IntegrityDetector", "findings_"),
}


def fit_detector(name: str, projection, **params):
    """The detector ``name`` (a key of ``DETECTORS``) built with ``params`` and fitted on ``projection``.

    Example
    -------
    >>> fit_detector("cloned", projection, max_speed_kmh=700).cards_  # doctest: +SKIP
    """
    import importlib

    if name not in DETECTORS:
        raise ValueError(f"no detector {name!r}; choose one of {', '.join(DETECTORS)}")
    module, cls, _ = DETECTORS[name]
    return getattr(importlib.import_module(module), cls)(**params).fit(projection)


def run_detectors(projection, *, created_at: datetime | None = None, params: dict | None = None) -> ScoreResult:
    """Fit every detector on ``projection`` and assemble the outputs and the alert queue.

    Parameters
    ----------
    projection : graph.projection.Projection
        Built once and shared by every detector.
    created_at : datetime, optional
        Timestamp of the alerts (default now, UTC).
    params : dict, optional
        Per-detector constructor parameters: keys ``skimming``, ``cloned``, ``rings``, ``networks``,
        ``integrity``.

    Returns
    -------
    ScoreResult
    """
    params = params or {}
    created_at = created_at or datetime.now(timezone.utc)
    seconds: dict[str, float] = {}
    tables = {}
    for name, (_, _, attr) in DETECTORS.items():
        fitted = timed(seconds, name, partial(fit_detector, name, projection, **params.get(name, {})))
        tables[name] = getattr(fitted, attr)
        if name == "skimming":  # the cards exposed at its accepted points of compromise
            tables["exposed_cards"] = fitted.exposed_
    frames = timed(seconds, "alerts", lambda: assemble_outputs(tables, created_at))
    return ScoreResult(frames=frames, seconds=seconds, created_at=created_at)


def assemble_outputs(tables: dict[str, pd.DataFrame], created_at: datetime) -> dict[str, pd.DataFrame]:
    """The six outputs of the contract from the detectors' result tables, the alert queue built from them.

    Parameters
    ----------
    tables : dict
        The result table of each detector by its ``DETECTORS`` name (``skimming``, ``cloned``, ``rings``,
        ``networks``, ``integrity``) and the skimming detector's ``exposed_cards``.
    created_at : datetime
        Timestamp of the alerts.

    Returns
    -------
    dict
        ``OUTPUT_SCHEMAS`` name -> frame: both ring families in one ``rings`` table, and ``alerts``.
    """
    rings = pd.concat([tables["rings"], tables["networks"]], ignore_index=True)
    alerts = build_alerts(tables["skimming"], tables["cloned"], rings, tables["integrity"], created_at)
    return {"skimming_points": tables["skimming"], "cloned_cards": tables["cloned"], "rings": rings,
            "terminal_findings": tables["integrity"], "exposed_cards": tables["exposed_cards"], "alerts": alerts}


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


def write_outputs(result: ScoreResult, out_dir: Path) -> dict[str, Path]:
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
    missing = [name for name in OUTPUT_SCHEMAS if name not in result.frames]
    if missing:
        raise ValueError(f"scoring produced no {', '.join(missing)}: nothing written")
    tables = {name: output_table(name, result.frames[name]) for name in OUTPUT_SCHEMAS}
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
