"""The analysts' API against the session's scored sample in a real Neo4j."""

from __future__ import annotations

from pathlib import Path

import networkx as nx
import pandas as pd
import pytest

from posguard.api import DETECTOR_NAMES, open_store
from tests.helpers import posguard


@pytest.fixture(scope="module")
def store(scored_env):
    with open_store(scored_env, start=False) as s:
        yield s


def test_cypher_returns_a_frame_with_parameters_and_utc_timestamps(store, scored_db):
    terminal = scored_db.read("MATCH (t:Terminal)<-[:TXN]-() RETURN t.terminal_id AS id LIMIT 1")[0]["id"]
    frame = store.cypher("MATCH (:Card)-[r:TXN]->(:Terminal {terminal_id: $id}) RETURN r.ts AS ts, "
                         "r.amount AS amount ORDER BY ts", id=terminal)
    expected = scored_db.read("MATCH (:Card)-[r:TXN]->(:Terminal {terminal_id: $id}) RETURN count(r) AS n",
                              id=terminal)[0]["n"]
    assert list(frame.columns) == ["ts", "amount"] and len(frame) == expected > 0
    assert str(frame["ts"].dtype).startswith("datetime64") and str(frame["ts"].dt.tz) == "UTC"
    assert frame["ts"].is_monotonic_increasing


def test_each_detector_runs_with_custom_parameters(store):
    tables = {name: store.detect(name) for name in DETECTOR_NAMES}
    assert all(isinstance(t, pd.DataFrame) for t in tables.values())
    assert len(tables["skimming"]) and len(tables["cloned"]) and len(tables["integrity"])
    # A stricter threshold keeps a subset: trace gaps of at least 50 missing transactions.
    gaps = tables["integrity"][tables["integrity"]["kind"] == "trace_gap"]
    strict = store.detect("integrity", min_missing=50)
    strict_gaps = strict[strict["kind"] == "trace_gap"]
    assert 0 < len(strict_gaps) < len(gaps)
    assert set(strict_gaps["terminal_id"]) <= set(gaps["terminal_id"])
    with pytest.raises(ValueError, match="no detector"):
        store.detect("astrology")


def test_results_match_what_scoring_wrote(store, scored_env):
    written = pd.read_parquet(Path(scored_env["POSGUARD_HOME"]) / "out" / "skimming_points.parquet")
    mine = store.detect("skimming")
    assert list(mine["terminal_id"]) == list(written["terminal_id"])


def test_neighbourhood_is_the_graph_around_an_entity(store, scored_db):
    terminal = scored_db.read("MATCH (t:Terminal)<-[r:TXN]-() WITH t, count(r) AS n ORDER BY n DESC LIMIT 1 "
                              "RETURN t.terminal_id AS id, n")[0]
    g = store.neighbourhood("terminal", terminal["id"])
    assert isinstance(g, nx.MultiDiGraph)
    root = g.nodes[g.graph["root"]]
    assert root["label"] == "Terminal" and root["key"] == terminal["id"]
    txn_edges = [d for _, _, d in g.edges(data=True) if d["type"] == "TXN"]
    assert len(txn_edges) == min(terminal["n"], 200)  # one edge per relationship, capped per node
    assert all(g.nodes[u]["label"] == "Card" for u, v, d in g.edges(data=True) if d["type"] == "TXN")
    assert all(isinstance(d["ts"], pd.Timestamp) for d in txn_edges)
    wider = store.neighbourhood("terminal", terminal["id"], hops=2, per_node=20)
    labels = {d["label"] for _, d in wider.nodes(data=True)}
    assert {"Terminal", "Card"} <= labels and wider.number_of_nodes() > 1
    assert not {"User", "Session", "CaseEvent"} & labels
    with pytest.raises(KeyError):
        store.neighbourhood("terminal", "no-such-terminal")
    with pytest.raises(ValueError):
        store.neighbourhood("User", "ivy")


def test_tokenize_pan_finds_the_card_and_never_returns_the_pan(store, raw_pans):
    pan = sorted(raw_pans)[0]
    spaced = " ".join([pan[:4], pan[4:8], pan[8:12], pan[12:]])
    token = store.tokenize_pan(spaced)
    assert token == store.tokenize_pan(pan) and pan not in token
    found = store.cypher("MATCH (c:Card {token: $t}) RETURN c.pan_last4 AS last4", t=token)
    assert found["last4"].tolist() == [pan[-4:]]
    with pytest.raises(ValueError):
        store.tokenize_pan("1234")


def test_exposed_cards_are_what_scoring_wrote_and_export_never_writes_a_pan(store, scored_env, raw_pans, tmp_path):
    """The API reads EXPOSED_AT back from Neo4j: the same rows as exposed_cards.parquet; `posguard export
    exposed` (default scores directory) writes them with tokens and last four digits, no PAN."""
    written = pd.read_parquet(Path(scored_env["POSGUARD_HOME"]) / "out" / "exposed_cards.parquet")
    got = store.exposed_cards()
    assert len(written) > 0  # the sample's skimmers expose cards
    key = ["card_token", "terminal_id", "mode"]
    assert sorted(map(tuple, got[key].to_numpy())) == sorted(map(tuple, written[key].to_numpy()))
    merged = got.merge(written, on=key, suffixes=("", "_w"))
    assert (merged["p_compromised"] - merged["p_compromised_w"]).abs().max() < 1e-12
    assert (merged["recommended_action"] == merged["recommended_action_w"]).all()
    assert got["p_compromised"].is_monotonic_decreasing and got["pan_last4"].notna().all()
    point = written["terminal_id"].iloc[0]
    assert set(store.exposed_cards(point=point, min_p=0.5)["card_token"]) == set(
        written.loc[(written["terminal_id"] == point) & (written["p_compromised"] >= 0.5), "card_token"])
    out = tmp_path / "exposed.csv"
    result = posguard("export", "exposed", "--out", str(out), env=scored_env)
    assert result.returncode == 0, result.stderr
    text = out.read_text()
    assert len(text.splitlines()) == len(written) + 1
    assert not [p for p in raw_pans if p in text]
