"""Fraud reports per card (kind-specific reporting rates and lags), card blocking after a report, and
background reports of fraud that never touches a terminal (card-not-present, account takeover)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from etl.adversary.region import DAY, T0
from etl.adversary.rows import AT_TERMINAL, CLONE, GENUINE, RING, take
from etl.adversary.world import AdvPlan, World

__all__ = ["card_reports", "apply_blocking", "REPORT_RATE", "BACKGROUND_SHARE"]

# share of victims that are ever reported, and the median report lag (days) after the first fraud
REPORT_RATE = {CLONE: 0.75, AT_TERMINAL: 0.85, RING: 0.15}
_LAG_DAYS = {CLONE: 9.0, AT_TERMINAL: 12.0, RING: 20.0}
BACKGROUND_SHARE = 0.003  # cards reported for card-not-present fraud or account takeover (nothing at a POS)
_NO_FIRST = 0.1  # reports without first_fraud_at


def card_reports(world: World, plan: AdvPlan, rows: dict, styles: dict[int, str], rng) -> pd.DataFrame:
    """One report per reported card: card, reported_at, first_fraud_at (-1 when missing), fraud_type, kind.

    ``styles`` maps an at-terminal terminal to "double_charge" (reported as other) or "collusion"
    (counterfeit). A report that would fall after the period is not in the drop (the card stays unreported).
    """
    fraud = rows["fraud"] > GENUINE
    frame = (pd.DataFrame({"card": rows["card"][fraud], "ts": rows["ts"][fraud], "kind": rows["fraud"][fraud],
                           "term": rows["term"][fraud]})
             .sort_values(["card", "ts"], kind="stable").groupby("card", as_index=False).first())
    kind = frame["kind"].to_numpy()
    rate = np.vectorize(REPORT_RATE.get, otypes=[float])(kind) if len(kind) else np.zeros(0)
    lag = np.vectorize(_LAG_DAYS.get, otypes=[float])(kind) if len(kind) else np.zeros(0)
    lag_s = (np.exp(rng.normal(np.log(np.maximum(lag, 1)), 0.8)) * DAY).astype(np.int64) + DAY
    ftype = np.where(kind == CLONE, "counterfeit", np.where(kind == RING, "cash_out", "other")).astype(object)
    collusion = np.array([styles.get(int(t)) == "collusion" for t in frame["term"]], bool)
    ftype[(kind == AT_TERMINAL) & collusion] = "counterfeit"
    out = pd.DataFrame({"card": frame["card"].to_numpy(np.int64), "reported_at": frame["ts"].to_numpy() + lag_s,
                        "first_fraud_at": frame["ts"].to_numpy(np.int64), "fraud_type": ftype, "kind": kind})
    out = out[(rng.random(len(out)) < rate) & (out["reported_at"] < plan.t_end)]
    involved = np.zeros(world.n_cards, bool)
    involved[frame["card"].to_numpy(np.int64)] = True
    bg = np.flatnonzero(~involved & (rng.random(world.n_cards) < BACKGROUND_SHARE))
    first = T0 + rng.integers(0, (plan.days - 3) * DAY, len(bg))
    back = pd.DataFrame({"card": bg, "reported_at": np.minimum(first + rng.integers(2 * DAY, 20 * DAY, len(bg)),
                                                               plan.t_end - 1),
                         "first_fraud_at": first,
                         "fraud_type": np.where(rng.random(len(bg)) < 0.7, "card_not_present", "account_takeover"),
                         "kind": GENUINE})
    out = pd.concat([out, back], ignore_index=True).sort_values(["reported_at", "card"], kind="stable")
    out.loc[rng.random(len(out)) < _NO_FIRST, "first_fraud_at"] = -1
    return out.reset_index(drop=True)


def apply_blocking(rows: dict, reports: pd.DataFrame, n_cards: int) -> dict:
    """A reported card is blocked: its fraud attempts after the report are declined (05), its genuine use
    stops a day after the report (the customer has a new card, not in this drop)."""
    at = np.full(n_cards, np.iinfo(np.int64).max)
    at[reports["card"].to_numpy(np.int64)] = reports["reported_at"].to_numpy(np.int64)
    late = rows["ts"] >= at[rows["card"]]
    rows["resp"][late & (rows["fraud"] > GENUINE)] = 1
    gone = late & (rows["fraud"] == GENUINE) & (rows["ts"] >= at[rows["card"]] + DAY)
    return take(rows, ~gone)
