"""An alert (``/alert/<alert_id>``): what it is about, the decision (status, comment), export, audit trail."""

from __future__ import annotations

from urllib.parse import quote

import dash
import dash_mantine_components as dmc
from dash import Input, Output, State, dcc, html, no_update

from app import queries
from app.context import current_user, database, guarded
from app.pages.common import SEVERITY_COLORS, format_value, grid

__all__ = ["register", "layout", "save_decision", "audit_grid"]

AUDIT_COLUMNS = [{"field": c, "headerName": c, "minWidth": 90} for c in ("at", "user", "action", "before", "after")] + [
    {"field": "comment", "headerName": "comment", "flex": 2, "minWidth": 200}]


def audit_grid(trail: list[dict]):
    rows = [dict(e, at=format_value(e["at"])) for e in trail]
    return grid("alert-audit-grid", rows, AUDIT_COLUMNS)


def layout(alert_id: str | None = None, **_):
    db = database()
    a = queries.alert(db, alert_id) if alert_id else None
    if a is None:
        return dmc.Title("No such alert", order=3)
    can_decide = current_user().can("decide")
    href = f"/{a['entity_type']}/{quote(a['entity_id'])}"
    evidence = queries.alert_evidence(db, alert_id)
    return html.Div([
        dmc.Group([dmc.Badge(a["severity"], color=SEVERITY_COLORS.get(a["severity"], "gray"), size="lg"),
                   dmc.Title(f"{a['kind'].replace('_', ' ')} · score {a['score']:.3f}", order=3)], gap="sm"),
        dmc.Text(a.get("summary"), size="md", mt="xs", id="alert-summary"),
        dmc.Text(["About ", dcc.Link(f"{a['entity_type']} {a['entity_id']}", href=href, id="alert-entity-link"),
                  f" · evidence {format_value(evidence['evidence_at']) if evidence['evidence_at'] else '-'}"
                  f" · cards at risk {evidence['impact']:,} · first raised {format_value(a.get('first_raised_at', ''))} · ",
                  html.B(a.get("status"), id="alert-status"), f" · assignee {a.get('assignee') or '-'}"
                  + ("" if a.get("active", True) else " · no longer raised by the detectors")], size="sm", mt="xs"),
        dmc.Paper([
            dmc.Title("Decision", order=4),
            dmc.Group([
                dcc.Dropdown(id="alert-decision", options=list(queries.STATUSES), value=a.get("status"),
                             clearable=False, disabled=not can_decide, style={"width": "14em"}),
                dmc.Textarea(id="alert-comment", placeholder="comment", disabled=not can_decide, w=420,
                             autosize=True, minRows=2),
                dmc.Button("Save decision", id="alert-save", disabled=not can_decide),
                dmc.Text(id="alert-message", size="sm"),
            ], align="flex-start"),
            dmc.Button("Export case (CSV + JSON evidence)", id="alert-export", variant="light", mt="sm"),
        ], withBorder=True, p="sm", mt="md"),
        dcc.Download(id="alert-download"),
        dcc.Store(id="alert-id", data=alert_id),
        html.Div([dmc.Title("Audit trail", order=4),
                  html.Div(audit_grid(queries.audit_trail(db, alert_id)), id="alert-audit")], className="pg-section"),
    ])


def save_decision(db, alert_id: str, status: str | None, comment: str | None, user):
    """Record a decision; returns (message, audit trail or None when nothing was saved, status shown).

    A status equal to the current one and no comment save nothing.
    """
    before = queries.alert(db, alert_id)
    new_status = status if status != before.get("status") else None
    comment = (comment or "").strip() or None
    if new_status is None and not comment:
        return "nothing to save", None, before.get("status")
    queries.decide(db, alert_id, new_status, user, comment)
    return "saved", queries.audit_trail(db, alert_id), status


def register(app: dash.Dash) -> None:
    dash.register_page(__name__, path_template="/alert/<alert_id>", name="Alert", title="posguard: alert",
                       layout=layout)

    @app.callback(Output("alert-message", "children"), Output("alert-audit", "children"),
                  Output("alert-status", "children"), Output("alert-comment", "value"),
                  Input("alert-save", "n_clicks"), State("alert-id", "data"), State("alert-decision", "value"),
                  State("alert-comment", "value"), prevent_initial_call=True)
    @guarded("decide")
    def save(_, alert_id, status, comment):
        message, trail, shown = save_decision(database(), alert_id, status, comment, current_user())
        if trail is None:
            return message, no_update, no_update, no_update
        return message, audit_grid(trail), shown, ""  # the comment box is cleared once saved

    @app.callback(Output("alert-download", "data"), Input("alert-export", "n_clicks"), State("alert-id", "data"),
                  prevent_initial_call=True)
    @guarded()
    def export(_, alert_id):
        return dcc.send_bytes(queries.case_bundle(database(), alert_id), f"case-{alert_id}.zip")
