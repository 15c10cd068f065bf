"""Run manifests (POSGUARD_HOME/runs/<run_id>/manifest.json) and their rejects.csv."""

from __future__ import annotations

import json
import os
import secrets
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

__all__ = ["new_run_id", "write_manifest", "read_manifests", "write_rejects", "run_dir", "fingerprint",
           "posguard_version"]


def posguard_version() -> str:
    """The installed posguard version."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("posguard")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0+unknown"


def new_run_id(now: datetime | None = None) -> str:
    """``YYYYMMDDTHHMMSSZ-<8 hex>``: sorts by time."""
    now = now or datetime.now(timezone.utc)
    return now.strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(4)


def run_dir(home: Path, run_id: str) -> Path:
    return Path(home) / "runs" / run_id


def fingerprint(inputs: list[dict]) -> str:
    """Identity of a drop's content: the sorted (name, sha256) pairs of its files."""
    return json.dumps(sorted((i["name"], i["sha256"]) for i in inputs))


def write_manifest(home: Path, run_id: str, manifest: dict) -> Path:
    """Write (atomically) the manifest of ``run_id``; checks read == loaded + duplicate + rejected."""
    for kind, c in manifest.get("counts", {}).items():
        if c["read"] != c["loaded"] + c["duplicate"] + c["rejected"]:
            raise AssertionError(f"{kind}: {c['read']} rows read but {c['loaded']} loaded + {c['duplicate']} "
                                 f"duplicate + {c['rejected']} rejected")
    path = run_dir(home, run_id) / "manifest.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(manifest, indent=2, default=str))
    os.replace(tmp, path)
    return path


def read_manifests(home: Path) -> list[dict]:
    """Every run's manifest, oldest first."""
    runs = Path(home) / "runs"
    out = []
    for path in sorted(runs.glob("*/manifest.json")) if runs.exists() else []:
        try:
            out.append(json.loads(path.read_text()))
        except ValueError:
            continue
    return out


def write_rejects(home: Path, run_id: str, rejects: pd.DataFrame) -> Path:
    """Write the run's rejects.csv (file, line, column, reason, value; SECRET values already tokenized)."""
    path = run_dir(home, run_id) / "rejects.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    rejects[["file", "line", "column", "reason", "value"]].to_csv(path, index=False)
    return path
