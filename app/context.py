"""What a page or a callback of the explorer needs from the request: the database, the token key, the user.

The database is handed to ``app.explorer.create_app`` and kept on the Flask server (``server.extensions``),
never in a module global: two apps in one process each keep their own.
"""

from __future__ import annotations

from functools import wraps

import flask
from dash.exceptions import PreventUpdate

__all__ = ["install", "database", "token_key", "current_user", "guarded"]

_KEY = "posguard"


def install(server: flask.Flask, db, token_key: bytes | None) -> None:
    """Keep ``db`` and ``token_key`` on ``server`` for the requests it serves."""
    server.extensions[_KEY] = {"db": db, "token_key": token_key}


def database():
    """The database of the app serving the current request."""
    return flask.current_app.extensions[_KEY]["db"]


def token_key() -> bytes | None:
    """``POSGUARD_TOKEN_KEY`` of the app serving the current request (None: PAN search is off)."""
    return flask.current_app.extensions[_KEY]["token_key"]


def current_user():
    """The signed-in user of the current request (set by the server's guard), or None."""
    return getattr(flask.g, "user", None)


def guarded(right: str = "read"):
    """Decorate a Dash callback or page layout: it runs only for a signed-in user holding ``right``
    (else no update)."""

    def wrap(func):
        @wraps(func)
        def inner(*args, **kwargs):
            user = current_user()
            if user is None or not user.can(right):
                raise PreventUpdate
            return func(*args, **kwargs)

        return inner

    return wrap
