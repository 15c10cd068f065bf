"""Bulk path: neo4j-admin import into an empty local database gives the same graph as the Bolt load."""

from __future__ import annotations

import pytest

from etl.generate import generate
from graph.server import connect
from graph.settings import Settings
from tests.helpers import posguard, server_env

# A fingerprint of the whole graph: per label and per relationship type, counts and property totals, and
# every TXN relationship's properties.
SUMMARY = {
    "labels": "MATCH (n) UNWIND labels(n) AS l RETURN l AS label, count(*) AS n, sum(size(keys(n))) AS props "
              "ORDER BY label",
    "types": "MATCH ()-[r]->() RETURN type(r) AS type, count(*) AS n, sum(size(keys(r))) AS props ORDER BY type",
    "txns": "MATCH (c:Card)-[r:TXN]->(t:Terminal) RETURN c.token AS card, c.pan_last4 AS last4, "
            "t.terminal_id AS terminal, [k IN keys(r) WHERE k <> 'run_id' | [k, r[k]]] AS props "
            "ORDER BY r.txn_id",
    "terminals": "MATCH (t:Terminal) RETURN [k IN keys(t) WHERE k <> 'run_id' | [k, t[k]]] AS props "
                 "ORDER BY t.terminal_id",
}


def _summary(settings):
    with connect(settings, start=False) as db:
        out = {name: db.read(query) for name, query in SUMMARY.items()}
    for row in out["txns"] + out["terminals"]:  # run ids differ between the two homes
        row["props"] = sorted(row["props"])
    return out


@pytest.fixture(scope="module")
def drop(tmp_path_factory):
    out = tmp_path_factory.mktemp("bulk-drop")
    generate(out, seed=3, txns=3_000, scale="small")
    return out


def test_bulk_import_equals_bolt_load_then_later_drops_go_over_bolt(drop, tmp_path, neo4j_settings, db):
    bolt = posguard("etl", str(drop), "--quiet", env=server_env(neo4j_settings.home))
    assert bolt.returncode == 0, bolt.stderr
    bulk_env = server_env(tmp_path / "bulk-home")
    try:
        bulk = posguard("etl", str(drop), "--bulk", env=bulk_env)
        assert bulk.returncode == 0, bulk.stderr
        assert "bulk-loaded run" in bulk.stderr
        bulk_settings = Settings.from_env(bulk_env)
        got, want = _summary(bulk_settings), _summary(neo4j_settings)
        assert len(want["txns"]) > 1_000
        for name in SUMMARY:
            assert got[name] == want[name], name
        # the constraints exist after the import, and a second run changes nothing
        again = posguard("etl", str(drop), "--bulk", env=bulk_env)
        assert again.returncode == 0, again.stderr
        assert _summary(bulk_settings) == got
        # a later drop finds the database holding data: it is loaded over Bolt, nothing lost
        later = tmp_path / "later-drop"
        generate(later, seed=4, txns=2_000, scale="small")
        more = posguard("etl", str(later), "--bulk", env=bulk_env)
        assert more.returncode == 0, more.stderr
        assert "not using the bulk path" in more.stderr and "holds nodes" in more.stderr
        with connect(bulk_settings, start=False) as db2:
            txns = db2.read("MATCH ()-[r:TXN]->() RETURN count(r) AS n")[0]["n"]
        assert txns > len(got["txns"]) + 1_000
    finally:
        posguard("neo4j", "stop", env=bulk_env)
