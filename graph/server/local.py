"""The project's own Neo4j server: one JVM process whose config, data, logs and password live in POSGUARD_HOME."""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from graph.db import wait_until_ready
from graph.server.config import JVM_FLAGS, render_config
from graph.errors import ServerError
from graph.server.resolve import find_java, neo4j_version, resolve_classpath
from graph.settings import Settings

__all__ = ["LocalServer", "ServerStatus", "port_is_free", "free_port", "process_alive"]

ENTRY_POINT = "org.neo4j.server.CommunityEntryPoint"
ADMIN_ENTRY_POINT = "org.neo4j.server.startup.Neo4jAdminCommand"


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """True when nothing listens on ``host:port`` (a bind succeeds)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def process_alive(pid: int) -> bool:
    """True while process ``pid`` runs (a zombie counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child of ours counts as dead
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(") ")[-1][:1] != "Z"
    except OSError:
        return True


def new_password() -> str:
    """A random password for the local server's admin user (32 URL-safe characters).

    Never starting with "-": neo4j-admin would read it as an option and exit 64 (seen in CI, 1 start in 64).
    """
    while True:
        password = secrets.token_urlsafe(24)
        if not password.startswith("-"):
            return password


@dataclass(frozen=True)
class ServerStatus:
    """What ``posguard neo4j status`` reports."""

    running: bool
    version: str
    bolt_uri: str
    http_uri: str
    user: str
    password_file: str
    pid: int | None
    home: str

    def as_dict(self) -> dict:
        return dict(self.__dict__)


class LocalServer:
    """Start, stop and inspect the local Neo4j Community server.

    Parameters
    ----------
    settings : Settings
        ``settings.home`` holds ``neo4j/{conf,data,logs,run}`` and the password file.

    Example
    -------
    >>> server = LocalServer(Settings.from_env())      # doctest: +SKIP
    >>> server.start().bolt_uri                        # doctest: +SKIP
    'bolt://127.0.0.1:7687'
    """

    user = "neo4j"

    def __init__(self, settings: Settings):
        self.settings = settings
        self.root = settings.home / "neo4j"
        self.conf_dir = self.root / "conf"
        self.data_dir = self.root / "data"
        self.logs_dir = self.root / "logs"
        self.import_dir = self.root / "import"
        self.run_dir = self.root / "run"
        self.password_file = self.root / "password"
        self.state_file = self.run_dir / "server.json"

    # ----------------------------------------------------------------- state
    def _state(self) -> dict | None:
        try:
            return json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return None

    def password(self) -> str:
        """The generated password of user neo4j (read from the owner-only password file)."""
        try:
            return self.password_file.read_text().strip()
        except FileNotFoundError:
            raise ServerError(f"no password file at {self.password_file}: the local server was never started "
                              "(run `posguard neo4j start`)") from None

    def status(self) -> ServerStatus:
        """Return the server's status; ``running`` is False when its process is gone."""
        state = self._state() or {}
        pid = state.get("pid")
        running = bool(pid) and process_alive(pid)
        bolt = state.get("bolt_port", self.settings.bolt_port)
        http = state.get("http_port", self.settings.http_port)
        return ServerStatus(
            running=running, version=state.get("version") or neo4j_version(),
            bolt_uri=f"bolt://127.0.0.1:{bolt}", http_uri=f"http://127.0.0.1:{http}",
            user=self.user, password_file=str(self.password_file), pid=pid if running else None,
            home=str(self.root))

    # ------------------------------------------------------------- commands
    def _java_cmd(self, main_class: str, java: str, classpath: list[Path], extra: list[str]) -> list[str]:
        cp = os.pathsep.join(str(p) for p in classpath)
        return [java, *extra, "-cp", cp, main_class]

    def _env(self) -> dict:
        env = dict(os.environ)
        env["NEO4J_HOME"] = str(self.root)
        env["NEO4J_CONF"] = str(self.conf_dir)
        return env

    def admin(self, *args: str, check: bool = True, timeout: float = 3600) -> subprocess.CompletedProcess:
        """Run ``neo4j-admin`` with ``args`` on this server's home and config (the same jars).

        Raises
        ------
        ServerError
            When ``check`` and neo4j-admin exits non-zero.
        """
        java = find_java()
        cmd = self._java_cmd(ADMIN_ENTRY_POINT, java.executable, resolve_classpath(), ["-Xmx1g"]) + list(args)
        proc = subprocess.run(cmd, env=self._env(), cwd=self.root, capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-20:])
            raise ServerError(f"neo4j-admin {args[0] if args else ''} failed (exit {proc.returncode}):\n{tail}")
        return proc

    def _write_config(self, bolt: int, http: int) -> None:
        for d in (self.conf_dir, self.data_dir, self.logs_dir, self.import_dir, self.run_dir):
            d.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)
        (self.conf_dir / "neo4j.conf").write_text(render_config(
            data_dir=self.data_dir, logs_dir=self.logs_dir, import_dir=self.import_dir,
            bolt_port=bolt, http_port=http, pagecache=self.settings.pagecache, heap=self.settings.heap))

    def _ensure_password(self) -> None:
        if self.password_file.exists():
            return
        if (self.data_dir / "databases" / "system").exists():
            raise ServerError(f"{self.data_dir} holds a database but the password file {self.password_file} is "
                              f"gone; remove {self.data_dir} to start afresh")
        password = new_password()
        self.admin("dbms", "set-initial-password", password)
        fd = os.open(self.password_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(password + "\n")

    def _pick_port(self, wanted: int, name: str, taken: set[int]) -> int:
        if wanted == 0:
            port = free_port()
            while port in taken:
                port = free_port()
            return port
        if not port_is_free(wanted):
            raise ServerError(f"port {wanted} on 127.0.0.1 is in use by another process; stop it or set "
                              f"{name} to a free port (or 'auto')")
        return wanted

    def _log_tail(self, lines: int = 30) -> str:
        chunks = []
        for name in ("console.log", "neo4j.log"):
            path = self.logs_dir / name
            if path.exists():
                text = path.read_text(errors="replace").strip().splitlines()[-lines:]
                if text:
                    chunks.append(f"--- {path} (last {len(text)} lines)\n" + "\n".join(text))
        return "\n".join(chunks) or "(no log output)"

    def start(self, timeout: float = 180.0) -> ServerStatus:
        """Start the server unless it runs already; return once Bolt answers.

        Raises
        ------
        ServerError
            No Java 17+, artifacts unavailable, a port in use, or a server that died or never answered.
        """

        if self.settings.external:
            raise ServerError(f"NEO4J_URI is set ({self.settings.neo4j_uri}): posguard uses that server and "
                              "does not start its own")
        current = self.status()
        if current.running:
            wait_until_ready(current.bolt_uri, (self.user, self.password()), timeout=timeout)
            return current
        java = find_java()
        classpath = resolve_classpath()
        bolt = self._pick_port(self.settings.bolt_port, "POSGUARD_NEO4J_BOLT_PORT", set())
        http = self._pick_port(self.settings.http_port, "POSGUARD_NEO4J_HTTP_PORT", {bolt})
        self._write_config(bolt, http)
        self._ensure_password()
        extra = [f"-Xms{self.settings.heap}", f"-Xmx{self.settings.heap}", *JVM_FLAGS,
                 f"-Dposguard.home={self.root}"]
        cmd = self._java_cmd(ENTRY_POINT, java.executable, classpath, extra) + [
            f"--home-dir={self.root}", f"--config-dir={self.conf_dir}"]
        with open(self.logs_dir / "console.log", "ab") as console:
            proc = subprocess.Popen(cmd, env=self._env(), cwd=self.root, stdin=subprocess.DEVNULL,
                                    stdout=console, stderr=subprocess.STDOUT, start_new_session=True)
        state = {"pid": proc.pid, "bolt_port": bolt, "http_port": http, "version": neo4j_version(),
                 "java": java.executable, "started_at": time.time()}
        self.state_file.write_text(json.dumps(state))
        status = self.status()
        try:
            wait_until_ready(status.bolt_uri, (self.user, self.password()), timeout=timeout,
                             alive=lambda: proc.poll() is None)
            self._wait_for_http(status.http_uri, timeout)
        except ServerError as exc:
            died = proc.poll() is not None
            if not died:
                self._terminate(proc.pid, 30)
            reason = "died at start" if died else f"did not answer on {status.bolt_uri} within {timeout:.0f}s"
            raise ServerError(f"Neo4j {reason} ({exc}).\n{self._log_tail()}") from None
        return self.status()

    @staticmethod
    def _wait_for_http(uri: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(uri + "/", timeout=5):
                    return
            except (urllib.error.URLError, OSError) as exc:
                if time.monotonic() > deadline:
                    raise ServerError(f"{uri} did not answer within {timeout:.0f}s ({exc})") from None
            time.sleep(0.3)

    def _terminate(self, pid: int, timeout: float) -> bool:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return True
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:  # reap it if it is our child
                if os.waitpid(pid, os.WNOHANG)[0] == pid:
                    return True
            except ChildProcessError:
                pass
            if not process_alive(pid):
                return True
            time.sleep(0.2)
        os.kill(pid, signal.SIGKILL)
        return False

    def stop(self, timeout: float = 60.0) -> bool:
        """Stop the server cleanly (SIGTERM, then SIGKILL after ``timeout``); True if it was running."""
        state = self._state()
        if not state or not state.get("pid") or not process_alive(state["pid"]):
            return False
        clean = self._terminate(state["pid"], timeout)
        state["pid"] = None
        state["stopped_clean"] = clean
        self.state_file.write_text(json.dumps(state))
        return True
