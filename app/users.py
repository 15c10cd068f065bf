"""Explorer users and sessions, kept in Neo4j: argon2id password hashes, server-side sessions with expiry."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

__all__ = ["ROLES", "User", "UserError", "add_user", "list_users", "set_disabled", "reset_password",
           "authenticate", "open_session", "session_user", "close_session", "can"]

ROLES = ("analyst", "investigator", "admin")
# what each role may do beyond reading: investigators decide cases, admins also manage users
_RIGHTS = {"analyst": {"read"}, "investigator": {"read", "decide"}, "admin": {"read", "decide", "admin"}}
_HASHER = PasswordHasher()  # argon2id with the library's (RFC 9106 low-memory) defaults
MIN_PASSWORD = 10

CYPHER = {
    "add": "CREATE (u:User {name: $name, role: $role, pw_hash: $pw_hash, disabled: false, created_at: datetime()})",
    "get": "MATCH (u:User {name: $name}) RETURN u.name AS name, u.role AS role, u.pw_hash AS pw_hash, "
           "u.disabled AS disabled",
    "list": "MATCH (u:User) RETURN u.name AS name, u.role AS role, u.disabled AS disabled, "
            "toString(u.created_at) AS created_at, toString(u.last_login) AS last_login ORDER BY name",
    "disable": "MATCH (u:User {name: $name}) SET u.disabled = $disabled WITH u "
               "OPTIONAL MATCH (s:Session {user: $name}) WHERE $disabled DELETE s RETURN count(u) AS n",
    "reset": "MATCH (u:User {name: $name}) SET u.pw_hash = $pw_hash WITH u "
             "OPTIONAL MATCH (s:Session {user: $name}) DELETE s RETURN count(u) AS n",
    "login": "MATCH (u:User {name: $name}) SET u.last_login = datetime()",
    "rehash": "MATCH (u:User {name: $name}) SET u.pw_hash = $pw_hash",
    "open": "CREATE (:Session {id_hash: $id_hash, user: $name, created_at: datetime(), expires_at: $expires_at})",
    "session": "MATCH (s:Session {id_hash: $id_hash}) WHERE s.expires_at > datetime() "
               "MATCH (u:User {name: s.user}) WHERE NOT u.disabled RETURN u.name AS name, u.role AS role",
    "close": "MATCH (s:Session {id_hash: $id_hash}) DELETE s",
    "expire": "MATCH (s:Session) WHERE s.expires_at <= datetime() DELETE s",
}


class UserError(ValueError):
    """A user command that cannot be carried out (unknown user, bad role, weak password, ...)."""


@dataclass(frozen=True)
class User:
    """The user behind a session."""

    name: str
    role: str

    def can(self, right: str) -> bool:
        return can(self.role, right)


def can(role: str, right: str) -> bool:
    """Whether ``role`` holds ``right`` (``read``, ``decide``, ``admin``)."""
    return right in _RIGHTS.get(role, set())


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise UserError(f"passwords need at least {MIN_PASSWORD} characters")


def add_user(db, name: str, role: str, password: str) -> None:
    """Create a user; the password is stored only as an argon2id hash."""
    if role not in ROLES:
        raise UserError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    if not name or not name.replace("-", "").replace("_", "").replace(".", "").isalnum():
        raise UserError("user names are letters, digits, '-', '_' and '.'")
    _check_password(password)
    if db.read(CYPHER["get"], name=name):
        raise UserError(f"user {name!r} exists already")
    db.run(CYPHER["add"], name=name, role=role, pw_hash=_HASHER.hash(password))


def list_users(db) -> list[dict]:
    """Every user: name, role, disabled, created_at, last_login (never hashes)."""
    return db.read(CYPHER["list"])


def set_disabled(db, name: str, disabled: bool = True) -> None:
    """Disable (ending its sessions) or re-enable a user."""
    if not db.run(CYPHER["disable"], name=name, disabled=disabled)[0]["n"]:
        raise UserError(f"no user {name!r}")


def reset_password(db, name: str, password: str) -> None:
    """Set a new password and end the user's sessions."""
    _check_password(password)
    if not db.run(CYPHER["reset"], name=name, pw_hash=_HASHER.hash(password))[0]["n"]:
        raise UserError(f"no user {name!r}")


def authenticate(db, name: str, password: str) -> User | None:
    """The user if ``password`` is right and the user enabled, else None (same answer for every failure)."""
    rows = db.read(CYPHER["get"], name=name)
    if not rows:
        _HASHER.hash(password)  # spend the same time as a real check: no user-name oracle
        return None
    row = rows[0]
    try:
        _HASHER.verify(row["pw_hash"], password)
    except (VerificationError, InvalidHashError):
        return None
    if row["disabled"]:
        return None
    if _HASHER.check_needs_rehash(row["pw_hash"]):
        db.run(CYPHER["rehash"], name=name, pw_hash=_HASHER.hash(password))
    db.run(CYPHER["login"], name=name)
    return User(row["name"], row["role"])


def _id_hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode("utf-8")).hexdigest()


def open_session(db, user: User, hours: float = 8.0) -> str:
    """A new random session id for ``user`` (only its SHA-256 is stored), valid for ``hours``."""
    session_id = secrets.token_urlsafe(32)
    expires = datetime.now(timezone.utc) + timedelta(hours=hours)
    db.run(CYPHER["expire"])
    db.run(CYPHER["open"], id_hash=_id_hash(session_id), name=user.name, expires_at=expires)
    return session_id


def session_user(db, session_id: str | None) -> User | None:
    """The enabled user of a live session, or None."""
    if not session_id:
        return None
    rows = db.read(CYPHER["session"], id_hash=_id_hash(session_id))
    return User(rows[0]["name"], rows[0]["role"]) if rows else None


def close_session(db, session_id: str | None) -> None:
    """End a session (logout)."""
    if session_id:
        db.run(CYPHER["close"], id_hash=_id_hash(session_id))
