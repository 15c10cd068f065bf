"""What a page or a callback of the explorer needs from the request: the database, the token key, the user.

The database is handed to ``app.explorer.create_app`` and kept on the Flask server (``server.extensions``),
never in a module global: two apps in one process each keep their own.
"""

from __future__ import annotations

from functools import wraps

import flask
import pandas as pd
from dash.exceptions import PreventUpdate

from app.cache import ResultCache, data_version

__all__ = ["install", "database", "token_key", "current_user", "guarded", "cached", "result_cache"]

_KEY = "posguard"


def install(server: flask.Flask, db, token_key: bytes | None, cache: ResultCache | None = None) -> None:
    """Keep ``db``, ``token_key`` and a cache of results (``cached``) on ``server`` for the requests it serves."""
    server.extensions[_KEY] = {"db": db, "token_key": token_key, "cache": cache or ResultCache()}


def result_cache() -> ResultCache:
    """The results cache of the app serving the current request."""
    return flask.current_app.extensions[_KEY]["cache"]


def _fresh(value):
    """A copy a caller may change without changing the cached result (frames, lists and dicts)."""
    if isinstance(value, pd.DataFrame):
        return value.copy()
    if isinstance(value, (list, tuple)):
        return type(value)(_fresh(v) for v in value)
    if isinstance(value, dict):
        return {k: _fresh(v) for k, v in value.items()}
    return value


def cached(func, *args, **kwargs):
    """``func(database(), *args, **kwargs)``, kept in the app's cache under the database's current version
    (``app.cache.data_version``, read once per request): repeated views of unchanged data are not read again.
    Arguments must be hashable."""
    if "pg_version" not in flask.g:
        flask.g.pg_version = data_version(database())
    key = (func.__module__, func.__qualname__, args, tuple(sorted(kwargs.items())), flask.g.pg_version)
    return _fresh(result_cache().get(key, lambda: func(database(), *args, **kwargs)))


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
