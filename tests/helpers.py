"""Helpers shared by tests: an isolated server environment and the `posguard` command in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

__all__ = ["REPO", "TEST_KEY", "server_env", "posguard"]

REPO = Path(__file__).resolve().parents[1]
TEST_KEY = "posguard-test-key-not-a-secret"


def server_env(home: Path, **extra: str) -> dict[str, str]:
    """An environment for a local server in ``home`` on free ports, small memory, no external URI."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NEO4J_", "POSGUARD_"))}
    env.update(POSGUARD_HOME=str(home), POSGUARD_NEO4J_BOLT_PORT="auto", POSGUARD_NEO4J_HTTP_PORT="auto",
               POSGUARD_NEO4J_HEAP="512m", POSGUARD_NEO4J_PAGECACHE="256m", POSGUARD_TOKEN_KEY=TEST_KEY)
    env.update(extra)
    return env


def posguard(*args: str, env: dict[str, str], input: str | None = None, timeout: float = 600,
             cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run the `posguard` command line in a subprocess, as a user would."""
    return subprocess.run([sys.executable, "-m", "posguard.cli", *args], env=env, capture_output=True, text=True,
                          input=input, timeout=timeout, cwd=cwd or REPO)
