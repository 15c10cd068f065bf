"""Terminal integrity on generated drops: planted cases recalled, few false findings, nothing confident when
nothing is planted (several seeds of 200k transactions, ~3,700 terminals each)."""

from __future__ import annotations

import pandas as pd
import pytest

from etl.generate import generate
from graph.detectors.integrity import IntegrityDetector
from graph.vocabulary import FINDING_KINDS as KINDS
from graph.evaluation import projection_from_drop

KEY = "posguard-test-key-not-a-secret"
TXNS = 200_000


def _score(out, seed, plant):
    generate(out, seed=seed, txns=TXNS, plant=plant)
    p = projection_from_drop(out, KEY)
    return IntegrityDetector().fit(p).result_, p.n_terminals


@pytest.fixture(scope="module", params=[4, 5, 6])
def planted(request, tmp_path_factory):
    out = tmp_path_factory.mktemp(f"terminal-drop-{request.param}")
    findings, n_terminals = _score(out, request.param, True)
    return findings, pd.read_parquet(out / "truth" / "terminal_cases.parquet"), n_terminals


@pytest.fixture(scope="module", params=[11, 12, 13])
def clean(request, tmp_path_factory):
    return _score(tmp_path_factory.mktemp(f"terminal-clean-{request.param}"), request.param, False)


def test_planted_terminal_cases_recalled_with_few_false_findings(planted):
    findings, truth, n_terminals = planted
    assert set(truth["kind"]) <= set(KINDS)
    cases = set(zip(truth["terminal_id"], truth["kind"]))
    found = set(zip(findings["terminal_id"], findings["kind"]))
    assert len(cases & found) / len(cases) >= 0.9, sorted(cases - found)
    # a finding on a terminal with nothing planted is false (a new address of a relocated terminal is not)
    false = findings[~findings["terminal_id"].isin(truth["terminal_id"])]
    per_kind = false.groupby("kind").size()
    assert (per_kind <= 2 * n_terminals / 2000).all(), false.to_string()


def test_nothing_planted_gives_few_findings_and_none_confident(clean):
    findings, n_terminals = clean
    assert (findings.groupby("kind").size() <= 2 * n_terminals / 2000).all(), findings.to_string()
    assert not (findings["q_value"] <= 0.01).any(), findings.to_string()
