"""Finding the configured database: ``NEO4J_URI`` when set, else the local server (started if needed)."""

from __future__ import annotations

from graph.db import Database, DatabaseError
from graph.errors import ServerError
from graph.server.local import LocalServer
from graph.settings import Settings

__all__ = ["connect", "credentials"]


def connect(settings: Settings, *, start: bool = True) -> Database:
    """Open the configured database: ``NEO4J_URI`` if set, else the local server (started if needed).

    Raises
    ------
    DatabaseError, ServerError
        When the server cannot be reached, started or authenticated against.
    """
    return Database(*credentials(settings, start=start))


def credentials(settings: Settings, *, start: bool = True) -> tuple[str, tuple[str, str], str]:
    """(Bolt URI, (user, password), database) of the configured database, for a ``Database`` elsewhere
    (the Spark loader's executors open their own)."""
    if settings.external:
        if settings.neo4j_password is None:
            raise DatabaseError("NEO4J_URI is set but NEO4J_PASSWORD is not")
        return settings.neo4j_uri, (settings.neo4j_user, settings.neo4j_password), settings.neo4j_database
    server = LocalServer(settings)
    status = server.start() if start else server.status()
    if not status.running:
        raise ServerError("the local Neo4j server is not running (run `posguard neo4j start`)")
    return status.bolt_uri, (server.user, server.password()), settings.neo4j_database
