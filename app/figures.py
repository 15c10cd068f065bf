"""Figures of the explorer: transaction timelines, position maps, neighbourhood graph elements."""

from __future__ import annotations

import math

import pandas as pd
import plotly.graph_objects as go

__all__ = ["timeline_figure", "map_figure", "graph_elements", "GRAPH_CAP", "ring_figures", "CYTO_STYLE"]

GRAPH_CAP = 300  # elements (nodes + edges) the neighbourhood graph draws at most
_COLORS = {"Card": "#1f77b4", "Terminal": "#ff7f0e", "Merchant": "#2ca02c", "Ring": "#d62728", "Alert": "#9467bd",
           "Owner": "#8c564b", "Phone": "#8c564b", "BankAccount": "#8c564b", "Agent": "#7f7f7f",
           "Firmware": "#bcbd22"}
CYTO_STYLE = [{"selector": "node", "style": {"label": "data(label)", "font-size": 8, "width": 14, "height": 14,
                                             "background-color": "data(color)"}},
              {"selector": "edge", "style": {"width": 1, "line-color": "#bbb", "curve-style": "bezier",
                                             "target-arrow-shape": "triangle", "target-arrow-color": "#bbb"}},
              {"selector": ".root", "style": {"width": 24, "height": 24, "border-width": 2}}]


def timeline_figure(txns: pd.DataFrame, title: str, window: tuple | None = None) -> go.Figure:
    """Transactions over time (amount against time, one colour per entry mode; reported cards marked)."""
    fig = go.Figure()
    if len(txns):
        for mode, part in txns.groupby("entry_mode", dropna=False):
            fig.add_trace(go.Scattergl(x=part["ts"], y=part["amount"], mode="markers", name=str(mode),
                                       marker={"size": 5}, text=part["txn_id"]))
        if "reported" in txns.columns and txns["reported"].any():
            rep = txns[txns["reported"].fillna(False)]
            fig.add_trace(go.Scattergl(x=rep["ts"], y=rep["amount"], mode="markers", name="card later reported",
                                       marker={"size": 9, "symbol": "x", "color": "#d62728"}))
    if window and window[0] and window[1]:
        fig.add_vrect(x0=window[0], x1=window[1], fillcolor="#d62728", opacity=0.12, line_width=0,
                      annotation_text="estimated compromise window", annotation_position="top left")
    fig.update_layout(title=title, height=320, margin={"l": 40, "r": 10, "t": 40, "b": 30},
                      xaxis_title="time (UTC)", yaxis_title="amount")
    return fig


def map_figure(registered: tuple | None, seen: list, title: str, later: list | None = None) -> go.Figure:
    """Registered position against observed ones (and, for skimming points, where victims were used later).

    Drawn on plain longitude/latitude axes (aspect corrected for latitude), with no base map: a base map
    would make the investigator's browser fetch tiles or outlines from a third party.
    """
    fig = go.Figure()
    if seen:
        fig.add_trace(go.Scatter(y=[s[0] for s in seen], x=[s[1] for s in seen], mode="markers",
                                 name="transactions", marker={"size": 5, "color": "#1f77b4", "opacity": 0.5}))
    if later:
        fig.add_trace(go.Scatter(y=[s[0] for s in later], x=[s[1] for s in later], mode="markers",
                                 name="victims' later use", marker={"size": 7, "color": "#d62728"}))
    if registered and registered[0] is not None:
        fig.add_trace(go.Scatter(y=[registered[0]], x=[registered[1]], mode="markers", name="registered",
                                 marker={"size": 14, "symbol": "star", "color": "#ff7f0e"}))
    lats = [s[0] for s in (seen or []) + (later or [])] + ([registered[0]] if registered and registered[0] else [])
    mid = sum(lats) / len(lats) if lats else 0.0
    fig.update_layout(title=title, height=360, margin={"l": 50, "r": 10, "t": 40, "b": 40},
                      xaxis={"title": "longitude"},
                      yaxis={"title": "latitude", "scaleanchor": "x",
                             "scaleratio": 1 / max(math.cos(math.radians(mid)), 0.2)})
    return fig


def _node(label: str, node_id: str, caption, root: bool = False) -> dict:
    text = f"{label} {caption}" if caption else f"{label} {str(node_id)[:10]}"
    return {"data": {"id": f"{label}:{node_id}", "label": text, "kind": label, "key": node_id,
                     "color": _COLORS.get(label, "#999")}, "classes": "root" if root else ""}


def graph_elements(label: str, node_id: str, caption, neighbours: list[dict], existing: list | None = None,
                   cap: int = GRAPH_CAP) -> tuple[list[dict], int]:
    """Cytoscape elements for a node and its neighbours, added to ``existing`` up to ``cap`` elements.

    Returns the elements and how many neighbours were left out by the cap. Card nodes show only the last
    four digits of their PAN.
    """
    elements = list(existing or [])
    ids = {e["data"]["id"] for e in elements}
    root = f"{label}:{node_id}"
    if root not in ids:
        elements.append(_node(label, node_id, caption, root=not existing))
        ids.add(root)
    left_out = 0
    for n in neighbours:
        other = f"{n['label']}:{n['id']}"
        edge = f"{root}->{other}:{n['rel']}" if n["outgoing"] else f"{other}->{root}:{n['rel']}"
        need = (other not in ids) + (edge not in ids)
        if len(elements) + need > cap:
            left_out += 1
            continue
        if other not in ids:
            caption_n = ("*" + n["caption"]) if n["label"] == "Card" and n["caption"] else n["caption"]
            elements.append(_node(n["label"], n["id"], caption_n))
            ids.add(other)
        if edge not in ids:
            source, target = (root, other) if n["outgoing"] else (other, root)
            elements.append({"data": {"id": edge, "source": source, "target": target,
                                      "label": f"{n['rel']} x{n['times']}"}})
            ids.add(edge)
    return elements, left_out


def ring_figures(txns: pd.DataFrame) -> tuple[go.Figure, go.Figure]:
    """A ring's amounts (round and near-limit values stand out) and its local hours of trading (UTC+8)."""
    amounts, hours = go.Figure(), go.Figure()
    if len(txns):
        ts = pd.to_datetime(txns["ts"], utc=True, format="ISO8601")
        amounts.add_trace(go.Histogram(x=txns["amount"], nbinsx=60, name="amount"))
        hours.add_trace(go.Histogram(x=(ts.dt.hour + 8) % 24, nbinsx=24, name="local hour"))
    amounts.update_layout(title="amounts inside the ring", height=280, margin={"t": 40, "b": 30})
    hours.update_layout(title="local hour (UTC+8) of the ring's trades", height=280, margin={"t": 40, "b": 30})
    return amounts, hours
