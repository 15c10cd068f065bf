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
from tests.helpers import REPO, posguard



def _wait_until_serving(proc, base: str, seconds: float = 60) -> None:
    """Wait until ``posguard app`` answers on ``base``; fail if it exits or takes longer than ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            urllib.request.urlopen(base + "/login", timeout=2)
            return
        except (urllib.error.URLError, ConnectionError):
            assert proc.poll() is None, proc.stdout.read()
            assert time.monotonic() < deadline, f"posguard app did not answer within {seconds:.0f} s"
            time.sleep(0.5)

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_posguard_app_serves_on_localhost_behind_the_login(app_env):
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "posguard.cli", "app", "--port", str(port)], env=app_env, cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_until_serving(proc, base)
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


def test_sign_in_is_throttled_locked_out_and_unlocked_and_the_cookie_can_be_secure(app_env, app_db):
    """The real server process: 200 wrong passwords were all answered 401 at a steady pace before, and the
    right one worked at once after; the session cookie could not be marked Secure."""
    env = {**app_env, "POSGUARD_LOGIN_FREE_FAILURES": "1", "POSGUARD_LOGIN_DELAY_SECONDS": "2",
           "POSGUARD_LOGIN_LOCKOUT_FAILURES": "3", "POSGUARD_LOGIN_LOCKOUT_MINUTES": "10"}
    added = posguard("users", "add", "thr", "--role", "analyst", "--password-stdin", env=env,
                     input="thr-password-1\n")
    assert added.returncode == 0, added.stderr
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "posguard.cli", "app", "--port", str(port), "--secure-cookie"],
                            env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    opener = urllib.request.build_opener(_NoRedirect())

    def attempt(password: str) -> tuple[int, dict]:
        form = urllib.parse.urlencode({"username": "thr", "password": password}).encode()
        try:
            response = opener.open(base + "/login", data=form, timeout=30)
        except urllib.error.HTTPError as exc:
            return exc.code, dict(exc.headers)
        return response.status, dict(response.headers)

    try:
        _wait_until_serving(proc, base)
        status, headers = attempt("wrong-1")
        assert status == 401 and "Retry-After" not in headers  # the free failure
        status, headers = attempt("wrong-2")
        assert status == 401 and headers["Retry-After"] == "2"  # from now on: wait 2 s, then 4 s, ...
        status, headers = attempt("thr-password-1")  # the right password, too soon: refused unchecked
        assert status == 429 and 1 <= int(headers["Retry-After"]) <= 2
        time.sleep(2.2)
        status, headers = attempt("wrong-3")  # the third failure: locked out for 10 minutes
        assert status == 401 and int(headers["Retry-After"]) == 600
        time.sleep(4.5)
        status, headers = attempt("thr-password-1")
        assert status == 429 and 590 <= int(headers["Retry-After"]) <= 600
        unlocked = posguard("users", "unlock", "thr", env=env)
        assert unlocked.returncode == 0, unlocked.stderr
        status, headers = attempt("thr-password-1")
        assert status == 302 and "posguard_session=" in headers["Set-Cookie"]
        assert "Secure" in headers["Set-Cookie"] and "HttpOnly" in headers["Set-Cookie"]
        actions = [r["action"] for r in app_db.read("MATCH (e:AuthEvent {user: 'thr'}) RETURN e.action AS action "
                                                    "ORDER BY e.at")]
        assert actions == ["login_failed", "login_failed", "locked_out_user", "login_failed", "unlocked", "login"]
        assert all(r["address"] == "127.0.0.1" for r in app_db.read(
            "MATCH (e:AuthEvent {user: 'thr'}) WHERE e.action <> 'unlocked' RETURN e.address AS address"))
    finally:
        proc.terminate()
        proc.wait(15)
        app_db.run("MATCH (t:LoginThrottle {key: 'addr:127.0.0.1'}) DELETE t")  # the other tests sign in from here
