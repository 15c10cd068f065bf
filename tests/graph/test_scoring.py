"""Scoring's outputs: typed as the contract says even when empty, written all or nothing."""

from __future__ import annotations

from datetime import datetime, timezone

import pandas as pd
import pyarrow.parquet as pq
import pytest

from graph.detectors.queue import build_alerts
from graph.scoring import OUTPUT_SCHEMAS, ScoreResult, write_outputs

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
    written = write_outputs(ScoreResult(frames=_empty_frames(dtype)), tmp_path)
    assert sorted(written) == sorted(OUTPUT_SCHEMAS)
    for name, schema in OUTPUT_SCHEMAS.items():
        table = pq.read_table(written[name])
        assert table.num_rows == 0
        assert table.schema.names[:len(schema)] == schema.names
        for field in schema:
            assert table.schema.field(field.name).type == field.type, (name, field.name)


def test_a_failing_output_leaves_the_previous_outputs_untouched(tmp_path):
    first = write_outputs(ScoreResult(frames=_empty_frames("object")), tmp_path)
    before = {name: path.read_bytes() for name, path in first.items()}
    frames = _empty_frames("object")
    frames["rings"] = frames["rings"].drop(columns="member_id")  # breaks the contract
    with pytest.raises(ValueError, match="rings"):
        write_outputs(ScoreResult(frames=frames), tmp_path)
    assert {name: path.read_bytes() for name, path in first.items()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"{n}.parquet" for n in OUTPUT_SCHEMAS)


def test_a_missing_output_writes_nothing(tmp_path):
    frames = _empty_frames("object")
    del frames["terminal_findings"]
    with pytest.raises(ValueError, match="terminal_findings"):
        write_outputs(ScoreResult(frames=frames), tmp_path / "out")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
