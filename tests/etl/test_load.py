"""etl.load against the real Neo4j server: round trip, idempotence, reference links, crash and re-run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from etl.load import CYPHER, load_run
from graph.server import LocalServer
from tests.helpers import server_env

RUN = "20260301T000000Z-00000001"
T0 = datetime(2026, 3, 1, 8, 0, tzinfo=timezone.utc)


def write_staged(home: Path, kind: str, run_id: str, rows: list[dict]) -> None:
    """Write rows as one staged Parquet part, the layout of docs/ARCHITECTURE.md."""
    path = home / "staging" / kind / f"run={run_id}"
    path.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist([{**r, "run_id": run_id} for r in rows]), path / "part-0.parquet")


def small_run(home: Path, run_id: str = RUN, n_txns: int = 50, first_txn: int = 0) -> None:
    merchants = [dict(merchant_id=f"M{i}", name=f"Shop {i}", mcc="5411", address=None, city="Shanghai",
                      lat=31.2, lon=121.4, onboarded_at=T0 - timedelta(days=400),
                      owner_token="o" * 32 if i < 2 else f"{i:032x}", phone_token=None,
                      bank_account_token="b" * 32, agent_id="A1") for i in range(3)]
    terminals = [dict(terminal_id=f"T{i}", merchant_id=f"M{i % 3}", serial_no=f"S{i}", model="X1",
                      firmware_hash="f" * 64, lat=31.2, lon=121.4, installed_at=T0 - timedelta(days=300))
                 for i in range(4)]
    txns = [dict(txn_id=f"X{k}", ts=T0 + timedelta(minutes=k), card_token=f"{k % 7:032x}", pan_last4="4242",
                 terminal_id=f"T{k % 4}", merchant_id=f"M{k % 4 % 3}", amount=10.0 + k, currency="CNY",
                 txn_type="purchase", entry_mode="chip", response_code="00", atc=k, stan=k + 1, mcc="5411",
                 lat=31.2, lon=121.4) for k in range(first_txn, first_txn + n_txns)]
    reports = [dict(card_token=f"{1:032x}", pan_last4="4242", reported_at=T0 + timedelta(days=3),
                    first_fraud_at=None, fraud_type="counterfeit")]
    firmware = [dict(firmware_hash="f" * 64, model="X1", approved_at=T0 - timedelta(days=500))]
    events = [dict(terminal_id="T1", ts=T0 + timedelta(days=1), event="firmware_update", firmware_hash="e" * 64,
                   ip="10.0.0.1", lat=None, lon=None),
              dict(terminal_id="T1", ts=T0 + timedelta(days=1), event="heartbeat", firmware_hash=None,
                   ip="10.0.0.1", lat=None, lon=None)]
    for kind, rows in [("merchants", merchants), ("terminals", terminals), ("transactions", txns),
                       ("fraud_reports", reports), ("approved_firmware", firmware), ("terminal_events", events)]:
        write_staged(home, kind, run_id, rows)


COUNTS = """
CALL () { MATCH (n) RETURN count(n) AS nodes }
CALL () { MATCH ()-[r]->() RETURN count(r) AS rels }
CALL () { MATCH (n) UNWIND keys(n) AS k RETURN count(k) AS node_props }
CALL () { MATCH ()-[r]->() UNWIND keys(r) AS k RETURN count(k) AS rel_props }
RETURN nodes, rels, node_props, rel_props
"""


def test_round_trip_and_idempotent_reload(db, tmp_path):
    small_run(tmp_path)
    stats = load_run(db, tmp_path, RUN, batch_size=16)
    assert stats.rows["transactions"] == 50 and stats.rows["terminal_events"] == 1
    assert db.run("MATCH ()-[r:TXN]->() RETURN count(r) AS n") == [{"n": 50}]
    assert db.run("MATCH (c:Card) RETURN count(c) AS n") == [{"n": 7}]
    first = db.run(COUNTS)
    load_run(db, tmp_path, RUN, batch_size=7)
    assert db.run(COUNTS) == first

    # merchants sharing an owner or an account are one hop apart
    shared = db.run("MATCH (a:Merchant {merchant_id: 'M0'})-[:OWNED_BY]->(:Owner)<-[:OWNED_BY]-(b:Merchant) "
                    "RETURN b.merchant_id AS m")
    assert shared == [{"m": "M1"}]
    # which cards used terminal T between t1 and t2, and how
    used = db.run("MATCH (c:Card)-[r:TXN]->(:Terminal {terminal_id: $t}) WHERE $t1 <= r.ts < $t2 "
                  "RETURN c.token AS card, r.entry_mode AS how ORDER BY r.ts",
                  t="T0", t1=T0, t2=T0 + timedelta(minutes=10))
    assert [u["card"][-1] for u in used] == ["0", "4", "1"] and {u["how"] for u in used} == {"chip"}
    reported = db.run("MATCH (c:Card:Reported) RETURN c.fraud_type AS t")
    assert reported == [{"t": "counterfeit"}]
    assert db.run("MATCH (:Terminal {terminal_id: 'T1'})-[:UPDATED_TO]->(f:Firmware) RETURN f.hash AS h") == [
        {"h": "e" * 64}]
    assert db.run("MATCH (f:Firmware {approved: true}) RETURN count(f) AS n") == [{"n": 1}]


def test_incremental_run_adds_only_the_new(db, tmp_path):
    small_run(tmp_path)
    load_run(db, tmp_path, RUN)
    small_run(tmp_path, "20260302T000000Z-00000002", n_txns=30, first_txn=50)
    stats = load_run(db, tmp_path, "20260302T000000Z-00000002")
    assert stats.rows["transactions"] == 30
    assert db.run("MATCH ()-[r:TXN]->() RETURN count(r) AS n") == [{"n": 80}]
    assert db.run("MATCH (c:Card) RETURN count(c) AS n") == [{"n": 7}]
    assert db.run("MATCH (r:Run) RETURN count(r) AS n") == [{"n": 2}]


def test_load_killed_mid_way_then_rerun_equals_uninterrupted(db, tmp_path, neo4j_settings):
    small_run(tmp_path, n_txns=30_000)
    load_run(db, tmp_path, RUN, batch_size=2_000)
    expected = db.run(COUNTS)
    db.run("MATCH (n) DETACH DELETE n")

    server = LocalServer(neo4j_settings)
    env = server_env(neo4j_settings.home, NEO4J_URI=server.status().bolt_uri, NEO4J_USER="neo4j",
                     NEO4J_PASSWORD=server.password())
    script = ("import sys; from pathlib import Path; from graph.settings import Settings; from graph.server import connect;"
              "from etl.load import load_run;"
              f"load_run(connect(Settings.from_env()), Path({str(tmp_path)!r}), {RUN!r}, batch_size=500)")
    child = subprocess.Popen([sys.executable, "-c", script], env=env, cwd=Path(__file__).resolve().parents[2])
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # kill it once part of the transactions are in
        n = db.run("MATCH ()-[r:TXN]->() RETURN count(r) AS n")[0]["n"]
        if n >= 2_000 or child.poll() is not None:
            break
        time.sleep(0.05)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    partial = db.run("MATCH ()-[r:TXN]->() RETURN count(r) AS n")[0]["n"]
    assert 0 < partial < 30_000, "the kill should land in the middle of the load"
    load_run(db, tmp_path, RUN, batch_size=2_000)
    assert db.run(COUNTS) == expected


_SCANS = ("AllNodesScan", "NodeByLabelScan", "NodeIndexScan", "NodeIndexContainsScan", "NodeIndexEndsWithScan",
          "DirectedRelationshipTypeScan", "UndirectedRelationshipTypeScan")


def _operators(plan) -> list[str]:
    return [plan["operatorType"].split("@")[0]] + [op for child in plan.get("children", [])
                                                   for op in _operators(child)]


def test_no_load_query_scans_a_label_per_row(db):
    """Every per-row step of a load seeks by key or expands from a bound node, whatever the statistics.

    On a fresh database (statistics from when the graph was empty) a `(other:Merchant)` pattern made the
    planner scan every merchant for each terminal row: 18.7k terminals took 363 s on a 1M drop.
    """
    db.run("UNWIND range(1, 3000) AS i CREATE (:Merchant {merchant_id: 'M' + i})")
    db.run("UNWIND range(1, 3000) AS i CREATE (:Card {token: 'c' + i})")
    for kind, query in CYPHER.items():
        if "UNWIND $rows" not in query:
            continue
        plan = db._driver.execute_query("EXPLAIN " + query, {"rows": [], "run_id": RUN},
                                        database_=db.database).summary.plan
        scans = [op for op in _operators(plan) if op in _SCANS]
        assert not scans, f"{kind}: {scans}"
