"""Settings read once from the environment at the entry point and passed down as one typed object."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Mapping

__all__ = ["Settings", "SettingsError", "DEFAULT_BOLT_PORT", "DEFAULT_HTTP_PORT", "INSECURE_DEV_KEY",
           "posguard_version"]

INSECURE_DEV_KEY = b"posguard-insecure-development-key"  # public: only with --insecure-dev-key
DEFAULT_BOLT_PORT = 7687
DEFAULT_HTTP_PORT = 7474


def posguard_version() -> str:
    """The installed posguard version."""
    try:
        return version("posguard")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0+unknown"


class SettingsError(ValueError):
    """A setting in the environment has a value posguard cannot use."""


def _port(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if raw == "auto":
        return 0
    try:
        port = int(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a port number (use 1-65535, or 'auto')") from None
    if not 0 <= port <= 65535:
        raise SettingsError(f"{name}={raw!r} is out of range (use 1-65535, or 'auto')")
    return port


def _number(env: Mapping[str, str], name: str, default, kind=float, minimum=0):
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a{'n integer' if kind is int else ' number'}") from None
    if not value >= minimum or value != value or value in (float("inf"), float("-inf")):
        raise SettingsError(f"{name}={raw!r} must be a finite number >= {minimum}")
    return value


def _flag(env: Mapping[str, str], name: str) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw in ("", "0", "false", "no", "off"):
        return False
    if raw in ("1", "true", "yes", "on"):
        return True
    raise SettingsError(f"{name}={raw!r} is not a yes/no value (use 1 or 0)")


def _instant(env: Mapping[str, str], name: str, default: datetime) -> datetime:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not an ISO-8601 date or time") from None
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def _pairs(raw: str, name: str) -> dict[str, str]:
    """``"a=1,b=2"`` -> ``{"a": "1", "b": "2"}``."""
    out = {}
    for item in filter(None, (i.strip() for i in raw.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise SettingsError(f"{name} must be key=value pairs separated by commas, got {item!r}")
        out[key.strip()] = value.strip()
    return out


@dataclass(frozen=True)
class Settings:
    """Everything posguard needs to know about its environment.

    Parameters
    ----------
    home : Path
        ``POSGUARD_HOME``: staging files, run manifests, the local Neo4j server's data (default ``./var``).
    neo4j_uri : str or None
        ``NEO4J_URI`` of an external server; ``None`` means posguard runs its own local server.
    neo4j_user, neo4j_password : str
        Credentials for the external server (``NEO4J_USER``, ``NEO4J_PASSWORD``).
    token_key : bytes or None
        ``POSGUARD_TOKEN_KEY`` as UTF-8 bytes; ``None`` when unset.
    insecure_dev_key : bool
        Use a fixed, publicly known development key when ``token_key`` is unset.
    source_tz : str
        Time zone of input timestamps without an offset (``POSGUARD_SOURCE_TZ``, default UTC).
    bolt_port, http_port : int
        Ports of the local server (``POSGUARD_NEO4J_BOLT_PORT``/``..._HTTP_PORT``; 0 or ``auto`` = any free).
    heap, pagecache : str
        Memory of the local server (``POSGUARD_NEO4J_HEAP``, ``POSGUARD_NEO4J_PAGECACHE``).
    spark_master : str
        ``POSGUARD_SPARK_MASTER``: where ``--engine spark`` runs (default ``local[*]``; ignored under
        spark-submit, whose ``--master`` wins).
    spark_conf : dict
        ``POSGUARD_SPARK_CONF``: extra Spark settings as ``key=value`` pairs separated by commas.
    quiet : bool
        Silence progress output.
    earliest_ts : datetime
        ``POSGUARD_EARLIEST_TS``: input timestamps before it are rejected ``implausible_timestamp``
        (default 2000-01-01 UTC).
    max_future_hours : float
        ``POSGUARD_MAX_FUTURE_HOURS``: input timestamps more than this after the run's start are rejected
        ``implausible_timestamp`` (default 24).
    max_field_bytes : int
        ``POSGUARD_MAX_FIELD_BYTES``: a field longer than this (UTF-8 bytes) is rejected ``field_too_large``
        (default 131072).
    login_free_failures : int
        ``POSGUARD_LOGIN_FREE_FAILURES``: wrong passwords in a row for one user answered without delay
        (default 3).
    login_delay_seconds : float
        ``POSGUARD_LOGIN_DELAY_SECONDS``: the wait imposed after the first failure beyond the free ones,
        doubled after each further failure (default 1).
    login_lockout_failures : int
        ``POSGUARD_LOGIN_LOCKOUT_FAILURES``: failures in a row that lock a user out (default 10).
    login_address_free_failures : int
        ``POSGUARD_LOGIN_ADDRESS_FREE_FAILURES``: wrong passwords from one client address (any user) answered
        without delay (default 10; an office behind one NAT shares an address).
    login_address_lockout_failures : int
        ``POSGUARD_LOGIN_ADDRESS_LOCKOUT_FAILURES``: failures in a row that lock an address out (default 30).
    login_lockout_minutes : float
        ``POSGUARD_LOGIN_LOCKOUT_MINUTES``: how long a lockout lasts, unless an admin ends it with
        ``posguard users unlock`` (default 15).
    secure_cookie : bool
        ``POSGUARD_SECURE_COOKIE=1`` (or ``posguard app --secure-cookie``): the session cookie is sent over
        HTTPS only (behind a TLS proxy).
    allowed_origins : tuple of str
        ``POSGUARD_ALLOWED_ORIGINS``: origins (``https://host[:port]``, comma-separated) allowed to send
        state-changing requests besides the explorer's own (e.g. the public name behind a proxy).

    Example
    -------
    >>> s = Settings.from_env({"POSGUARD_HOME": "/tmp/pg"})
    >>> s.home.name
    'pg'
    """

    home: Path
    neo4j_uri: str | None = None
    neo4j_user: str = "neo4j"
    neo4j_password: str | None = field(default=None, repr=False)
    token_key: bytes | None = field(default=None, repr=False)
    insecure_dev_key: bool = False
    source_tz: str = "UTC"
    bolt_port: int = DEFAULT_BOLT_PORT
    http_port: int = DEFAULT_HTTP_PORT
    heap: str = "512m"
    pagecache: str = "512m"
    neo4j_database: str = "neo4j"
    spark_master: str = "local[*]"
    spark_conf: dict = field(default_factory=dict)
    quiet: bool = False
    earliest_ts: datetime = datetime(2000, 1, 1, tzinfo=timezone.utc)
    max_future_hours: float = 24.0
    max_field_bytes: int = 131_072
    login_free_failures: int = 3
    login_delay_seconds: float = 1.0
    login_lockout_failures: int = 10
    login_address_free_failures: int = 10
    login_address_lockout_failures: int = 30
    login_lockout_minutes: float = 15.0
    secure_cookie: bool = False
    allowed_origins: tuple = ()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides) -> "Settings":
        """Read settings from ``environ`` (default ``os.environ``); keyword overrides win.

        Raises
        ------
        SettingsError
            When a variable holds an unusable value.
        """
        env = os.environ if environ is None else environ
        key = env.get("POSGUARD_TOKEN_KEY")
        values = dict(
            home=Path(env.get("POSGUARD_HOME") or "var").resolve(),
            neo4j_uri=env.get("NEO4J_URI") or None,
            neo4j_user=env.get("NEO4J_USER") or "neo4j",
            neo4j_password=env.get("NEO4J_PASSWORD") or None,
            token_key=key.encode("utf-8") if key else None,
            source_tz=env.get("POSGUARD_SOURCE_TZ") or "UTC",
            bolt_port=_port(env, "POSGUARD_NEO4J_BOLT_PORT", DEFAULT_BOLT_PORT),
            http_port=_port(env, "POSGUARD_NEO4J_HTTP_PORT", DEFAULT_HTTP_PORT),
            heap=env.get("POSGUARD_NEO4J_HEAP") or "512m",
            pagecache=env.get("POSGUARD_NEO4J_PAGECACHE") or "512m",
            neo4j_database=env.get("NEO4J_DATABASE") or "neo4j",
            spark_master=env.get("POSGUARD_SPARK_MASTER") or "local[*]",
            spark_conf=_pairs(env.get("POSGUARD_SPARK_CONF", ""), "POSGUARD_SPARK_CONF"),
            earliest_ts=_instant(env, "POSGUARD_EARLIEST_TS", datetime(2000, 1, 1, tzinfo=timezone.utc)),
            max_future_hours=_number(env, "POSGUARD_MAX_FUTURE_HOURS", 24.0),
            max_field_bytes=_number(env, "POSGUARD_MAX_FIELD_BYTES", 131_072, int, 1),
            login_free_failures=_number(env, "POSGUARD_LOGIN_FREE_FAILURES", 3, int),
            login_delay_seconds=_number(env, "POSGUARD_LOGIN_DELAY_SECONDS", 1.0),
            login_lockout_failures=_number(env, "POSGUARD_LOGIN_LOCKOUT_FAILURES", 10, int, 1),
            login_address_free_failures=_number(env, "POSGUARD_LOGIN_ADDRESS_FREE_FAILURES", 10, int),
            login_address_lockout_failures=_number(env, "POSGUARD_LOGIN_ADDRESS_LOCKOUT_FAILURES", 30, int, 1),
            login_lockout_minutes=_number(env, "POSGUARD_LOGIN_LOCKOUT_MINUTES", 15.0),
            secure_cookie=_flag(env, "POSGUARD_SECURE_COOKIE"),
            allowed_origins=tuple(o.strip().rstrip("/") for o in env.get("POSGUARD_ALLOWED_ORIGINS", "").split(",")
                                  if o.strip()),
        )
        values.update(overrides)
        return cls(**values)

    @property
    def external(self) -> bool:
        """True when an external server is configured (``NEO4J_URI`` set)."""
        return self.neo4j_uri is not None

    def require_token_key(self) -> "Settings":
        """Return settings whose ``token_key`` is set: the environment's, or the public dev key if allowed.

        Raises
        ------
        SettingsError
            When ``POSGUARD_TOKEN_KEY`` is unset and ``insecure_dev_key`` is False.
        """
        if self.token_key:
            return self
        if not self.insecure_dev_key:
            raise SettingsError("POSGUARD_TOKEN_KEY is not set: posguard tokenizes PANs and other secrets with "
                                "it; set it (e.g. `export POSGUARD_TOKEN_KEY=$(openssl rand -hex 32)`), or pass "
                                "--insecure-dev-key for a throw-away development setup")
        return replace(self, token_key=INSECURE_DEV_KEY)

    def with_(self, **changes) -> "Settings":
        """Return a copy with ``changes`` applied."""
        return replace(self, **changes)
