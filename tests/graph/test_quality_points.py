"""The reporting-rate curve of the points of compromise (graph.quality.reporting_rate_curve): a report's
first fraud is the card's first planted clone use when the truth names it."""

from __future__ import annotations

import pandas as pd

from graph.evaluation import reporting_rate_curve as synthesized_rate_curve
from graph.projection import Projection
from graph.quality import reporting_rate_curve
from tests.graph.conftest import T0, make_txns


def _drop():
    """Ten victims of skimmer S (day 30) whose cards a worn reader at W swiped two days before (a genuine
    magstripe use near home); their clones are used far away on day 50. Nobody is reported."""
    rows = []
    for c in range(300):
        rows += [dict(card_token=f"c{c:03d}", terminal_id=f"F{(c + d) % 30}", hours=24.0 * d + 9 + c % 8)
                 for d in range(c % 2, 90, 2)]
    clone_txns = []
    for v in range(10):
        tok = f"v{v}"
        rows += [dict(card_token=tok, terminal_id=f"F{(v + d) % 30}", hours=24.0 * d + 10) for d in range(0, 90, 4)]
        rows.append(dict(card_token=tok, terminal_id="W", hours=24.0 * 28 + v, entry_mode="magstripe"))
        rows.append(dict(card_token=tok, terminal_id="S", hours=24.0 * 30 + v))
        rows.append(dict(card_token=tok, terminal_id="FAR", hours=24.0 * 50 + v, entry_mode="magstripe",
                         lat=39.9, lon=116.4, txn_id=f"clone{v}"))
        clone_txns.append((f"clone{v}", tok, "clone"))
    tx = make_txns(rows)
    truth = {"skimmers": pd.DataFrame({"terminal_id": ["S"], "window_start": [T0 + pd.Timedelta(days=29)],
                                       "window_end": [T0 + pd.Timedelta(days=31)]}),
             "cloned_cards": pd.DataFrame({"card_token": [f"v{v}" for v in range(10)], "source": "skimmer"}),
             "fraud_txns": pd.DataFrame(clone_txns, columns=["txn_id", "card_token", "kind"])}
    return Projection.from_frames(tx), truth


def test_first_fraud_is_the_first_planted_clone_use():
    """From the card's own history the first fraud would be the worn reader's swipe (day 28, before the
    skimmer: no report says that); the truth's first clone use puts the skimmer in every window."""
    p, truth = _drop()
    curve = reporting_rate_curve(p, truth, rates=(1.0,), seed=0)
    assert curve["reported"].tolist() == [10]
    assert curve["recall"].iloc[0] == 1.0 and curve["precision"].iloc[0] == 1.0
    old = synthesized_rate_curve(p, truth["skimmers"], truth["cloned_cards"]["card_token"], rates=(1.0,),
                                 alpha=0.05)
    assert old["recall"].iloc[0] == 0.0  # why the measure changed


def test_without_clone_truth_the_curve_falls_back_to_the_cards_history():
    p, truth = _drop()
    del truth["fraud_txns"]
    new = reporting_rate_curve(p, truth, rates=(0.5, 1.0), seed=3)
    old = synthesized_rate_curve(p, truth["skimmers"], truth["cloned_cards"]["card_token"], rates=(0.5, 1.0),
                                 seed=3, alpha=0.05)
    pd.testing.assert_frame_equal(new, old)
