"""`posguard app` as a user starts it: a real server process on 127.0.0.1, behind the login."""

from __future__ import annotations

import http.cookiejar
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

from tests.app.conftest import PASSWORDS
from tests.helpers import REPO


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_posguard_app_serves_on_localhost_behind_the_login(app_env):
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "etl.cli", "app", "--port", str(port)], env=app_env, cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(base + "/login", timeout=2)
                break
            except (urllib.error.URLError, ConnectionError):
                assert proc.poll() is None, proc.stdout.read()
                assert time.monotonic() < deadline, "posguard app did not answer within 60 s"
                time.sleep(0.5)
        # Listening on the loopback address only.
        assert _listening_addresses(port) == {"127.0.0.1"}
        anonymous = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(), _NoRedirect())
        try:
            anonymous.open(base + "/_dash-layout")
            raise AssertionError("layout served without a session")
        except urllib.error.HTTPError as exc:
            assert exc.code == 401
        jar = http.cookiejar.CookieJar()
        signed = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        form = urllib.parse.urlencode({"username": "adm", "password": PASSWORDS["adm"][1]}).encode()
        assert signed.open(base + "/login", data=form).status == 200  # redirected to the app
        assert any(c.name == "posguard_session" for c in jar)
        layout = signed.open(base + "/_dash-layout")
        assert layout.status == 200 and b'"url"' in layout.read()
    finally:
        proc.terminate()
        proc.wait(15)


def _listening_addresses(port: int) -> set[str]:
    """Local addresses with a socket listening on ``port``, from /proc/net/tcp and tcp6."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for line in f.readlines()[1:]:
                local, state = line.split()[1], line.split()[3]
                address, hex_port = local.split(":")
                if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                    found.add(socket.inet_ntoa(bytes.fromhex(address)[::-1]) if len(address) == 8 else address)
    return found


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None
