"""The checks every registered detector passes (like scikit-learn's ``check_estimator``): it fits on an empty and
on a small projection, its ``result_`` has the contract's columns in the contract's types, its parameters
round-trip, and its scores say "higher = more suspicious" in the same order as its q-values."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from etl.generate import generate
from graph.catalog import OUTPUT_SCHEMAS, output_table
from graph.detectors import DETECTORS
from graph.detectors.base import BaseDetector, NotFittedError
from graph.detectors.significance import REPORT_Q
from graph.evaluation import projection_from_drop
from graph.projection import Projection

KEY = "posguard-test-key-not-a-secret"


@pytest.fixture(scope="module")
def small_projection(tmp_path_factory):
    """A 20k-transaction drop of the first generator: every family has something to report in it."""
    out = tmp_path_factory.mktemp("common")
    generate(out, seed=7, txns=20_000)
    return projection_from_drop(out, KEY)


@pytest.fixture(scope="module")
def empty_projection():
    return Projection.from_frames(pd.DataFrame({"txn_id": pd.Series([], dtype=object),
                                                "ts": pd.Series([], dtype="datetime64[us, UTC]"),
                                                "card_token": pd.Series([], dtype=object),
                                                "terminal_id": pd.Series([], dtype=object)}))


def _check_result(cls, detector):
    assert detector.fit is not None and isinstance(detector, BaseDetector)
    result = detector.result_
    assert isinstance(result, pd.DataFrame)
    schema = OUTPUT_SCHEMAS[cls.output]
    assert list(result.columns[:len(schema.names)]) == schema.names, "the contract's columns come first"
    table = output_table(cls.output, result)  # raises when a column cannot take the contract's type
    assert table.schema.names[:len(schema.names)] == schema.names
    assert {"p_value", "q_value"} <= set(result.columns)
    return result


def test_the_registry_names_each_family_once():
    assert list(DETECTORS) == ["skimming", "cloned", "rings", "networks", "integrity"]
    for name, cls in DETECTORS.items():
        assert cls.name == name and cls.output in OUTPUT_SCHEMAS
        assert cls.__module__ == f"graph.detectors.{name}", "one name per family: module = registry key"


@pytest.mark.parametrize("name", list(DETECTORS))
def test_result_before_fit_is_refused(name):
    with pytest.raises(NotFittedError):
        DETECTORS[name]()._fitted("result_")


@pytest.mark.parametrize("name", list(DETECTORS))
def test_fits_an_empty_projection_with_the_contract_shape(name, empty_projection):
    cls = DETECTORS[name]
    result = _check_result(cls, cls().fit(empty_projection))
    assert len(result) == 0


@pytest.mark.parametrize("name", list(DETECTORS))
def test_fits_a_small_projection_with_the_contract_shape_and_higher_is_more_suspicious(name, small_projection):
    cls = DETECTORS[name]
    detector = cls().fit(small_projection)
    assert detector.fit(small_projection) is detector, "fit returns self"
    result = _check_result(cls, detector)
    assert len(result) > 0, f"{name} found nothing on a drop with every kind of case planted"
    score, q = result["score"].to_numpy(float), result["q_value"].to_numpy(float)
    assert np.all(np.isfinite(score) & (score >= 0))
    reported = result if "accepted" not in result.columns else result[result["accepted"].astype(bool)]
    assert (reported["q_value"] <= REPORT_Q).all() or name == "skimming"
    order = np.argsort(q, kind="stable")
    assert np.all(np.diff(score[order]) <= 1e-9), "a lower q-value never gets a lower score"


@pytest.mark.parametrize("name", list(DETECTORS))
def test_parameters_round_trip(name):
    cls = DETECTORS[name]
    params = cls().get_params()
    assert params and cls(**params).get_params() == params
    assert repr(cls(**params)).startswith(cls.__name__ + "(")
