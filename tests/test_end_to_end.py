"""`posguard run` end to end against the real Neo4j: outputs per contract, idempotent re-run, no secret leaks."""

from __future__ import annotations

import pandas as pd
import pyarrow.parquet as pq

from graph.catalog import OUTPUT_SCHEMAS
from graph.server import LocalServer
from tests.helpers import posguard, server_env


def _env(neo4j_settings, home):
    server = LocalServer(neo4j_settings)
    return server_env(home, NEO4J_URI=server.status().bolt_uri, NEO4J_USER="neo4j",
                      NEO4J_PASSWORD=server.password())


def _graph_counts(db) -> dict:
    return db.run("CALL () { MATCH (n) WHERE NOT n:ScoreRun RETURN count(n) AS nodes } "
                  "CALL () { MATCH ()-[r]->() RETURN count(r) AS rels } "
                  "CALL () { MATCH ()-[r:TXN]->() RETURN count(r) AS txns } "
                  "CALL () { MATCH (a:Alert) RETURN collect(a.alert_id) AS alerts } "
                  "RETURN nodes, rels, txns, alerts")[0]


def test_run_end_to_end_outputs_idempotence_and_no_leaks(db, neo4j_settings, tmp_path):
    drop, out, home = tmp_path / "drop", tmp_path / "out", tmp_path / "home"
    env = _env(neo4j_settings, home)
    assert posguard("generate", "--out", str(drop), "--seed", "2", env=env).returncode == 0
    first = posguard("run", str(drop), "--out", str(out), env=env)
    assert first.returncode == 0, first.stderr

    for name, schema in OUTPUT_SCHEMAS.items():
        table = pq.read_table(out / f"{name}.parquet")
        assert table.schema.names[:len(schema)] == schema.names, name
        for field in schema:
            assert table.schema.field(field.name).type == field.type, (name, field.name)
    alerts = pd.read_parquet(out / "alerts.parquet")
    transactions = sum(1 for p in drop.glob("transactions*.csv") for _ in open(p)) - len(
        list(drop.glob("transactions*.csv")))
    counts = _graph_counts(db)
    assert counts["txns"] == transactions
    assert sorted(counts["alerts"]) == sorted(alerts["alert_id"])
    assert set(alerts["severity"]) <= {"low", "medium", "high", "critical"}
    assert db.run("MATCH (a:Alert) WHERE NOT (a)-[:ABOUT]->() RETURN count(a) AS n") == [{"n": 0}]

    second = posguard("run", str(drop), "--out", str(out), env=env)
    assert second.returncode == 0, second.stderr
    assert "skipped" in second.stderr
    assert _graph_counts(db) == counts

    # no raw secret anywhere: staging, manifests, rejects, outputs, console, every Neo4j property
    raw = pd.concat([pd.read_csv(p, dtype=str) for p in drop.glob("transactions*.csv")])["pan"].unique().tolist()
    merchants = pd.read_csv(drop / "merchants.csv", dtype=str)
    for col in ("owner_id", "phone", "bank_account"):
        raw += merchants[col].dropna().unique().tolist()
    raw += pd.read_csv(drop / "fraud_reports.csv", dtype=str)["pan"].unique().tolist()
    secrets = {s for s in raw if len(s) >= 6}
    assert len(secrets) > 1000
    texts = [first.stdout + first.stderr + second.stdout + second.stderr]
    for path in list(home.rglob("*")) + list(out.rglob("*")):
        if path.is_file() and path.suffix == ".parquet":  # compressed: read the values, not the bytes
            texts.append(pd.read_parquet(path).to_csv())
        elif path.is_file():
            texts.append(path.read_bytes().decode("latin-1"))
    dump = db.run("MATCH (n) RETURN properties(n) AS p UNION ALL MATCH ()-[r]->() RETURN properties(r) AS p")
    texts.append(" ".join(str(v) for row in dump for v in row["p"].values()))
    blob = "\n".join(texts)
    leaked = [s for s in secrets if s in blob]
    assert not leaked, f"{len(leaked)} raw secrets leaked, e.g. {leaked[0][:4]}..."


def test_a_clean_drop_scores_with_typed_outputs_and_no_confident_alert(db, neo4j_settings, tmp_path):
    """Nothing planted, the adversarial generator's noise: exit 0, every output written with the contract's
    schema (an empty cloned-card output once crashed the writer and left a half-filled folder), nothing high
    or critical in the queue and none of it in Neo4j either."""
    drop, out, home = tmp_path / "drop", tmp_path / "out", tmp_path / "home"
    env = _env(neo4j_settings, home)
    made = posguard("generate", "--generator", "adversarial", "--clean", "--txns", "40000", "--seed", "5",
                    "--out", str(drop), env=env)
    assert made.returncode == 0, made.stderr
    result = posguard("run", str(drop), "--out", str(out), env=env)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{name}.parquet" for name in OUTPUT_SCHEMAS)
    for name, schema in OUTPUT_SCHEMAS.items():
        table = pq.read_table(out / f"{name}.parquet")
        for field in schema:
            assert table.schema.field(field.name).type == field.type, (name, field.name)
    alerts = pd.read_parquet(out / "alerts.parquet")
    assert not alerts["severity"].isin(["high", "critical"]).any(), alerts[["kind", "summary"]].to_string()
    assert db.run("MATCH (a:Alert) WHERE a.severity IN ['high', 'critical'] RETURN count(a) AS n") == [{"n": 0}]
    assert len(pd.read_parquet(out / "rings.parquet")) == 0
