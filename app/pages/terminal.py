"""A terminal's page (``/terminal/<terminal_id>``): properties and alerts, then transactions, map and neighbourhood."""

from __future__ import annotations

import dash

from app.pages.common import entity_layout, register_entity_sections

__all__ = ["register", "layout", "PREFIX"]

PREFIX = "terminal"


def layout(terminal_id: str | None = None, **_):
    return entity_layout(PREFIX, "terminal", terminal_id)


def register(app: dash.Dash) -> None:
    dash.register_page(__name__, path_template="/terminal/<terminal_id>", name="Terminal", title="posguard: terminal",
                       layout=layout)
    register_entity_sections(app, PREFIX, "terminal")
