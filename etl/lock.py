"""An exclusive lock under POSGUARD_HOME so that two ETL runs (e.g. two cron firings) never load at once."""

from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

__all__ = ["etl_lock", "LockedError"]


class LockedError(RuntimeError):
    """Another posguard ETL holds the lock."""


@contextmanager
def etl_lock(home: Path) -> Iterator[Path]:
    """Hold ``POSGUARD_HOME/etl.lock`` (flock, non-blocking) for the duration of the block.

    Raises
    ------
    LockedError
        When another process holds it; the message names that process's pid.
    """
    path = Path(home) / "etl.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise LockedError(f"another posguard etl is running (pid {holder}; lock {path})") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield path
    finally:
        os.close(fd)  # closing releases the lock
