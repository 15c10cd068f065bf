"""Bulk path for an empty local database: cards, terminals and TXN relationships through neo4j-admin import."""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.dataset as ds

from etl.load import CYPHER, LoadStats, distinct_table, load_run
from graph.catalog import staged_run_dir
from graph.server import connect
from graph.server.local import LocalServer, ServerError

__all__ = ["bulk_load_run", "BulkLoadError", "BulkUnavailable", "TXN_HEADER"]

log = logging.getLogger("posguard.bulk")

# staged column -> neo4j-admin import header of the TXN relationship file (same properties as the Bolt load)
TXN_HEADER = {"card_token": ":START_ID(Card)", "terminal_id": ":END_ID(Terminal)", "txn_id": "txn_id",
              "ts": "ts:datetime", "amount": "amount:double", "currency": "currency", "txn_type": "txn_type",
              "entry_mode": "entry_mode", "response_code": "response_code", "atc": "atc:long", "stan": "stan:long",
              "mcc": "mcc", "lat": "lat:double", "lon": "lon:double", "merchant_id": "merchant_id",
              "run_id": "run_id"}
_BOLT_AFTER_IMPORT = ("cards", "transaction_terminals", "transactions")


class BulkLoadError(RuntimeError):
    """neo4j-admin import failed."""


class BulkUnavailable(BulkLoadError):
    """The bulk path does not apply here (external server, database not empty): load over Bolt instead."""


def _write_csv(table: pa.Table, header: list[str], path: Path) -> None:
    """CSV for neo4j-admin: our own header line (typed names), nulls as empty unquoted fields."""
    for i, field in enumerate(table.schema):
        if pa.types.is_timestamp(field.type):
            millis = table.column(i).cast(pa.timestamp("ms", tz="UTC"), safe=False)
            table = table.set_column(i, field.name, pc.strftime(millis, format="%Y-%m-%dT%H:%M:%SZ"))
    with open(path, "wb") as out:
        out.write((",".join(header) + "\n").encode("utf-8"))
        pacsv.write_csv(table, out, pacsv.WriteOptions(include_header=False, quoting_style="needed"))


def _export(home: Path, run_id: str, target: Path) -> tuple[dict[str, Path], dict[str, int]]:
    """Write the run's cards, terminals and transactions as import files under ``target``."""
    target.mkdir(parents=True, exist_ok=True)
    cards = distinct_table(home, "cards", run_id)
    terminals = distinct_table(home, "transaction_terminals", run_id)
    files = {"cards": target / "cards.csv", "terminals": target / "terminals.csv", "txns": target / "txns.csv"}
    _write_csv(cards, ["token:ID(Card)", "pan_last4"], files["cards"])
    _write_csv(terminals, ["terminal_id:ID(Terminal)"], files["terminals"])
    dataset = ds.dataset(staged_run_dir(home, "transactions", run_id), format="parquet")
    txns = dataset.to_table(columns=list(TXN_HEADER))
    _write_csv(txns, list(TXN_HEADER.values()), files["txns"])
    return files, {"cards": cards.num_rows, "transaction_terminals": terminals.num_rows,
                   "transactions": txns.num_rows}


def bulk_load_run(settings, run_id: str) -> LoadStats:
    """Load one staged run into the empty local database: neo4j-admin import, then Bolt for the rest.

    The heavy part (Card and Terminal nodes, TXN relationships) goes through ``neo4j-admin database import
    full`` with the server stopped; then the server restarts, the schema is created, and every other kind
    (merchants, terminal details, firmware, fraud reports, events) is loaded over Bolt exactly as
    ``etl.load.load_run`` does, so the graph equals that of a Bolt-only load.

    Parameters
    ----------
    settings : graph.settings.Settings
        Must name the local server (not ``NEO4J_URI``).
    run_id : str
        A staged run.

    Returns
    -------
    LoadStats
        ``rows``/``seconds`` per kind; ``transactions`` holds the import's figures.

    Raises
    ------
    BulkUnavailable
        For an external server or a database that already holds nodes (nothing was changed).
    BulkLoadError
        When neo4j-admin import fails.
    """
    if settings.external:
        raise BulkUnavailable("the bulk path needs the local server: neo4j-admin import cannot reach NEO4J_URI")
    server = LocalServer(settings)
    with connect(settings) as db:
        if db.read("MATCH (n) RETURN count(n) > 0 AS any")[0]["any"]:
            raise BulkUnavailable("the bulk path only loads an empty database; this one holds nodes")
    target = server.import_dir / f"bulk-{run_id}"
    stats = LoadStats()
    started = time.perf_counter()
    try:
        files, rows = _export(Path(settings.home), run_id, target)
        exported = time.perf_counter()
        server.stop()
        try:
            server.admin("database", "import", "full", settings.neo4j_database, "--overwrite-destination=true",
                         f"--nodes=Card={files['cards']}", f"--nodes=Terminal={files['terminals']}",
                         f"--relationships=TXN={files['txns']}", "--threads=2")
        except ServerError as exc:
            raise BulkLoadError(str(exc)) from None
        finally:
            server.start()
    finally:
        shutil.rmtree(target, ignore_errors=True)
    stats.rows.update(rows)
    stats.seconds["transactions"] = time.perf_counter() - started
    log.info("neo4j-admin import: %s TXN relationships in %.1fs (export %.1fs)", f"{rows['transactions']:,}",
             stats.seconds["transactions"], exported - started)
    with connect(settings) as db:
        # fresh statistics, or the planner takes the imported graph for empty and the MERGEs below crawl
        db.ensure_schema()
        db.run("CALL db.awaitIndexes(600)")
        db.run("CALL db.resampleOutdatedIndexes()")
        db.run("CALL db.prepareForReplanning()")
        rest = load_run(db, Path(settings.home), run_id, skip=_BOLT_AFTER_IMPORT, batch_size=2_000)
        stats.rows.update(rest.rows)
        stats.seconds.update(rest.seconds)
        db.run(CYPHER["run"], run_id=run_id, counts={f"rows_{k}": v for k, v in stats.rows.items()})
    return stats
