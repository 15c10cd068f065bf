"""Any other path: "Not found" (Dash pages use a module named ``not_found_404`` for unknown paths)."""

from __future__ import annotations

import dash
import dash_mantine_components as dmc

__all__ = ["register", "layout"]


def layout(**_):
    return dmc.Title("Not found", order=3)


def register(app: dash.Dash) -> None:
    dash.register_page(__name__, path="/404", name="Not found", title="posguard: not found", layout=layout)
