"""The explorer as a Dash app: the Flask server of ``app.server`` (sign-in, sessions, guard) with the pages
of ``app.pages`` on top, over one database handed in here."""

from __future__ import annotations

from pathlib import Path

import dash
import flask

from app import context, frame, portfolio_queries, queries, users
from app.pages import PAGES, portfolio, queue
from app.server import create_server

__all__ = ["create_app", "ASSETS", "WARM_CALLS"]

ASSETS = Path(__file__).resolve().parent / "assets"
# What ``create_app(warm=True)`` keeps computed: exactly as the pages ask the cache for it (same arguments).
WARM_CALLS = [
    (portfolio_queries.portfolio, (), {"days": portfolio.DAYS}),
    (portfolio_queries.latest_transaction, (), {}),
    (queries.queue_options, (), {}),
    (queries.queue_page, (), {"page": 0, "size": queue.QUEUE_ROWS, "kind": None, "severity": None, "status": None,
                              "assignee": None, "since": None, "until": None, "new_since": None}),
]


def _cache_code(response):
    """Let the browser keep the JavaScript and CSS bundles for an hour (they hold no data; Dash fingerprints
    most of them, not the lazily loaded chunks such as plotly.js)."""
    if flask.request.path.startswith(("/_dash-component-suites/", "/assets/")) and response.status_code == 200:
        response.headers.setdefault("Cache-Control", "private, max-age=3600")
    return response


def create_app(db, *, token_key: bytes | None = None, session_hours: float = 8.0,
               secure_cookie: bool = False, login_policy: users.LoginPolicy | None = None,
               allowed_origins: tuple = (), warm: bool = False) -> dash.Dash:
    """The explorer over ``db`` (a ``graph.db.Database``).

    Parameters
    ----------
    db : graph.db.Database
        Kept on the app's Flask server (``app.context.database()`` in a request), not in a global.
    token_key : bytes, optional
        ``POSGUARD_TOKEN_KEY``: lets the search box turn a typed PAN into its card token (server side).
    session_hours : float
        Session lifetime.
    secure_cookie : bool
        Mark the session cookie Secure (behind HTTPS).
    login_policy : app.users.LoginPolicy, optional
        Sign-in throttling and lockout (default: ``LoginPolicy()``; the CLI builds it from the settings).
    allowed_origins : tuple of str
        Origins allowed to send state-changing requests besides the explorer's own host.
    warm : bool
        Keep the slowest shared results (the portfolio's aggregate over every transaction and its reference date,
        the queue's first rows and filters) computed in the background for the database's current version
        (``app.context.keep_warm``), so that no page waits for them after a load or scoring run.

    Example
    -------
    >>> create_app(db, token_key=b"...").run(host="127.0.0.1", port=8050)  # doctest: +SKIP
    """
    server = create_server(db, session_hours=session_hours, secure_cookie=secure_cookie, login_policy=login_policy,
                           allowed_origins=allowed_origins)
    context.install(server, db, token_key)
    app = dash.Dash(__name__, server=server, title="posguard", use_pages=True, pages_folder="",
                    assets_folder=str(ASSETS), suppress_callback_exceptions=True, update_title=None)
    server.after_request(_cache_code)
    for page in PAGES:
        page.register(app)
    frame.register(app)
    app.layout = frame.layout
    if warm:
        server.extensions["posguard_warm"] = context.keep_warm(server, WARM_CALLS)
    return app
