"""`posguard app` (serve the explorer) and `posguard users` (manage its users)."""

from __future__ import annotations

import argparse
import getpass
import logging
import sys
from datetime import datetime, timezone
from pathlib import Path

from waitress import serve

from app import users
from app.explorer import create_app
from app.screenshots import take_screenshots
from graph.server import connect

__all__ = ["add_parsers", "cmd_app", "cmd_users", "cmd_screenshots"]

log = logging.getLogger("posguard.app")


def _password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise ValueError("the two passwords differ")
    return first


def cmd_users(args: argparse.Namespace, settings) -> int:
    """users add NAME --role R | list | disable NAME | enable NAME | reset NAME | unlock NAME."""
    with connect(settings) as db:
        db.ensure_schema()
        try:
            if args.action == "list":
                for u in users.list_users(db):
                    locked = "" if u["locked_until"] is None else " locked until " + datetime.fromtimestamp(
                        u["locked_until"], timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
                    print(f"{u['name']:20s} {u['role']:13s} {'disabled' if u['disabled'] else 'active':9s} "
                          f"last login {u['last_login'] or '-'}{locked}")
                return 0
            if args.action == "unlock" and args.address and not args.name:
                if not users.unlock(db, address=args.address, by="cli"):
                    log.info("address %s was not locked out", args.address)
                print(f"address {args.address}: unlock done")
                return 0
            if not args.name:
                raise users.UserError(f"`users {args.action}` needs a user NAME")
            if args.action == "add":
                users.add_user(db, args.name, args.role, _password(args))
            elif args.action in ("disable", "enable"):
                users.set_disabled(db, args.name, args.action == "disable")
            elif args.action == "reset":
                users.reset_password(db, args.name, _password(args))
            elif args.action == "unlock":
                if not users.unlock(db, args.name, by="cli"):
                    log.info("user %s was not locked out", args.name)
        except (users.UserError, ValueError) as exc:
            print(f"posguard: error: {exc}", file=sys.stderr)
            return 2
    print(f"user {args.name}: {args.action} done")
    return 0


def cmd_app(args: argparse.Namespace, settings) -> int:
    """Serve the explorer until interrupted."""
    db = connect(settings)
    db.ensure_schema()
    secure = settings.secure_cookie or args.secure_cookie
    app = create_app(db, token_key=settings.token_key, secure_cookie=secure,
                     login_policy=users.LoginPolicy.from_settings(settings), allowed_origins=settings.allowed_origins,
                     warm=True)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("the explorer listens on %s: reachable from other machines; put it behind HTTPS", args.host)
        if not secure:
            log.warning("the session cookie is not marked Secure: behind HTTPS pass --secure-cookie "
                        "(or POSGUARD_SECURE_COOKIE=1)")
    print(f"posguard explorer on http://{args.host}:{args.port}/ (sign in with a user from `posguard users add`)",
          flush=True)

    try:
        serve(app.server, host=args.host, port=args.port, threads=args.threads, ident="posguard")
    finally:
        db.close()
    return 0


def cmd_screenshots(args: argparse.Namespace, settings) -> int:
    """Save a screenshot of each main page of the explorer over the configured database."""
    with connect(settings) as db:
        db.ensure_schema()
        written = take_screenshots(db, Path(args.out), token_key=settings.token_key)
    for path in written.values():
        print(path)
    return 0


def add_parsers(sub, common) -> None:
    """Add the `app`, `users` and `screenshots` subcommands to the `posguard` parser."""
    p = sub.add_parser("app", parents=[common], help="serve the investigators' explorer")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8050)
    p.add_argument("--threads", type=int, default=8, help="requests served at once (default 8)")
    p.add_argument("--secure-cookie", action="store_true",
                   help="mark the session cookie Secure (sent over HTTPS only): for use behind a TLS proxy "
                        "(also POSGUARD_SECURE_COOKIE=1)")
    p.set_defaults(func=cmd_app, needs_settings=True)

    p = sub.add_parser("users", parents=[common], help="manage the explorer's users")
    p.add_argument("action", choices=["add", "list", "disable", "enable", "reset", "unlock"])
    p.add_argument("name", nargs="?")
    p.add_argument("--role", choices=["analyst", "investigator", "admin"], default="analyst")
    p.add_argument("--password-stdin", action="store_true", help="read the password from the first line of stdin")
    p.add_argument("--address", default=None, help="with unlock and no NAME: end the lockout of this client address")
    p.set_defaults(func=cmd_users, needs_settings=True)

    p = sub.add_parser("screenshots", parents=[common],
                       help="save a 1440x900 PNG of each main page of the explorer (headless Chromium)")
    p.add_argument("--out", default="docs/screenshots", help="folder for the PNGs (default docs/screenshots)")
    p.set_defaults(func=cmd_screenshots, needs_settings=True)
