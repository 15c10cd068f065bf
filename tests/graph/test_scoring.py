"""graph.scoring.assemble_outputs: the one place the six outputs and the alert queue are put together
(called by the local engine's run_detectors and by the Spark engine's run_detectors_spark)."""

from __future__ import annotations

from datetime import datetime, timezone

import pandas as pd

from etl.adversary.core import generate_adversarial
from graph.catalog import OUTPUT_SCHEMAS
from graph.detectors import DETECTORS
from graph.evaluation import projection_from_drop
from graph.projection import Projection
from graph.scoring import assemble_outputs, fit_detector, run_detectors

AT = datetime(2026, 5, 1, tzinfo=timezone.utc)


def empty_tables() -> dict[str, pd.DataFrame]:
    txns = pd.DataFrame({c: pd.Series([], dtype=object) for c in ("txn_id", "card_token", "terminal_id",
                                                                  "merchant_id", "entry_mode")})
    txns["ts"] = pd.Series([], dtype="datetime64[us, UTC]")
    projection = Projection.from_frames(txns)
    tables = {name: fit_detector(name, projection).result_ for name in DETECTORS}
    tables["exposed_cards"] = fit_detector("skimming", projection).exposed_
    return tables


def test_every_output_of_the_contract_and_both_ring_families_in_one_table():
    tables = empty_tables()
    ring = {c: [None] for c in tables["rings"].columns}
    tables["rings"] = pd.DataFrame(ring | {"ring_id": ["r1"], "kind": ["cash_out"], "member_type": ["card"],
                                           "member_id": ["c1"], "score": [0.5], "q_value": [1e-4]})
    tables["networks"] = pd.DataFrame(ring | {"ring_id": ["n1"], "kind": ["merchant_network"],
                                              "member_type": ["merchant"], "member_id": ["m1"], "score": [0.4],
                                              "q_value": [1e-3]})
    frames = assemble_outputs(tables, AT)
    assert sorted(frames) == sorted(OUTPUT_SCHEMAS)
    assert frames["rings"]["ring_id"].tolist() == ["r1", "n1"]  # the ring detector's first, then the networks'
    assert frames["skimming_points"] is tables["skimming"] and frames["terminal_findings"] is tables["integrity"]
    assert frames["exposed_cards"] is tables["exposed_cards"] and frames["cloned_cards"] is tables["cloned"]
    assert list(frames["alerts"].columns[:len(OUTPUT_SCHEMAS["alerts"])]) == OUTPUT_SCHEMAS["alerts"].names
    assert (frames["alerts"]["created_at"] == AT).all()



def test_one_detector_alone_reports_what_scoring_does(tmp_path):
    # the cloned-card detector fitted alone gets the skimming detector's exposed cards, as in run_detectors
    generate_adversarial(tmp_path, seed=5, txns=60_000)
    projection = projection_from_drop(tmp_path, "posguard-test-key-not-a-secret")
    scored = run_detectors(projection, created_at=AT).frames["cloned_cards"]
    alone = fit_detector("cloned", projection)
    pd.testing.assert_frame_equal(alone.result_, scored)
    assert alone.exposed_family_ > 0 and scored["exposed_at"].notna().any()
    assert fit_detector("cloned", projection, inputs={}).exposed_family_ == 0  # no inputs given: one look
