"""The explorer served for a while inside this process, and a throw-away user to sign in with: for the
benchmark and the screenshots, which drive a real browser (or HTTP clients) against it."""

from __future__ import annotations

import logging
import secrets
import threading
from contextlib import contextmanager

from waitress.server import create_server

from app import users

__all__ = ["serving", "temporary_user"]


@contextmanager
def serving(dash_app, threads: int = 8):
    """Serve ``dash_app`` (``app.explorer.create_app``) with waitress on a free port of 127.0.0.1 in a thread;
    yields its base URL (``http://127.0.0.1:PORT``) and stops it on exit."""
    server = create_server(dash_app.server, host="127.0.0.1", port=0, threads=threads)
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)  # "task queue depth" is expected under load
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.effective_port}"
    finally:
        server.close()
        thread.join(10)


@contextmanager
def temporary_user(db, name: str, role: str = "analyst"):
    """A user ``name`` with a fresh random password for the time of the block (created, or re-enabled with a
    new password when it exists), disabled on exit; yields ``(name, password)``. The password is never
    written anywhere."""
    password = secrets.token_urlsafe(18)
    existing = [u for u in users.list_users(db) if u["name"] == name]
    if existing and existing[0]["role"] != role:
        raise users.UserError(f"user {name!r} exists with role {existing[0]['role']}, not {role}")
    if existing:
        users.reset_password(db, name, password)
        users.set_disabled(db, name, False)
    else:
        users.add_user(db, name, role, password)
    try:
        yield name, password
    finally:
        users.set_disabled(db, name, True)
