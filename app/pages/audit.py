"""The audit log (``/audit``): every case event of every alert, filtered by user, action and date."""

from __future__ import annotations

from urllib.parse import quote

import dash
import pandas as pd
import dash_mantine_components as dmc
from dash import Input, Output, dcc, html

from app import queries
from app.context import database, guarded
from app.pages.common import format_value, grid, link_column

__all__ = ["register", "layout", "audit_rows", "until_exclusive", "AUDIT_LIMIT"]

AUDIT_LIMIT = 1_000
COLUMNS = [{"field": "at", "headerName": "at", "width": 160}, {"field": "user", "headerName": "user", "width": 100},
           {"field": "action", "headerName": "action", "width": 120}, link_column("alert", "alert", "href", width=200),
           {"field": "card", "headerName": "card", "width": 90},
           {"field": "before", "headerName": "before", "width": 110},
           {"field": "after", "headerName": "after", "width": 110},
           {"field": "comment", "headerName": "comment", "flex": 1, "minWidth": 200}]


def audit_rows(events: list[dict]) -> list[dict]:
    return [{"at": format_value(e["at"]), "user": e["user"], "action": e["action"],
             "alert": f"{e['kind']} {e['alert_id'][:10]}", "href": f"/alert/{quote(e['alert_id'])}",
             "card": f"*{e['card']}" if e.get("card") else "", "before": e["before"], "after": e["after"],
             "comment": e["comment"]} for e in events]


def layout(**_):
    options = queries.audit_options(database())

    def dropdown(name, values):
        return dcc.Dropdown(id=f"audit-{name}", options=[{"label": v, "value": v} for v in values],
                            placeholder=name, style={"width": "12em"})

    return html.Div([
        dmc.Title("Audit log", order=3),
        dmc.Text("Every decision, comment and assignment on every alert, newest first.", size="sm"),
        dmc.Group([dropdown("user", options["users"]), dropdown("action", options["actions"]),
                   html.Div(dcc.DatePickerRange(id="audit-dates", start_date_placeholder_text="from",
                                                end_date_placeholder_text="until (included)"),
                            style={"width": "20em"})], gap="sm", mt="sm"),
        dmc.Text(id="audit-total", size="sm", my="xs"),
        dcc.Loading(grid("audit-grid", [], COLUMNS, page_size=25), type="dot", delay_show=150),
    ])


def until_exclusive(until: str | None) -> str | None:
    """The day after ``until`` (a date picked as the last day to show)."""
    if not until:
        return None
    return (pd.Timestamp(until[:10]) + pd.Timedelta(days=1)).strftime("%Y-%m-%d")


def register(app: dash.Dash) -> None:
    dash.register_page(__name__, path="/audit", name="Audit log", title="posguard: audit log", layout=layout)

    @app.callback(Output("audit-grid", "rowData"), Output("audit-total", "children"),
                  Input("audit-user", "value"), Input("audit-action", "value"), Input("audit-dates", "start_date"),
                  Input("audit-dates", "end_date"))
    @guarded()
    def events(user, action, since, until):
        rows = queries.audit_log(database(), user=user, action=action, since=since, until=until_exclusive(until),
                                 limit=AUDIT_LIMIT)
        return audit_rows(rows), f"{len(rows):,} events" + (f" (the newest {AUDIT_LIMIT:,})" if len(rows) >=
                                                            AUDIT_LIMIT else "")
