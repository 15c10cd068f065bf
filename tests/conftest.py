"""Session fixtures: the project's own Neo4j server in an isolated POSGUARD_HOME (fails, never skips)."""

from __future__ import annotations

from pathlib import Path

import pytest

from graph.settings import Settings

from tests.helpers import server_env


@pytest.fixture(scope="session")
def neo4j_home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("posguard-home")


@pytest.fixture(scope="session")
def neo4j_settings(neo4j_home) -> Settings:
    """Settings of a running local Neo4j server started for this test session and stopped at its end."""
    from graph.server import LocalServer

    settings = Settings.from_env(server_env(neo4j_home))
    server = LocalServer(settings)
    server.start()  # raises ServerError (a test error, never a skip) when the server cannot start
    yield settings
    server.stop()


@pytest.fixture(scope="session")
def neo4j_credentials(neo4j_settings) -> tuple[str, tuple[str, str]]:
    """Bolt URI and (user, password) of the session server."""
    from graph.server import LocalServer

    server = LocalServer(neo4j_settings)
    return server.status().bolt_uri, (server.user, server.password())


@pytest.fixture()
def db(neo4j_settings):
    """A connection to the session server whose database is emptied before the test."""
    from graph.db import connect

    with connect(neo4j_settings, start=False) as database:
        database.clear()
        database.ensure_schema()
        yield database
