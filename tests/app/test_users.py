"""Users and sessions: argon2 hashes, roles, disable/reset, expiry; the `posguard users` command."""

from __future__ import annotations

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
