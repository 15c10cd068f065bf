"""Users and sessions: argon2 hashes, roles, disable/reset, expiry; the `posguard users` command."""

from __future__ import annotations

import time

import pytest

from app import users
from tests.helpers import posguard, server_env


def test_add_authenticate_and_hash_never_clear(db):
    users.add_user(db, "carol", "investigator", "carol-password-1")
    stored = db.read("MATCH (u:User {name: 'carol'}) RETURN u.pw_hash AS h")[0]["h"]
    assert stored.startswith("$argon2id$") and "carol-password-1" not in stored
    assert users.authenticate(db, "carol", "carol-password-1") == users.User("carol", "investigator")
    assert users.authenticate(db, "carol", "wrong-password") is None
    assert users.authenticate(db, "nobody", "carol-password-1") is None


@pytest.mark.parametrize("name,role,password,message", [
    ("dave", "boss", "long-enough-1", "role must be one of"),
    ("dave", "analyst", "short", "at least 10"),
    ("da ve", "analyst", "long-enough-1", "user names"),
])
def test_bad_users_are_refused(db, name, role, password, message):
    with pytest.raises(users.UserError, match=message):
        users.add_user(db, name, role, password)


def test_disable_and_reset_end_sessions(db):
    users.add_user(db, "erin", "analyst", "erin-password-1")
    user = users.authenticate(db, "erin", "erin-password-1")
    session = users.open_session(db, user)
    assert users.session_user(db, session) == user
    users.set_disabled(db, "erin", True)
    assert users.session_user(db, session) is None
    assert users.authenticate(db, "erin", "erin-password-1") is None
    users.set_disabled(db, "erin", False)
    session = users.open_session(db, users.authenticate(db, "erin", "erin-password-1"))
    users.reset_password(db, "erin", "erin-password-2")
    assert users.session_user(db, session) is None
    assert users.authenticate(db, "erin", "erin-password-2") is not None
    with pytest.raises(users.UserError, match="exists already"):
        users.add_user(db, "erin", "analyst", "erin-password-3")


def test_sessions_expire_and_logout_ends_them(db):
    users.add_user(db, "fay", "admin", "fay-password-1")
    user = users.User("fay", "admin")
    expired = users.open_session(db, user, hours=-1)
    assert users.session_user(db, expired) is None
    live = users.open_session(db, user)
    assert db.read("MATCH (s:Session) WHERE s.id_hash = $raw RETURN count(s) AS n", raw=live)[0]["n"] == 0
    users.close_session(db, live)
    assert users.session_user(db, live) is None


def test_roles():
    assert users.can("analyst", "read") and not users.can("analyst", "decide")
    assert users.can("investigator", "decide") and not users.can("investigator", "admin")
    assert users.can("admin", "admin")


def test_users_command(neo4j_settings, db):
    env = server_env(neo4j_settings.home)
    added = posguard("users", "add", "gus", "--role", "investigator", "--password-stdin", env=env,
                     input="gus-password-1\n")
    assert added.returncode == 0, added.stderr
    assert "gus-password-1" not in added.stdout + added.stderr
    listed = posguard("users", "list", env=env)
    assert "gus" in listed.stdout and "investigator" in listed.stdout
    weak = posguard("users", "add", "hal", "--password-stdin", env=env, input="short\n")
    assert weak.returncode == 2 and "at least 10" in weak.stderr
    assert posguard("users", "disable", "gus", env=env).returncode == 0
    assert "disabled" in posguard("users", "list", env=env).stdout


# ------------------------------------------------------------------ issue 14: sign-in throttling and lockout
FAST = users.LoginPolicy(free_failures=1, delay_seconds=1.5, lockout_failures=4, address_free_failures=100,
                         address_lockout_failures=200, lockout_minutes=15)


def _until(db, key):
    return db.read("MATCH (t:LoginThrottle {key: $key}) RETURN t.until - t.last AS wait", key=key)[0]["wait"]


def test_wrong_passwords_get_growing_delays_then_a_lockout_that_an_admin_ends(db):
    """200 wrong passwords in a row were all answered 401 at a steady pace, and the right one then worked."""
    users.add_user(db, "ida", "investigator", "ida-password-1")
    first = users.login(db, "ida", "guess-1", "10.0.0.1", FAST)
    assert first.user is None and not first.throttled and first.retry_after == 0  # the free failure
    second = users.login(db, "ida", "guess-2", "10.0.0.1", FAST)
    assert second.user is None and second.retry_after == 2  # 1.5 s, rounded up
    held = users.login(db, "ida", "ida-password-1", "10.0.0.1", FAST)  # the right one, too soon: not checked
    assert held.user is None and held.throttled and held.retry_after >= 1
    waits = [_until(db, "user:ida")]
    for guess in ("guess-3", "guess-4"):
        time.sleep(waits[-1] + 0.05)
        users.login(db, "ida", guess, "10.0.0.1", FAST)
        waits.append(_until(db, "user:ida"))
    assert waits[0] == pytest.approx(1.5) and waits[1] == pytest.approx(3.0)  # doubled
    assert waits[2] == pytest.approx(15 * 60)  # the 4th failure locks the user out for 15 minutes
    locked = users.login(db, "ida", "ida-password-1", "10.0.0.2", FAST)  # from anywhere
    assert locked.throttled and 14 * 60 < locked.retry_after <= 15 * 60
    assert users.list_users(db)[0]["locked_until"] is not None
    assert users.unlock(db, "ida", by="adm") is True
    assert users.login(db, "ida", "ida-password-1", "10.0.0.2", FAST).user == users.User("ida", "investigator")
    actions = [e["action"] for e in users.auth_events(db, "ida")]
    assert actions == ["login_failed"] * 3 + ["locked_out_user", "login_failed", "unlocked", "login"]
    assert "ida-password-1" not in str(users.auth_events(db, "ida"))


def test_a_right_password_resets_the_users_count(db):
    users.add_user(db, "jon", "analyst", "jon-password-1")
    assert users.login(db, "jon", "nope", "10.0.0.3", FAST).retry_after == 0
    assert users.login(db, "jon", "jon-password-1", "10.0.0.3", FAST).user is not None
    assert users.login(db, "jon", "nope", "10.0.0.3", FAST).retry_after == 0  # a free failure again


def test_one_address_guessing_many_user_names_is_throttled_and_locked_out(db):
    users.add_user(db, "kim", "analyst", "kim-password-1")
    policy = users.LoginPolicy(free_failures=100, delay_seconds=1, lockout_failures=100, address_free_failures=2,
                               address_lockout_failures=3, lockout_minutes=5)
    outcomes = [users.login(db, f"user{i}", "password-1", "10.9.9.9", policy) for i in range(2)]
    assert [o.retry_after for o in outcomes] == [0, 0]
    third = users.login(db, "nobody-else", "password-1", "10.9.9.9", policy)
    assert third.retry_after == 300  # the address's third failure: locked out
    assert users.login(db, "kim", "kim-password-1", "10.9.9.9", policy).throttled  # even with the right one
    assert users.login(db, "kim", "kim-password-1", "10.1.1.1", policy).user is not None  # elsewhere: fine
    assert users.unlock(db, address="10.9.9.9") is True
    assert users.login(db, "kim", "kim-password-1", "10.9.9.9", policy).user is not None


def test_unknown_user_names_are_throttled_like_known_ones(db):
    for _ in range(2):
        users.login(db, "ghost", "whatever-1", "10.0.0.4", FAST)
    assert users.login(db, "ghost", "whatever-1", "10.0.0.4", FAST).throttled


def test_users_unlock_command(neo4j_settings, db):
    env = server_env(neo4j_settings.home)
    users.add_user(db, "lea", "analyst", "lea-password-1")
    db.run("MERGE (t:LoginThrottle {key: 'user:lea'}) SET t.failures = 4, t.last = timestamp() / 1000.0, "
           "t.until = timestamp() / 1000.0 + 900")
    assert users.login(db, "lea", "lea-password-1", "10.0.0.5", FAST).throttled
    assert "locked until" in posguard("users", "list", env=env).stdout
    done = posguard("users", "unlock", "lea", env=env)
    assert done.returncode == 0 and "unlock done" in done.stdout, done.stderr
    assert users.login(db, "lea", "lea-password-1", "10.0.0.5", FAST).user is not None
    assert users.auth_events(db, "lea")[0]["action"] == "unlocked"
    unknown = posguard("users", "unlock", "nobody", env=env)
    assert unknown.returncode == 2 and "no user 'nobody'" in unknown.stderr
