"""The explorer's web server: login and sessions on Flask; every route and callback is behind them.

``create_server`` builds this Flask layer; ``app.explorer.create_app`` puts the Dash pages on top.
"""

from __future__ import annotations

import logging

import flask

from app import users
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


def _install_auth(server: flask.Flask, db, session_hours: float, secure_cookie: bool) -> None:
    @server.before_request
    def require_session():
        path = flask.request.path
        if path.startswith(_PUBLIC_PREFIXES):
            return None
        flask.g.user = users.session_user(db, flask.request.cookies.get(SESSION_COOKIE))
        if flask.g.user is not None:
            return None
        if path.startswith("/_dash-") or flask.request.method != "GET":
            return flask.Response('{"error": "sign in first"}', status=401, mimetype="application/json")
        return flask.redirect("/login")

    @server.route("/login", methods=["GET", "POST"])
    def login():
        if flask.request.method == "GET":
            return _LOGIN_PAGE.format(error="")
        name = flask.request.form.get("username", "")
        user = users.authenticate(db, name, flask.request.form.get("password", ""))
        if user is None:
            log.info("refused sign-in for %r from %s", name, flask.request.remote_addr)
            page = _LOGIN_PAGE.format(error='<p class="err" id="login-error">Wrong user name or password.</p>')
            return flask.Response(page, status=401)
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

    @server.after_request
    def no_store(response):
        response.headers.setdefault("Cache-Control", "no-store")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        return response


def create_server(db, *, session_hours: float = 8.0, secure_cookie: bool = False) -> flask.Flask:
    """The Flask server of the explorer over ``db``: sign-in, sessions and the guard of every other route.

    Parameters
    ----------
    db : graph.db.Database
    session_hours : float
        Session lifetime.
    secure_cookie : bool
        Mark the session cookie Secure (behind HTTPS).
    """
    server = flask.Flask("posguard")
    _install_auth(server, db, session_hours, secure_cookie)
    return server
