"""The merchant portfolio (``/portfolio``): volume, terminals and the last 30 days against the 30 before, per
acquiring agent and per merchant (flagged rows highlighted, each merchant a link)."""

from __future__ import annotations

from urllib.parse import quote

import dash
import dash_mantine_components as dmc
from dash import html

from app import queries
from app.context import database
from app.pages.common import format_value, grid, link_column

__all__ = ["register", "layout", "DAYS"]

DAYS = 30
_MONEY = {"valueFormatter": {"function": "params.value == null ? '' : d3.format(',.2f')(params.value)"},
          "type": "numericColumn"}
_COUNT = {"valueFormatter": {"function": "params.value == null ? '' : d3.format(',')(params.value)"},
          "type": "numericColumn"}
_GROWTH = {"valueFormatter": {"function": "params.value == null ? '' : d3.format('+.0%')(params.value)"},
           "type": "numericColumn"}
_FLAGGED = {"pg-flagged": "params.data.flag === true"}


def layout(**_):
    db = database()
    merchants, agents = queries.portfolio(db, days=DAYS)
    latest = queries.latest_transaction(db)
    as_of = format_value(latest) if latest else "-"
    merchant_rows = merchants.round(2).astype(object).where(merchants.notna(), None).to_dict("records") \
        if len(merchants) else []
    for row in merchant_rows:
        row["href"] = f"/merchant/{quote(str(row['merchant_id']))}"
    if len(agents):
        agents = agents.assign(growth=(agents["recent"] - agents["previous"]) / agents["previous"].where(
            agents["previous"] > 0))
    agent_rows = agents.round(2).astype(object).where(agents.notna(), None).to_dict("records") if len(agents) else []
    money_cols = [{"field": "volume", **_MONEY}, {"field": "recent", "headerName": f"last {DAYS} days", **_MONEY},
                  {"field": "previous", "headerName": f"{DAYS} days before", **_MONEY},
                  {"field": "growth", **_GROWTH}]
    return html.Div([
        dmc.Title("Merchant portfolio", order=3),
        dmc.Text(f"Volume, active terminals and the last {DAYS} days against the {DAYS} before, per acquiring "
                 f"agent and per merchant, as of the newest transaction ({as_of}). Flagged (highlighted): in a "
                 "ring found by the detectors, or volume more than doubled.", size="sm", id="portfolio-note"),
        dmc.Title("Per agent", order=4, mt="md"),
        grid("portfolio-agents", agent_rows,
             [{"field": "agent_id", "headerName": "agent"}, {"field": "merchants", **_COUNT},
              {"field": "terminals", **_COUNT}, {"field": "txns", **_COUNT}] + money_cols
             + [{"field": "flagged", **_COUNT}], page_size=10),
        dmc.Title("Per merchant", order=4, mt="md"),
        grid("portfolio-merchants", merchant_rows,
             [link_column("merchant_id", "merchant", "href", minWidth=110), {"field": "name", "minWidth": 160},
              {"field": "mcc", "width": 80}, {"field": "agent_id", "headerName": "agent"},
              {"field": "terminals", **_COUNT}, {"field": "txns", **_COUNT}] + money_cols
             + [{"field": "flag", "width": 80}], page_size=20, rowClassRules=_FLAGGED),
    ])


def register(app: dash.Dash) -> None:
    dash.register_page(__name__, path="/portfolio", name="Merchant portfolio", title="posguard: portfolio",
                       layout=layout)
