"""Neo4j going away in the middle of a load: exit 1 with one `posguard: error:` line, no driver traceback.

The connection is really cut: the ETL talks to the session's server through a TCP relay that closes
every connection, and refuses new ones, once a given number of bytes went through it.
"""

from __future__ import annotations

import socket
import threading

import pytest

from etl.generate import generate
from tests.helpers import posguard, server_env


class CuttingRelay:
    """A TCP relay 127.0.0.1:<port> -> ``target`` that cuts everything after ``budget`` client bytes."""

    def __init__(self, target: tuple[str, int], budget: int):
        self.target, self.budget, self.sent = target, budget, 0
        self.cut = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.sockets: list[socket.socket] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.cut.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.cut.is_set():
                client.close()
                return
            upstream = socket.create_connection(self.target)
            with self.lock:
                self.sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, src, dst, counted):
        try:
            while data := src.recv(65536):
                if counted:
                    with self.lock:
                        self.sent += len(data)
                        over = self.sent > self.budget
                    if over:
                        self.close()
                        return
                dst.sendall(data)
        except OSError:
            pass

    def close(self):
        self.cut.set()
        self.listener.close()
        with self.lock:
            for s in self.sockets:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()


@pytest.mark.parametrize("budget", [400_000])
def test_neo4j_lost_mid_load_is_one_error_line(tmp_path, neo4j_settings, neo4j_credentials, db, budget):
    uri, (user, password) = neo4j_credentials
    host, port = uri.rsplit("//", 1)[1].rsplit(":", 1)
    relay = CuttingRelay((host, int(port)), budget)
    drop = generate(tmp_path / "drop", seed=3, txns=20_000).out_dir
    env = server_env(tmp_path / "home", NEO4J_URI=f"bolt://127.0.0.1:{relay.port}", NEO4J_USER=user,
                     NEO4J_PASSWORD=password)
    try:
        result = posguard("etl", str(drop), "--quiet", env=env, timeout=300)
    finally:
        relay.close()
    assert relay.sent > budget, "the relay never cut: the load was smaller than the budget"
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr and "ServiceUnavailable(" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("posguard: error:")]
    assert len(errors) == 1 and "lost the connection to Neo4j" in errors[0], result.stderr
    assert result.stderr.strip().splitlines()[-1] == errors[0]
