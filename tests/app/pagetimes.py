"""Moved to ``app.pagetimes`` (the package's benchmark uses it; nothing in the package imports from tests/).

Kept so that ``python -m tests.app.pagetimes ...`` still works."""

from __future__ import annotations

import sys

from app.pagetimes import VISIBLE_JS, main, open_browser, sign_in, time_page

__all__ = ["VISIBLE_JS", "open_browser", "sign_in", "time_page", "main"]

if __name__ == "__main__":
    sys.exit(main())
