"""The repository stands alone: one contract inside it, no reference to a path outside the clone."""

from __future__ import annotations

import subprocess

from tests.helpers import REPO


def _tracked_text_files():
    names = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    for name in names:
        path = REPO / name
        if path.is_file() and path.suffix not in {".png", ".jpg", ".parquet", ".gz", ".ico"}:
            yield name, path.read_text(encoding="utf-8", errors="replace")


def test_the_contract_lives_in_the_repository():
    contract = (REPO / "docs" / "CONTRACT.md").read_text(encoding="utf-8")
    assert "fraud_reports" in contract and "HMAC-SHA256" in contract
    assert "docs/CONTRACT.md" in (REPO / "README.md").read_text(encoding="utf-8")


def test_nothing_points_outside_the_clone():
    outside = "../" + "shared"  # split so that this file does not match itself
    offenders = [name for name, text in _tracked_text_files() if outside in text]
    assert offenders == []
