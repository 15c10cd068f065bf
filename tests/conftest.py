"""Session fixtures: the project's own Neo4j server in an isolated POSGUARD_HOME (fails, never skips)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from graph.server import LocalServer, connect
from graph.settings import Settings
from tests.helpers import posguard, server_env


@pytest.fixture(scope="session")
def neo4j_home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("posguard-home")


@pytest.fixture(scope="session")
def neo4j_settings(neo4j_home) -> Settings:
    """Settings of a running local Neo4j server started for this test session and stopped at its end."""
    settings = Settings.from_env(server_env(neo4j_home))
    server = LocalServer(settings)
    server.start()  # raises ServerError (a test error, never a skip) when the server cannot start
    yield settings
    server.stop()


@pytest.fixture(scope="session")
def neo4j_credentials(neo4j_settings) -> tuple[str, tuple[str, str]]:
    """Bolt URI and (user, password) of the session server."""
    server = LocalServer(neo4j_settings)
    return server.status().bolt_uri, (server.user, server.password())


@pytest.fixture()
def db(neo4j_settings):
    """A connection to the session server whose database is emptied before the test."""
    with connect(neo4j_settings, start=False) as database:
        database.clear()
        database.ensure_schema()
        yield database


@pytest.fixture(scope="session")
def scored_env(tmp_path_factory):
    """Environment of its own server holding a generated (seed 1, small), loaded and scored drop.

    Shared by the explorer's, the API's and the notebooks' tests; stopped at the end of the session.
    """
    home = tmp_path_factory.mktemp("scored-home")
    env = server_env(home)
    drop = home / "drop"
    for args in (("generate", "--out", str(drop), "--seed", "1", "--scale", "small"),
                 ("run", str(drop), "--out", str(home / "out"), "--quiet")):
        result = posguard(*args, env=env)
        assert result.returncode == 0, result.stderr
    yield env
    posguard("neo4j", "stop", env=env)


@pytest.fixture(scope="session")
def scored_settings(scored_env) -> Settings:
    return Settings.from_env(scored_env)


@pytest.fixture(scope="session")
def scored_db(scored_settings):
    with connect(scored_settings, start=False) as database:
        yield database


@pytest.fixture(scope="session")
def raw_pans(scored_env) -> set[str]:
    """Every PAN of the scored sample's drop, as written in its files."""
    drop = Path(scored_env["POSGUARD_HOME"]) / "drop"
    pans = set()
    for path in drop.glob("transactions*"):
        frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path, dtype=str)
        pans |= set(frame["pan"].dropna().astype(str))
    assert len(pans) > 100
    return pans
