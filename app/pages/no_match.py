"""Where a search that matched nothing lands (``/no-match``): says so, shows nothing of the previous page."""

from __future__ import annotations

import dash
import dash_mantine_components as dmc
from dash import dcc

__all__ = ["register", "layout", "NO_MATCH_TEXT"]

NO_MATCH_TEXT = "No card, terminal, merchant or ring matches your search."


def layout(**_):
    return dmc.Alert([dmc.Text(NO_MATCH_TEXT, id="no-match"),
                      dmc.Text(["A card is found by its PAN (12 to 19 digits) or its 32-character token; terminals, "
                                "merchants and rings by their exact id. ", dcc.Link("Back to the queue", href="/")],
                               size="sm")],
                     title="No match", color="yellow", mt="md")


def register(app: dash.Dash) -> None:
    dash.register_page(__name__, path="/no-match", name="No match", title="posguard: no match", layout=layout)
