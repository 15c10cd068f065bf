"""Terminal integrity on generated drops: planted cases recalled, few false positives, nothing when nothing is planted."""

from __future__ import annotations

import pandas as pd
import pytest

from etl.generate import generate
from graph.detectors.terminal import KINDS, IntegrityDetector
from graph.evaluation import projection_from_drop

KEY = "posguard-test-key-not-a-secret"


@pytest.fixture(scope="module", params=[0, 1, 2])
def scored(request, tmp_path_factory):
    out = tmp_path_factory.mktemp(f"terminal-drop-{request.param}")
    generate(out, seed=request.param, scale="small")
    findings = IntegrityDetector().fit(projection_from_drop(out, KEY)).findings_
    return findings, pd.read_parquet(out / "truth" / "terminal_cases.parquet")


def test_planted_terminal_cases_recalled_with_few_false_positives(scored):
    findings, truth = scored
    assert set(truth["kind"]) == set(KINDS)
    planted = set(zip(truth["terminal_id"], truth["kind"]))
    found = set(zip(findings["terminal_id"], findings["kind"]))
    assert len(planted & found) / len(planted) >= 0.9
    false = found - planted
    assert len(false) <= max(1, len(planted) // 10), sorted(false)
    # and each found case is the right kind, not merely the right terminal
    for kind in KINDS:
        kind_truth = set(truth.loc[truth["kind"] == kind, "terminal_id"])
        kind_found = set(findings.loc[findings["kind"] == kind, "terminal_id"])
        assert len(kind_truth & kind_found) >= len(kind_truth) - 1, kind


def test_nothing_planted_gives_no_confident_finding(tmp_path):
    generate(tmp_path, seed=5, scale="small", plant=False)
    findings = IntegrityDetector().fit(projection_from_drop(tmp_path, KEY)).findings_
    assert not (findings["score"] >= 0.5).any(), findings.head().to_string()
