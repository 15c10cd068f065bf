"""What a page or a callback of the explorer needs from the request: the database, the token key, the user.

The database is handed to ``app.explorer.create_app`` and kept on the Flask server (``server.extensions``),
never in a module global: two apps in one process each keep their own.
"""

from __future__ import annotations

import logging
import threading
from functools import wraps

import flask
import pandas as pd
from dash.exceptions import PreventUpdate

from app.cache import ResultCache, data_version, without_case_work
from app.portfolio_queries import CASE_FREE

__all__ = ["install", "database", "token_key", "current_user", "guarded", "cached", "result_cache", "keep_warm"]

_KEY = "posguard"
log = logging.getLogger("posguard.app")


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
    return _fresh(result_cache().get(_key(func, args, kwargs), lambda: func(database(), *args, **kwargs)))


def _key(func, args: tuple, kwargs: dict) -> tuple:
    """The cache key of ``func(db, *args, **kwargs)`` under the database's version (read once per request)."""
    if "pg_version" not in flask.g:
        flask.g.pg_version = data_version(database())
    version = without_case_work(flask.g.pg_version) if func in CASE_FREE else flask.g.pg_version
    return func.__module__, func.__qualname__, args, tuple(sorted(kwargs.items())), version


def keep_warm(server: flask.Flask, calls: list[tuple], interval_s: float = 20.0) -> threading.Event:
    """Compute ``calls`` (``(func, args, kwargs)``, as pages pass them to ``cached``) in a background thread
    of ``server``'s app, at once and then every ``interval_s`` seconds: a result missing for the database's
    current version (a load, scoring run or decision changed it) is computed there, not by the next request
    (a page asking meanwhile waits for that one computation); one still current is kept past the cache's time
    to live (``ResultCache.refresh``) instead of being computed again. Returns the event that stops the
    thread."""
    stop = threading.Event()

    def run():
        while not stop.is_set():
            try:
                with server.app_context():
                    for func, args, kwargs in calls:
                        if stop.is_set():
                            break
                        flask.g.pop("pg_version", None)  # the version now, not when the loop began
                        if not result_cache().refresh(_key(func, args, kwargs)):
                            cached(func, *args, **kwargs)
            except Exception:  # the database may be away for a while; the pages report it, the warmer retries
                log.warning("explorer: warming the cache failed; retrying in %.0f s", interval_s, exc_info=True)
            stop.wait(interval_s)

    threading.Thread(target=run, name="posguard-warm", daemon=True).start()
    return stop


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
