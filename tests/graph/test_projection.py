"""Projection.from_frames: ids, orders, CSR indices, codes and missing values."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from graph.projection import Projection, to_epoch_seconds
from graph.vocabulary import ENTRY_CHIP, ENTRY_FALLBACK, ENTRY_MAGSTRIPE, ENTRY_UNKNOWN
from tests.graph.conftest import make_txns


@pytest.fixture()
def proj() -> Projection:
    tx = make_txns([
        dict(txn_id="t3", card_token="b", terminal_id="T1", merchant_id="M1", hours=1, atc=1, stan=5),
        dict(txn_id="t1", card_token="a", terminal_id="T1", merchant_id="M1", hours=0, entry_mode="magstripe",
             stan=6, mcc=None, lat=None, lon=None, response_code="05"),
        dict(txn_id="t2", card_token="a", terminal_id="T2", merchant_id="M2", hours=0, entry_mode=None, atc=3,
             txn_type="refund"),
        dict(txn_id="t4", card_token="b", terminal_id="T2", merchant_id="M2", hours=24, entry_mode="fallback",
             atc=4, stan=7),
    ])
    terminals = pd.DataFrame({"terminal_id": ["T1", "T3", "T1"], "merchant_id": ["M9", "M3", "M1"],
                              "lat": [0.0, 2.0, 1.0], "lon": [0.0, 4.0, 3.0], "run_id": ["r1", "r1", "r2"]})
    merchants = pd.DataFrame({"merchant_id": ["M1"], "mcc": ["5411"]})
    reports = pd.DataFrame({"card_token": ["c", "b"], "reported_at": ["2026-03-06", "2026-03-05T00:00:00Z"],
                            "first_fraud_at": ["2026-03-04", None], "fraud_type": ["other", "counterfeit"]})
    return Projection.from_frames(tx, terminals, merchants, reports)


def test_entities_sorted_and_union(proj):
    assert proj.card_ids.tolist() == ["a", "b", "c"]
    assert proj.terminal_ids.tolist() == ["T1", "T2", "T3"]
    assert proj.merchant_ids.tolist() == ["M1", "M2", "M3"]  # M9 was superseded by run r2
    # latest run wins for T1; T2 is unregistered and falls back to its transactions' merchant
    assert proj.terminal_merchant.tolist() == [0, 1, 2]
    assert proj.terminal_lat[0] == 1.0 and np.isnan(proj.terminal_lat[1])
    assert proj.merchant_mcc[0] == "5411" and proj.merchant_mcc[1] is None


def test_card_time_order_and_csr(proj):
    assert proj.txn_ids.tolist() == ["t1", "t2", "t3", "t4"]  # ties on (card, ts) broken by txn_id
    assert proj.card_indptr.tolist() == [0, 2, 4, 4]
    assert proj.txn_card.tolist() == [0, 0, 1, 1]
    assert np.all(np.diff(proj.txn_ts[:2]) >= 0)
    assert proj.term_indptr.tolist() == [0, 2, 4, 4]
    assert proj.txn_terminal[proj.term_order].tolist() == [0, 0, 1, 1]


def test_codes_and_missing(proj):
    # a missing entry_mode is 'unknown' (docs/CONTRACT.md), not taken for chip
    assert proj.txn_entry.tolist() == [ENTRY_MAGSTRIPE, ENTRY_UNKNOWN, ENTRY_CHIP, ENTRY_FALLBACK]
    assert proj.txn_type.tolist() == [0, 1, 0, 0]
    assert proj.txn_approved.tolist() == [False, True, True, True]
    assert proj.txn_atc.tolist() == [-1, 3, 1, 4]
    assert proj.txn_stan.tolist() == [6, -1, 5, 7]
    assert proj.txn_mcc.tolist() == [-1, 5411, 5411, 5411]
    assert np.isnan(proj.txn_lat[0]) and proj.txn_lat[1] == 31.23


def test_reports(proj):
    assert proj.report_card.tolist() == [1, 2]
    assert proj.report_type.tolist() == ["counterfeit", "other"]
    assert proj.report_first_fraud_at[0] == -1
    assert proj.report_first_fraud_at[1] == to_epoch_seconds(["2026-03-04T00:00:00Z"])[0]


def test_dtypes_contiguous(proj):
    expected = {"txn_card": np.int32, "txn_terminal": np.int32, "txn_merchant": np.int32, "txn_ts": np.int64,
                "txn_amount": np.float64, "txn_entry": np.int8, "txn_type": np.int8, "txn_approved": np.bool_,
                "txn_atc": np.int64, "txn_stan": np.int64, "txn_lat": np.float64, "txn_mcc": np.int32,
                "card_indptr": np.int64, "term_order": np.int64, "term_indptr": np.int64,
                "terminal_merchant": np.int32, "report_card": np.int32, "report_at": np.int64}
    for name, dtype in expected.items():
        arr = getattr(proj, name)
        assert arr.dtype == dtype, name
        assert arr.flags.c_contiguous, name
    assert proj.nbytes_per_txn() == pytest.approx(83.0)


def test_empty():
    p = Projection.from_frames(make_txns([]).iloc[:0])
    assert p.n_txns == 0 and p.card_indptr.tolist() == [0] and p.nbytes_per_txn() == 0.0


def test_missing_required_column():
    with pytest.raises(KeyError, match="card_token"):
        Projection.from_frames(make_txns([{}]).drop(columns="card_token"))


def test_every_report_kept_with_its_transaction_and_merchant_from_the_terminal():
    """Several reports per card are all kept; txn_id points at the labelled transaction; a transaction
    without merchant_id (or without an entry_mode column at all) takes its registered terminal's merchant."""
    tx = make_txns([dict(txn_id="t1", card_token="a", terminal_id="T1", merchant_id=None, hours=0),
                    dict(txn_id="t2", card_token="a", terminal_id="T1", merchant_id=None, hours=1),
                    dict(txn_id="t3", card_token="b", terminal_id="T2", merchant_id="M2", hours=2)])
    tx = tx.drop(columns="entry_mode")
    terminals = pd.DataFrame({"terminal_id": ["T1"], "merchant_id": ["M1"]})
    reports = pd.DataFrame({"card_token": ["a", "a", "b"], "reported_at": ["2026-03-05", "2026-03-04", "2026-03-05"],
                            "txn_id": ["t2", "t1", "nope"]})
    p = Projection.from_frames(tx, terminals, fraud_reports=reports)
    assert len(p.report_card) == 3 and p.card_ids[p.report_card].tolist() == ["a", "a", "b"]
    assert p.txn_ids[p.report_txn[:2]].tolist() == ["t1", "t2"] and p.report_txn[2] == -1
    assert p.merchant_ids[p.txn_merchant].tolist() == ["M1", "M1", "M2"]
    assert (p.txn_entry == ENTRY_UNKNOWN).all()
