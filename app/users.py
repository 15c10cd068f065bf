"""Explorer users and sessions, kept in Neo4j: argon2id password hashes, server-side sessions with expiry."""

from __future__ import annotations

import hashlib
import math
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from graph.settings import Settings

__all__ = ["ROLES", "User", "UserError", "add_user", "list_users", "set_disabled", "reset_password",
           "authenticate", "open_session", "session_user", "close_session", "can", "LoginPolicy", "LoginOutcome",
           "login", "unlock", "auth_events"]

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
    # login throttling: one node per user name and per client address, failures in a row and the time
    # (epoch seconds) before which the next attempt is refused unchecked
    "throttles": "MATCH (t:LoginThrottle) WHERE t.key IN $keys AND t.until > $now RETURN t.key AS key, "
                 "t.until AS until",
    "fail": "MERGE (t:LoginThrottle {key: $key}) WITH t, CASE WHEN t.last IS NULL OR t.last < $stale THEN 0 "
            "ELSE coalesce(t.failures, 0) END AS before SET t.failures = before + 1, t.last = $now "
            "RETURN t.failures AS failures",
    "hold": "MATCH (t:LoginThrottle {key: $key}) SET t.until = $until",
    "forget": "MATCH (t:LoginThrottle {key: $key}) DELETE t RETURN count(t) AS n",
    "event": "CREATE (:AuthEvent {at: datetime(), user: $name, address: $address, action: $action, "
             "failures: $failures, until: $until})",
    "events": "MATCH (e:AuthEvent {user: $name}) RETURN toString(e.at) AS at, e.user AS user, e.address AS address, "
              "e.action AS action, e.failures AS failures, e.until AS until ORDER BY e.at",
    "locked": "MATCH (t:LoginThrottle) WHERE t.key STARTS WITH 'user:' AND t.until > $now "
              "RETURN substring(t.key, 5) AS name, t.until AS until",
}
_FORGET_AFTER = 24 * 3600.0  # failures older than a day no longer count


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
    """Every user: name, role, disabled, created_at, last_login, locked_until (epoch s or None; never hashes)."""
    locked = {r["name"]: r["until"] for r in db.read(CYPHER["locked"], now=time.time())}
    return [{**u, "locked_until": locked.get(u["name"])} for u in db.read(CYPHER["list"])]


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


@dataclass(frozen=True)
class LoginPolicy:
    """Throttling of sign-ins, per user name and per client address (``graph.settings.Settings.login_*``).

    The first ``free_failures`` wrong passwords in a row for a user name are answered at once; after each
    further one the next attempt is refused unchecked (429, Retry-After) for ``delay_seconds``, doubled at
    every failure; at ``lockout_failures`` failures the wait is ``lockout_minutes``. An address (many users
    behind one NAT) has its own, larger counts: ``address_free_failures``, ``address_lockout_failures``.
    A right password resets the user's count (not the address's); ``posguard users unlock NAME`` (or
    ``--address``) ends a lockout. Failures older than a day are forgotten.
    """

    # the defaults are the settings' (graph.settings.Settings, POSGUARD_LOGIN_*): stated once, there
    free_failures: int = Settings.login_free_failures
    delay_seconds: float = Settings.login_delay_seconds
    lockout_failures: int = Settings.login_lockout_failures
    address_free_failures: int = Settings.login_address_free_failures
    address_lockout_failures: int = Settings.login_address_lockout_failures
    lockout_minutes: float = Settings.login_lockout_minutes

    @classmethod
    def from_settings(cls, settings) -> "LoginPolicy":
        return cls(settings.login_free_failures, settings.login_delay_seconds, settings.login_lockout_failures,
                   settings.login_address_free_failures, settings.login_address_lockout_failures,
                   settings.login_lockout_minutes)

    def wait(self, failures: int, free: int, lockout_at: int) -> float:
        """Seconds before the next attempt after ``failures`` failures in a row (``free`` of them without a
        wait, a lockout at ``lockout_at``).

        Example
        -------
        >>> [LoginPolicy().wait(n, 3, 10) for n in (3, 4, 5, 6, 10)]
        [0.0, 1.0, 2.0, 4.0, 900.0]
        """
        lockout = self.lockout_minutes * 60.0
        if failures >= lockout_at:
            return lockout
        if failures <= free:
            return 0.0
        return min(self.delay_seconds * 2.0 ** (failures - free - 1), lockout)


@dataclass(frozen=True)
class LoginOutcome:
    """What a sign-in attempt gave: the user, or why not and how long to wait (seconds, rounded up)."""

    user: User | None
    throttled: bool = False
    retry_after: int = 0


def _keys(name: str, address: str) -> tuple[str, str]:
    return "user:" + name, "addr:" + (address or "unknown")


def login(db, name: str, password: str, address: str, policy: LoginPolicy | None = None) -> LoginOutcome:
    """A sign-in attempt from ``address``, throttled per user name and per address, audited.

    While the user or the address must wait, the password is not even checked (throttled, with the wait).
    Unknown user names are throttled like known ones (no user-name oracle). Failures, lockouts and
    sign-ins are recorded as ``(:AuthEvent)`` nodes (:func:`auth_events`).
    """
    policy = policy or LoginPolicy()
    now = time.time()
    user_key, addr_key = _keys(name, address)
    held = db.read(CYPHER["throttles"], keys=[user_key, addr_key], now=now)
    if held:
        return LoginOutcome(None, throttled=True, retry_after=math.ceil(max(r["until"] for r in held) - now))
    user = authenticate(db, name, password)
    if user is not None:
        db.run(CYPHER["forget"], key=user_key)
        db.run(CYPHER["event"], name=name, address=address, action="login", failures=0, until=None)
        return LoginOutcome(user)
    wait, now = 0.0, time.time()  # the wait runs from the refusal
    for key, free, lockout_at in ((user_key, policy.free_failures, policy.lockout_failures),
                                  (addr_key, policy.address_free_failures, policy.address_lockout_failures)):
        failures = db.run(CYPHER["fail"], key=key, now=now, stale=now - _FORGET_AFTER)[0]["failures"]
        pause = policy.wait(failures, free, lockout_at)
        if pause > 0:
            db.run(CYPHER["hold"], key=key, until=now + pause)
        if failures == lockout_at:
            db.run(CYPHER["event"], name=name, address=address, failures=failures, until=now + pause,
                   action="locked_out_user" if key == user_key else "locked_out_address")
        if key == user_key:
            db.run(CYPHER["event"], name=name, address=address, action="login_failed", failures=failures,
                   until=now + pause if pause else None)
        wait = max(wait, pause)
    return LoginOutcome(None, retry_after=math.ceil(wait))


def unlock(db, name: str | None = None, *, address: str | None = None, by: str = "cli") -> bool:
    """End the throttling or lockout of a user (``name``) or of a client ``address`` (admin); returns whether
    one was in force. Audited (``unlocked`` event; ``address`` is who unlocked, or the address unlocked).

    Raises
    ------
    UserError
        No such user, or neither a name nor an address.
    """
    if name:
        if not db.read(CYPHER["get"], name=name):
            raise UserError(f"no user {name!r}")
        key = _keys(name, "")[0]
    elif address:
        key = _keys("", address)[1]
    else:
        raise UserError("unlock needs a user NAME or --address")
    held = bool(db.read(CYPHER["throttles"], keys=[key], now=time.time()))
    db.run(CYPHER["forget"], key=key)
    db.run(CYPHER["event"], name=name or "", address=address or by, action="unlocked", failures=0, until=None)
    return held


def auth_events(db, name: str) -> list[dict]:
    """The sign-in audit trail of a user name, oldest first: at, user, address, action, failures, until."""
    return db.read(CYPHER["events"], name=name)
