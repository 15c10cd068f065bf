"""Load one staged ETL run into Neo4j: batched, parameterised, idempotent MERGEs in dependency order."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import pyarrow as pa
import pyarrow.dataset as ds

from graph.catalog import STAGED_SCHEMAS, staged_run_dir
from graph.db import DatabaseError

__all__ = ["distinct_table", "load_run", "LoadStats", "CYPHER", "LOAD_ORDER", "LOAD_COLUMNS", "staged_batches",
           "epoch_millis", "write_rows", "record_run",
           "distinct_rows", "DISTINCT_COLUMNS"]

# One query per step, always `UNWIND $rows AS row`; MERGE on constrained keys so a re-run is a no-op.
CYPHER = {
    "merchants": """
UNWIND $rows AS row
MERGE (m:Merchant {merchant_id: row.merchant_id})
SET m.name = row.name, m.mcc = row.mcc, m.address = row.address, m.city = row.city,
    m.lat = row.lat, m.lon = row.lon, m.onboarded_at = CASE WHEN row.onboarded_at IS NULL THEN null ELSE datetime({epochMillis: row.onboarded_at}) END, m.run_id = row.run_id
WITH m, row
CALL (m, row) {
  WITH m, row WHERE row.owner_token IS NOT NULL
  MERGE (o:Owner {token: row.owner_token}) MERGE (m)-[:OWNED_BY]->(o)
}
CALL (m, row) {
  WITH m, row WHERE row.phone_token IS NOT NULL
  MERGE (p:Phone {token: row.phone_token}) MERGE (m)-[:HAS_PHONE]->(p)
}
CALL (m, row) {
  WITH m, row WHERE row.bank_account_token IS NOT NULL
  MERGE (b:BankAccount {token: row.bank_account_token}) MERGE (m)-[:PAYS_INTO]->(b)
}
CALL (m, row) {
  WITH m, row WHERE row.agent_id IS NOT NULL
  MERGE (a:Agent {agent_id: row.agent_id}) MERGE (m)-[:SIGNED_BY]->(a)
}
""",
    "terminals": """
UNWIND $rows AS row
MERGE (t:Terminal {terminal_id: row.terminal_id})
SET t.serial_no = row.serial_no, t.model = row.model, t.firmware_hash = row.firmware_hash,
    t.lat = row.lat, t.lon = row.lon, t.installed_at = CASE WHEN row.installed_at IS NULL THEN null ELSE datetime({epochMillis: row.installed_at}) END, t.merchant_id = row.merchant_id,
    t.run_id = row.run_id
MERGE (m:Merchant {merchant_id: row.merchant_id})
MERGE (t)-[at:INSTALLED_AT]->(m)
SET at.current = true
WITH t, row
CALL (t, row) {
  // No label on `other`: with one, a planner working from fresh-database statistics starts from a scan of
  // every Merchant for each row (18.7k terminals took 363 s on a 1M drop); without it, it expands from t.
  MATCH (t)-[old:INSTALLED_AT]->(other) WHERE other.merchant_id <> row.merchant_id
  SET old.current = false
}
CALL (t, row) {
  WITH t, row WHERE row.firmware_hash IS NOT NULL
  MERGE (f:Firmware {hash: row.firmware_hash})
  MERGE (t)-[:RUNS]->(f)
}
""",
    "approved_firmware": """
UNWIND $rows AS row
MERGE (f:Firmware {hash: row.firmware_hash})
SET f.approved = true, f.model = row.model, f.approved_at = CASE WHEN row.approved_at IS NULL THEN null ELSE datetime({epochMillis: row.approved_at}) END
""",
    "cards": """
UNWIND $rows AS row
MERGE (c:Card {token: row.card_token})
  ON CREATE SET c.pan_last4 = row.pan_last4
""",
    "transaction_terminals": """
UNWIND $rows AS row
MERGE (t:Terminal {terminal_id: row.terminal_id})
""",
    # Idempotent without MERGE's eager locking (7k/s): skip ids already present, CREATE the rest. The check
    # and the CREATE run in one transaction and txn_id is uniquely constrained, so a driver retry of a
    # batch that did commit creates nothing, and a duplicate can never be created silently.
    # load_run first tries each batch without the check (twice as fast: staging holds only ids new to
    # every earlier run) and falls back to this query for a batch that the constraint refuses.
    "transactions": """
UNWIND $rows AS row
WITH row WHERE NOT EXISTS { ()-[:TXN {txn_id: row.txn_id}]->() }
MATCH (c:Card {token: row.card_token})
MATCH (t:Terminal {terminal_id: row.terminal_id})
CREATE (c)-[r:TXN {txn_id: row.txn_id}]->(t)
SET r.ts = datetime({epochMillis: row.ts}), r.amount = row.amount, r.currency = row.currency,
    r.txn_type = row.txn_type, r.entry_mode = row.entry_mode, r.response_code = row.response_code,
    r.atc = row.atc, r.stan = row.stan, r.mcc = row.mcc, r.lat = row.lat, r.lon = row.lon,
    r.merchant_id = row.merchant_id, r.run_id = row.run_id
""",

}
CYPHER["transactions_new"] = CYPHER["transactions"].replace(
    "WITH row WHERE NOT EXISTS { ()-[:TXN {txn_id: row.txn_id}]->() }\n", "")
CYPHER |= {
    "fraud_reports": """
UNWIND $rows AS row
MERGE (c:Card {token: row.card_token})
  ON CREATE SET c.pan_last4 = row.pan_last4
SET c.reported_at = datetime({epochMillis: row.reported_at}), c.first_fraud_at = CASE WHEN row.first_fraud_at IS NULL THEN null ELSE datetime({epochMillis: row.first_fraud_at}) END, c.fraud_type = row.fraud_type,
    c:Reported
""",
    "terminal_events": """
UNWIND $rows AS row
MERGE (t:Terminal {terminal_id: row.terminal_id})
MERGE (f:Firmware {hash: row.firmware_hash})
MERGE (t)-[u:UPDATED_TO {ts: datetime({epochMillis: row.ts})}]->(f)
""",
    "run": """
MERGE (r:Run {run_id: $run_id})
SET r.loaded_at = datetime(), r += $counts
""",
}

# Reference data first, so that transactions find their terminals and merchants.
# "cards" and "transaction_terminals" are the distinct end nodes of the run's transactions, created before
# the relationships so that the relationship query only MATCHes them (no eager MERGE of its end nodes).
LOAD_ORDER = ("merchants", "approved_firmware", "terminals", "cards", "transaction_terminals", "transactions",
              "fraud_reports", "terminal_events")
# The end nodes of a run's transactions: a key and the columns kept of it (their greatest value).
DISTINCT_COLUMNS = {"cards": ["card_token", "pan_last4"], "transaction_terminals": ["terminal_id"]}

LOAD_COLUMNS = {
    "merchants": ["merchant_id", "name", "mcc", "address", "city", "lat", "lon", "onboarded_at", "owner_token",
                  "phone_token", "bank_account_token", "agent_id", "run_id"],
    "terminals": ["terminal_id", "merchant_id", "serial_no", "model", "firmware_hash", "lat", "lon",
                  "installed_at", "run_id"],
    "approved_firmware": ["firmware_hash", "model", "approved_at"],
    "transactions": [c for c in STAGED_SCHEMAS["transactions"].names if c != "row_hash"],
    "fraud_reports": ["card_token", "pan_last4", "reported_at", "first_fraud_at", "fraud_type"],
    "terminal_events": ["terminal_id", "ts", "firmware_hash"],
}


@dataclass
class LoadStats:
    """Rows written per kind and seconds per kind for one run."""

    rows: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def relationships_per_second(self) -> float:
        secs = self.seconds.get("transactions", 0.0)
        return self.rows.get("transactions", 0) / secs if secs else 0.0


def staged_batches(home: Path, kind: str, run_id: str, batch_size: int) -> Iterator[list[dict]]:
    """Yield row dicts of one staged kind of one run, ``batch_size`` at a time."""
    if kind in DISTINCT_COLUMNS:
        yield from _distinct_batches(home, kind, run_id, batch_size)
        return
    path = staged_run_dir(home, kind, run_id)
    if not path.exists():
        return
    dataset = ds.dataset(path, format="parquet")
    wanted = [c for c in LOAD_COLUMNS[kind] if c in dataset.schema.names]
    scanner = dataset.scanner(columns=wanted, batch_size=batch_size)
    if kind == "terminal_events":  # only firmware changes become graph edges; heartbeats stay in staging
        scanner = dataset.scanner(columns=wanted, batch_size=batch_size,
                                  filter=(ds.field("event") == "firmware_update")
                                  & ds.field("firmware_hash").is_valid())
    for record_batch in scanner.to_batches():
        if record_batch.num_rows:
            rows = epoch_millis(pa.Table.from_batches([record_batch])).to_pylist()
            for missing in set(LOAD_COLUMNS[kind]) - set(wanted):
                for row in rows:
                    row[missing] = None
            yield rows


def epoch_millis(table: pa.Table) -> pa.Table:
    """Timestamps as int64 epoch milliseconds: the driver packs ints ~50x faster than datetimes, and the
    Cypher turns them back into DateTime with ``datetime({epochMillis: ...})``."""
    for i, f in enumerate(table.schema):
        if pa.types.is_timestamp(f.type):
            millis = table.column(i).cast(pa.timestamp("ms", tz="UTC")).cast(pa.int64())
            table = table.set_column(i, f.name, millis)
    return table


def distinct_rows(table: pa.Table, kind: str) -> pa.Table:
    """The distinct end nodes (``cards`` or ``transaction_terminals``) of transactions, sorted by key: one row
    per key, with the greatest value of each other column (``DISTINCT_COLUMNS``)."""
    columns = DISTINCT_COLUMNS[kind]
    key = columns[0]
    distinct = table.select(columns).group_by(key).aggregate([(c, "max") for c in columns[1:]])
    distinct = distinct.rename_columns([c if c == key else c.removesuffix("_max") for c in distinct.column_names])
    return distinct.select(columns).sort_by(key)


def distinct_table(home: Path, kind: str, run_id: str) -> pa.Table:
    """:func:`distinct_rows` of a staged run's transactions."""
    columns = DISTINCT_COLUMNS[kind]
    return distinct_rows(ds.dataset(staged_run_dir(home, "transactions", run_id), format="parquet").to_table(
        columns=columns), kind)


def _distinct_batches(home: Path, kind: str, run_id: str, batch_size: int) -> Iterator[list[dict]]:
    if not staged_run_dir(home, "transactions", run_id).exists():
        return
    rows = distinct_table(home, kind, run_id).to_pylist()
    for start in range(0, len(rows), batch_size):
        yield rows[start:start + batch_size]


def _write_transactions(db, rows: list[dict], batch_size: int, on_batch) -> int:
    """CREATE a batch of TXN relationships; if the txn_id constraint refuses one (a repeated or resumed
    load), write that batch again with the query that skips ids already present."""
    try:
        return db.write_batches(CYPHER["transactions_new"], rows, batch_size=batch_size, on_batch=on_batch)
    except DatabaseError as exc:
        if "ConstraintValidationFailed" not in str(exc):
            raise
        return db.write_batches(CYPHER["transactions"], rows, batch_size=batch_size, on_batch=on_batch)


def write_rows(db, kind: str, rows: list[dict], batch_size: int, on_batch=None) -> int:
    """Write rows of one load step (a key of ``CYPHER``) through ``db``; returns the rows written.

    Transactions are CREATEd, and written again with the query that skips ids already present when the
    txn_id constraint refuses a batch (a repeated or resumed load); every other step MERGEs.
    """
    if kind == "transactions":
        return _write_transactions(db, rows, batch_size, on_batch)
    return db.write_batches(CYPHER[kind], rows, batch_size=batch_size, on_batch=on_batch)


def record_run(db, run_id: str, stats: LoadStats) -> None:
    """The run's node with the rows written per step (the last write of a load)."""
    db.run(CYPHER["run"], run_id=run_id, counts={f"rows_{k}": v for k, v in stats.rows.items()})


def load_run(db, home: Path, run_id: str, *, batch_size: int = 10_000,
             progress: Callable[[str, int], None] | None = None, skip: tuple[str, ...] = ()) -> LoadStats:
    """Write every staged kind of ``run_id`` into Neo4j through ``db`` (a :class:`graph.db.Database`).

    Safe to repeat: every write MERGEs on a constrained key and sets the same values, so loading a run
    twice, or again after a crash in the middle, leaves the same graph as one uninterrupted load.

    Parameters
    ----------
    db : graph.db.Database
        Open database; its schema is created first.
    home : Path
        POSGUARD_HOME holding ``staging/<kind>/run=<run_id>/``.
    run_id : str
        The staged run to load.
    batch_size : int
        Rows per transaction.
    progress : callable, optional
        Called as ``progress(kind, rows_in_batch)`` after each batch.
    skip : tuple of str
        Steps of ``LOAD_ORDER`` not to run (the bulk path imported them).

    Returns
    -------
    LoadStats

    Example
    -------
    >>> stats = load_run(db, settings.home, "20260301T000000Z-0a1b2c3d")   # doctest: +SKIP
    >>> stats.rows["transactions"]                                          # doctest: +SKIP
    20000
    """
    db.ensure_schema()
    stats = LoadStats()
    for kind in (k for k in LOAD_ORDER if k not in skip):
        started = time.perf_counter()
        written = 0
        on_batch = (lambda n, k=kind: progress(k, n)) if progress else None
        for rows in staged_batches(home, kind, run_id, batch_size):
            written += write_rows(db, kind, rows, batch_size, on_batch)
        stats.rows[kind] = written
        stats.seconds[kind] = time.perf_counter() - started
    record_run(db, run_id, stats)
    return stats
