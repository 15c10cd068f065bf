"""The local Neo4j server: lifecycle, auth, loopback binding, errors, and the NEO4J_URI override."""

from __future__ import annotations

import json
import re
import socket
import stat
import urllib.request
from pathlib import Path

import pytest

from graph.db import Database, DatabaseError
from graph.server import LocalServer, ServerError, find_java, resolve_classpath
from graph.server.local import new_password, process_alive
from graph.settings import Settings, SettingsError
from tests.helpers import REPO, posguard, server_env


def test_lifecycle_start_status_double_start_stop_restart(tmp_path):
    env = server_env(tmp_path)
    started = posguard("neo4j", "start", env=env)
    assert started.returncode == 0, started.stderr
    bolt_uri = started.stdout.strip()
    assert bolt_uri.startswith("bolt://127.0.0.1:")

    status = posguard("neo4j", "status", "--json", env=env)
    assert status.returncode == 0, status.stderr
    info = json.loads(status.stdout)
    assert info["version"].startswith("5.26.")
    assert info["bolt_uri"] == bolt_uri and info["running"] is True
    assert {"version", "bolt_uri", "http_uri", "user", "password_file", "pid"} <= set(info)
    pid = info["pid"]
    password_file = Path(info["password_file"])
    assert stat.S_IMODE(password_file.stat().st_mode) == 0o600
    password = password_file.read_text().strip()

    with Database(bolt_uri, ("neo4j", password)) as db:
        db.run("CREATE (:Probe {name: $name})", name="kept across restarts")

    again = posguard("neo4j", "start", env=env)
    assert again.returncode == 0 and again.stdout.strip() == bolt_uri
    assert json.loads(posguard("neo4j", "status", "--json", env=env).stdout)["pid"] == pid

    stopped = posguard("neo4j", "stop", env=env)
    assert stopped.returncode == 0, stopped.stderr
    after = posguard("neo4j", "status", "--json", env=env)
    assert after.returncode == 1 and json.loads(after.stdout)["running"] is False
    assert not process_alive(pid)

    restarted = posguard("neo4j", "start", env=env)
    assert restarted.returncode == 0, restarted.stderr
    assert password_file.read_text().strip() == password  # the password is generated once
    with Database(restarted.stdout.strip(), ("neo4j", password)) as db:
        assert db.run("MATCH (p:Probe) RETURN p.name AS name") == [{"name": "kept across restarts"}]
    assert posguard("neo4j", "stop", env=env).returncode == 0


def test_wrong_password_is_refused(neo4j_credentials):
    uri, (user, password) = neo4j_credentials
    with pytest.raises(DatabaseError, match="refused the credentials"):
        Database(uri, (user, password + "-wrong"))
    with Database(uri, (user, password)) as db:
        assert db.run("RETURN 1 AS one") == [{"one": 1}]


def _listen_addresses(port: int) -> set[str]:
    """Local addresses (hex, as in /proc/net/tcp*) of sockets listening on ``port``."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            address, hex_port = fields[1].rsplit(":", 1)
            if fields[3] == "0A" and int(hex_port, 16) == port:  # 0A = LISTEN
                found.add(address)
    return found


def test_listens_on_loopback_only(neo4j_settings):
    status = LocalServer(neo4j_settings).status()
    loopback = {"0100007F", "0000000000000000FFFF00000100007F", "00000000000000000000000001000000"}
    for uri in (status.bolt_uri, status.http_uri):
        port = int(uri.rsplit(":", 1)[1])
        addresses = _listen_addresses(port)
        assert addresses, f"nothing listens on port {port}"
        assert addresses <= loopback, f"port {port} listens on {addresses}"


def test_schema_is_idempotent(db):
    db.ensure_schema()
    first = db.read("SHOW CONSTRAINTS YIELD name RETURN name ORDER BY name")
    indexes = db.read("SHOW INDEXES YIELD name RETURN name ORDER BY name")
    db.ensure_schema()
    assert db.read("SHOW CONSTRAINTS YIELD name RETURN name ORDER BY name") == first
    assert db.read("SHOW INDEXES YIELD name RETURN name ORDER BY name") == indexes
    names = {r["name"] for r in first}
    assert {"card_token_unique", "terminal_terminal_id_unique", "txn_id_unique"} <= names
    db.run("MERGE (:Card {token: $t})", t="t1")
    with pytest.raises(DatabaseError, match="ConstraintValidationFailed|already exists"):
        db.run("CREATE (:Card {token: $t})", t="t1")


def test_neo4j_uri_override_uses_the_external_server(neo4j_credentials, tmp_path):
    uri, (user, password) = neo4j_credentials
    env = server_env(tmp_path, NEO4J_URI=uri, NEO4J_USER=user, NEO4J_PASSWORD=password)
    status = posguard("neo4j", "status", "--json", env=env)
    assert status.returncode == 0, status.stderr
    info = json.loads(status.stdout)
    assert info["external"] is True and info["bolt_uri"] == uri and info["version"].startswith("5.26.")
    refused = posguard("neo4j", "start", env=env)
    assert refused.returncode == 2 and "NEO4J_URI is set" in refused.stderr
    assert not (tmp_path / "neo4j").exists()  # no local server was set up


def test_taken_port_is_a_clear_error(tmp_path):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        result = posguard("neo4j", "start", env=server_env(tmp_path, POSGUARD_NEO4J_BOLT_PORT=str(port)))
    assert result.returncode == 1
    assert f"port {port} on 127.0.0.1 is in use" in result.stderr


def test_server_that_dies_at_start_shows_its_log(tmp_path):
    (tmp_path / "neo4j").mkdir()
    (tmp_path / "neo4j" / "password").write_text("set-before\n")  # skip neo4j-admin: the server itself dies
    result = posguard("neo4j", "start", env=server_env(tmp_path, POSGUARD_NEO4J_HEAP="1k"))
    assert result.returncode == 1
    assert "died at start" in result.stderr
    assert "console.log" in result.stderr and "heap" in result.stderr.lower()


def test_no_java_17_is_a_clear_error(tmp_path, monkeypatch):
    fake = tmp_path / "java"
    fake.write_text('#!/bin/sh\necho \'openjdk version "11.0.21" 2023-10-17\' >&2\n')
    fake.chmod(0o755)
    monkeypatch.setenv("POSGUARD_JAVA", str(fake))
    with pytest.raises(ServerError, match="no Java 17\\+ runtime"):
        find_java()


def test_missing_maven_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("PATH", str(tmp_path))  # no mvn here
    with pytest.raises(ServerError, match="Maven"):
        resolve_classpath()


def test_unresolvable_artifact_is_a_clear_error(tmp_path, monkeypatch):
    pom = tmp_path / "pom.xml"
    text = (REPO / "graph/server/pom.xml").read_text()
    pom.write_text(text.replace("<neo4j.version>5.26", "<neo4j.version>0.0.0-no-such-version-5.26"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with pytest.raises(ServerError, match="could not resolve org.neo4j:neo4j:0.0.0-no-such"):
        resolve_classpath(pom)


def test_settings_reject_bad_ports():
    with pytest.raises(SettingsError, match="POSGUARD_NEO4J_BOLT_PORT"):
        Settings.from_env({"POSGUARD_NEO4J_BOLT_PORT": "seven"})
    assert Settings.from_env({"POSGUARD_NEO4J_BOLT_PORT": "auto"}).bolt_port == 0


def test_http_port_serves_neo4j_browser_and_discovery(neo4j_settings):
    status = LocalServer(neo4j_settings).status()
    with urllib.request.urlopen(status.http_uri + "/", timeout=10) as response:
        discovery = json.loads(response.read())
    assert discovery["neo4j_version"].startswith("5.26.") and discovery["neo4j_edition"] == "community"
    assert discovery["bolt_direct"] == status.bolt_uri
    with urllib.request.urlopen(status.http_uri + "/browser/", timeout=10) as response:
        assert response.status == 200 and b"<html" in response.read().lower()


def test_neo4j_admin_runs_from_the_same_jars(neo4j_settings):
    proc = LocalServer(neo4j_settings).admin("--version")
    assert proc.stdout.strip().startswith("5.26.")


def test_only_graph_db_imports_the_driver():
    root = REPO
    importers = sorted(str(p.relative_to(root)) for package in ("graph", "etl", "app", "posguard") for p in
                       (root / package).rglob("*.py")
                       if re.search(r"^\s*(import neo4j|from neo4j\b)", p.read_text(), re.M))
    assert importers == ["graph/db.py"]


def test_generated_passwords_never_look_like_an_option():
    """neo4j-admin took a password starting with "-" for an option (exit 64); 1 in 64 token_urlsafe do."""
    passwords = [new_password() for _ in range(3000)]
    assert not any(p.startswith("-") for p in passwords)
    assert len(set(passwords)) == len(passwords) and all(len(p) == 32 for p in passwords)
