"""Points of compromise whose delays are fitted to the run: the report lag of reports without a first fraud,
the look-back from a first fraud to the visit that compromised the card, and cash-out reports (no victim)."""

from __future__ import annotations

import pandas as pd

from graph.detectors.skimming import SkimmingDetector
from graph.projection import Projection
from tests.graph.conftest import T0, make_txns

DAY_H = 24.0


def _background(rows: list, n: int = 300, days: int = 100, quiet: str | None = None, shop: str | None = None) -> None:
    """``n`` ordinary cards shopping every other day at 30 filler terminals; every 30th also uses ``quiet``
    once, every 5th uses ``shop`` once a month."""
    for c in range(n):
        rows += [dict(card_token=f"c{c:03d}", terminal_id=f"F{(c + d) % 30}", hours=DAY_H * d + 9 + c % 8)
                 for d in range(c % 2, days, 2)]
        if quiet and c % 30 == 0:
            rows.append(dict(card_token=f"c{c:03d}", terminal_id=quiet, hours=DAY_H * (c % 90) + 12))
        if shop and c % 5 == 0:
            rows += [dict(card_token=f"c{c:03d}", terminal_id=shop, hours=DAY_H * (c % 30 + d) + 15)
                     for d in range(0, days - 30, 30)]


def _iso(days: float) -> str:
    return (T0 + pd.Timedelta(hours=DAY_H * days)).isoformat()


def _points(rows, reports) -> tuple[pd.DataFrame, SkimmingDetector]:
    fr = pd.DataFrame(reports, columns=["card_token", "reported_at", "first_fraud_at", "fraud_type"])
    det = SkimmingDetector().fit(Projection.from_frames(make_txns(rows), fraud_reports=fr))
    return det.result_, det


def _row(points: pd.DataFrame, terminal: str, mode: str = "skimming"):
    hit = points[(points["terminal_id"] == terminal) & (points["mode"] == mode)]
    return hit.iloc[0] if len(hit) else None


def test_reports_without_first_fraud_look_back_from_the_fitted_report_lag():
    """Thirteen victims used skimmer S on day 2, had their first fraud on day 40 and reported it 20 days
    later; five reports give first_fraud_at. The other eight look back from reported_at minus the run's
    lags (20 days), not minus a constant 2 days (whose 45-day window, days 13-58, misses day 2): all
    thirteen count at S."""
    rows, reports = [], []
    _background(rows)
    for v in range(13):
        tok = f"v{v:02d}"
        rows.append(dict(card_token=tok, terminal_id="S", hours=DAY_H * 2 + v))
        rows += [dict(card_token=tok, terminal_id=f"F{(v + d) % 30}", hours=DAY_H * d + 10) for d in range(5, 60, 5)]
        reports.append((tok, _iso(60 + v / 24), _iso(40 + v / 24) if v < 5 else None, "counterfeit"))
    points, det = _points(rows, reports)
    s = _row(points, "S")
    assert s is not None and s["accepted"] and s["q_value"] <= 0.05
    assert s["compromised_cards"] == 13
    assert det.report_lag_days_ == (20.0, 20.0)


def test_the_look_back_is_lengthened_to_the_delays_seen_at_accepted_points():
    """Twenty victims used skimmer S on days 1-4 and had their first fraud 20 to 64 days later; every one of
    them also shops on days 30 and 60 at N, a shop of their street that a fifth of all cards use monthly.
    With a fixed 45-day look-back the victims with longer delays do not reach back to S, S cannot explain
    them, and N is reported as a second point; fitted to the delays at S (its 95th percentile, over 45 days
    here) S explains all but the longest delay and N is not reported."""
    rows, reports = [], []
    _background(rows, quiet="S", shop="N")
    for v in range(20):
        tok = f"v{v:02d}"
        rows.append(dict(card_token=tok, terminal_id="S", hours=DAY_H * (1 + v % 4) + 10))
        rows += [dict(card_token=tok, terminal_id="N", hours=DAY_H * d + 18) for d in (30, 60)]
        first = 1 + v % 4 + 20 + (v * 44) // 19
        reports.append((tok, _iso(first + 3), _iso(first), "counterfeit"))
    points, det = _points(rows, reports)
    s, n = _row(points, "S"), _row(points, "N")
    assert s is not None and s["rank"] == 1 and s["q_value"] <= 0.05 and s["explained_cards"] >= 19
    assert det.lookback_days_ > 45.0
    assert n is None or not (n["accepted"] and n["q_value"] <= 0.05)


def test_cash_out_reports_make_no_point_of_compromise():
    """Eight cards report a cash-out that they made at merchant R (their holders with a colluding merchant):
    nobody's card was compromised there, the rings detector reports R; as fraud of type "other" (fraud against
    the holder at R) the same visits make R an at-terminal point."""
    rows, reports = [], []
    _background(rows, quiet="R")
    for v in range(8):
        tok = f"r{v}"
        rows += [dict(card_token=tok, terminal_id=f"F{(v + d) % 30}", hours=DAY_H * d + 10) for d in range(0, 90, 3)]
        rows.append(dict(card_token=tok, terminal_id="R", hours=DAY_H * (30 + v) + 23))
        reports.append((tok, _iso(40 + v), _iso(30 + v + 23 / 24), "cash_out"))
    points, _ = _points(rows, reports)
    assert _row(points, "R", "at_terminal") is None and _row(points, "R") is None
    other = [(tok, at, first, "other") for tok, at, first, _ in reports]
    points, _ = _points(rows, other)
    r = _row(points, "R", "at_terminal")
    assert r is not None and r["accepted"] and r["q_value"] <= 0.05
