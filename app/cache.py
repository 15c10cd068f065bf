"""Short-lived results of the explorer's expensive reads, keyed by what they depend on in the database.

A result is kept under ``(name, arguments, version)`` where the version is read from Neo4j's count store and
the newest scoring run (a few milliseconds): any load (transactions, fraud reports), scoring run or case
event (decision, comment, assignment, card decision) makes a new version, so a cached page never shows data
older than the database's. ``ttl_s`` bounds how long anything is kept at all. Concurrent requests for the
same missing result wait for one computation instead of each running it (20 sessions opening the portfolio
at once run its query once).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict

__all__ = ["ResultCache", "data_version", "without_case_work", "CYPHER"]

CYPHER = {
    # every count here is answered from Neo4j's count store (no scan)
    "data": "CALL () { MATCH ()-[r:TXN]->() RETURN count(r) AS txns } "
            "CALL () { MATCH (c:Reported) RETURN count(c) AS reported } "
            "CALL () { MATCH ()-[e:EXPOSED_AT]->() RETURN count(e) AS exposed } "
            "CALL () { MATCH (a:Alert) RETURN count(a) AS alerts } "
            "CALL () { MATCH (e:CaseEvent) RETURN count(e) AS events } "
            "CALL () { MATCH (x:Card) RETURN count(x) AS cards } "
            "CALL () { MATCH (x:Terminal) RETURN count(x) AS terminals } "
            "CALL () { MATCH (x:Merchant) RETURN count(x) AS merchants } "
            "CALL () { OPTIONAL MATCH (r:ScoreRun) RETURN r.run_id AS run ORDER BY r.created_at DESC LIMIT 1 } "
            "RETURN [txns, reported, exposed, alerts, events, cards, terminals, merchants, run] AS version",
}


def data_version(db) -> tuple:
    """What the pages depend on: how many transactions, reported cards, exposures, alerts, case events, cards,
    terminals and merchants there are, and the newest scoring run. Every decision, comment or assignment
    writes a case event; every load adds transactions or reports; every scoring run is a new run."""
    return tuple(db.read(CYPHER["data"])[0]["version"])


def without_case_work(version: tuple) -> tuple:
    """The part of a ``data_version`` that case work (decisions, comments, assignments: case events) leaves
    unchanged: the version of results that only read the data and the detectors' output (the portfolio), so
    that a decision does not make them be computed again."""
    return version[:4] + version[5:]


class _Pending:
    def __init__(self):
        self.done = threading.Event()
        self.value = None
        self.error: BaseException | None = None


class ResultCache:
    """A thread-safe LRU of results with a time to live, computing each missing key once.

    Parameters
    ----------
    max_items : int
        Results kept at most (least recently used dropped first).
    ttl_s : float
        Seconds a result is kept at most.
    """

    def __init__(self, max_items: int = 256, ttl_s: float = 300.0):
        self.max_items = max_items
        self.ttl_s = ttl_s
        self._items: OrderedDict = OrderedDict()
        self._pending: dict = {}
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key, compute):
        """The result under ``key``, computed by ``compute()`` when missing or expired (once for concurrent
        callers; an exception reaches every waiting caller and nothing is kept)."""
        now = time.monotonic()
        with self._lock:
            item = self._items.get(key)
            if item is not None and now - item[0] <= self.ttl_s:
                self._items.move_to_end(key)
                self.hits += 1
                return item[1]
            pending = self._pending.get(key)
            owner = pending is None
            if owner:
                pending = self._pending[key] = _Pending()
                self.misses += 1
        if not owner:
            pending.done.wait()
            if pending.error is not None:
                raise pending.error
            return pending.value
        try:
            pending.value = compute()
        except BaseException as exc:
            pending.error = exc
            raise
        finally:
            with self._lock:
                del self._pending[key]
                if pending.error is None:
                    self._items[key] = (time.monotonic(), pending.value)
                    self._items.move_to_end(key)
                    while len(self._items) > self.max_items:
                        self._items.popitem(last=False)
            pending.done.set()
        return pending.value

    def refresh(self, key) -> bool:
        """Keep the result under ``key`` (even if expired) for another ``ttl_s``; False when there is none."""
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return False
            self._items[key] = (time.monotonic(), item[1])
            self._items.move_to_end(key)
            return True

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
