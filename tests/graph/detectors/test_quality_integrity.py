"""Terminal integrity on generated drops: planted cases recalled, few false findings, nothing confident when
nothing is planted (several seeds of 200k transactions, ~3,700 terminals each); on the adversarial generator,
whose terminal models spend a sequence number at every daily batch close, every block of deleted sales found
and no trace gap where none was planted (120k transactions, ~970 terminals each)."""

from __future__ import annotations

import pandas as pd
import pytest

from etl.adversary import generate_adversarial
from etl.generate import generate
from graph.detectors.integrity import IntegrityDetector
from graph.vocabulary import FINDING_KINDS as KINDS
from graph.evaluation import projection_from_drop

KEY = "posguard-test-key-not-a-secret"
TXNS = 200_000
ADV_TXNS = 120_000


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


def _score_adversarial(out, seed, plant):
    generate_adversarial(out, seed=seed, txns=ADV_TXNS, plant=plant)
    return IntegrityDetector().fit(projection_from_drop(out, KEY))


@pytest.fixture(scope="module", params=[4, 5, 6])
def adversarial(request, tmp_path_factory):
    out = tmp_path_factory.mktemp(f"terminal-adversarial-{request.param}")
    det = _score_adversarial(out, request.param, True)
    return det, pd.read_parquet(out / "truth" / "terminal_cases.parquet")


def test_deleted_sales_found_where_models_skip_a_number_a_day(adversarial):
    det, truth = adversarial
    assert (det.stan_rates_ * 86_400 > 0.5).any(), det.stan_rates_  # the drop has such models
    cases = set(zip(truth["terminal_id"], truth["kind"]))
    found = set(zip(det.result_["terminal_id"], det.result_["kind"]))
    assert len(cases & found) / len(cases) >= 0.9, sorted(cases - found)
    gaps = det.result_[det.result_["kind"] == "trace_gap"]
    planted = set(truth.loc[truth["kind"] == "trace_gap", "terminal_id"])
    assert set(gaps["terminal_id"]) == planted, gaps.to_string()


@pytest.mark.parametrize("seed", [11, 12])
def test_no_trace_gap_where_nothing_is_planted_on_the_adversarial_generator(seed, tmp_path):
    det = _score_adversarial(tmp_path / "clean", seed, False)
    assert "trace_gap" not in set(det.result_["kind"]), det.result_.to_string()
    assert det.stats_["gap_runs"].sum() <= 2  # natural skips are the models' use of time, not gaps
