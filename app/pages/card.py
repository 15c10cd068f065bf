"""A card's page (``/card/<token>``): properties and alerts, then transactions, map and neighbourhood."""

from __future__ import annotations

import dash

from app.pages.common import entity_layout, register_entity_sections

__all__ = ["register", "layout", "PREFIX"]

PREFIX = "card"


def layout(token: str | None = None, **_):
    return entity_layout(PREFIX, "card", token)


def register(app: dash.Dash) -> None:
    dash.register_page(__name__, path_template="/card/<token>", name="Card", title="posguard: card",
                       layout=layout)
    register_entity_sections(app, PREFIX, "card")
