"""Pieces shared by the explorer's pages: grids, property and alert tables, and the entity pages' sections
(timeline, map, neighbourhood graph) that load after the page is shown, each behind a loading indicator."""

from __future__ import annotations

from datetime import datetime
from urllib.parse import quote

import dash_ag_grid as dag
import dash_cytoscape as cyto
import dash_mantine_components as dmc
from dash import Input, Output, State, ctx, dcc, html
from dash.exceptions import PreventUpdate

from app import entity_queries, exposure_queries, figures
from app.context import cached, database, guarded
from graph.schema import ENTITY_KEYS

__all__ = ["grid", "link_column", "format_value", "property_rows", "props_table", "alerts_table", "section",
           "entity_layout", "register_entity_sections", "activity_sections", "graph_note",
           "expand_graph", "SEVERITY_COLORS", "exposures_view",
           "terminal_exposures_view", "distinct_positions", "latest_rows", "LATEST_ROWS"]

SEVERITY_COLORS = {"critical": "red", "high": "orange", "medium": "yellow"}
_HIDDEN_PROPS = {"clone_evidence_txn_ids"}
_MAP_POINTS = 2_000  # distinct transaction positions drawn on a map at most
# The sections an entity page loads after it is shown (prefix-<name>-box), per entity type.
_SECTIONS = {"card": ("timeline", "map"), "terminal": ("timeline", "map"), "merchant": ("timeline", "map"),
             "ring": ("members",)}


def grid(id_: str, rows: list[dict], columns: list[dict], *, page_size: int | None = None, height: str | None = None,
         selectable: bool = False, **kwargs) -> dag.AgGrid:
    """An AG Grid with sortable, resizable columns; paginated when ``page_size``; auto height when small."""
    options = {"animateRows": False, "suppressCellFocus": True, "enableCellTextSelection": True}
    if page_size:
        options.update(pagination=True, paginationPageSize=page_size, paginationPageSizeSelector=False)
    if selectable:
        options.update(rowSelection={"mode": "multiRow", "enableClickSelection": False})
    style = {"height": height} if height else {}
    if not height:
        options["domLayout"] = "autoHeight"
    return dag.AgGrid(id=id_, rowData=rows, columnDefs=columns, dashGridOptions=options, style=style,
                      defaultColDef={"sortable": True, "resizable": True, "filter": False, "minWidth": 70},
                      columnSize="responsiveSizeToFit", **kwargs)


def link_column(field: str, header: str, href_field: str, **extra) -> dict:
    """A column whose cells link to ``row[href_field]`` inside the app (no page reload)."""
    return {"field": field, "headerName": header, "cellRenderer": "PageLink",
            "cellRendererParams": {"hrefField": href_field}, **extra}


def format_value(value) -> str:
    """A property value as an investigator reads it: dates to the minute in UTC, few digits, lists joined."""
    if isinstance(value, list):
        return ", ".join(format_value(v) for v in value)
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float):
        if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e7):
            return f"{value:.2e}"
        return f"{value:.6f}".rstrip("0").rstrip(".") if abs(value) < 1e4 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}" if abs(value) >= 10_000 else str(value)
    text = str(value)
    if len(text) >= 19 and text[4] == "-" and text[10] == "T":
        try:
            stamp = datetime.fromisoformat(text[:19])
        except ValueError:
            return text
        return stamp.strftime("%Y-%m-%d %H:%M") + " UTC"
    return text


def property_rows(props: dict) -> list[tuple[str, str]]:
    """(name, shown value) of an entity's properties, underscores as spaces."""
    return [(k.replace("_", " "), format_value(v)) for k, v in props.items() if k not in _HIDDEN_PROPS]


def props_table(props: dict, id_: str) -> dmc.Table:
    rows = [html.Tr([html.Td(k, style={"color": "#555", "whiteSpace": "nowrap"}),
                     html.Td(v, style={"wordBreak": "break-all"})])
            for k, v in property_rows(props)]
    return dmc.Table(html.Tbody(rows), id=id_, striped=True, withTableBorder=True, fz="sm",
                     style={"maxWidth": "60em"}, verticalSpacing=4)


def alerts_table(alerts: list[dict], id_: str):
    if not alerts:
        return dmc.Text("No alert about it.", c="dimmed", size="sm", id=id_)
    rows = [html.Tr([html.Td(dcc.Link(a["kind"], href=f"/alert/{quote(a['alert_id'])}")),
                     html.Td(dmc.Badge(a["severity"], color=SEVERITY_COLORS.get(a["severity"], "gray"),
                                       variant="light"), style={"minWidth": "90px"}),
                     html.Td(f"{a['score'] or 0:.3f}"), html.Td(a["status"]), html.Td(a["summary"])])
            for a in alerts]
    head = html.Thead(html.Tr([html.Th(c) for c in ("alert", "severity", "score", "status", "summary")]))
    return dmc.Table([head, html.Tbody(rows)], id=id_, withTableBorder=True, fz="sm", highlightOnHover=True)


def section(title: str, child, id_: str | None = None) -> html.Div:
    """A titled part of a page behind a loading indicator."""
    return html.Div([dmc.Title(title, order=4), dcc.Loading(child, type="dot", delay_show=150)],
                    className="pg-section", id=id_ or "")


def _legend():
    return html.Div([html.Span([html.Span(className="dot", style={"background": figures._COLORS[kind]}), text])
                     for kind, text in figures.LEGEND], className="pg-legend", style={"fontSize": "12px"})


_MODE_WORDS = {"skimming": "shared skimming point", "at_terminal": "compromised terminal"}


def exposures_view(exposures: list[dict], id_: str):
    """A card's exposures: "exposed at point T during its window", with the probability and the decision."""
    if not exposures:
        return html.Div(id=id_)
    items = []
    for e in exposures:
        words = ["Exposed at point ", dcc.Link(e["terminal_id"], href=f"/terminal/{quote(e['terminal_id'])}"),
                 f" ({_MODE_WORDS.get(e['mode'], e['mode'])}) during its window "
                 f"{format_value(e['window_start'])[:10] if e['window_start'] else '?'} to "
                 f"{format_value(e['window_end'])[:10] if e['window_end'] else '?'}"
                 f" (here {format_value(e['first_exposed_at']) if e['first_exposed_at'] else '-'}); "
                 f"P(compromised) {e['p_compromised']:.2f}, {'reported' if e['reported'] else 'not reported'}, "
                 f"recommended: {e['recommended_action']}"
                 + (f"; decided: {e['decision']}" if e.get("decision") else "")]
        if e.get("alert_id"):
            words += [" · ", dcc.Link("alert", href=f"/alert/{quote(e['alert_id'])}")]
        items.append(dmc.ListItem(dmc.Text(words, size="sm")))
    return dmc.Alert(dmc.List(items, size="sm"), title="Exposed at a point of compromise", color="red",
                     variant="light", id=id_, mt="sm")


def terminal_exposures_view(rows: list[dict], id_: str):
    """A point of compromise's exposed cards in one line per mode, with a link to the alert that lists them."""
    if not rows:
        return html.Div(id=id_)
    items = []
    for r in rows:
        words = [f"{r['cards']:,} cards exposed here ({_MODE_WORDS.get(r['mode'], r['mode'])}): {r['reported']:,} "
                 f"reported, {r['cards'] - r['reported']:,} not yet, {r['decided']:,} decided"]
        if r.get("alert_id"):
            words += [" · ", dcc.Link("list, decide and export them on the alert",
                                      href=f"/alert/{quote(r['alert_id'])}")]
        items.append(dmc.ListItem(dmc.Text(words, size="sm")))
    return dmc.Alert(dmc.List(items, size="sm"), title="Point of compromise", color="red", variant="light", id=id_,
                     mt="sm")


def entity_layout(prefix: str, entity_type: str, entity_id: str | None):
    """A card, terminal, merchant or ring page: title, properties and alerts at once; the rest
    (timeline, map or members, neighbourhood graph) loads behind loading indicators."""
    ent = entity_queries.entity(database(), entity_type, entity_id) if entity_id else None
    if ent is None:
        return html.Div([dmc.Title(f"No {entity_type} {entity_id or ''}", order=3, id=f"{prefix}-title")])
    props = ent["props"]
    title = f"card **** {props.get('pan_last4', '????')}" if entity_type == "card" else f"{entity_type} {entity_id}"
    titles = {"timeline": "Transactions", "map": "Where", "members": "Members"}
    parts = [dmc.Title(title, order=3, id=f"{prefix}-title"),
             dmc.SimpleGrid([html.Div([dmc.Title("Properties", order=4), props_table(props, f"{prefix}-props")]),
                             html.Div([dmc.Title("Alerts", order=4), alerts_table(ent["alerts"],
                                                                                  f"{prefix}-alerts")])],
                            cols={"base": 1, "lg": 2}, spacing="lg"),
             dcc.Store(id=f"{prefix}-key", data=entity_id)]
    if entity_type == "card":
        parts.append(exposures_view(exposure_queries.card_exposures(database(), entity_id), f"{prefix}-exposures"))
    if entity_type == "terminal":
        parts.append(terminal_exposures_view(exposure_queries.terminal_exposures(database(), entity_id),
                                             f"{prefix}-exposures"))
    parts += [section(titles[name], html.Div(id=f"{prefix}-{name}-box", style={"minHeight": "60px"}))
              for name in _SECTIONS[entity_type]]
    parts.append(section("Neighbourhood (click a node to expand it, a group to open it)", html.Div([
        html.Div(id=f"{prefix}-graph-note", style={"fontSize": "13px", "margin": ".3em 0"}),
        _legend(),
        cyto.Cytoscape(id=f"{prefix}-graph", elements=[], layout={"name": "preset", "fit": True, "padding": 20},
                       stylesheet=figures.CYTO_STYLE, minZoom=0.2, maxZoom=3,
                       style={"width": "100%", "height": "520px", "border": "1px solid #ddd"})])))
    return html.Div(parts, **{"data-expect-graph": "yes"})


def distinct_positions(lats, lons, cap: int = _MAP_POINTS) -> list[list]:
    """The distinct positions (to 1e-4 degree, about 10 m) among transactions' latitudes and longitudes, in
    their order, at most ``cap``: a terminal's thousands of transactions at the same place are one point to
    draw, not thousands (the map draws every point as its own SVG element)."""
    out, seen = [], set()
    for a, b in zip(lats, lons):
        if a is None or b is None or a != a or b != b:
            continue
        key = (round(float(a), 4), round(float(b), 4))
        if key not in seen:
            seen.add(key)
            out.append([float(a), float(b), None])
            if len(out) >= cap:
                break
    return out


LATEST_ROWS = 100  # a terminal's or merchant's newest transactions listed under its daily chart
_LATEST_COLUMNS = [
    {"field": "ts", "headerName": "time (UTC)", "width": 170},
    {"field": "amount", "headerName": "amount", "width": 110, "type": "numericColumn",
     "valueFormatter": {"function": "d3.format(',.2f')(params.value)"}},
    {"field": "currency", "headerName": "cur.", "width": 80},
    {"field": "entry_mode", "headerName": "entry", "width": 110},
    {"field": "txn_type", "headerName": "type", "width": 100},
    link_column("card", "card", "card_href", width=110),
    link_column("terminal_id", "terminal", "terminal_href", minWidth=130),
    {"field": "reported", "headerName": "card reported", "width": 130,
     "cellClassRules": {"pg-flagged": "params.value === 'yes'"}},
]


def latest_rows(rows: list[dict]) -> list[dict]:
    """Grid rows of the newest transactions (last four digits of the card only)."""
    return [{"ts": format_value(r["ts"]), "amount": r["amount"], "currency": r.get("currency") or "",
             "entry_mode": r["entry_mode"], "txn_type": r["txn_type"], "card": f"*{r['last4'] or '????'}",
             "card_href": f"/card/{quote(r['card'])}", "terminal_id": r["terminal_id"],
             "terminal_href": f"/terminal/{quote(r['terminal_id'])}", "reported": "yes" if r["reported"] else "no"}
            for r in rows]


def _busy_activity(db, entity_type: str, entity_id: str, prefix: str, window: tuple | None):
    """A terminal's or merchant's activity as its page shows it: one bar per day (computed in Cypher, not one
    point per transaction) and a grid of its newest ``LATEST_ROWS`` transactions."""
    daily = cached(entity_queries.daily_activity, entity_type, entity_id)
    total = int(daily["txns"].sum()) if len(daily) else 0
    latest = cached(entity_queries.latest_transactions, entity_type, entity_id, LATEST_ROWS)
    title = f"{total:,} transactions over {len(daily):,} days"
    chart = dcc.Graph(id=f"{prefix}-timeline", config={"displaylogo": False},
                      figure=figures.daily_figure(daily, title, window))
    note = (f"The newest {len(latest):,} of {total:,} transactions" if total > len(latest)
            else f"All {total:,} transactions, newest first")
    return html.Div([chart, dmc.Text(note, size="sm", mt=4, id=f"{prefix}-latest-note"),
                     grid(f"{prefix}-latest-grid", latest_rows(latest), _LATEST_COLUMNS,
                          page_size=20 if len(latest) > 20 else None)])


def activity_sections(db, entity_type: str, entity_id: str, prefix: str):
    """The transactions chart and the map of a card, terminal or merchant (kept in the app's cache while the
    data is unchanged). A card shows each transaction; a terminal or merchant (up to tens of thousands of
    transactions) its activity per day, its newest transactions and each distinct position once; a skimming
    point's map also shows where its window's reported cards were used afterwards."""
    props = entity_queries.entity(db, entity_type, entity_id)["props"]
    window = (props.get("skim_window_start"), props.get("skim_window_end"))
    if entity_type == "card":
        txns = cached(entity_queries.timeline, entity_type, entity_id)
        title = f"{len(txns):,} transactions" + (" (first 5,000)" if len(txns) >= 5_000 else "")
        timeline = dcc.Graph(id=f"{prefix}-timeline", config={"displaylogo": False},
                             figure=figures.timeline_figure(txns, title, window if window[0] else None))
        seen = distinct_positions(txns.get("lat", []), txns.get("lon", []))
    else:
        timeline = _busy_activity(db, entity_type, entity_id, prefix, window if window[0] else None)
        seen = cached(entity_queries.activity_positions, entity_type, entity_id, _MAP_POINTS)
    if entity_type == "terminal":
        later = []
        if props.get("skim_window_start"):
            victims = cached(exposure_queries.skimming_victims, entity_id, props["skim_window_start"],
                             props["skim_window_end"])
            later = [p for v in victims for p in v["later"]]
        title = "registered position (star) and transaction positions" + (
            "; red: where the window's reported cards were used afterwards" if later else "")
        figure = figures.map_figure((props.get("lat"), props.get("lon")), seen, title, later)
    else:
        figure = figures.map_figure(None, seen, "transaction positions")
    return timeline, dcc.Graph(id=f"{prefix}-map", figure=figure, config=figures.MAP_CONFIG)


def graph_note(n_elements: int, left_out: int, total: int, where: str = "the first node") -> str:
    note = f"{n_elements} elements drawn"
    if left_out:
        note += f"; {left_out} neighbours left out (at most {figures.GRAPH_CAP} elements are drawn)"
    return note + f"; {total:,} relationships on {where}"


def first_graph(db, entity_type: str, entity_id: str) -> tuple[list[dict], str]:
    """The neighbourhood graph of a page's entity, and its note."""
    ent = entity_queries.entity(db, entity_type, entity_id)
    props = ent["props"] if ent else {}
    caption = props.get("pan_last4") or props.get("kind") or props.get("name")
    label = ENTITY_KEYS[entity_type][0]
    neighbours, total = cached(entity_queries.neighbourhood, entity_type, entity_id)
    elements, left_out = figures.graph_elements(label, entity_id, caption, neighbours)
    return elements, graph_note(len(elements), left_out, total)


def expand_graph(db, node: dict, elements: list[dict]) -> tuple[list[dict], str]:
    """The graph after a click on ``node``: a group opens; another node's neighbours are added around it."""
    if node.get("kind") == "Group":
        merged, left_out = figures.open_group(node["id"], elements)
        note = f"{len(merged)} elements drawn" + (f"; {left_out} cards of the group left out (at most "
                                                  f"{figures.GRAPH_CAP} elements are drawn)" if left_out else "")
        return merged, note
    if not entity_queries.can_expand(node.get("kind")):
        raise PreventUpdate
    neighbours, total = cached(entity_queries.neighbourhood, node["kind"], node["key"])
    merged, left_out = figures.graph_elements(node["kind"], node["key"], None, neighbours, elements)
    return merged, graph_note(len(merged), left_out, total, node.get("label") or node["key"])


def register_entity_sections(app, prefix: str, entity_type: str) -> None:
    """The callbacks that fill an entity page's sections and expand its graph (ids prefixed ``prefix``)."""
    if "timeline" in _SECTIONS[entity_type]:

        @app.callback(Output(f"{prefix}-timeline-box", "children"), Output(f"{prefix}-map-box", "children"),
                      Input(f"{prefix}-key", "data"))
        @guarded()
        def activity(entity_id):
            db = database()
            if not entity_id or entity_queries.entity(db, entity_type, entity_id) is None:
                raise PreventUpdate
            return activity_sections(db, entity_type, entity_id, prefix)

    @app.callback(Output(f"{prefix}-graph", "elements"), Output(f"{prefix}-graph-note", "children"),
                  Input(f"{prefix}-key", "data"), Input(f"{prefix}-graph", "tapNodeData"),
                  State(f"{prefix}-graph", "elements"))
    @guarded()
    def graph(entity_id, node, elements):
        if ctx.triggered_id == f"{prefix}-graph":  # a click on a node: expand it (or open a group)
            if not node:
                raise PreventUpdate
            return expand_graph(database(), node, elements or [])
        if not entity_id:
            raise PreventUpdate
        return first_graph(database(), entity_type, entity_id)
