"""The ETL rules both engines call (etl.rules): de-duplication, known references, rejects and counts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from etl.rules import (VALIDATION_ORDER, concat_rejects, conflict_rejects, dedupe, duplicate_status, kind_counts,
                       known_references)
from graph.catalog import STAGED_SCHEMAS, write_staged
from etl.validate import REJECT_COLUMNS


def txns(ids, hashes, lines=None) -> pd.DataFrame:
    lines = list(range(2, 2 + len(ids))) if lines is None else lines
    return pd.DataFrame({"txn_id": ids, "row_hash": hashes, "_line": lines, "_file": "t.csv"})


NONE = pd.DataFrame({"txn_id": pd.Series([], dtype=object), "row_hash": pd.Series([], dtype=object)})


def test_within_the_drop_first_row_kept_repeat_duplicate_other_content_conflict():
    frame = txns(["a", "a", "a", "b", "a"], ["h1", "h1", "h2", "h3", "h2"])
    assert duplicate_status("transactions", frame, NONE).tolist() == [
        "kept", "duplicate", "conflict", "kept", "duplicate"]


def test_against_earlier_runs_same_row_duplicate_changed_transaction_conflict_changed_reference_update():
    frame = txns(["a", "b", "c"], ["h1", "h9", "h3"])
    staged = pd.DataFrame({"txn_id": ["a", "b"], "row_hash": ["h1", "h2"]})
    assert duplicate_status("transactions", frame, staged).tolist() == ["duplicate", "conflict", "kept"]
    merchants = pd.DataFrame({"merchant_id": ["a", "b", "c"], "row_hash": ["h1", "h9", "h3"]})
    staged_m = pd.DataFrame({"merchant_id": ["a", "b"], "row_hash": ["h1", "h2"]})
    assert duplicate_status("merchants", merchants, staged_m).tolist() == ["duplicate", "kept", "kept"]


def test_null_parts_of_a_key_match_each_other_in_the_drop_and_in_staging():
    """A fraud report without txn_id: the same report again is a duplicate, in the drop and across runs."""
    ts = pd.Timestamp("2026-03-01", tz="UTC")
    frame = pd.DataFrame({"card_token": ["c", "c"], "reported_at": [ts, ts], "fraud_type": ["other", "other"],
                          "txn_id": [None, None], "row_hash": ["h", "h"], "_line": [2, 3]})
    assert duplicate_status("fraud_reports", frame, frame.iloc[:0]).tolist() == ["kept", "duplicate"]
    assert duplicate_status("fraud_reports", frame.iloc[:1], frame.iloc[:1]).tolist() == ["duplicate"]


def test_any_split_into_whole_keys_gives_the_statuses_of_the_whole():
    """What the Spark engine relies on: each group of keys with the staged rows of those keys decides alone."""
    rng = np.random.default_rng(7)
    n = 3000
    frame = txns(rng.integers(0, 400, n).astype(str).astype(object), rng.integers(0, 3, n).astype(str).astype(object))
    staged = pd.DataFrame({"txn_id": rng.integers(0, 800, 300).astype(str).astype(object),
                           "row_hash": rng.integers(0, 3, 300).astype(str).astype(object)})
    whole = duplicate_status("transactions", frame, staged)
    assert {"kept", "duplicate", "conflict"} == set(whole)
    bucket = frame["txn_id"].map(hash) % 7
    staged_bucket = staged["txn_id"].map(hash) % 7
    parts = np.empty(n, dtype=object)
    for b in range(7):
        mine = (bucket == b).to_numpy()
        parts[mine] = duplicate_status("transactions", frame[mine], staged[(staged_bucket == b).to_numpy()])
    assert parts.tolist() == whole.tolist()


def test_dedupe_keeps_counts_and_rejects_conflicts_by_the_same_status():
    frame = txns(["a", "a", "a", "b"], ["h1", "h1", "h2", "h3"], lines=[5, 9, 12, 20])
    kept, duplicates, rejects = dedupe("transactions", frame, NONE)
    assert kept["_line"].tolist() == [5, 20] and duplicates == 1
    assert rejects.to_dict("records") == [{"file": "t.csv", "line": 12, "column": "txn_id",
                                           "reason": "conflicting_duplicate", "value": "a"}]
    assert list(conflict_rejects("transactions", frame.iloc[:0], []).columns) == REJECT_COLUMNS


def test_rejects_concatenate_in_order_and_keep_their_columns_when_empty():
    empty = concat_rejects([])
    assert list(empty.columns) == REJECT_COLUMNS and len(empty) == 0
    a = pd.DataFrame([("f", 3, "x", "r1", "v")], columns=REJECT_COLUMNS)
    b = pd.DataFrame([("g", 1, None, "r2", None)], columns=REJECT_COLUMNS)
    assert concat_rejects([a, empty, b])["reason"].tolist() == ["r1", "r2"]


def test_counts_add_up():
    assert kind_counts(10, 6, 3) == {"read": 10, "loaded": 6, "duplicate": 3, "rejected": 1}


def _stage(home: Path, kind: str, ids: list[str], run_id: str) -> None:
    schema = STAGED_SCHEMAS[kind]
    key = schema.names[0]
    frame = pd.DataFrame({c: pd.Series([None] * len(ids), dtype=object) for c in schema.names if c != "run_id"})
    frame[key] = ids
    for f in schema:
        if f.name in frame and str(f.type).startswith(("double", "timestamp")):
            frame[f.name] = pd.Series([pd.NaT if "timestamp" in str(f.type) else np.nan] * len(ids))
    write_staged(home, run_id, kind, frame)
    runs = home / "runs" / run_id
    runs.mkdir(parents=True, exist_ok=True)
    (runs / "manifest.json").write_text('{"staged": true}')


def test_known_references_are_the_staged_ids_and_this_runs_fixed_when_first_needed(tmp_path):
    _stage(tmp_path, "merchants", ["M1", "M2"], "r1")
    _stage(tmp_path, "terminals", ["T1"], "r1")
    known = {"terminal_id": None, "merchant_id": None}
    seen = {}
    for kind in VALIDATION_ORDER:
        known = known_references(tmp_path, kind, known, {"merchants": ["M3"], "terminals": ["T2"]})
        seen[kind] = {k: (sorted(v) if v is not None else None) for k, v in known.items()}
    assert seen["merchants"] == {"terminal_id": None, "merchant_id": None}
    assert seen["terminals"] == {"terminal_id": None, "merchant_id": ["M1", "M2", "M3"]}
    assert seen["transactions"] == {"terminal_id": ["T1", "T2"], "merchant_id": ["M1", "M2", "M3"]}
    # fixed once set: ids kept later in the run do not change them
    again = known_references(tmp_path, "terminal_events", known, {"terminals": ["T9"]})
    assert sorted(again["terminal_id"]) == ["T1", "T2"]


@pytest.mark.parametrize("kind", ["transactions", "terminal_events"])
def test_known_references_of_an_empty_home_are_this_runs_only(tmp_path, kind):
    known = known_references(tmp_path, kind, {"terminal_id": None, "merchant_id": None}, {"terminals": ["T2"]})
    assert known == {"terminal_id": {"T2"}, "merchant_id": set()}
