"""The one seam to Neo4j: the only module that imports the driver; parameterised Cypher only."""

from __future__ import annotations

import time
from typing import Any, Callable, Iterable, Sequence

import neo4j
import pandas as pd
from neo4j import GraphDatabase
from neo4j.exceptions import AuthError, Neo4jError, ServiceUnavailable, SessionExpired

from graph.errors import ServerError
from graph.schema import SCHEMA

__all__ = ["Database", "DatabaseError", "wait_until_ready", "lost_connection"]


CLEAR = ("MATCH ()-[r]->() CALL (r) { DELETE r } IN TRANSACTIONS OF 10000 ROWS",
         "MATCH (n) CALL (n) { DETACH DELETE n } IN TRANSACTIONS OF 10000 ROWS")


class DatabaseError(RuntimeError):
    """Neo4j refused a query, refused the credentials, or could not be reached."""


# The connection went away under a query (the server stopped, the network dropped), after the driver's
# own retries: one clear message instead of the driver's traceback.
_LOST = (ServiceUnavailable, SessionExpired)


def lost_connection(exc: BaseException) -> bool:
    """True for the driver's errors of a connection that went away (for a last-resort handler)."""
    return isinstance(exc, _LOST)


def _lost(uri: str, exc: Exception) -> DatabaseError:
    return DatabaseError(f"lost the connection to Neo4j at {uri} ({type(exc).__name__}): is the server running? "
                         "Run the same command again once it is back (loads are idempotent)")


def _driver(uri: str, auth: tuple[str, str]) -> neo4j.Driver:
    # server notifications (e.g. "property key does not exist" on a fresh database) are not our log's business
    return GraphDatabase.driver(uri, auth=auth, connection_timeout=10, max_connection_lifetime=3600,
                                user_agent="posguard",
                                notifications_min_severity=neo4j.NotificationMinimumSeverity.OFF)


def wait_until_ready(uri: str, auth: tuple[str, str], *, timeout: float = 120.0,
                     alive: Callable[[], bool] | None = None, database: str = "neo4j") -> None:
    """Block until a Bolt server at ``uri`` accepts ``auth`` and ``database`` answers a query.

    Raises
    ------
    ServerError
        When ``timeout`` passes, ``alive()`` turns False, or the credentials are refused.
    """
    deadline = time.monotonic() + timeout
    last = "no answer"
    while True:
        if alive is not None and not alive():
            raise ServerError(f"the server process exited before {uri} answered")
        driver = _driver(uri, auth)
        try:
            driver.verify_connectivity()
            driver.execute_query("RETURN 1", database_=database)
            return
        except AuthError as exc:
            raise ServerError(f"{uri} refused the credentials of user {auth[0]!r}: {exc.message}") from None
        except (ServiceUnavailable, OSError, Neo4jError) as exc:
            last = type(exc).__name__
        finally:
            driver.close()
        if time.monotonic() > deadline:
            raise ServerError(f"{uri} did not answer within {timeout:.0f}s (last error: {last})")
        time.sleep(0.5)


class Database:
    """A connection to one Neo4j database, running parameterised Cypher.

    Parameters
    ----------
    uri : str
        Bolt URI (``bolt://`` or ``neo4j://``).
    auth : tuple of str
        User and password.
    database : str
        Database name (``neo4j``).

    Example
    -------
    >>> with graph.server.connect(Settings.from_env()) as db:   # doctest: +SKIP
    ...     db.run("MATCH (c:Card {token: $token}) RETURN c.pan_last4 AS last4", token="ab12...")
    [{'last4': '4242'}]
    """

    def __init__(self, uri: str, auth: tuple[str, str], database: str = "neo4j"):
        self.uri = uri
        self.user = auth[0]
        self.database = database
        self._driver = _driver(uri, auth)
        try:
            self._driver.verify_connectivity()
        except AuthError as exc:
            self._driver.close()
            raise DatabaseError(f"{uri} refused the credentials of user {auth[0]!r}: {exc.message}") from None
        except (ServiceUnavailable, OSError) as exc:
            self._driver.close()
            raise DatabaseError(f"cannot reach Neo4j at {uri}: {exc}") from None

    def __enter__(self) -> "Database":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Close the driver and its connections."""
        self._driver.close()

    def run(self, query: str, params: dict[str, Any] | None = None, *, write: bool = True,
            **kwargs: Any) -> list[dict[str, Any]]:
        """Run one parameterised query and return its records as dicts.

        Parameters
        ----------
        query : str
            Cypher with ``$name`` parameters; never values formatted into the text.
        params : dict, optional
            Parameters; keyword arguments are merged in.
        write : bool
            Route as a write (default) or a read.

        Raises
        ------
        DatabaseError
            When Neo4j rejects the query.
        """
        parameters = {**(params or {}), **kwargs}
        routing = neo4j.RoutingControl.WRITE if write else neo4j.RoutingControl.READ
        try:
            records, _, _ = self._driver.execute_query(query, parameters, database_=self.database,
                                                       routing_=routing)
        except _LOST as exc:
            raise _lost(self.uri, exc) from None
        except Neo4jError as exc:
            raise DatabaseError(f"Neo4j rejected a query ({exc.code}): {exc.message}") from None
        return [r.data() for r in records]

    def run_autocommit(self, query: str, params: dict[str, Any] | None = None, **kwargs: Any) -> int:
        """Run a query in an auto-commit transaction (needed by ``CALL {...} IN TRANSACTIONS``); return rows."""
        parameters = {**(params or {}), **kwargs}
        try:
            with self._driver.session(database=self.database) as session:
                return len(list(session.run(query, parameters)))
        except _LOST as exc:
            raise _lost(self.uri, exc) from None
        except Neo4jError as exc:
            raise DatabaseError(f"Neo4j rejected a query ({exc.code}): {exc.message}") from None

    def clear(self) -> None:
        """Delete every node and relationship, in batches (the schema stays)."""
        for statement in CLEAR:
            self.run_autocommit(statement)

    def read(self, query: str, params: dict[str, Any] | None = None, **kwargs: Any) -> list[dict[str, Any]]:
        """Run a read query (routed to a reader) and return records as dicts."""
        return self.run(query, params, write=False, **kwargs)

    def frame(self, query: str, params: dict[str, Any] | None = None, **kwargs: Any):
        """Run a read query and return a pandas DataFrame (columns in RETURN order)."""
        parameters = {**(params or {}), **kwargs}
        try:
            records, summary, keys = self._driver.execute_query(
                query, parameters, database_=self.database, routing_=neo4j.RoutingControl.READ)
        except _LOST as exc:
            raise _lost(self.uri, exc) from None
        except Neo4jError as exc:
            raise DatabaseError(f"Neo4j rejected a query ({exc.code}): {exc.message}") from None
        return pd.DataFrame([r.values() for r in records], columns=list(keys))

    def write_batches(self, query: str, rows: Iterable[dict[str, Any]] | Sequence[dict[str, Any]], *,
                      batch_size: int = 10_000, params: dict[str, Any] | None = None,
                      on_batch: Callable[[int], None] | None = None) -> int:
        """Write ``rows`` in batches through ``UNWIND $rows AS row ...``; return the number of rows.

        Each batch is one transaction function without side effects, so a driver retry is safe; the
        query must be idempotent (MERGE on constrained keys).
        """
        extra = dict(params or {})

        def work(tx, chunk):
            tx.run(query, {**extra, "rows": chunk}).consume()

        written = 0
        batch: list[dict[str, Any]] = []
        try:
            with self._driver.session(database=self.database) as session:
                for row in rows:
                    batch.append(row)
                    if len(batch) >= batch_size:
                        written += self._write_one(session, work, batch, on_batch)
                        batch = []
                if batch:
                    written += self._write_one(session, work, batch, on_batch)
        except _LOST as exc:
            raise _lost(self.uri, exc) from None
        return written

    @staticmethod
    def _write_one(session, work, batch, on_batch) -> int:
        try:
            session.execute_write(work, batch)
        except Neo4jError as exc:
            raise DatabaseError(f"Neo4j rejected a batch write ({exc.code}): {exc.message}") from None
        if on_batch is not None:
            on_batch(len(batch))
        return len(batch)

    def ensure_schema(self) -> None:
        """Create every constraint and index of :mod:`graph.schema` (idempotent) and wait for them."""
        for statement in SCHEMA:
            self.run(statement)
        self.run("CALL db.awaitIndexes(300)")

    def server_info(self) -> dict[str, str]:
        """Version and edition of the server."""
        rows = self.read("CALL dbms.components() YIELD name, versions, edition "
                         "RETURN versions[0] AS version, edition")
        return rows[0] if rows else {}
