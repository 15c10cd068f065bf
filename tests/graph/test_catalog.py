"""The catalog: the home's layout, the latest run winning per key, staged data committed only with its run, and
the scoring's outputs typed as the contract says even when empty, written all or nothing."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pandas as pd
import pyarrow.parquet as pq
import pytest

from graph.catalog import (OUTPUT_SCHEMAS, STAGED_SCHEMAS, latest_per_key, new_run_id, read_staged, run_dir,
                           staged_run_dir, write_outputs, write_staged)
from graph.queue import build_alerts

AT = datetime(2026, 5, 1, tzinfo=timezone.utc)


def _empty_frames(dtype) -> dict[str, pd.DataFrame]:
    """Every output empty, its columns of one arbitrary dtype (what a detector that found nothing may return)."""
    frames = {name: pd.DataFrame({c: pd.Series([], dtype=dtype) for c in schema.names} | {"q_value": []})
              for name, schema in OUTPUT_SCHEMAS.items() if name != "alerts"}
    frames["alerts"] = build_alerts(pd.DataFrame(), pd.DataFrame(), pd.DataFrame(), pd.DataFrame(), AT)
    return frames


@pytest.mark.parametrize("dtype", ["float64", "object"])
def test_empty_outputs_are_written_with_the_contract_types(tmp_path, dtype):
    """A run that flags nothing (float64 `reasons` and `evidence_txn_ids` once crashed the cast to a list)."""
    written = write_outputs(_empty_frames(dtype), tmp_path)
    assert sorted(written) == sorted(OUTPUT_SCHEMAS)
    for name, schema in OUTPUT_SCHEMAS.items():
        table = pq.read_table(written[name])
        assert table.num_rows == 0
        assert table.schema.names[:len(schema)] == schema.names
        for field in schema:
            assert table.schema.field(field.name).type == field.type, (name, field.name)


def test_a_failing_output_leaves_the_previous_outputs_untouched(tmp_path):
    first = write_outputs(_empty_frames("object"), tmp_path)
    before = {name: path.read_bytes() for name, path in first.items()}
    frames = _empty_frames("object")
    frames["rings"] = frames["rings"].drop(columns="member_id")  # breaks the contract
    with pytest.raises(ValueError, match="rings"):
        write_outputs(frames, tmp_path)
    assert {name: path.read_bytes() for name, path in first.items()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"{n}.parquet" for n in OUTPUT_SCHEMAS)


def test_a_missing_output_writes_nothing(tmp_path):
    frames = _empty_frames("object")
    del frames["terminal_findings"]
    with pytest.raises(ValueError, match="terminal_findings"):
        write_outputs(frames, tmp_path / "out")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_the_latest_run_wins_per_key_whatever_the_row_order():
    frame = pd.DataFrame({"terminal_id": ["T1", "T2", "T1"], "model": ["new", "only", "old"],
                          "run_id": ["20260102T000000Z-b", "20260101T000000Z-a", "20260101T000000Z-a"]})
    out = latest_per_key(frame, ["terminal_id"]).set_index("terminal_id")["model"].to_dict()
    assert out == {"T1": "new", "T2": "only"}


def test_run_ids_started_within_one_second_sort_in_time_order():
    start = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    ids = [new_run_id(start + timedelta(microseconds=us)) for us in (999_999, 1, 500_000, 0)]
    assert sorted(ids) == [ids[3], ids[1], ids[2], ids[0]]


def test_staged_rows_count_only_once_their_run_is_committed(tmp_path):
    run = new_run_id(datetime(2026, 1, 2, tzinfo=timezone.utc))
    assert run.startswith("20260102T000000000000Z-") and run < new_run_id()
    rows = pd.DataFrame({"terminal_id": ["T1"], "merchant_id": ["M1"], "serial_no": ["S"], "model": ["m"],
                         "firmware_hash": ["f"], "lat": [1.0], "lon": [2.0],
                         "installed_at": pd.to_datetime(["2026-01-01"], utc=True), "row_hash": ["h"]})
    parts = write_staged(tmp_path, run, "terminals", rows)
    assert parts and all(p.parent == staged_run_dir(tmp_path, "terminals", run) for p in parts)
    assert read_staged(tmp_path, "terminals").num_rows == 0  # no manifest yet: not committed
    run_dir(tmp_path, run).mkdir(parents=True)
    (run_dir(tmp_path, run) / "manifest.json").write_text('{"staged": true}')
    table = read_staged(tmp_path, "terminals")
    assert table.num_rows == 1 and table.schema.names == STAGED_SCHEMAS["terminals"].names
