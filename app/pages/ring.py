"""A ring's page (``/ring/<ring_id>``): members, shared identifiers, money flow, amounts and hours, graph."""

from __future__ import annotations

from urllib.parse import quote

import dash
import dash_mantine_components as dmc
from dash import Input, Output, dcc, html
from dash.exceptions import PreventUpdate

from app import entity_queries, figures
from app.context import cached, database, guarded
from app.pages.common import entity_layout, grid, link_column, register_entity_sections

__all__ = ["register", "layout", "members_section", "PREFIX"]

PREFIX = "ring"


def layout(ring_id: str | None = None, **_):
    return entity_layout(PREFIX, "ring", ring_id)


def members_section(db, ring_id: str):
    ring = cached(entity_queries.ring_members, ring_id)
    members = [{"type": m["type"], "id": ("**** " + m["last4"]) if m["type"] == "Card" else m["id"],
                "href": f"/{m['type'].lower()}/{quote(m['id'])}", "name": m["name"] or "",
                "agent": m["agent_id"] or ""} for m in ring["members"]]
    shared = [{"identifier": s["kind"], "token": s["shared"][:12] + "…", "merchants": ", ".join(s["ms"])}
              for s in ring["shared"]]
    amounts, hours = figures.ring_figures(ring["txns"])
    flow = (ring["txns"].groupby("merchant")["amount"].agg(["count", "sum"]).reset_index().round(2)
            .to_dict("records") if len(ring["txns"]) else [])
    money = {"valueFormatter": {"function": "d3.format(',.2f')(params.value)"}, "type": "numericColumn"}
    return html.Div([
        dmc.Text(f"{len(members)} members", size="sm", id="ring-member-count"),
        grid("ring-members", members, [{"field": "type", "width": 110}, link_column("id", "id", "href"),
                                       {"field": "name"}, {"field": "agent"}], page_size=15),
        dmc.Title("Identifiers shared by its merchants", order=5, mt="sm"),
        grid("ring-shared", shared, [{"field": c} for c in ("identifier", "token", "merchants")]),
        dmc.Title("Money flow: card payments into each ring merchant", order=5, mt="sm"),
        grid("ring-flow", flow, [{"field": "merchant"}, {"field": "count", "type": "numericColumn"},
                                 {"field": "sum", "headerName": "amount", **money}]),
        dmc.SimpleGrid([dcc.Graph(figure=amounts, config={"displaylogo": False}),
                        dcc.Graph(figure=hours, config={"displaylogo": False})], cols={"base": 1, "lg": 2}),
    ])


def register(app: dash.Dash) -> None:
    dash.register_page(__name__, path_template="/ring/<ring_id>", name="Ring", title="posguard: ring", layout=layout)
    register_entity_sections(app, PREFIX, "ring")

    @app.callback(Output("ring-members-box", "children"), Input("ring-key", "data"))
    @guarded()
    def members(ring_id):
        if not ring_id:
            raise PreventUpdate
        return members_section(database(), ring_id)
