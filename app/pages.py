"""Pages of the explorer and their callbacks: queue, alert (case work), entity pages, rings, portfolio."""

from __future__ import annotations

import re
from urllib.parse import quote, unquote

import dash_cytoscape as cyto
from dash import Input, Output, State, ctx, dash_table, dcc, html, no_update
from dash.exceptions import PreventUpdate

from app import figures, queries
from app.server import current_user, guarded

__all__ = ["layout", "register_callbacks", "route", "search_target"]

_PAN = re.compile(r"^[\d\s-]{12,23}$")
_TOKEN = re.compile(r"^[0-9a-f]{32}$")
_QUEUE_COLUMNS = ["severity", "kind", "entity", "score", "status", "assignee", "created_at", "summary"]


def layout():
    """The page frame: header with search and sign-out, and the routed page below."""
    user = current_user()
    who = f"{user.name} ({user.role})" if user else ""
    return html.Div([
        dcc.Location(id="url"),
        html.Div([
            dcc.Link("posguard", href="/", style={"fontWeight": "bold", "marginRight": "1.5em"}),
            dcc.Link("Alert queue", href="/", style={"marginRight": "1em"}),
            dcc.Link("Merchant portfolio", href="/portfolio", style={"marginRight": "2em"}),
            dcc.Input(id="search", type="text", debounce=True, placeholder="card token or PAN, terminal, merchant",
                      style={"width": "22em"}, autoComplete="off"),
            html.Span(id="search-message", style={"marginLeft": "1em", "color": "#b00020"}),
            html.Span([html.Span(who, id="whoami"), " · ", html.A("Sign out", href="/logout", id="logout")],
                      style={"float": "right"}),
        ], style={"padding": ".6em 1em", "borderBottom": "1px solid #ddd", "background": "#fafafa"}),
        html.Div(id="page", style={"padding": "1em"}),
    ], style={"fontFamily": "system-ui, sans-serif", "fontSize": "14px"})


def route(pathname: str | None):
    """The page for a path: /, /alert/ID, /card/TOKEN, /terminal/ID, /merchant/ID, /ring/ID, /portfolio."""
    path = (pathname or "/").rstrip("/") or "/"
    if path == "/":
        return _queue_page()
    if path == "/portfolio":
        return _portfolio_page()
    parts = path.strip("/").split("/", 1)
    if len(parts) == 2 and parts[0] == "alert":
        return _alert_page(unquote(parts[1]))
    if len(parts) == 2 and parts[0] in queries.ENTITY_KEYS:
        return _entity_page(parts[0], unquote(parts[1]))
    return html.H3("Not found")


# ---------------------------------------------------------------- queue
def _queue_page():
    db = _DB["db"]
    options = queries.queue_options(db)

    def dropdown(id_, values, placeholder):
        return dcc.Dropdown(id=id_, options=[{"label": v, "value": v} for v in values], placeholder=placeholder,
                            style={"width": "12em", "display": "inline-block", "marginRight": ".5em"})

    return html.Div([
        html.H3("Alert queue"),
        html.Div([dropdown("f-kind", options["kinds"], "kind"), dropdown("f-severity", queries.SEVERITIES, "severity"),
                  dropdown("f-status", queries.STATUSES, "status"),
                  dropdown("f-assignee", options["assignees"], "assignee"),
                  dcc.DatePickerRange(id="f-dates", start_date_placeholder_text="raised from",
                                      end_date_placeholder_text="until")]),
        html.Div(id="queue-total", style={"margin": ".5em 0"}),
        dash_table.DataTable(
            id="queue-table", columns=[{"name": c, "id": c, "presentation": "markdown"} if c == "entity"
                                       else {"name": c, "id": c} for c in _QUEUE_COLUMNS],
            page_current=0, page_size=25, page_action="custom", row_selectable="multi", selected_rows=[],
            style_cell={"textAlign": "left", "maxWidth": "40em", "whiteSpace": "normal", "fontSize": "13px"},
            markdown_options={"link_target": "_self"}),
        html.Div([dcc.Input(id="assign-to", placeholder="assign selected to", style={"marginRight": ".5em"}),
                  html.Button("Assign", id="assign-button"), html.Span(id="assign-message",
                                                                       style={"marginLeft": "1em"})],
                 style={"marginTop": ".8em"}),
        dcc.Store(id="queue-ids"),
    ])


def _queue_rows(rows):
    return [{"severity": r["severity"], "kind": r["kind"], "score": round(r["score"] or 0, 3),
             "entity": f"[{r['entity_type']} {r['entity_id'][:16]}](/alert/{quote(r['alert_id'])})",
             "status": r["status"], "assignee": r["assignee"] or "", "created_at": (r["created_at"] or "")[:16],
             "summary": r["summary"]} for r in rows]


# ---------------------------------------------------------------- alert and case work
def _alert_page(alert_id: str):
    db = _DB["db"]
    a = queries.alert(db, alert_id)
    if a is None:
        return html.H3("No such alert")
    can_decide = current_user().can("decide")
    href = f"/{a['entity_type']}/{quote(a['entity_id'])}"
    return html.Div([
        html.H3(f"{a['severity']} · {a['kind']} · score {a['score']:.3f}"),
        html.P(a.get("summary")),
        html.P(["About ", dcc.Link(f"{a['entity_type']} {a['entity_id']}", href=href, id="alert-entity-link"),
                f" · raised {a.get('created_at', '')[:19]} · ", html.B(a.get("status"), id="alert-status"),
                f" · assignee {a.get('assignee') or '-'}"
                + ("" if a.get("active", True) else " · no longer raised by the detectors")]),
        html.Div([
            dcc.Dropdown(id="case-status", options=list(queries.STATUSES), value=a.get("status"), clearable=False,
                         disabled=not can_decide, style={"width": "14em", "display": "inline-block"}),
            dcc.Textarea(id="case-comment", placeholder="comment", disabled=not can_decide,
                         style={"width": "30em", "height": "3em", "verticalAlign": "top", "margin": "0 .5em"}),
            html.Button("Save decision", id="case-save", disabled=not can_decide),
            html.Span(id="case-message", style={"marginLeft": "1em"}),
        ]),
        html.Button("Export case (CSV + JSON evidence)", id="case-export", style={"marginTop": ".8em"}),
        dcc.Download(id="case-download"),
        dcc.Store(id="case-alert-id", data=alert_id),
        html.H4("Audit trail"),
        html.Div(_audit_table(queries.audit_trail(db, alert_id)), id="case-audit"),
    ])


def _audit_table(trail):
    return dash_table.DataTable(data=trail, columns=[{"name": c, "id": c} for c in
                                                     ("at", "user", "action", "before", "after", "comment")],
                                style_cell={"textAlign": "left", "fontSize": "13px"})


# ---------------------------------------------------------------- entity pages
def _entity_page(entity_type: str, entity_id: str):
    db = _DB["db"]
    ent = queries.entity(db, entity_type, entity_id)
    if ent is None:
        return html.H3(f"No {entity_type} {entity_id}")
    props = ent["props"]
    caption = props.get("pan_last4") or props.get("name") or props.get("kind")
    title = f"card **** {props.get('pan_last4', '????')}" if entity_type == "card" else f"{entity_type} {entity_id}"
    label = queries.ENTITY_KEYS[entity_type][0]
    neighbours, total = queries.neighbourhood(db, entity_type, entity_id)
    elements, left_out = figures.graph_elements(label, entity_id, caption, neighbours)
    parts = [html.H3(title), _props_table(props), html.H4("Alerts"), _alerts_table(ent["alerts"])]
    if entity_type == "ring":
        parts += _ring_section(db, entity_id)
    else:
        txns = queries.timeline(db, entity_type, entity_id)
        window = (props.get("skim_window_start"), props.get("skim_window_end"))
        parts.append(dcc.Graph(id="timeline", figure=figures.timeline_figure(
            txns, f"{len(txns):,} transactions" + (" (first 5,000)" if len(txns) >= 5_000 else ""),
            window if window[0] else None)))
        parts.append(_map_section(db, entity_type, entity_id, props, txns))
    parts += [html.H4("Neighbourhood (click a node to expand it)"),
              html.Div(_graph_note(len(elements), left_out, total), id="graph-note"),
              cyto.Cytoscape(id="graph", elements=elements, layout={"name": "cose", "animate": False},
                             stylesheet=figures.CYTO_STYLE, style={"width": "100%", "height": "480px",
                                                                   "border": "1px solid #ddd"})]
    return html.Div(parts)


def _graph_note(n_elements, left_out, total):
    note = f"{n_elements} elements drawn"
    if left_out:
        note += f"; {left_out} neighbours left out (at most {figures.GRAPH_CAP} elements are drawn)"
    return note + f"; {total:,} relationships on the first node"


def _props_table(props):
    rows = [{"property": k, "value": ", ".join(map(str, v)) if isinstance(v, list) else str(v)}
            for k, v in props.items() if k not in ("clone_evidence_txn_ids",)]
    return dash_table.DataTable(data=rows, columns=[{"name": c, "id": c} for c in ("property", "value")],
                                style_cell={"textAlign": "left", "fontSize": "13px", "whiteSpace": "normal"},
                                style_table={"maxWidth": "60em"})


def _alerts_table(alerts):
    rows = [{"alert": f"[{a['kind']}](/alert/{quote(a['alert_id'])})", "severity": a["severity"],
             "score": round(a["score"] or 0, 3), "status": a["status"], "summary": a["summary"]} for a in alerts]
    return dash_table.DataTable(data=rows, columns=[{"name": c, "id": c, "presentation": "markdown"} if c == "alert"
                                                    else {"name": c, "id": c} for c in
                                                    ("alert", "severity", "score", "status", "summary")],
                                markdown_options={"link_target": "_self"},
                                style_cell={"textAlign": "left", "fontSize": "13px", "whiteSpace": "normal"})


def _map_section(db, entity_type, entity_id, props, txns):
    if entity_type == "terminal":
        pos = queries.positions(db, entity_id)
        later = []
        if props.get("skim_window_start"):
            victims = queries.skimming_victims(db, entity_id, props["skim_window_start"], props["skim_window_end"])
            later = [p for v in victims for p in v["later"]]
        title = "registered position (star) and transaction positions" + (
            "; red: where the window's reported cards were used afterwards" if later else "")
        return dcc.Graph(id="map", figure=figures.map_figure((pos["reg_lat"], pos["reg_lon"]), pos["seen"], title,
                                                             later))
    seen = [[a, b, None] for a, b in zip(txns.get("lat", []), txns.get("lon", [])) if a == a and b == b]
    return dcc.Graph(id="map", figure=figures.map_figure(None, seen, "transaction positions"))


def _ring_section(db, ring_id):
    ring = queries.ring_members(db, ring_id)
    members = [{"type": m["type"], "id": ("**** " + m["last4"]) if m["type"] == "Card" else m["id"],
                "link": f"[open](/{m['type'].lower()}/{quote(m['id'])})", "name": m["name"] or "",
                "agent": m["agent_id"] or ""} for m in ring["members"]]
    shared = [{"identifier": s["kind"], "token": s["shared"][:12] + "…", "merchants": ", ".join(s["ms"])}
              for s in ring["shared"]]
    amounts, hours = figures.ring_figures(ring["txns"])
    flow = ring["txns"].groupby("merchant")["amount"].agg(["count", "sum"]).reset_index() if len(ring["txns"]) \
        else None
    return [html.H4(f"{len(members)} members"),
            dash_table.DataTable(data=members, columns=[{"name": c, "id": c, "presentation": "markdown"}
                                                        if c == "link" else {"name": c, "id": c}
                                                        for c in ("type", "id", "link", "name", "agent")],
                                 markdown_options={"link_target": "_self"}, page_size=15,
                                 style_cell={"textAlign": "left", "fontSize": "13px"}),
            html.H4("Identifiers shared by its merchants"),
            dash_table.DataTable(data=shared, columns=[{"name": c, "id": c} for c in ("identifier", "token",
                                                                                      "merchants")],
                                 style_cell={"textAlign": "left", "fontSize": "13px"}),
            html.H4("Money flow: card payments into each ring merchant"),
            dash_table.DataTable(data=flow.to_dict("records") if flow is not None else [],
                                 columns=[{"name": c, "id": c} for c in ("merchant", "count", "sum")],
                                 style_cell={"textAlign": "left", "fontSize": "13px"}),
            dcc.Graph(figure=amounts), dcc.Graph(figure=hours)]


# ---------------------------------------------------------------- portfolio
def _portfolio_page():
    merchants, agents = queries.portfolio(_DB["db"])
    cols = ["merchant_id", "name", "mcc", "agent_id", "terminals", "txns", "volume", "recent", "previous", "growth",
            "flag"]
    data = merchants.round(2).astype(object).where(merchants.notna(), None).to_dict("records") if len(merchants) \
        else []
    return html.Div([
        html.H3("Merchant portfolio"),
        html.P("Volume, active terminals and the last 30 days against the 30 before, per merchant and per "
               "acquiring agent; flag: in a ring found by the detectors, or volume more than doubled."),
        html.H4("Per agent"),
        dash_table.DataTable(data=agents.round(2).to_dict("records") if len(agents) else [],
                             columns=[{"name": c, "id": c} for c in (agents.columns if len(agents) else [])],
                             page_size=10, sort_action="native", style_cell={"textAlign": "left", "fontSize": "13px"}),
        html.H4("Per merchant"),
        dash_table.DataTable(id="portfolio-table", data=data, columns=[{"name": c, "id": c} for c in cols],
                             page_size=20, sort_action="native", filter_action="native",
                             style_data_conditional=[{"if": {"filter_query": "{flag} = True"},
                                                      "backgroundColor": "#fde2e1"}],
                             style_cell={"textAlign": "left", "fontSize": "13px"}),
    ])


# ---------------------------------------------------------------- callbacks
_DB: dict = {}


def search_target(db, text: str, token_key: bytes | None) -> tuple[str | None, str]:
    """Where a search goes: (path or None, message). A typed PAN is tokenized here, never sent back."""
    from etl.tokenize import token

    text = (text or "").strip()
    if not text:
        return None, ""
    if _PAN.match(text) and sum(ch.isdigit() for ch in text) >= 12:
        if token_key is None:
            return None, "PAN search needs POSGUARD_TOKEN_KEY"
        text = token(text, "pan", token_key)
    for entity_type in ("card", "terminal", "merchant", "ring"):
        if (entity_type != "card" or _TOKEN.match(text)) and queries.entity(db, entity_type, text):
            return f"/{entity_type}/{quote(text)}", ""
    return None, "nothing found"


def register_callbacks(app, db, token_key: bytes | None) -> None:
    """Wire every callback of the explorer to ``db``; each is guarded by the session check."""
    _DB["db"] = db

    @app.callback(Output("page", "children"), Input("url", "pathname"))
    @guarded()
    def render(pathname):
        return route(pathname)

    @app.callback(Output("url", "pathname"), Output("search", "value"), Output("search-message", "children"),
                  Input("search", "value"), prevent_initial_call=True)
    @guarded()
    def search(text):
        path, message = search_target(db, text, token_key)
        return (path or no_update), "", message  # the box is cleared: a typed PAN never comes back

    @app.callback(Output("queue-table", "data"), Output("queue-table", "page_count"),
                  Output("queue-total", "children"), Output("queue-ids", "data"),
                  Input("queue-table", "page_current"), Input("queue-table", "page_size"),
                  Input("f-kind", "value"), Input("f-severity", "value"), Input("f-status", "value"),
                  Input("f-assignee", "value"), Input("f-dates", "start_date"), Input("f-dates", "end_date"),
                  Input("assign-message", "children"))
    @guarded()
    def queue(page, size, kind, severity, status, assignee, since, until, _):
        rows, total = queries.queue_page(db, page=page or 0, size=size or 25, kind=kind, severity=severity,
                                         status=status, assignee=assignee, since=since, until=until)
        pages = max(1, -(-total // (size or 25)))
        return _queue_rows(rows), pages, f"{total:,} alerts", [r["alert_id"] for r in rows]

    @app.callback(Output("assign-message", "children"), Input("assign-button", "n_clicks"),
                  State("queue-table", "selected_rows"), State("queue-ids", "data"), State("assign-to", "value"),
                  prevent_initial_call=True)
    @guarded()
    def bulk_assign(_, selected, ids, assignee):
        user = current_user()
        if not user.can("decide"):
            return "only investigators assign cases"
        chosen = [ids[i] for i in (selected or []) if i < len(ids or [])]
        if not chosen:
            return "select alerts first"
        n = queries.assign(db, chosen, assignee, user)
        return f"{n} alerts assigned to {assignee or 'nobody'}"

    @app.callback(Output("case-message", "children"), Output("case-audit", "children"),
                  Output("alert-status", "children"), Input("case-save", "n_clicks"), State("case-alert-id", "data"),
                  State("case-status", "value"), State("case-comment", "value"), prevent_initial_call=True)
    @guarded("decide")
    def save_case(_, alert_id, status, comment):
        before = queries.alert(db, alert_id)
        new_status = status if status != before.get("status") else None
        if new_status is None and not comment:
            return "nothing to save", no_update, no_update
        queries.decide(db, alert_id, new_status, current_user(), comment)
        return "saved", _audit_table(queries.audit_trail(db, alert_id)), status

    @app.callback(Output("case-download", "data"), Input("case-export", "n_clicks"), State("case-alert-id", "data"),
                  prevent_initial_call=True)
    @guarded()
    def export(_, alert_id):
        return dcc.send_bytes(queries.case_bundle(db, alert_id), f"case-{alert_id}.zip")

    @app.callback(Output("graph", "elements"), Output("graph-note", "children"), Input("graph", "tapNodeData"),
                  State("graph", "elements"), prevent_initial_call=True)
    @guarded()
    def expand(node, elements):
        if not node or ctx.triggered_id != "graph" or not queries.can_expand(node.get("kind")):
            raise PreventUpdate
        neighbours, total = queries.neighbourhood(db, node["kind"], node["key"])
        merged, left_out = figures.graph_elements(node["kind"], node["key"], None, neighbours, elements)
        return merged, _graph_note(len(merged), left_out, total).replace("the first node", f"{node['label']}")
