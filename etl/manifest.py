"""Run manifests (POSGUARD_HOME/runs/<run_id>/manifest.json) and their rejects.csv."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd

from graph.catalog import run_dir, runs_dir

__all__ = ["write_manifest", "read_manifests", "write_rejects", "fingerprint"]


def fingerprint(inputs: list[dict]) -> str:
    """Identity of a drop's content: the sorted (name, sha256) pairs of its files."""
    return json.dumps(sorted((i["name"], i["sha256"]) for i in inputs))


def _private_dir(path: Path) -> Path:
    """Create ``path`` (and ``runs/``) readable by the owner only (0700): runs hold rejected values."""
    path.mkdir(parents=True, exist_ok=True)
    for p in (path.parent, path):
        os.chmod(p, 0o700)
    return path


def _write_private(path: Path, write) -> None:
    """Write a file through ``write(tmp_path)`` as 0600 and rename it into place (atomic)."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.close(fd)
    os.chmod(tmp, 0o600)
    write(tmp)
    os.replace(tmp, path)


def write_manifest(home: Path, run_id: str, manifest: dict) -> Path:
    """Write (atomically) the manifest of ``run_id``; checks read == loaded + duplicate + rejected."""
    for kind, c in manifest.get("counts", {}).items():
        if c["read"] != c["loaded"] + c["duplicate"] + c["rejected"]:
            raise AssertionError(f"{kind}: {c['read']} rows read but {c['loaded']} loaded + {c['duplicate']} "
                                 f"duplicate + {c['rejected']} rejected")
    path = _private_dir(run_dir(home, run_id)) / "manifest.json"
    text = json.dumps(manifest, indent=2, default=str)
    _write_private(path, lambda tmp: tmp.write_text(text))
    return path


def read_manifests(home: Path) -> list[dict]:
    """Every run's manifest, oldest first."""
    runs = runs_dir(home)
    out = []
    for path in sorted(runs.glob("*/manifest.json")) if runs.exists() else []:
        try:
            out.append(json.loads(path.read_text()))
        except ValueError:
            continue
    return out


def write_rejects(home: Path, run_id: str, rejects: pd.DataFrame) -> Path:
    """Write the run's rejects.csv (file, line, column, reason, value; SECRET values already tokenized), mode 0600
    in a 0700 run directory."""
    path = _private_dir(run_dir(home, run_id)) / "rejects.csv"
    _write_private(path, lambda tmp: rejects[["file", "line", "column", "reason", "value"]].to_csv(tmp, index=False))
    return path
