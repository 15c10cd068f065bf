"""--engine spark decides terminal integrity like the local engine where terminal models spend sequence
numbers without a message (the adversarial generator's daily batch close): the models' rates are fitted over
every bucket's terminals before any bucket's gaps are counted."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from etl.adversary import generate_adversarial
from etl.pipeline import run_drop
from graph.catalog import staged_reference
from graph.detectors.integrity import IntegrityDetector
from graph.projection import Projection
from graph.settings import Settings
from graph.spark_scoring import _integrity, staged_transactions


@pytest.fixture(scope="module")
def adversarial_home(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("spark-adversarial")
    generate_adversarial(root / "drop", seed=5, txns=20_000)
    run_drop(root / "drop", Settings.from_env({"POSGUARD_HOME": str(root / "home")}, token_key=b"k"))
    return root / "home"


def test_integrity_at_the_models_stan_rates_equals_the_local_engine(spark, adversarial_home):
    p = Projection.from_staging(adversarial_home)
    local = IntegrityDetector().fit(p)
    got = _integrity(spark, staged_transactions(spark, adversarial_home), staged_reference(adversarial_home), {},
                     buckets=4)
    pd.testing.assert_frame_equal(got.reset_index(drop=True), local.result_.reset_index(drop=True),
                                  check_dtype=False, rtol=1e-9)
    # not vacuous: some models spend numbers without a message, which changes the gap evidence of many
    # terminals, and hidden sales were found
    assert (local.stan_rates_ * 86_400 > 0.5).sum() >= 1, local.stan_rates_
    without = IntegrityDetector().transaction_evidence(p)
    assert (without["gap_runs"] != local.stats_["gap_runs"]).sum() > 10
    assert "trace_gap" in set(got["kind"])
