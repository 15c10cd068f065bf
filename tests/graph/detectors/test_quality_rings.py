"""Rings on drops of the adversarial generator (no ETL, no Neo4j): its planted cash-out rings are found, and a
clean 1M drop, whose regulars go back to the same night-time places, raises no ring."""

from __future__ import annotations

import pandas as pd

from etl.adversary.core import generate_adversarial
from graph.detectors.rings import RingDetector
from graph.evaluation import load_truth, match_rings, projection_from_drop

KEY = "posguard-test-key-not-a-secret"


def test_planted_rings_are_found(tmp_path):
    generate_adversarial(tmp_path, seed=61, txns=250_000)
    rings = RingDetector().fit(projection_from_drop(tmp_path, KEY)).result_
    planted = load_truth(tmp_path, KEY)["rings"]
    matched = match_rings(rings, planted)
    assert planted["ring_id"].nunique() == 2 and rings["ring_id"].nunique() == 2
    assert matched["jaccard"].min() >= 0.9, matched


def test_a_clean_drop_raises_no_ring(tmp_path):
    # with 8 randomisations per null (the earlier default) the Gumbel fitted to their maxima put a block of
    # genuine regulars of this drop at q = 0.024; with 64 and 128 (and with 256 of each) it is not significant
    generate_adversarial(tmp_path, seed=81, txns=1_000_000, plant=False)
    p = projection_from_drop(tmp_path, KEY)
    assert p.n_txns > 900_000
    det = RingDetector().fit(p)
    assert det.result_.empty, det.result_.drop_duplicates("ring_id")
    assert len(det.null_) == 64 and pd.DataFrame(det.visit_null_).shape[1] in (0, 128)
