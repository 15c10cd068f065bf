"""The alert queue (``/``): a first-screen summary, filters kept in the URL, a sortable grid, bulk assignment.

Default order: severity, then impact (cards at risk: a point of compromise's exposed cards, a ring's
members, the one card of a cloned-card alert), then score (``queue_key``, stored by the scoring run: ``graph.writeback.QUEUE_KEY``).
"""

from __future__ import annotations

import json
from urllib.parse import quote, urlencode

import dash
import dash_mantine_components as dmc
from dash import Input, Output, State, dcc, html

from app import queries
from app.context import cached, current_user, database, guarded
from app.pages.common import SEVERITY_COLORS, grid, link_column
from graph.vocabulary import SEVERITIES, STATUSES

__all__ = ["register", "layout", "parse_filters", "query_string", "queue_rows", "summary_view", "QUEUE_ROWS",
           "FILTERS"]

QUEUE_ROWS = 500  # rows the grid holds (in its default order); narrower filters reach the rest
FILTERS = ("kind", "severity", "status", "assignee", "since", "until", "new")
_SEVERITY_NAMES = f"{json.dumps(list(SEVERITIES))}[params.value]"
COLUMNS = [
    {"field": "severity_rank", "headerName": "severity", "width": 105, "valueFormatter": {"function": _SEVERITY_NAMES},
     "cellClassRules": {"pg-flagged": "params.value === 0"}},
    {"field": "kind", "headerName": "kind", "width": 150},
    link_column("entity", "entity", "href", minWidth=170),
    {"field": "impact", "headerName": "cards at risk", "headerTooltip": "impact: a point of compromise's "
     "exposed cards (used it inside its window), members of a ring, 1 for a cloned card", "width": 130, "minWidth": 120, "type": "numericColumn"},
    {"field": "score", "headerName": "score", "width": 90, "type": "numericColumn"},
    {"field": "status", "headerName": "status", "width": 120, "minWidth": 115},
    {"field": "assignee", "headerName": "assignee", "width": 110},
    {"field": "evidence", "headerName": "evidence date", "width": 190, "minWidth": 185},
    {"field": "summary", "headerName": "summary", "minWidth": 380, "flex": 1, "tooltipField": "summary"},
]


def parse_filters(query: dict) -> dict:
    """The queue's filters from the URL's query parameters (unknown ones ignored)."""
    out = {k: (query.get(k) or None) for k in FILTERS}
    out["new"] = out["new"] in ("1", "true", "yes")
    return out


def query_string(filters: dict) -> str:
    """The URL query string ("?kind=...") that reproduces ``filters`` ("" when none is set)."""
    pairs = [(k, "1" if k == "new" else str(filters[k])) for k in FILTERS if filters.get(k)]
    return "?" + urlencode(pairs) if pairs else ""


def queue_rows(rows: list[dict]) -> list[dict]:
    """Grid rows of the queue: the evidence date when the alert has one, else when it was first raised."""
    out = []
    for r in rows:
        if r.get("evidence_at"):
            evidence = r["evidence_at"][:10]
        else:
            evidence = f"{(r.get('first_raised_at') or r.get('created_at') or '')[:10]} (raised)"
        out.append({"alert_id": r["alert_id"], "severity": r["severity"],
                    "severity_rank": SEVERITIES.index(r["severity"]) if r["severity"] in SEVERITIES
                    else len(SEVERITIES), "kind": r["kind"], "entity": f"{r['entity_type']} {str(r['entity_id'])[:16]}",
                    "href": f"/alert/{quote(r['alert_id'])}", "impact": r.get("impact") or 0,
                    "score": round(r["score"] or 0, 3), "status": r["status"], "assignee": r["assignee"] or "",
                    "evidence": evidence, "summary": r["summary"]})
    return out


def summary_view(summary: dict, user_name: str):
    """The first screen: open alerts by kind and severity, new since the last scoring run, mine (links)."""
    run = summary["last_run"]
    stats = [("Open alerts", summary["total"], "/"),
             (f"New since the last scoring run ({run['at'][:16].replace('T', ' ')} UTC)" if run else "New",
              summary["new"], "/?new=1"),
             ("Assigned to me", summary["mine"], "/?" + urlencode({"assignee": user_name}))]
    cards = [dmc.Paper([dmc.Text(label, size="sm", c="dimmed"),
                        dcc.Link(dmc.Text(f"{n:,}", size="xl", fw=700), href=href)],
                       withBorder=True, p="sm", id=f"queue-stat-{i}") for i, (label, n, href) in enumerate(stats)]
    kinds = sorted({c["kind"] for c in summary["cells"]})
    count = {(c["kind"], c["severity"]): c["n"] for c in summary["cells"]}
    head = html.Thead(html.Tr([html.Th("kind")] + [html.Th(dmc.Badge(s, color=SEVERITY_COLORS[s], variant="light"))
                                                   for s in SEVERITIES]))
    body = html.Tbody([html.Tr([html.Td(k, style={"textAlign": "left"})] + [
        html.Td(dcc.Link(f"{count[(k, s)]:,}", href="/?" + urlencode({"kind": k, "severity": s}))
                if count.get((k, s)) else "·") for s in SEVERITIES]) for k in kinds])
    matrix = dmc.Table([head, body], withTableBorder=True, fz="sm", className="pg-summary", id="queue-summary",
                       style={"maxWidth": "44em"}, verticalSpacing=2)
    return dmc.Group([dmc.Stack(cards, gap="xs", w=300), matrix], align="flex-start", gap="lg")


def layout(**query):
    user = current_user()
    filters = parse_filters(query)
    options = cached(queries.queue_options)

    def dropdown(name, values, placeholder):
        return dcc.Dropdown(id=f"queue-{name}", options=[{"label": v, "value": v} for v in values],
                            value=filters[name], placeholder=placeholder, style={"width": "12em"})

    return html.Div([
        dmc.Title("Alert queue", order=3),
        dcc.Loading(summary_view(cached(queries.queue_summary, user.name), user.name), type="dot"),
        dmc.Group([dropdown("kind", options["kinds"], "kind"), dropdown("severity", SEVERITIES, "severity"),
                   dropdown("status", STATUSES, "status"),
                   dropdown("assignee", sorted(set(options["assignees"]) | {user.name}), "assignee"),
                   html.Div(dcc.DatePickerRange(id="queue-dates", start_date=filters["since"],
                                                end_date=filters["until"], start_date_placeholder_text="raised from",
                                                end_date_placeholder_text="until"), style={"width": "20em"}),
                   dcc.Checklist(id="queue-new", options=[{"label": " new since the last scoring run",
                                                          "value": "new"}],
                                 value=["new"] if filters["new"] else [])], gap="sm", mt="md"),
        dmc.Text(id="queue-total", size="sm", my="xs"),
        dcc.Loading(grid("queue-grid", [], COLUMNS, page_size=25, selectable=True,
                         getRowId="params.data.alert_id"), type="dot", delay_show=150),
        dmc.Group([dcc.Input(id="queue-assign-to", placeholder="assign selected to"),
                   dmc.Button("Assign", id="queue-assign-button", size="xs"),
                   dmc.Text(id="queue-assign-message", size="sm")], mt="sm"),
        dcc.Store(id="queue-query"),
        html.Div(id="queue-url-dummy", hidden=True),
    ])


def register(app: dash.Dash) -> None:
    dash.register_page(__name__, path="/", name="Alert queue", title="posguard: alert queue", layout=layout)

    @app.callback(Output("queue-grid", "rowData"), Output("queue-total", "children"), Output("queue-query", "data"),
                  Input("queue-kind", "value"), Input("queue-severity", "value"), Input("queue-status", "value"),
                  Input("queue-assignee", "value"), Input("queue-dates", "start_date"),
                  Input("queue-dates", "end_date"), Input("queue-new", "value"),
                  Input("queue-assign-message", "children"))
    @guarded()
    def queue(kind, severity, status, assignee, since, until, new, _):
        db = database()
        run = queries.last_run(db) if new else None
        rows, total = cached(queries.queue_page, page=0, size=QUEUE_ROWS, kind=kind, severity=severity,
                             status=status, assignee=assignee, since=since, until=until,
                             new_since=run["at"] if run else None)
        shown = f"{total:,} alerts" + (f"; the first {QUEUE_ROWS:,} in the grid" if total > QUEUE_ROWS else "")
        filters = {"kind": kind, "severity": severity, "status": status, "assignee": assignee, "since": since,
                   "until": until, "new": bool(new)}
        return queue_rows(rows), shown + " · order: severity, then impact (cards at risk), then score", \
            query_string(filters)

    # The filters go into the address bar without reloading the page (a shared or reloaded URL keeps them).
    app.clientside_callback(
        """function(qs) {
            const url = window.location.pathname + (qs || '');
            if (url !== window.location.pathname + window.location.search) { window.history.replaceState(null, '', url); }
            return window.dash_clientside.no_update;
        }""",
        Output("queue-url-dummy", "children"), Input("queue-query", "data"), prevent_initial_call=True)

    @app.callback(Output("queue-assign-message", "children"), Input("queue-assign-button", "n_clicks"),
                  State("queue-grid", "selectedRows"), State("queue-assign-to", "value"), prevent_initial_call=True)
    @guarded()
    def bulk_assign(_, selected, assignee):
        user = current_user()
        if not user.can("decide"):
            return "only investigators assign cases"
        chosen = [r["alert_id"] for r in (selected or []) if r.get("alert_id")]
        if not chosen:
            return "select alerts first"
        n = queries.assign(database(), chosen, assignee, user)
        return f"{n} alerts assigned to {assignee or 'nobody'}"
