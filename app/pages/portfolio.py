"""The merchant portfolio (``/portfolio``): volume, terminals, the last 30 days against the 30 before and a
12-week trend, per acquiring agent and per merchant, in the transactions' currency, as of the newest
transaction. Flagged rows are highlighted; a merchant row opens the merchant, an agent row shows its merchants."""

from __future__ import annotations

from urllib.parse import quote

import dash
import dash_mantine_components as dmc
from dash import Input, Output, html
from dash.exceptions import PreventUpdate

from app import portfolio_queries
from app.context import cached, guarded
from app.pages.common import format_value, grid, link_column

__all__ = ["register", "layout", "merchant_rows", "agent_rows", "first_merchants", "DAYS", "MERCHANT_ROWS"]

DAYS = 30
MERCHANT_ROWS = 1_000  # merchants the grid holds (flagged first, then by volume); an agent's click lists all its own
_MONEY = {"valueFormatter": {"function": "params.value == null ? '' : ((params.data.currency && "
                                        "params.data.currency !== 'mixed') ? params.data.currency + ' ' : '') "
                                        "+ d3.format(',.0f')(params.value)"},
          "type": "numericColumn", "minWidth": 150}
_COUNT = {"valueFormatter": {"function": "params.value == null ? '' : d3.format(',')(params.value)"},
          "type": "numericColumn"}
_GROWTH = {"valueFormatter": {"function": "params.value == null ? '' : d3.format('+.0%')(params.value)"},
           "type": "numericColumn"}
_TREND = {"field": "trend", "headerName": f"{portfolio_queries.TREND_WEEKS} weeks", "cellRenderer": "Sparkline",
          "sortable": False, "width": 140, "minWidth": 140}
_FLAGGED = {"pg-flagged": "params.data.flag === true"}
_FLAGGED_COUNT = {"pg-flagged": "params.value > 0"}
_ALL = "all"


def _rows(frame) -> list[dict]:
    return frame.round(2).astype(object).where(frame.notna(), None).to_dict("records") if len(frame) else []


def merchant_rows(merchants) -> list[dict]:
    """Grid rows of the merchants (each with the link to its page; trend in whole currency units)."""
    rows = _rows(merchants.drop(columns=["in_ring"], errors="ignore"))
    for row in rows:
        row["href"] = f"/merchant/{quote(str(row['merchant_id']))}"
        row["trend"] = [round(v) for v in row["trend"] or []]
    return rows


def first_merchants(merchants):
    """The merchants the grid opens with: flagged ones first, then by volume, at most ``MERCHANT_ROWS``."""
    if not len(merchants):
        return merchants
    return merchants.sort_values(["flag", "volume"], ascending=[False, False], kind="stable").head(MERCHANT_ROWS)


def _shown(merchants) -> str:
    if len(merchants) <= MERCHANT_ROWS:
        return f"all {len(merchants):,} merchants"
    return (f"the first {MERCHANT_ROWS:,} of {len(merchants):,} merchants (flagged first, then by volume; click "
            "an agent to list all of its merchants)")


def agent_rows(agents) -> list[dict]:
    """Grid rows of the agents (growth of the last period; an agent without id shown as "-")."""
    if len(agents):
        agents = agents.assign(growth=(agents["recent"] - agents["previous"]) / agents["previous"].where(
            agents["previous"] > 0))
    rows = _rows(agents)
    for row in rows:
        row["agent_id"] = row["agent_id"] or "-"
    return rows


def _money_columns() -> list[dict]:
    return [{"field": "volume", **_MONEY}, {"field": "recent", "headerName": f"last {DAYS} days", **_MONEY},
            {"field": "previous", "headerName": f"{DAYS} days before", **_MONEY}, {"field": "growth", **_GROWTH},
            _TREND]


def layout(**_):
    merchants, agents = cached(portfolio_queries.portfolio, days=DAYS)
    latest = cached(portfolio_queries.latest_transaction)
    as_of = format_value(latest) if latest else "-"
    return html.Div([
        dmc.Title("Merchant portfolio", order=3),
        dmc.Text(["Reference date: ", html.B(as_of, id="portfolio-as-of"),
                  f" (the newest transaction). Volume, active terminals, the last {DAYS} days against the {DAYS} "
                  f"before and the weekly volume of the last {portfolio_queries.TREND_WEEKS} weeks (oldest left), per "
                  "acquiring agent and per merchant, in the transactions' currency. Flagged merchants (highlighted, "
                  "and each agent's count of them): in a ring found by the detectors, or transactions of the last "
                  "period grown faster than the network's (binomial against the network's share of the last "
                  "period, Benjamini-Hochberg q <= 0.05). "
                  "Click an agent to list its merchants, "
                  "a merchant to open it."], size="sm", id="portfolio-note"),
        dmc.Title("Per agent", order=4, mt="md"),
        grid("portfolio-agents", agent_rows(agents),
             [{"field": "agent_id", "headerName": "agent", "cellClass": "pg-clickable", "minWidth": 90},
              {"field": "merchants", **_COUNT}, {"field": "terminals", **_COUNT}, {"field": "txns", **_COUNT}]
             + _money_columns() + [{"field": "flagged", **_COUNT, "cellClassRules": _FLAGGED_COUNT}],
             page_size=10,
             getRowId="params.data.agent_id"),
        dmc.Group([dmc.Title("Per merchant", order=4), dmc.Text(_shown(merchants), id="portfolio-merchants-of",
                                                                  size="sm"),
                   dmc.Button("show all agents", id="portfolio-all", size="compact-xs", variant="subtle")],
                  mt="md", gap="sm"),
        grid("portfolio-merchants", merchant_rows(first_merchants(merchants)),
             [link_column("merchant_id", "merchant", "href", minWidth=110), {"field": "name", "minWidth": 160},
              {"field": "mcc", "width": 80}, {"field": "agent_id", "headerName": "agent"},
              {"field": "terminals", **_COUNT}, {"field": "txns", **_COUNT}] + _money_columns()
             + [{"field": "flag", "width": 80}], page_size=20, rowClassRules=_FLAGGED,
             getRowId="params.data.merchant_id"),
    ])


def register(app: dash.Dash) -> None:
    dash.register_page(__name__, path="/portfolio", name="Merchant portfolio", title="posguard: portfolio",
                       layout=layout)

    @app.callback(Output("url", "pathname", allow_duplicate=True), Input("portfolio-merchants", "cellClicked"),
                  prevent_initial_call=True)
    @guarded()
    def open_merchant(cell):
        """A click anywhere on a merchant's row opens the merchant's page."""
        if not cell or not cell.get("rowId") or cell.get("colId") == "merchant_id":
            raise PreventUpdate  # the merchant cell is a link of its own
        return f"/merchant/{quote(str(cell['rowId']))}"

    @app.callback(Output("portfolio-merchants", "rowData"), Output("portfolio-merchants-of", "children"),
                  Input("portfolio-agents", "cellClicked"), Input("portfolio-all", "n_clicks"),
                  prevent_initial_call=True)
    @guarded()
    def merchants_of(cell, _):
        """A click on an agent's row lists only its merchants; "show all agents" lists every merchant again."""
        merchants, _agents = cached(portfolio_queries.portfolio, days=DAYS)
        agent = (cell or {}).get("rowId") if dash.ctx.triggered_id == "portfolio-agents" else _ALL
        if agent in (None, _ALL) or not len(merchants):
            return merchant_rows(first_merchants(merchants)), _shown(merchants)
        chosen = merchants[merchants["agent_id"].isna()] if agent == "-" else merchants[merchants["agent_id"] == agent]
        return merchant_rows(chosen), f"of agent {agent}: {len(chosen):,} merchants"
