"""The explorer's pages, one module each; ``app.explorer.create_app`` registers them (``register(app)``)."""

from __future__ import annotations

from app.pages import alert, audit, card, merchant, no_match, not_found_404, portfolio, queue, ring, terminal

__all__ = ["PAGES"]

PAGES = (queue, alert, card, terminal, merchant, ring, portfolio, audit, no_match, not_found_404)
