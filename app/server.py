"""The explorer's web server: login and sessions on Flask; every route and callback is behind them.

``create_server`` builds this Flask layer; ``app.explorer.create_app`` puts the Dash pages on top.
"""

from __future__ import annotations

import json
import logging
from urllib.parse import urlsplit

import flask

from app import queries, users
from app.context import current_user, guarded

__all__ = ["create_server", "guarded", "current_user", "SESSION_COOKIE"]

log = logging.getLogger("posguard.app")
SESSION_COOKIE = "posguard_session"
# What may be fetched without a session: the login page and the JavaScript/CSS bundles (no data in them).
_PUBLIC_PREFIXES = ("/login", "/_dash-component-suites/", "/assets/", "/_favicon.ico", "/favicon.ico")

_LOGIN_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>posguard: sign in</title>
<style>body{{font-family:system-ui,sans-serif;background:#f4f5f7;display:flex;justify-content:center;
margin-top:12vh}}form{{background:#fff;padding:2em 2.5em;border-radius:8px;box-shadow:0 1px 4px #0002;
width:20em}}input{{width:100%;padding:.5em;margin:.3em 0 1em;box-sizing:border-box}}button{{padding:.5em 1.5em}}
.err{{color:#b00020}}</style></head><body><form method="post" action="/login" id="login-form">
<h2>posguard</h2><p>Investigators' explorer</p>{error}
<label>User<input name="username" id="username" autocomplete="username" autofocus></label>
<label>Password<input name="password" id="password" type="password" autocomplete="current-password"></label>
<button type="submit" id="login-button">Sign in</button></form></body></html>"""


_SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def _json_error(message: str, status: int) -> flask.Response:
    return flask.Response(json.dumps({"error": message}), status=status, mimetype="application/json")


def _cross_origin(request: flask.Request, allowed: tuple) -> str | None:
    """Why a state-changing request comes from another site, or None when it does not.

    A browser sends ``Origin`` with every cross-site POST (and same-site fetches); a request without
    ``Origin`` and ``Referer`` is not a browser's and cannot carry the victim's cookie to us.
    """
    origin = request.headers.get("Origin")
    if origin is None:
        referer = request.headers.get("Referer")
        if not referer:
            return None
        parts = urlsplit(referer)
        origin = f"{parts.scheme}://{parts.netloc}"
    if origin == "null":
        return "Origin null"
    if origin.rstrip("/") in allowed or urlsplit(origin).netloc == request.host:
        return None
    return f"Origin {origin[:100]!r}"


def _unknown_alert(db, request: flask.Request) -> str | None:
    """The alert id of a callback request (a component id ending in ``alert-id``) that names no alert."""
    try:
        body = json.loads(request.get_data(cache=True) or b"{}")
    except ValueError:
        return None
    items = [i for key in ("inputs", "state") for i in (body.get(key) or []) if isinstance(i, dict)]
    for item in items:
        if str(item.get("id", "")).endswith("alert-id") and isinstance(item.get("value"), str) and item["value"]:
            if queries.alert(db, item["value"]) is None:
                return item["value"]
    return None


def _install_auth(server: flask.Flask, db, session_hours: float, secure_cookie: bool,
                  policy: users.LoginPolicy, allowed_origins: tuple) -> None:
    @server.before_request
    def same_origin_only():
        if flask.request.method in _SAFE_METHODS:
            return None
        why = _cross_origin(flask.request, allowed_origins)
        if why is None:
            return None
        log.warning("refused a %s %s from another site (%s)", flask.request.method, flask.request.path, why)
        return _json_error("cross-site request refused", 403)

    @server.before_request
    def require_session():
        path = flask.request.path
        if path.startswith(_PUBLIC_PREFIXES):
            return None
        flask.g.user = users.session_user(db, flask.request.cookies.get(SESSION_COOKIE))
        if flask.g.user is not None:
            if path == "/_dash-update-component" and (missing := _unknown_alert(db, flask.request)) is not None:
                return _json_error(f"no alert {missing[:100]}", 404)
            return None
        if path.startswith("/_dash-") or flask.request.method != "GET":
            return flask.Response('{"error": "sign in first"}', status=401, mimetype="application/json")
        return flask.redirect("/login")

    @server.route("/login", methods=["GET", "POST"])
    def login():
        if flask.request.method == "GET":
            return _LOGIN_PAGE.format(error="")
        name = flask.request.form.get("username", "")
        address = flask.request.remote_addr or "unknown"
        outcome = users.login(db, name, flask.request.form.get("password", ""), address, policy)
        user = outcome.user
        if user is None:
            log.info("refused sign-in for %r from %s%s", name[:64], address,
                     f" (throttled, {outcome.retry_after}s)" if outcome.throttled else "")
            text = (f"Too many failed sign-ins for this user or from this address: try again in "
                    f"{outcome.retry_after} s." if outcome.throttled else "Wrong user name or password.")
            page = _LOGIN_PAGE.format(error=f'<p class="err" id="login-error">{text}</p>')
            response = flask.Response(page, status=429 if outcome.throttled else 401)
            if outcome.retry_after:
                response.headers["Retry-After"] = str(outcome.retry_after)
            return response
        response = flask.redirect("/")
        response.set_cookie(SESSION_COOKIE, users.open_session(db, user, hours=session_hours), httponly=True,
                            samesite="Strict", secure=secure_cookie, max_age=int(session_hours * 3600))
        log.info("%s (%s) signed in", user.name, user.role)
        return response

    @server.route("/logout")
    def logout():
        users.close_session(db, flask.request.cookies.get(SESSION_COOKIE))
        response = flask.redirect("/login")
        response.delete_cookie(SESSION_COOKIE)
        return response

    @server.errorhandler(LookupError)
    def not_found(exc):
        if type(exc) is not LookupError:  # a KeyError or IndexError is a bug, not a missing record
            raise exc
        return _json_error(str(exc)[:200], 404)

    @server.after_request
    def no_store(response):
        response.headers.setdefault("Cache-Control", "no-store")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        return response


def create_server(db, *, session_hours: float = 8.0, secure_cookie: bool = False,
                  login_policy: users.LoginPolicy | None = None, allowed_origins: tuple = ()) -> flask.Flask:
    """The Flask server of the explorer over ``db``: sign-in, sessions and the guard of every other route.

    Parameters
    ----------
    db : graph.db.Database
    session_hours : float
        Session lifetime.
    secure_cookie : bool
        Mark the session cookie Secure (behind HTTPS).
    login_policy : app.users.LoginPolicy, optional
        Sign-in throttling and lockout (default: ``LoginPolicy()``; the CLI builds it from the settings).
    allowed_origins : tuple of str
        Origins allowed to send state-changing requests besides the explorer's own host.
    """
    server = flask.Flask(__name__)  # the name sets Flask's root path: this module's package, app/
    _install_auth(server, db, session_hours, secure_cookie, login_policy or users.LoginPolicy(),
                  tuple(o.rstrip("/") for o in allowed_origins))
    return server
