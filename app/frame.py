"""The frame around every page: header (navigation, search, user), the routed page, and the search callback."""

from __future__ import annotations

import re
from urllib.parse import quote

import dash
import dash_mantine_components as dmc
from dash import Input, Output, dcc, html, no_update

from app import entity_queries
from app.context import current_user, database, guarded, token_key
from graph.tokens import token

__all__ = ["layout", "register", "search_target", "NO_MATCH_PATH"]

_PAN = re.compile(r"^[\d\s-]{12,23}$")
_TOKEN = re.compile(r"^[0-9a-f]{32}$")
NO_MATCH_PATH = "/no-match"
THEME = {"fontFamily": "system-ui, -apple-system, Segoe UI, Roboto, sans-serif", "primaryColor": "indigo",
         "defaultRadius": "sm"}


def layout():
    """The page frame: header with navigation, search and sign-out, and the routed page below."""
    user = current_user()
    who = f"{user.name} ({user.role})" if user else ""
    header = dmc.Paper(dmc.Group([
        html.Div([dcc.Link("posguard", href="/", className="pg-brand"), dcc.Link("Alert queue", href="/"),
                  dcc.Link("Merchant portfolio", href="/portfolio"), dcc.Link("Audit log", href="/audit")],
                 className="pg-nav"),
        dcc.Input(id="search", type="text", debounce=True, placeholder="card token or PAN, terminal, merchant, ring",
                  className="pg-search", autoComplete="off"),
        dmc.Text(id="search-message", c="red", size="sm"),
        dmc.Group([dmc.Text(who, id="whoami", size="sm"), html.A("Sign out", href="/logout", id="logout")],
                   ml="auto", gap="xs"),
    ], gap="md"), px="md", py="xs", withBorder=True, radius=0, bg="gray.0")
    return dmc.MantineProvider(html.Div([
        dcc.Location(id="url", refresh="callback-nav"),
        header,
        dmc.Box(dash.page_container, px="md", py="sm"),
    ]), theme=THEME, forceColorScheme="light")


def search_target(db, text: str, key: bytes | None) -> tuple[str | None, str]:
    """Where a search goes: (path or None, message). A typed PAN is tokenized here, never sent back.

    Nothing found goes to ``NO_MATCH_PATH`` (the page says so; the previous page is no longer shown).
    """
    text = (text or "").strip()
    if not text:
        return None, ""
    if _PAN.match(text) and sum(ch.isdigit() for ch in text) >= 12:
        if key is None:
            return None, "PAN search needs POSGUARD_TOKEN_KEY"
        text = token(text, "pan", key)
    for entity_type in ("card", "terminal", "merchant", "ring"):
        if (entity_type != "card" or _TOKEN.match(text)) and entity_queries.entity(db, entity_type, text):
            return f"/{entity_type}/{quote(text)}", ""
    return NO_MATCH_PATH, "nothing found"


def register(app: dash.Dash) -> None:
    """The search callback of the header."""

    @app.callback(Output("url", "pathname"), Output("search", "value"), Output("search-message", "children"),
                  Input("search", "value"), prevent_initial_call=True)
    @guarded()
    def search(text):
        path, message = search_target(database(), text, token_key())
        return (path or no_update), "", message  # the box is cleared: a typed PAN never comes back
