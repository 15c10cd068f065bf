"""An alert (``/alert/<alert_id>``): why it was raised (in words, written at scoring time), the key chart of its
evidence, the cards exposed at a point of compromise (decide and export them in bulk), the decision, export and
audit trail."""

from __future__ import annotations

from urllib.parse import quote

import dash
import dash_mantine_components as dmc
import pandas as pd
from dash import Input, Output, State, ctx, dcc, html, no_update
from dash.exceptions import PreventUpdate

from app import entity_queries, evidence, exposure_queries, figures, queries
from app.context import cached, current_user, database, guarded
from app.pages.common import SEVERITY_COLORS, format_value, grid, link_column, section
from graph.vocabulary import CARD_DECISIONS, STATUSES

__all__ = ["register", "layout", "save_decision", "audit_grid", "explanation_view", "evidence_view",
           "exposed_rows", "decide_exposed", "EXPOSED_COLUMNS"]

AUDIT_COLUMNS = [{"field": c, "headerName": c, "minWidth": 90} for c in ("at", "user", "action", "card", "before",
                                                                        "after")] + [
    {"field": "comment", "headerName": "comment", "flex": 2, "minWidth": 200}]
EXPOSED_COLUMNS = [
    link_column("card", "card", "href", width=120, minWidth=110),
    {"field": "p_compromised", "headerName": "P(compromised)", "width": 140, "type": "numericColumn",
     "valueFormatter": {"function": "d3.format('.2f')(params.value)"}},
    {"field": "reported", "headerName": "reported", "width": 105},
    {"field": "last_activity", "headerName": "last activity", "width": 170},
    {"field": "first_exposed_at", "headerName": "exposed", "width": 170},
    {"field": "recommended_action", "headerName": "recommended", "width": 125,
     "cellClassRules": {"pg-flagged": "params.value === 'reissue' && params.data.reported === 'no'"}},
    {"field": "decision", "headerName": "decision", "width": 120, "minWidth": 110},
    {"field": "decided_by", "headerName": "by", "width": 90},
]
_MODE_WORDS = {"skimming": "shared skimming point", "at_terminal": "fraud at the terminal"}
_NOWRAP = {"whiteSpace": "nowrap"}


def audit_grid(trail: list[dict]):
    rows = [dict(e, at=format_value(e["at"]), card=f"*{e['card']}" if e.get("card") else "") for e in trail]
    return grid("alert-audit-grid", rows, AUDIT_COLUMNS, page_size=20 if len(rows) > 20 else None)


def _paragraphs(words: str) -> list:
    """The stored words as shown: a list of reasons ("Evidence: a; b; c.") becomes a bulleted list."""
    head, sep, rest = words.partition(" Evidence: ")
    end = rest.find(". ")
    if not sep or end < 0:
        return [dmc.Text(words, size="md")]
    items = [dmc.ListItem(r.strip()) for r in rest[:end].split("; ")]
    return [dmc.Text(head + " Evidence:", size="md"), dmc.List(items, size="sm", my=4, withPadding=True),
            dmc.Text(rest[end + 2:], size="md")]


def explanation_view(a: dict):
    """Why the alert was raised, as the detector wrote it at scoring time (with its version stamp)."""
    text = a.get("explanation")
    if not text:
        return dmc.Alert("This alert was raised before explanations were written; re-score to add one.",
                         title="Why", color="gray", id="alert-explanation")
    words, _, stamp = text.rpartition("\n") if "\n" in text else (text, "", "")
    when = f" Written {format_value(a['explained_at'])}." if a.get("explained_at") else ""
    return dmc.Alert(_paragraphs(words) + [dmc.Text(stamp + when, size="xs", c="dimmed", mt=6,
                                                    id="alert-explanation-stamp")],
                     title="Why this alert", color="indigo", variant="light", id="alert-explanation")


def exposed_rows(rows: list[dict]) -> list[dict]:
    """Grid rows of the exposed cards (last four digits only, never a PAN)."""
    return [{"token": r["card"], "card": f"*{r['last4'] or '????'}", "href": f"/card/{quote(r['card'])}",
             "p_compromised": r["p_compromised"], "reported": "yes" if r["reported"] else "no",
             "last_activity": format_value(r["last_activity"]) if r["last_activity"] else "-",
             "first_exposed_at": format_value(r["first_exposed_at"]) if r["first_exposed_at"] else "-",
             "recommended_action": r["recommended_action"], "decision": r["decision"] or "",
             "decided_by": r["decided_by"] or ""} for r in rows]


def _exposed_section(a: dict, rows: list[dict], can_decide: bool):
    mode = exposure_queries.EXPOSURE_MODE[a["kind"]]
    reported = sum(1 for r in rows if r["reported"])
    intro = (f"{len(rows):,} cards exposed at {a['entity_id']} ({_MODE_WORDS[mode]}) in its window: {reported:,} "
             f"already reported, {len(rows) - reported:,} not yet (listed first). Select cards, then decide or "
             f"export them.")
    buttons = [dmc.Button(label, id=f"alert-cards-{d}", color=color, variant="filled" if d == "reissue" else "light",
                          disabled=not can_decide)
               for d, label, color in (("reissue", "Reissue", "red"), ("watch", "Watch", "orange"),
                                       ("dismiss", "Dismiss", "gray"))]
    return html.Div([
        dmc.Title("Exposed cards", order=4),
        dmc.Text(intro, size="sm", mb=6, id="alert-exposed-intro"),
        grid("alert-exposed-grid", exposed_rows(rows), EXPOSED_COLUMNS, selectable=True,
             page_size=15 if len(rows) > 15 else None, getRowId="params.data.token"),
        dmc.Group(buttons + [
            dmc.TextInput(id="alert-cards-comment", placeholder="comment (optional)", w=260,
                          disabled=not can_decide),
            dmc.Button("Export chosen cards (CSV)", id="alert-cards-export", variant="outline"),
            dmc.Text(id="alert-cards-message", size="sm")], mt="xs", gap="xs"),
        dcc.Download(id="alert-cards-download"),
    ], className="pg-section", id="alert-exposed")


def layout(alert_id: str | None = None, **_):
    db = database()
    a = queries.alert(db, alert_id) if alert_id else None
    if a is None:
        return dmc.Title("No such alert", order=3)
    can_decide = current_user().can("decide")
    href = f"/{a['entity_type']}/{quote(a['entity_id'])}"
    ev = queries.alert_evidence(db, alert_id)
    parts = [
        dmc.Group([dmc.Badge(a["severity"], color=SEVERITY_COLORS.get(a["severity"], "gray"), size="lg"),
                   dmc.Title(f"{a['kind'].replace('_', ' ')} · score {a['score']:.3f}", order=3)], gap="sm"),
        dmc.Text(["About ", dcc.Link(f"{a['entity_type']} {a['entity_id']}", href=href, id="alert-entity-link"),
                  f" · evidence {format_value(ev['evidence_at']) if ev['evidence_at'] else '-'}"
                  f" · cards at risk {ev['impact']:,} · first raised {format_value(a.get('first_raised_at', ''))} · ",
                  html.B(a.get("status"), id="alert-status"), f" · assignee {a.get('assignee') or '-'}"
                  + ("" if a.get("active", True) else " · no longer raised by the detectors")], size="sm", mb="xs"),
        explanation_view(a),
        dmc.Text(a.get("summary"), size="xs", c="dimmed", mt=4, id="alert-summary"),
        section("Evidence", html.Div(id="alert-evidence-box", style={"minHeight": "80px"})),
    ]
    if a["kind"] in exposure_queries.EXPOSURE_MODE and a["entity_type"] == "terminal":
        rows = cached(exposure_queries.exposed_cards, a["entity_id"], exposure_queries.EXPOSURE_MODE[a["kind"]])
        parts.append(_exposed_section(a, rows, can_decide))
    parts += [
        dmc.Paper([
            dmc.Title("Decision", order=4),
            dmc.Group([
                dcc.Dropdown(id="alert-decision", options=list(STATUSES), value=a.get("status"),
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
    ]
    return html.Div(parts)


def _pairs_table(pairs: pd.DataFrame):
    if not len(pairs):
        return dmc.Text("No impossible-travel pair among the card's located transactions.", size="sm", c="dimmed",
                        id="alert-travel")
    head = html.Thead(html.Tr([html.Th(c) for c in ("from", "to", "distance", "time", "implied speed")]))
    body = [html.Tr([html.Td(f"{format_value(p.from_ts.isoformat())} at {p.from_terminal}"),
                     html.Td(f"{format_value(p.to_ts.isoformat())} at {p.to_terminal}"),
                     html.Td(f"{p.km:,.0f} km", style=_NOWRAP), html.Td(f"{p.hours * 60:,.0f} min", style=_NOWRAP),
                     html.Td("instant" if p.kmh == float("inf") else f"{p.kmh:,.0f} km/h", style=_NOWRAP)])
            for p in pairs.head(10).itertuples(index=False)]
    rule = evidence.TRAVEL_RULE
    note = (f"Pairs of consecutive located uses at least {rule['min_distance_km']:,.0f} km apart that no plane "
            f"links (over {rule['max_speed_kmh']:,.0f} km/h, with {rule['clock_slack_minutes']:.0f} min of clock "
            f"slack: the detector's default rule), fastest first.")
    return html.Div([dmc.Title("Impossible travel", order=5), dmc.Text(note, size="xs", c="dimmed"),
                     dmc.Table([head, html.Tbody(body)], withTableBorder=True, fz="sm", striped=True)],
                    id="alert-travel")


def evidence_view(db, a: dict) -> list:
    """The key chart(s) of an alert's evidence: a point of compromise's victims over time with its window; a
    cloned card's evidence transactions on timeline and map, its impossible-travel pairs and its ATC."""
    kind, entity_type, entity_id = a["kind"], a["entity_type"], a["entity_id"]
    config = {"displaylogo": False}
    if kind in exposure_queries.EXPOSURE_MODE and entity_type == "terminal":
        props = (entity_queries.entity(db, "terminal", entity_id) or {"props": {}})["props"]
        daily = cached(entity_queries.daily_activity, "terminal", entity_id)
        mode = exposure_queries.EXPOSURE_MODE[kind]
        window = exposure_queries.exposure_window(db, entity_id, mode)  # this mode's window
        if not window[0]:
            window = (props.get("skim_window_start"), props.get("skim_window_end"))
        title = "cards served per day; red: cards later reported (the window's reported cards are the evidence)"
        return [dcc.Graph(id="alert-evidence-chart", figure=figures.victims_figure(daily, window, title),
                          config=config)]
    if kind == "cloned_card" and entity_type == "card":
        ent = entity_queries.entity(db, "card", entity_id) or {"props": {}}
        ids = set(ent["props"].get("clone_evidence_txn_ids") or [])
        txns = cached(entity_queries.timeline, "card", entity_id)
        pairs = evidence.travel_pairs(txns)
        steps = evidence.atc_steps(txns)
        n = int(txns["txn_id"].isin(ids).sum()) if len(txns) else 0
        return [dmc.Text(f"{n} of the card's {len(txns):,} transactions are the detector's evidence (red).",
                         size="sm", id="alert-evidence-count"),
                dcc.Graph(id="alert-evidence-chart", figure=figures.evidence_timeline_figure(txns, ids, pairs),
                          config=config),
                dmc.SimpleGrid([dcc.Graph(id="alert-evidence-map", figure=figures.evidence_map_figure(
                                    txns, ids, pairs), config=figures.MAP_CONFIG),
                                html.Div([_pairs_table(pairs),
                                          dcc.Graph(id="alert-atc-chart", figure=figures.atc_figure(steps, ids),
                                                    config=config)])],
                               cols={"base": 1, "lg": 2}, spacing="md")]
    if entity_type == "terminal":
        daily = cached(entity_queries.daily_activity, "terminal", entity_id)
        title = f"{int(daily['txns'].sum()) if len(daily) else 0:,} transactions of {entity_id}, per day"
        return [dcc.Graph(id="alert-evidence-chart", config=config, figure=figures.daily_figure(daily, title))]
    return [dmc.Text(["The evidence is on the ", dcc.Link(f"{entity_type} page", href=f"/{entity_type}/"
                                                          f"{quote(entity_id)}"), "."], size="sm")]


def decide_exposed(db, alert_id: str, tokens: list[str], decision: str, comment: str | None, user):
    """Record a bulk decision on exposed cards; returns (message, grid rows, audit trail)."""
    a = queries.alert(db, alert_id)
    n = exposure_queries.decide_cards(db, alert_id, tokens, decision, user, comment)
    rows = exposure_queries.exposed_cards(db, a["entity_id"], exposure_queries.EXPOSURE_MODE[a["kind"]])
    return f"{decision}: {n} card{'s' if n != 1 else ''} recorded", exposed_rows(rows), queries.audit_trail(db, alert_id)


def register(app: dash.Dash) -> None:
    dash.register_page(__name__, path_template="/alert/<alert_id>", name="Alert", title="posguard: alert",
                       layout=layout)

    @app.callback(Output("alert-evidence-box", "children"), Input("alert-id", "data"))
    @guarded()
    def evidence_box(alert_id):
        db = database()
        a = queries.alert(db, alert_id) if alert_id else None
        if a is None:
            raise PreventUpdate
        return evidence_view(db, a)

    @app.callback(Output("alert-cards-message", "children"), Output("alert-exposed-grid", "rowData"),
                  Output("alert-audit", "children", allow_duplicate=True),
                  Output("alert-cards-comment", "value"),
                  Input("alert-cards-reissue", "n_clicks"), Input("alert-cards-watch", "n_clicks"),
                  Input("alert-cards-dismiss", "n_clicks"), State("alert-exposed-grid", "selectedRows"),
                  State("alert-id", "data"), State("alert-cards-comment", "value"), prevent_initial_call=True)
    @guarded("decide")
    def decide_cards(_r, _w, _d, selected, alert_id, comment):
        decision = str(ctx.triggered_id or "").rsplit("-", 1)[-1]
        if decision not in CARD_DECISIONS:
            raise PreventUpdate
        tokens = [r["token"] for r in selected or [] if r.get("token")]
        if not tokens:
            return "choose cards first", no_update, no_update, no_update
        message, rows, trail = decide_exposed(database(), alert_id, tokens, decision, comment, current_user())
        return message, rows, audit_grid(trail), ""

    @app.callback(Output("alert-cards-download", "data"), Output("alert-cards-message", "children",
                                                                 allow_duplicate=True),
                  Input("alert-cards-export", "n_clicks"), State("alert-exposed-grid", "selectedRows"),
                  State("alert-id", "data"), prevent_initial_call=True)
    @guarded()
    def export_cards(_, selected, alert_id):
        tokens = [r["token"] for r in selected or [] if r.get("token")]
        if not tokens:
            return no_update, "choose cards first"
        db = database()
        a = queries.alert(db, alert_id)
        if a is None or a["kind"] not in exposure_queries.EXPOSURE_MODE:
            raise PreventUpdate
        text = exposure_queries.exposed_csv(db, a["entity_id"], exposure_queries.EXPOSURE_MODE[a["kind"]], tokens)
        return dcc.send_string(text, f"exposed-cards-{a['entity_id']}.csv"), f"exported {len(tokens)} cards"

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
