"""A merchant's page (``/merchant/<merchant_id>``): properties and alerts, then transactions, map and neighbourhood."""

from __future__ import annotations

import dash

from app.pages.common import entity_layout, register_entity_sections

__all__ = ["register", "layout", "PREFIX"]

PREFIX = "merchant"


def layout(merchant_id: str | None = None, **_):
    return entity_layout(PREFIX, "merchant", merchant_id)


def register(app: dash.Dash) -> None:
    dash.register_page(__name__, path_template="/merchant/<merchant_id>", name="Merchant", title="posguard: merchant",
                       layout=layout)
    register_entity_sections(app, PREFIX, "merchant")
