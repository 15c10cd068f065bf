"""Figures of the explorer: transaction timelines, position maps, neighbourhood graph elements."""

from __future__ import annotations

import math

import pandas as pd
import plotly.graph_objects as go

__all__ = ["timeline_figure", "daily_figure", "map_figure", "graph_elements", "open_group", "node_label", "GRAPH_CAP",
           "GROUP_OVER", "MAP_CONFIG", "LEGEND", "ring_figures", "CYTO_STYLE", "victims_figure",
           "evidence_timeline_figure", "evidence_map_figure", "atc_figure"]

GRAPH_CAP = 150  # elements (nodes + edges) the neighbourhood graph draws at most
GROUP_OVER = 8  # a node's cards are grouped (reported / other) when more than this many would be drawn
SVG_POINTS = 3_000  # up to this many points a chart is drawn as SVG (WebGL is slow in software rendering)
GEO_RESOLUTION = 110  # Natural Earth 1:110m outlines (136 kB; 1:50m is 1.1 MB and slow to draw in the browser)
MAP_CONFIG = {"topojsonURL": "/assets/", "displaylogo": False}  # base maps served by the explorer itself
_COLORS = {"Card": "#1f77b4", "Terminal": "#ff7f0e", "Merchant": "#2ca02c", "Ring": "#d62728", "Alert": "#9467bd",
           "Owner": "#8c564b", "Phone": "#8c564b", "BankAccount": "#8c564b", "Agent": "#7f7f7f",
           "Firmware": "#bcbd22", "City": "#17becf", "Group": "#dfe7f2"}
LEGEND = [("Card", "card (reported: red ring)"), ("Terminal", "terminal"), ("Merchant", "merchant"),
          ("Ring", "ring"), ("Alert", "alert"), ("Owner", "owner, phone, account"), ("Agent", "agent"),
          ("Firmware", "firmware"), ("Group", "group of cards (click to open)")]
CYTO_STYLE = [{"selector": "node", "style": {"label": "data(label)", "font-size": 9, "width": 14, "height": 14,
                                             "background-color": "data(color)", "text-valign": "bottom",
                                             "text-margin-y": 2, "min-zoomed-font-size": 6}},
              {"selector": "edge", "style": {"width": 1, "line-color": "#bbb", "curve-style": "straight",
                                             "target-arrow-shape": "triangle", "target-arrow-color": "#bbb",
                                             "arrow-scale": 0.6}},
              {"selector": ".root", "style": {"width": 26, "height": 26, "border-width": 3,
                                              "border-color": "#333", "font-weight": "bold"}},
              {"selector": ".reported", "style": {"border-width": 3, "border-color": "#d62728"}},
              {"selector": ".group", "style": {"shape": "round-rectangle", "width": 46, "height": 26,
                                               "border-width": 1, "border-color": "#6b7c93",
                                               "text-valign": "center", "text-margin-y": 0}},
              {"selector": ".group.reported", "style": {"border-color": "#d62728", "border-width": 2}},
              {"selector": ":parent", "style": {"background-opacity": 0.25, "text-valign": "top",
                                                "shape": "round-rectangle", "padding": 8}}]


_GRID = {"gridcolor": "#ebf0f8", "linecolor": "#ebf0f8", "zerolinecolor": "#ebf0f8", "automargin": True}
# The few parts of Plotly's "plotly_white" look the explorer uses, as its own small template: a figure made with
# the full one (or with Plotly's default) carries 7 kB of template to the browser and costs ~60 ms to build on a
# busy core; this one is 0.3 kB and under 1 ms.
LIGHT = go.layout.Template(layout={
    "plot_bgcolor": "white", "paper_bgcolor": "white", "font": {"color": "#2a3f5f"}, "hovermode": "closest",
    "colorway": ["#636efa", "#EF553B", "#00cc96", "#ab63fa", "#FFA15A", "#19d3f3", "#FF6692", "#B6E880"],
    "xaxis": _GRID, "yaxis": _GRID, "title": {"x": 0.05}, "geo": {"bgcolor": "white"}})


def _figure() -> go.Figure:
    """An empty figure with the explorer's small template (``LIGHT``)."""
    return go.Figure(layout={"template": LIGHT})


def _scatter(n: int):
    return go.Scatter if n <= SVG_POINTS else go.Scattergl


def timeline_figure(txns: pd.DataFrame, title: str, window: tuple | None = None) -> go.Figure:
    """Transactions over time (amount against time, one colour per entry mode; reported cards marked)."""
    fig = _figure()
    if len(txns):
        trace = _scatter(len(txns))
        for mode, part in txns.groupby("entry_mode", dropna=False):
            fig.add_trace(trace(x=part["ts"], y=part["amount"], mode="markers", name=str(mode),
                                marker={"size": 5}, text=part["txn_id"]))
        if "reported" in txns.columns and txns["reported"].any():
            rep = txns[txns["reported"].fillna(False)]
            fig.add_trace(trace(x=rep["ts"], y=rep["amount"], mode="markers", name="card later reported",
                                marker={"size": 9, "symbol": "x", "color": "#d62728"}))
    if window and window[0] and window[1]:
        fig.add_vrect(x0=window[0], x1=window[1], fillcolor="#d62728", opacity=0.12, line_width=0,
                      annotation_text="estimated compromise window", annotation_position="top left")
    fig.update_layout(title=title, height=320, margin={"l": 40, "r": 10, "t": 40, "b": 30},
                      xaxis_title="time (UTC)", yaxis_title="amount")
    return fig


def _daily_bars(fig: go.Figure, daily: pd.DataFrame, total: tuple[str, str], reported: tuple[str, str]) -> None:
    """One grey bar per day of ``daily[total[0]]`` and, over it in red, the days' ``daily[reported[0]]``
    (names ``total[1]``, ``reported[1]``)."""
    if not len(daily):
        return
    fig.add_trace(go.Bar(x=daily["day"], y=daily[total[0]], name=total[1], marker_color="#b8c4d6"))
    some = daily[daily[reported[0]] > 0]
    if len(some):
        fig.add_trace(go.Bar(x=some["day"], y=some[reported[0]], name=reported[1], marker_color="#d62728"))


def _shade_window(fig: go.Figure, window: tuple | None, text: str, opacity: float) -> None:
    """A point of compromise's window shaded red, when both ends are known."""
    if window and window[0] and window[1]:
        fig.add_vrect(x0=window[0], x1=window[1], fillcolor="#d62728", opacity=opacity, line_width=0,
                      annotation_text=text, annotation_position="top left")


def victims_figure(daily: pd.DataFrame, window: tuple | None, title: str) -> go.Figure:
    """A point of compromise's evidence: cards served per day, the later-reported cards among them (the
    victims) in red, and the estimated compromise window shaded. ``daily``: ``entity_queries.daily_activity``."""
    fig = _figure()
    _daily_bars(fig, daily, ("cards", "cards served"), ("reported_cards", "cards later reported"))
    _shade_window(fig, window, "compromise window", 0.10)
    fig.update_layout(title=title, height=300, barmode="overlay", margin={"l": 40, "r": 10, "t": 40, "b": 30},
                      xaxis_title="day (UTC)", yaxis_title="cards",
                      legend={"orientation": "h", "y": -0.25})
    return fig


def daily_figure(daily: pd.DataFrame, title: str, window: tuple | None = None) -> go.Figure:
    """A terminal's or merchant's activity per day (``entity_queries.daily_activity``): transactions (bars; those of
    cards later reported as fraud victims in red) and the amount (line, right axis), with a point of
    compromise's window shaded. One bar per day, whatever the number of transactions."""
    fig = _figure()
    _daily_bars(fig, daily, ("txns", "transactions"), ("reported_txns", "of cards later reported"))
    if len(daily):
        fig.add_trace(go.Scatter(x=daily["day"], y=daily["amount"], name="amount", yaxis="y2", mode="lines",
                                 line={"color": "#1f77b4", "width": 1.5}))
    _shade_window(fig, window, "estimated compromise window", 0.12)
    fig.update_layout(title=title, height=320, barmode="overlay", margin={"l": 50, "r": 60, "t": 40, "b": 30},
                      xaxis_title="day (UTC)", yaxis_title="transactions",
                      yaxis2={"title": "amount", "overlaying": "y", "side": "right", "showgrid": False,
                              "rangemode": "tozero"},
                      legend={"orientation": "h", "y": -0.25})
    return fig


def evidence_timeline_figure(txns: pd.DataFrame, evidence: set, pairs: pd.DataFrame | None = None) -> go.Figure:
    """A card's transactions over time with its cloning evidence highlighted (red) and its worst
    impossible-travel pair joined by a line."""
    fig = _figure()
    if len(txns):
        is_evidence = txns["txn_id"].isin(evidence)
        other, hit = txns[~is_evidence], txns[is_evidence]
        trace = _scatter(len(txns))
        fig.add_trace(trace(x=other["ts"], y=other["amount"], mode="markers", name="other transactions",
                            marker={"size": 6, "color": "#9aa9bd"}, text=other["entry_mode"]))
        fig.add_trace(trace(x=hit["ts"], y=hit["amount"], mode="markers", name="evidence",
                            marker={"size": 11, "color": "#d62728", "symbol": "diamond",
                                    "line": {"width": 1, "color": "#600"}},
                            text=hit["txn_id"] + " " + hit["entry_mode"].astype(str) + " at " + hit["counterpart"]))
        if pairs is not None and len(pairs):
            top = pairs.iloc[0]
            ends = txns[txns["txn_id"].isin([top["from_txn"], top["to_txn"]])]
            fig.add_trace(go.Scatter(x=ends["ts"], y=ends["amount"], mode="lines", name="worst travel pair",
                                     line={"color": "#ff7f0e", "width": 3}))
    fig.update_layout(title="transactions (red: the detector's evidence)", height=320,
                      margin={"l": 40, "r": 10, "t": 40, "b": 30}, xaxis_title="time (UTC)", yaxis_title="amount",
                      legend={"orientation": "h", "y": -0.25})
    return fig


def evidence_map_figure(txns: pd.DataFrame, evidence: set, pairs: pd.DataFrame) -> go.Figure:
    """Where a card was used: evidence transactions in red, impossible-travel pairs as orange lines (up to
    five, fastest first), on the explorer's own base map."""
    fig = _figure()
    located = txns[txns["lat"].notna() & txns["lon"].notna()] if len(txns) else txns
    if len(located):
        is_evidence = located["txn_id"].isin(evidence)
        fig.add_trace(go.Scattergeo(lat=located.loc[~is_evidence, "lat"], lon=located.loc[~is_evidence, "lon"],
                                    mode="markers", name="other transactions",
                                    marker={"size": 6, "color": "#1f77b4", "opacity": 0.5}))
        fig.add_trace(go.Scattergeo(lat=located.loc[is_evidence, "lat"], lon=located.loc[is_evidence, "lon"],
                                    mode="markers", name="evidence", marker={"size": 10, "color": "#d62728"}))
    for i, p in enumerate(pairs.head(5).itertuples(index=False)):
        fig.add_trace(go.Scattergeo(lat=[p.from_lat, p.to_lat], lon=[p.from_lon, p.to_lon], mode="lines",
                                    line={"width": 3 if i == 0 else 1.5, "color": "#ff7f0e"},
                                    name=f"{p.km:,.0f} km in {p.hours * 60:,.0f} min", showlegend=i < 3))
    fig.update_geos(resolution=GEO_RESOLUTION, projection_type="mercator", showland=True, landcolor="#f2efe9",
                    showocean=True, oceancolor="#dbe8f3", showcountries=True, countrycolor="#9a9a9a",
                    showcoastlines=True, coastlinecolor="#7a8fa3",
                    **_fit(fig, list(located["lat"]) if len(located) else [],
                           list(located["lon"]) if len(located) else []))
    fig.update_layout(title="where the card was used", height=440, margin={"l": 10, "r": 10, "t": 40, "b": 10},
                      legend={"orientation": "h", "y": -0.02, "x": 0})
    return fig


def atc_figure(steps: pd.DataFrame, evidence: set) -> go.Figure:
    """The card's application transaction counter over time: a genuine chip counts up; a replay (an ATC seen
    before) or a regression (below the highest seen) shows a second chip."""
    fig = _figure()
    if len(steps):
        fig.add_trace(go.Scatter(x=steps["ts"], y=steps["atc"], mode="lines+markers", name="ATC",
                                 line={"color": "#6b7c93", "width": 1}, marker={"size": 5, "color": "#1f77b4"}))
        mine = steps[steps["txn_id"].isin(evidence)]
        if len(mine):
            fig.add_trace(go.Scatter(x=mine["ts"], y=mine["atc"], mode="markers", name="evidence",
                                     marker={"size": 11, "color": "rgba(0,0,0,0)",
                                             "line": {"width": 2, "color": "#d62728"}}))
        odd = steps[steps["replay"] | steps["regression"]]
        if len(odd):
            fig.add_trace(go.Scatter(x=odd["ts"], y=odd["atc"], mode="markers", name="replay / regression",
                                     marker={"size": 12, "color": "#d62728", "symbol": "x"},
                                     text=["replay" if r else "regression" for r in odd["replay"]]))
    fig.update_layout(title="ATC over time (red x: another chip's counter)", height=300,
                      margin={"l": 50, "r": 10, "t": 40, "b": 30}, xaxis_title="time (UTC)",
                      yaxis_title="ATC", legend={"orientation": "h", "y": -0.25})
    return fig


MIN_SPAN_DEG = 2.0  # a map shows at least this many degrees of latitude and longitude


def _fit(fig: go.Figure, lats, lons, min_span: float = MIN_SPAN_DEG) -> dict:
    """Fit the map to the positions, showing at least ``min_span`` degrees (two invisible corner points are
    added when they are closer): fitting a map to a few positions a hundred metres apart (a terminal's, a
    merchant's) zooms the 1:110m outlines by a factor of thousands, which costs Plotly seconds to clip and draw
    and shows nothing of them. Returns the ``update_geos`` arguments."""
    lats = [float(v) for v in lats if v is not None and v == v]
    lons = [float(v) for v in lons if v is not None and v == v]
    if not lats or not lons:
        return {"fitbounds": False}
    corners = []
    for values, limit in ((lats, 85.0), (lons, 180.0)):
        low, high = min(values), max(values)
        half = max((high - low) / 2, min_span / 2)
        mid = (low + high) / 2
        corners.append([max(-limit, mid - half), min(limit, mid + half)])
    if corners[0] != [min(lats), max(lats)] or corners[1] != [min(lons), max(lons)]:
        fig.add_trace(go.Scattergeo(lat=corners[0], lon=corners[1], mode="markers", marker={"opacity": 0},
                                    hoverinfo="skip", showlegend=False, name="extent"))
    return {"fitbounds": "locations"}


def map_figure(registered: tuple | None, seen: list, title: str, later: list | None = None) -> go.Figure:
    """Registered position against observed ones (and, for skimming points, where victims were used later),
    on a base map of land, coasts and borders (Natural Earth, 1:``GEO_RESOLUTION``m).

    The outlines come from the explorer's own ``/assets/`` (pass ``MAP_CONFIG`` as the graph's config):
    nothing is fetched from a third party.
    """
    fig = _figure()
    if seen:
        fig.add_trace(go.Scattergeo(lat=[s[0] for s in seen], lon=[s[1] for s in seen], mode="markers",
                                    name="transactions", marker={"size": 5, "color": "#1f77b4", "opacity": 0.5}))
    if later:
        fig.add_trace(go.Scattergeo(lat=[s[0] for s in later], lon=[s[1] for s in later], mode="markers",
                                    name="victims' later use", marker={"size": 7, "color": "#d62728"}))
    if registered and registered[0] is not None:
        fig.add_trace(go.Scattergeo(lat=[registered[0]], lon=[registered[1]], mode="markers", name="registered",
                                    marker={"size": 14, "symbol": "star", "color": "#ff7f0e"}))
    fig.update_geos(resolution=GEO_RESOLUTION, projection_type="mercator", showland=True, landcolor="#f2efe9",
                    showocean=True, oceancolor="#dbe8f3", showcountries=True, countrycolor="#9a9a9a",
                    showcoastlines=True, coastlinecolor="#7a8fa3", showlakes=True, lakecolor="#dbe8f3",
                    **_fit(fig, [s[0] for s in seen + (later or [])] + [registered[0] if registered else None],
                           [s[1] for s in seen + (later or [])] + [registered[1] if registered else None]))
    fig.update_layout(title=title, height=420, margin={"l": 10, "r": 10, "t": 40, "b": 10})
    return fig


def _position(x: float, y: float) -> dict:
    return {"x": round(float(x), 1), "y": round(float(y), 1)}


def _ring(center: dict, n: int, radius: float, start: float = 0.0) -> list[dict]:
    """``n`` positions evenly on a circle around ``center`` (radius grown so that nodes do not overlap)."""
    radius = max(radius, 30.0 * n / (2 * math.pi))
    return [_position(center["x"] + radius * math.cos(start + 2 * math.pi * i / max(n, 1)),
                      center["y"] + radius * math.sin(start + 2 * math.pi * i / max(n, 1))) for i in range(n)]


def node_label(label: str, node_id, caption) -> str:
    """What a node shows: its id (terminal, merchant, agent, ring), the last four digits of a card, an
    alert's kind, or the kind and a short id of anything else."""
    if label == "Card":
        return f"*{caption}" if caption else f"card {str(node_id)[:6]}"
    if label in ("Terminal", "Merchant", "Agent"):
        return str(node_id)
    if label == "Ring":
        return str(node_id)[:18]
    if label == "Alert":
        return str(caption or "alert")
    return f"{label.lower()} {str(node_id)[:6]}"


def _node(label: str, node_id: str, caption, position: dict, root: bool = False, reported: bool = False,
          parent: str | None = None) -> dict:
    data = {"id": f"{label}:{node_id}", "label": node_label(label, node_id, caption), "kind": label,
            "key": node_id, "color": _COLORS.get(label, "#999")}
    if parent:
        data["parent"] = parent
    classes = " ".join(c for c, on in (("root", root), ("reported", reported)) if on)
    return {"data": data, "classes": classes, "position": position}


def _group(root: str, reported: bool, members: list[dict], position: dict) -> dict:
    gid = f"Group:{root}:{'reported' if reported else 'other'}"
    what = "reported cards" if reported else "other cards"
    return {"data": {"id": gid, "label": f"{len(members)} {what}", "kind": "Group", "key": gid,
                     "color": _COLORS["Group"], "members": members, "reported": reported},
            "classes": "group reported" if reported else "group", "position": position}


def graph_elements(label: str, node_id: str, caption, neighbours: list[dict], existing: list | None = None,
                   cap: int = GRAPH_CAP) -> tuple[list[dict], int]:
    """Cytoscape elements for a node and its neighbours, added to ``existing`` up to ``cap`` elements.

    Every node carries its position (draw with the ``preset`` layout): the first node sits at the centre,
    its neighbours on a circle around it, and an expanded node's new neighbours on a circle around that
    node, so nothing already drawn moves. When more than ``GROUP_OVER`` new cards would be drawn around a
    node they become two group nodes (reported cards / other cards) that ``open_group`` opens on click.
    Card nodes show only the last four digits of their PAN.

    Returns the elements and how many neighbours were left out by the cap.
    """
    elements = list(existing or [])
    ids = {e["data"]["id"]: e for e in elements}
    root = f"{label}:{node_id}"
    if root not in ids:
        elements.append(_node(label, node_id, caption, _position(0, 0), root=not existing))
        ids[root] = elements[-1]
    center = ids[root].get("position") or _position(0, 0)
    new_cards = [n for n in neighbours if n["label"] == "Card" and f"Card:{n['id']}" not in ids]
    grouped = len(new_cards) > GROUP_OVER
    drawn = [n for n in neighbours if not (grouped and n["label"] == "Card" and f"Card:{n['id']}" not in ids)]
    groups = []
    if grouped:
        for reported in (True, False):
            members = [{"id": n["id"], "caption": n["caption"], "rel": n["rel"], "times": n["times"],
                        "outgoing": n["outgoing"]} for n in new_cards if bool(n.get("reported")) == reported]
            if members:
                groups.append((reported, members))
    slots = _ring(center, len(drawn) + len(groups), 140 if not existing else 90, start=0.3)
    left_out = 0
    for (reported, members), position in zip(groups, slots[len(drawn):]):
        gid = f"Group:{root}:{'reported' if reported else 'other'}"
        if gid in ids or len(elements) + 2 > cap:
            left_out += len(members) if gid not in ids else 0
            continue
        elements.append(_group(root, reported, members, position))
        elements.append({"data": {"id": f"{root}->{gid}", "source": root, "target": gid, "label": "TXN"}})
        ids[gid] = elements[-2]
    for n, position in zip(drawn, slots):
        other = f"{n['label']}:{n['id']}"
        edge = f"{root}->{other}:{n['rel']}" if n["outgoing"] else f"{other}->{root}:{n['rel']}"
        need = (other not in ids) + (edge not in ids)
        if len(elements) + need > cap:
            left_out += 1
            continue
        if other not in ids:
            elements.append(_node(n["label"], n["id"], n["caption"], position, reported=bool(n.get("reported"))))
            ids[other] = elements[-1]
        if edge not in ids:
            source, target = (root, other) if n["outgoing"] else (other, root)
            elements.append({"data": {"id": edge, "source": source, "target": target,
                                      "label": f"{n['rel']} x{n['times']}"}})
            ids[edge] = elements[-1]
    return elements, left_out


def open_group(group_id: str, elements: list[dict], cap: int = GRAPH_CAP) -> tuple[list[dict], int]:
    """Open a group node: its cards are drawn inside it (a compound node), as many as the cap allows.

    Returns the elements and how many of the group's cards were left out by the cap.
    """
    elements = list(elements)
    group = next((e for e in elements if e["data"]["id"] == group_id), None)
    if group is None or group["data"].get("opened"):
        return elements, 0
    ids = {e["data"]["id"] for e in elements}
    members = [m for m in group["data"]["members"] if f"Card:{m['id']}" not in ids]
    room = max(0, cap - len(elements))
    shown, left_out = members[:room], max(0, len(members) - room)
    center = group.get("position") or _position(0, 0)
    side = max(1, math.ceil(math.sqrt(len(shown))))
    for i, m in enumerate(shown):
        position = _position(center["x"] + 34 * (i % side - (side - 1) / 2),
                             center["y"] + 30 * (i // side - (side - 1) / 2))
        elements.append(_node("Card", m["id"], m["caption"], position, reported=group["data"]["reported"],
                              parent=group_id))
    data = dict(group["data"], opened=True, members=[])
    data["label"] += f" ({len(shown)} shown)" if left_out else ""
    classes = group.get("classes") or ("group reported" if group["data"]["reported"] else "group")
    classes = " ".join(classes) if isinstance(classes, list) else classes
    elements[elements.index(group)] = dict(group, data=data, classes=classes + " open")
    return elements, left_out


def ring_figures(txns: pd.DataFrame) -> tuple[go.Figure, go.Figure]:
    """A ring's amounts (round and near-limit values stand out) and its local hours of trading (UTC+8)."""
    amounts, hours = _figure(), _figure()
    if len(txns):
        ts = pd.to_datetime(txns["ts"], utc=True, format="ISO8601")
        amounts.add_trace(go.Histogram(x=txns["amount"], nbinsx=60, name="amount"))
        hours.add_trace(go.Histogram(x=(ts.dt.hour + 8) % 24, nbinsx=24, name="local hour"))
    amounts.update_layout(title="amounts inside the ring", height=280, margin={"t": 40, "b": 30})
    hours.update_layout(title="local hour (UTC+8) of the ring's trades", height=280, margin={"t": 40, "b": 30})
    return amounts, hours
