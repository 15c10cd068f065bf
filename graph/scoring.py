"""Run every detector over one projection and write the contract's five Parquet outputs."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

__all__ = ["ScoreResult", "run_detectors", "write_outputs", "OUTPUT_SCHEMAS"]

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


def _timed(seconds: dict, name: str, func):
    started = time.perf_counter()
    out = func()
    seconds[name] = time.perf_counter() - started
    log.info("%s: %.2fs", name, seconds[name])
    return out


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
    from graph.detectors.queue import build_alerts
    from graph.detectors.cloned import ClonedCardDetector
    from graph.detectors.terminal import IntegrityDetector
    from graph.detectors.merchant_networks import MerchantNetworkDetector
    from graph.detectors.collusion import RingDetector
    from graph.detectors.skimming import SkimmingDetector

    params = params or {}
    created_at = created_at or datetime.now(timezone.utc)
    seconds: dict[str, float] = {}
    skim = _timed(seconds, "skimming", lambda: SkimmingDetector(**params.get("skimming", {})).fit(projection))
    cloned = _timed(seconds, "cloned", lambda: ClonedCardDetector(**params.get("cloned", {})).fit(projection))
    rings = _timed(seconds, "rings", lambda: RingDetector(**params.get("rings", {})).fit(projection))
    networks = _timed(seconds, "networks",
                      lambda: MerchantNetworkDetector(**params.get("networks", {})).fit(projection))
    integrity = _timed(seconds, "integrity",
                       lambda: IntegrityDetector(**params.get("integrity", {})).fit(projection))
    all_rings = pd.concat([rings.rings_, networks.rings_], ignore_index=True)
    alerts = _timed(seconds, "alerts", lambda: build_alerts(skim.points_, cloned.cards_, all_rings,
                                                            integrity.findings_, created_at))
    frames = {"skimming_points": skim.points_, "cloned_cards": cloned.cards_, "rings": all_rings,
              "terminal_findings": integrity.findings_, "alerts": alerts}
    return ScoreResult(frames=frames, seconds=seconds, created_at=created_at)


def _to_table(name: str, frame: pd.DataFrame) -> pa.Table:
    schema = OUTPUT_SCHEMAS[name]
    missing = [c for c in schema.names if c not in frame.columns]
    if missing:
        raise ValueError(f"{name}: the detector's output lacks the contract's columns {missing}")
    extra = [c for c in frame.columns if c not in schema.names]
    table = pa.Table.from_pandas(frame[schema.names + extra], preserve_index=False)
    columns = [table.column(n).cast(schema.field(n).type) for n in schema.names]
    fields = list(schema) + [table.schema.field(n) for n in extra]
    return pa.Table.from_arrays(columns + [table.column(n) for n in extra], schema=pa.schema(fields))


def write_outputs(result: ScoreResult, out_dir: Path) -> dict[str, Path]:
    """Write each output as ``out_dir/<name>.parquet`` (atomically: temp file, then rename)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = {}
    for name, frame in result.frames.items():
        path = out_dir / f"{name}.parquet"
        tmp = path.with_suffix(".parquet.tmp")
        pq.write_table(_to_table(name, frame), tmp)
        tmp.replace(path)
        written[name] = path
    return written
