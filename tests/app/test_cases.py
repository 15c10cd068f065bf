"""An investigator's cases over HTTP, as the browser calls them, on the scored sample: why an alert was raised (in
words, written at scoring time and kept), the cards exposed at a point of compromise (bulk decisions in the audit
trail, CSV export of the chosen cards), a cloned card's evidence (timeline, map, travel pairs, ATC)."""

from __future__ import annotations

import base64
import csv
import io
import json
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from app import entity_queries, evidence, exposure_queries, queries
from graph import explain
from graph.vocabulary import CARD_DECISIONS
from graph.writeback import CYPHER as WRITE
from tests.app.callbacks import call
from tests.app.conftest import sign_in
from tests.app.test_explorer import _route

DECIDE_OUTPUTS = [("alert-cards-message", "children"), ("alert-exposed-grid", "rowData"), ("alert-audit", "children"),
                  ("alert-cards-comment", "value")]
EXPORT_OUTPUTS = [("alert-cards-download", "data"), ("alert-cards-message", "children")]


def _decide(client, alert_id, decision, selected, comment=None):
    inputs = [(f"alert-cards-{d}", "n_clicks", 1 if d == decision else None) for d in CARD_DECISIONS]
    return call(client, DECIDE_OUTPUTS, inputs, [("alert-exposed-grid", "selectedRows", selected),
                                                 ("alert-id", "data", alert_id), ("alert-cards-comment", "value",
                                                                                  comment)],
                changed=f"alert-cards-{decision}.n_clicks")


def _point_alert(db, kind="skimming_point"):
    """The point-of-compromise alert with the most exposed cards."""
    return db.read("MATCH (a:Alert {active: true, kind: $kind})-[:ABOUT]->(t:Terminal)<-[e:EXPOSED_AT]-(:Card) "
                   "WHERE e.mode = $mode RETURN a.alert_id AS id, t.terminal_id AS terminal, count(e) AS n "
                   "ORDER BY n DESC LIMIT 1", kind=kind, mode=exposure_queries.EXPOSURE_MODE[kind])[0]


def _find(tree, component_id):
    """The props of the component ``component_id`` in a Dash layout (JSON)."""
    if isinstance(tree, dict):
        if tree.get("props", {}).get("id") == component_id:
            return tree["props"]
        tree = list(tree.values())
    if isinstance(tree, list):
        for item in tree:
            found = _find(item, component_id)
            if found is not None:
                return found
    return None


def _values(data) -> list:
    """A figure's array as a list (Plotly sends numeric arrays as base64 "bdata")."""
    if isinstance(data, dict) and "bdata" in data:
        return np.frombuffer(base64.b64decode(data["bdata"]), dtype=data["dtype"]).tolist()
    return list(data)


def _outputs(env) -> Path:
    return Path(env["POSGUARD_HOME"]) / "out"


def test_every_alert_is_explained_in_words_with_the_detector_version(client, app_db):
    alerts = app_db.read("MATCH (a:Alert {active: true}) RETURN a.alert_id AS id, a.kind AS kind, "
                         "a.explanation AS text, a.explanation_key AS key, a.q_value AS q")
    assert alerts and all(a["text"] for a in alerts)
    for a in alerts:
        words, stamp = a["text"].rsplit("\n", 1)
        assert stamp == explain.stamp(a["kind"]) and a["key"] == explain.explanation_key(words)
        assert "Strength: " in words and explain.q_in_words(a["q"]) in words
    top = next(a for a in alerts if a["kind"] == "skimming_point")
    status, out = _route(client, f"/alert/{top['id']}")
    assert status == 200
    page = out["_pages_content.children"]
    shown = json.dumps(_find(page, "alert-explanation"))
    assert top["text"].rsplit("\n", 1)[0] in shown and "Written at scoring time by detector skimming" in shown
    # The page opens with it: the explanation comes before the evidence, the exposed cards and the decision.
    text = json.dumps(page)
    assert text.index("alert-explanation") < text.index("alert-evidence-box") < text.index("alert-exposed-grid") \
        < text.index("alert-save")


def test_an_explanation_is_kept_while_its_evidence_is_unchanged_and_replaced_when_it_changes(app_db):
    at = datetime(2026, 5, 1, tzinfo=timezone.utc)
    row = {"alert_id": "test-explanation-kept", "entity_type": "none", "entity_id": "x", "kind": "void_spike",
           "score": 1.0, "severity": "high", "created_at": at, "summary": "s", "q_value": 1e-3, "evidence_at": None,
           "impact": 0, "explanation": "seen: A\nWritten at scoring time by detector integrity 1", "explanation_key": "k1"}

    def write(**change):
        app_db.write_batches(WRITE["alerts"], [{**row, **change}], params={"run": "test-run"})
        return app_db.read("MATCH (a:Alert {alert_id: $id}) RETURN a.explanation AS text, a.explained_at AS at, "
                           "a.explanations_before AS before", id=row["alert_id"])[0]

    try:
        first = write()
        assert first["text"].startswith("seen: A") and first["before"] is None
        # a later run on the same evidence, by newer code: the words and their date stay as first written
        same = write(explanation="seen: A\nWritten at scoring time by detector integrity 2",
                     created_at=datetime(2026, 6, 1, tzinfo=timezone.utc))
        assert same["text"] == first["text"] and same["at"] == first["at"]
        # new evidence: new words, the old ones kept
        new = write(explanation="seen: B\nWritten at scoring time by detector integrity 2", explanation_key="k2",
                    created_at=datetime(2026, 7, 1, tzinfo=timezone.utc))
        assert new["text"].startswith("seen: B") and new["before"] == [first["text"]]
        assert new["at"].to_native() == datetime(2026, 7, 1, tzinfo=timezone.utc)
    finally:
        app_db.run("MATCH (a:Alert {alert_id: $id}) DETACH DELETE a", id=row["alert_id"])


def test_a_skimming_alert_lists_its_exposed_cards_without_a_pan(client, app_db, raw_pans):
    point = _point_alert(app_db)
    status, out = _route(client, f"/alert/{point['id']}")
    assert status == 200
    grid = _find(out["_pages_content.children"], "alert-exposed-grid")
    rows = grid["rowData"]
    assert len(rows) == point["n"] > 5 and grid["dashGridOptions"]["rowSelection"]["mode"] == "multiRow"
    truth = {r["card"]: r for r in app_db.read(
        "MATCH (c:Card)-[e:EXPOSED_AT {mode: 'skimming'}]->(:Terminal {terminal_id: $id}) "
        "OPTIONAL MATCH (c)-[r:TXN]->() RETURN c.token AS card, c.pan_last4 AS last4, e.p_compromised AS p, "
        "e.reported AS reported, e.recommended_action AS action, max(r.ts) AS last", id=point["terminal"])}
    for r in rows:
        t = truth[r["token"]]
        assert r["card"] == f"*{t['last4']}" and r["p_compromised"] == t["p"]
        assert r["reported"] == ("yes" if t["reported"] else "no") and r["recommended_action"] == t["action"]
        assert r["last_activity"] == t["last"].to_native().strftime("%Y-%m-%d %H:%M UTC")
    # the cards at risk (not yet reported) first, each group most probably compromised first
    keys = [(r["reported"] == "yes", -r["p_compromised"]) for r in rows]
    assert keys == sorted(keys)
    assert {r["reported"] for r in rows} == {"yes", "no"}  # victims and cards not yet reported
    assert not any(pan in json.dumps(out) for pan in raw_pans)


def test_bulk_decisions_on_exposed_cards_are_audited_and_only_investigators_decide(client, dash_app, app_db):
    point = _point_alert(app_db)
    _, out = _route(client, f"/alert/{point['id']}")
    rows = _find(out["_pages_content.children"], "alert-exposed-grid")["rowData"]
    chosen = [r for r in rows if r["reported"] == "no" and not r["decision"]][:3]
    assert len(chosen) == 3
    decided_before = app_db.read("MATCH (:Card)-[e:EXPOSED_AT]->(:Terminal {terminal_id: $id}) WHERE e.decision IS "
                                 "NOT NULL RETURN count(e) AS n", id=point["terminal"])[0]["n"]
    other_card = app_db.read("MATCH (c:Card) WHERE NOT (c)-[:EXPOSED_AT]->(:Terminal {terminal_id: $id}) "
                             "RETURN c.token AS token LIMIT 1", id=point["terminal"])[0]["token"]

    # An analyst cannot decide: nothing changes.
    analyst = dash_app.server.test_client()
    sign_in(analyst, "ann")
    status, ann = _decide(analyst, point["id"], "reissue", chosen)
    assert status == 204 or ann is None or "alert-cards-message.children" not in ann
    assert app_db.read("MATCH (:Card)-[e:EXPOSED_AT]->(:Terminal {terminal_id: $id}) WHERE e.decision IS NOT NULL "
                       "RETURN count(e) AS n", id=point["terminal"])[0]["n"] == decided_before

    status, got = _decide(client, point["id"], "reissue", chosen + [{"token": other_card, "card": "*0000"}],
                          comment="batch to card management")
    assert status == 200
    assert got["alert-cards-message.children"] == "reissue: 3 cards recorded"  # a card not exposed here is ignored
    decided = {r["token"]: r for r in got["alert-exposed-grid.rowData"] if r["token"] in {c["token"] for c in chosen}}
    assert {r["decision"] for r in decided.values()} == {"reissue"} and {r["decided_by"] for r in decided.values()} \
        == {"ivy"}
    assert got["alert-cards-comment.value"] == ""
    trail = json.dumps(got["alert-audit.children"])
    for r in chosen:
        assert r["card"] in trail
    events = app_db.read("MATCH (e:CaseEvent)-[:CONCERNS]->(:Alert {alert_id: $id}) WHERE e.action = 'card reissue' "
                         "AND e.card IN $cards RETURN e.card AS card, e.user AS user, e.comment AS comment, "
                         "e.before AS before", id=point["id"], cards=[r["token"] for r in chosen])
    assert sorted(e["card"] for e in events) == sorted(r["token"] for r in chosen)
    assert {(e["user"], e["comment"], e["before"]) for e in events} == {("ivy", "batch to card management", None)}
    # Changing one card's decision later records what it was before; the global audit log shows both.
    status, again = _decide(client, point["id"], "watch", chosen[:1])
    assert again["alert-cards-message.children"] == "watch: 1 card recorded"
    log = queries.audit_log(app_db, action="card watch")
    assert [(e["card"], e["before"], e["after"]) for e in log if e["alert_id"] == point["id"]
            and e["card"] == chosen[0]["card"][1:]] == [(chosen[0]["card"][1:], "reissue", "watch")]
    # Nothing to decide without a choice.
    status, none = _decide(client, point["id"], "dismiss", [])
    assert none["alert-cards-message.children"] == "choose cards first"


def test_export_of_the_chosen_exposed_cards_holds_tokens_and_last_four_only(client, app_db, raw_pans):
    point = _point_alert(app_db)
    _, out = _route(client, f"/alert/{point['id']}")
    rows = _find(out["_pages_content.children"], "alert-exposed-grid")["rowData"]
    chosen = rows[1:5]
    status, got = call(client, EXPORT_OUTPUTS, [("alert-cards-export", "n_clicks", 1)],
                       [("alert-exposed-grid", "selectedRows", chosen), ("alert-id", "data", point["id"])])
    assert status == 200 and got["alert-cards-message.children"] == "exported 4 cards"
    download = got["alert-cards-download.data"]
    assert download["filename"] == f"exposed-cards-{point['terminal']}.csv"
    table = list(csv.DictReader(io.StringIO(download["content"])))
    assert list(table[0]) == exposure_queries.EXPOSED_CSV_COLUMNS
    assert [r["card_token"] for r in table] == [r["token"] for r in chosen]
    assert all(len(r["pan_last4"]) == 4 and r["terminal_id"] == point["terminal"] for r in table)
    assert not any(pan in download["content"] for pan in raw_pans)
    status, none = call(client, EXPORT_OUTPUTS, [("alert-cards-export", "n_clicks", 2)],
                        [("alert-exposed-grid", "selectedRows", []), ("alert-id", "data", point["id"])])
    assert none["alert-cards-message.children"] == "choose cards first" and "alert-cards-download.data" not in none


def test_a_skimming_alert_charts_its_victims_over_time_with_its_window(client, app_db):
    point = _point_alert(app_db)
    status, out = call(client, [("alert-evidence-box", "children")], [("alert-id", "data", point["id"])])
    assert status == 200
    figure = _find(out["alert-evidence-box.children"], "alert-evidence-chart")["figure"]
    names = [t["name"] for t in figure["data"]]
    assert names == ["cards served", "cards later reported"]
    window = app_db.read("MATCH (t:Terminal {terminal_id: $id}) RETURN toString(t.skim_window_start) AS a, "
                         "toString(t.skim_window_end) AS b", id=point["terminal"])[0]
    shape = figure["layout"]["shapes"][0]
    assert pd.Timestamp(shape["x0"]) == pd.Timestamp(window["a"]) and pd.Timestamp(shape["x1"]) == pd.Timestamp(
        window["b"])
    reported_days = app_db.read("MATCH (c:Card:Reported)-[r:TXN]->(:Terminal {terminal_id: $id}) "
                                "RETURN count(DISTINCT date(r.ts)) AS n", id=point["terminal"])[0]["n"]
    assert len(figure["data"][1]["x"]) == reported_days > 0


def test_a_cloned_card_alert_shows_its_evidence_travel_pair_and_atc(client, app_env, app_db):
    cloned = pd.read_parquet(_outputs(app_env) / "cloned_cards.parquet")
    travel = cloned[cloned["n_impossible_travel"] > 0].iloc[0]
    alert_id = app_db.read("MATCH (a:Alert {kind: 'cloned_card', entity_id: $card}) RETURN a.alert_id AS id",
                           card=travel["card_token"])[0]["id"]
    status, out = call(client, [("alert-evidence-box", "children")], [("alert-id", "data", alert_id)])
    assert status == 200
    box = out["alert-evidence-box.children"]
    chart = _find(box, "alert-evidence-chart")["figure"]
    highlighted = next(t for t in chart["data"] if t["name"] == "evidence")
    ids = set(travel["evidence_txn_ids"])
    assert len(highlighted["x"]) == len(ids) > 0 and all(t.split()[0] in ids for t in highlighted["text"])
    assert any(t["name"] == "worst travel pair" for t in chart["data"])
    geo = _find(box, "alert-evidence-map")["figure"]
    evidence_lat = _values(next(t for t in geo["data"] if t["name"] == "evidence")["lat"])
    located = entity_queries.timeline(app_db, "card", travel["card_token"]).dropna(subset=["lat", "lon"])
    assert len(evidence_lat) == located["txn_id"].isin(ids).sum() > 0
    # The worst pair the page finds is the one the detector reported: distance, time, speed.
    table = json.dumps(_find(box, "alert-travel"))
    assert f"{travel['travel_km']:,.0f} km" in table and f"{travel['travel_hours'] * 60:,.0f} min" in table
    assert f"{travel['travel_kmh']:,.0f} km/h" in table
    assert any(t["name"].startswith(f"{travel['travel_km']:,.0f} km in") for t in geo["data"])
    assert _find(box, "alert-atc-chart")["figure"]["data"][0]["name"] == "ATC"


def test_a_replayed_atc_is_marked_on_the_atc_chart(client, app_env, app_db):
    cloned = pd.read_parquet(_outputs(app_env) / "cloned_cards.parquet")
    replay = cloned[cloned["n_atc_replay"] > 0].iloc[0]
    alert_id = app_db.read("MATCH (a:Alert {kind: 'cloned_card', entity_id: $card}) RETURN a.alert_id AS id",
                           card=replay["card_token"])[0]["id"]
    _, out = call(client, [("alert-evidence-box", "children")], [("alert-id", "data", alert_id)])
    atc = _find(out["alert-evidence-box.children"], "alert-atc-chart")["figure"]["data"]
    marked = next(t for t in atc if t["name"] == "replay / regression")
    assert "replay" in marked["text"] and len(marked["x"]) >= 1
    # the marked points are exactly the ATCs that had been used before
    txns = entity_queries.timeline(app_db, "card", replay["card_token"])
    steps = evidence.atc_steps(txns)
    values = steps["atc"].tolist()
    assert sum(v in values[:i] for i, v in enumerate(values)) == marked["text"].count("replay") > 0


def test_a_card_page_says_where_and_when_it_was_exposed(client, app_db):
    point = _point_alert(app_db)
    card = app_db.read("MATCH (c:Card)-[e:EXPOSED_AT {mode: 'skimming'}]->(:Terminal {terminal_id: $id}) "
                       "RETURN c.token AS token, toString(e.window_start) AS start LIMIT 1",
                       id=point["terminal"])[0]
    status, out = _route(client, f"/card/{card['token']}")
    text = json.dumps(_find(out["_pages_content.children"], "card-exposures"))
    assert "Exposed at point " in text and point["terminal"] in text and "during its window" in text
    assert card["start"][:10] in text and f"/alert/{point['id']}" in text


def test_a_terminal_page_counts_its_exposed_cards_and_links_to_the_alert(client, app_db):
    point = _point_alert(app_db)
    status, out = _route(client, f"/terminal/{point['terminal']}")
    text = json.dumps(_find(out["_pages_content.children"], "terminal-exposures"))
    assert f"{point['n']:,} cards exposed here (shared skimming point)" in text and f"/alert/{point['id']}" in text
