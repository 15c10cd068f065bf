"""The ETL job: wires extract -> validate/tokenize -> de-duplicate -> stage -> manifest -> load."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import pandas as pd

from etl.contract import kind_of_file
from etl.errors import DropError
from etl.extract import RawFile, read_file, scan_drop, shown_name
from etl.lock import etl_lock
from etl.manifest import fingerprint, read_manifests, write_manifest, write_rejects
from etl.redact import redact_pans, redact_values
from etl.rules import VALIDATION_ORDER, check_part, concat_rejects, dedupe, kind_counts, known_references
from etl.validate import Limits
from graph.catalog import (DUPLICATE_KEYS, REFERENCE_KEYS, discard_uncommitted, new_run_id, run_dir, staged_row_hashes,
                           write_staged)
from graph.settings import posguard_version

__all__ = ["run_drop", "run_all", "RunResult", "is_drop", "VALIDATION_ORDER", "LocalEngine"]

log = logging.getLogger("posguard.etl")

Loader = Callable[[str], dict]


@dataclass
class RunResult:
    """What one drop's run did."""

    drop: Path
    run_id: str
    status: str  # loaded | staged | skipped
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    run_path: Path | None = None

    def summary(self) -> str:
        if self.status == "skipped":
            return f"{self.drop}: already loaded as run {self.run_id}, skipped"
        t = self.counts.get("transactions", {})
        rej = sum(c["rejected"] for c in self.counts.values())
        dup = sum(c["duplicate"] for c in self.counts.values())
        return (f"{self.drop}: run {self.run_id} {self.status}: {t.get('loaded', 0):,} of {t.get('read', 0):,} "
                f"transactions loaded, {dup:,} duplicates, {rej:,} rejects, "
                f"{sum(self.seconds.values()):.1f}s")


def is_drop(path: Path) -> bool:
    """True when ``path`` holds transaction files directly (CSV, compressed CSV or Parquet)."""
    return Path(path).is_dir() and any(kind_of_file(p.name) == "transactions" for p in Path(path).iterdir())


def _redacted(exc: DropError, key: bytes | None) -> DropError:
    """The same error with PAN-looking numbers in its file name and message tokenized."""
    text = str(exc).encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    clean = DropError.__new__(DropError)
    ValueError.__init__(clean, redact_pans(text, key))
    clean.file, clean.line, clean.column = redact_pans(shown_name(exc.file), key), exc.line, exc.column
    return clean


class LocalEngine:
    """The single-machine engine: pandas and pyarrow in this process (the default)."""

    name = "local"

    def inspect(self, drop: Path) -> tuple[list[dict], list[RawFile]]:
        """(inputs of the manifest, state for ``stage``): every file read and checksummed."""
        raws = []
        files, _ = scan_drop(drop)
        for kind, path in files:
            raws.append(read_file(path, kind))
            log.debug("read %s: %s rows", shown_name(path), f"{raws[-1].rows_read:,}")
        inputs = [{"name": shown_name(r.path), "kind": r.kind, "sha256": r.sha256, "bytes": r.size,
                   "rows": r.rows_read} for r in raws]
        return inputs, raws

    def stage(self, raws: list[RawFile], settings, home: Path, run_id: str, limits: Limits | None = None):
        """Validate, de-duplicate and write the staging of ``run_id``: (counts, rejects, timings)."""
        t0 = time.perf_counter()
        frames, rejects, counts = _validate_all(raws, settings, home, limits or Limits())
        timings = {"validate": time.perf_counter() - t0}
        t0 = time.perf_counter()
        for kind, frame in frames.items():
            write_staged(home, run_id, kind, frame)
        timings["stage"] = time.perf_counter() - t0
        return counts, rejects, timings


def _previous(home: Path, fp: str) -> dict | None:
    for manifest in reversed(read_manifests(home)):
        if manifest.get("fingerprint") == fp and manifest.get("staged"):
            return manifest
    return None


def _load(home: Path, manifest: dict, load: Loader, result: RunResult) -> None:
    started = time.perf_counter()
    manifest["load"] = load(manifest["run_id"])
    manifest["loaded"] = True
    manifest["timings"]["load"] = result.seconds["load"] = time.perf_counter() - started
    write_manifest(home, manifest["run_id"], manifest)
    result.status = "loaded"


def run_drop(drop: Path, settings, *, load: Loader | None = None, engine=None) -> RunResult:
    """Validate, tokenize, stage and (with ``load``) load one drop; skip it if already loaded.

    Every input row ends up staged, counted as a duplicate, or in the run's rejects.csv. A file that
    cannot be read at all raises :class:`etl.errors.DropError` before anything is written.

    Parameters
    ----------
    drop : Path
        A directory of input files.
    settings : graph.settings.Settings
        ``home``, ``token_key`` and ``source_tz`` are used.
    load : callable, optional
        ``load(run_id) -> dict`` writes a staged run into Neo4j; a run staged earlier whose load failed
        is loaded again when the same drop comes back.
    engine : LocalEngine or etl.spark.SparkEngine, optional
        Reads, validates and stages the drop (default: :class:`LocalEngine`); both give the same staging.

    Returns
    -------
    RunResult
    """
    home, drop = Path(settings.home), Path(drop)
    engine = engine or LocalEngine()
    started = datetime.now(timezone.utc)
    limits = Limits.from_settings(settings, started)
    with etl_lock(home):
        discard_uncommitted(home)
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        try:
            _, ignored = scan_drop(drop)
            inputs, state = engine.inspect(drop)
        except DropError as exc:
            raise _redacted(exc, settings.token_key) from None
        for item in inputs + ignored:  # file names are written and printed: a PAN in one becomes its token
            item["name"] = redact_pans(item["name"], settings.token_key)
        for item in ignored:
            log.warning("%s: ignored %s: %s", shown_name(drop), item["name"], item["reason"])
        timings["extract"] = time.perf_counter() - t0
        fp = fingerprint(inputs)
        previous = _previous(home, fp)
        if previous is not None:
            result = RunResult(drop, previous["run_id"], "skipped" if previous.get("loaded") or load is None
                               else "staged", previous.get("counts", {}), {}, run_dir(home, previous["run_id"]))
            if result.status == "staged":
                log.info("drop %s was staged as run %s but not loaded; loading it now", drop, previous["run_id"])
                _load(home, previous, load, result)
            else:
                log.info("drop %s already loaded as run %s (same files, same checksums); skipped", drop,
                         previous["run_id"])
            return result
        run_id = new_run_id()
        result = RunResult(drop, run_id, "staged", run_path=run_dir(home, run_id))
        counts, rejects, stage_timings = engine.stage(state, settings, home, run_id, limits)
        timings |= stage_timings
        for col in ("file", "value"):  # a PAN typed anywhere (swapped columns, a file name): its token only
            rejects[col] = redact_values(rejects[col].to_numpy(dtype=object), settings.token_key)
        t0 = time.perf_counter()
        write_rejects(home, run_id, rejects)
        timings["stage"] = timings.get("stage", 0.0) + time.perf_counter() - t0
        shown_drop = str(drop.resolve()).encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        manifest = {"run_id": run_id, "drop": redact_pans(shown_drop, settings.token_key),
                    "fingerprint": fp, "inputs": inputs, "ignored": ignored, "limits": limits.as_dict(),
                    "counts": counts, "rejected_reasons": rejects["reason"].value_counts().to_dict(),
                    "timings": timings, "version": posguard_version(), "engine": engine.name, "staged": True,
                    "loaded": False, "created_at": datetime.now(timezone.utc).isoformat()}
        write_manifest(home, run_id, manifest)  # from here on the run's staging counts
        result.counts, result.seconds = counts, timings
        log.info("staged run %s: %s", run_id, ", ".join(f"{k} {c['loaded']:,}" for k, c in counts.items()))
        if load is not None:
            _load(home, manifest, load, result)
        return result


def _validate_all(raws: list[RawFile], settings, home: Path, limits: Limits):
    """Validate every file, kind by kind in VALIDATION_ORDER, then de-duplicate each kind (``etl.rules``)."""
    by_kind: dict[str, list[RawFile]] = {}
    for raw in raws:
        by_kind.setdefault(raw.kind, []).append(raw)
    frames: dict[str, pd.DataFrame] = {}
    rejects: list[pd.DataFrame] = []
    counts: dict[str, dict[str, int]] = {}
    known: dict = {"terminal_id": None, "merchant_id": None}
    token_cache: dict = {}  # raw values -> tokens, in memory for this run only
    for kind in VALIDATION_ORDER:
        known = known_references(home, kind, known, {k: frames[k][REFERENCE_KEYS[k][0]] for k in frames
                                                     if k in REFERENCE_KEYS})
        parts, read = [], 0
        for raw in by_kind.get(kind, []):
            read += raw.rows_read
            checked = check_part(kind, raw.frame, raw.lines, shown_name(raw.path), raw.bad_rows,
                                 key=settings.token_key, source_tz=settings.source_tz, known=known,
                                 token_cache=token_cache, limits=limits)
            parts.append(checked.valid.assign(_file=shown_name(raw.path)))
            rejects.append(checked.rejects)
        if not by_kind.get(kind):
            continue
        frame = pd.concat(parts, ignore_index=True)
        kept, duplicates, conflicts = dedupe(kind, frame, staged_row_hashes(home, kind, DUPLICATE_KEYS[kind]))
        rejects.append(conflicts)
        frames[kind] = kept.drop(columns=["_file", "_line"])
        counts[kind] = kind_counts(read, len(kept), duplicates)
    return frames, concat_rejects(rejects), counts


def run_all(root: Path, settings, *, load: Loader | None = None, engine=None) -> list[RunResult]:
    """Run ``root`` if it is a drop, else every drop directly under it, in name order (for cron)."""
    root = Path(root)
    if not root.is_dir():
        raise DropError(str(root), "not a directory")
    if is_drop(root):
        return [run_drop(root, settings, load=load, engine=engine)]
    drops = sorted(p for p in root.iterdir() if is_drop(p))
    if not drops:
        raise DropError(str(root), "no drop here: neither transaction files nor sub-directories holding them")
    return [run_drop(d, settings, load=load, engine=engine) for d in drops]
