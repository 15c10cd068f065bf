"""The explorer's callbacks called over HTTP as the browser calls them, the session guard, and leaks."""

from __future__ import annotations

import io
import json
import zipfile

import pytest

from app import queries
from app.pages import search_target
from app.server import create_app
from tests.app.callbacks import call
from tests.app.conftest import sign_in

QUEUE_INPUTS = [("queue-table", "page_current", 0), ("queue-table", "page_size", 25), ("f-kind", "value", None),
                ("f-severity", "value", None), ("f-status", "value", None), ("f-assignee", "value", None),
                ("f-dates", "start_date", None), ("f-dates", "end_date", None), ("assign-message", "children", None)]
QUEUE_OUTPUTS = [("queue-table", "data"), ("queue-table", "page_count"), ("queue-total", "children"),
                 ("queue-ids", "data")]


def _page(client, path):
    status, out = call(client, [("page", "children")], [("url", "pathname", path)])
    assert status == 200
    return json.dumps(out["page.children"])


def test_no_session_no_data(dash_app):
    anonymous = dash_app.server.test_client()
    assert anonymous.get("/").status_code == 302 and anonymous.get("/").location.endswith("/login")
    assert anonymous.get("/_dash-layout").status_code == 401
    status, out = call(anonymous, [("page", "children")], [("url", "pathname", "/")])
    assert status == 401 and out is None
    forged = dash_app.server.test_client()
    forged.set_cookie("posguard_session", "not-a-session")
    assert call(forged, [("page", "children")], [("url", "pathname", "/")])[0] == 401


def test_wrong_password_refused(dash_app):
    c = dash_app.server.test_client()
    response = c.post("/login", data={"username": "ivy", "password": "not-her-password"})
    assert response.status_code == 401 and b"Wrong user name or password" in response.data
    assert call(c, [("page", "children")], [("url", "pathname", "/")])[0] == 401


def test_queue_pages_filters_and_sorts_by_score(client, app_db):
    status, out = call(client, QUEUE_OUTPUTS, QUEUE_INPUTS)
    assert status == 200
    rows, total = out["queue-table.data"], int(out["queue-total.children"].split()[0].replace(",", ""))
    assert 0 < len(rows) <= 25 and total == app_db.read("MATCH (a:Alert {active: true}) RETURN count(a) AS n")[0]["n"]
    scores = [r["score"] for r in rows]
    assert scores == sorted(scores, reverse=True)
    assert out["queue-table.page_count"] == -(-total // 25)
    inputs = [("f-severity", "value", "critical") if i == "f-severity" else (i, p, v) for i, p, v in QUEUE_INPUTS]
    _, critical = call(client, QUEUE_OUTPUTS, inputs)
    assert {r["severity"] for r in critical["queue-table.data"]} <= {"critical"}
    page2 = [("queue-table", "page_current", 1) if i == "queue-table" and p == "page_current" else (i, p, v)
             for i, p, v in QUEUE_INPUTS]
    _, second = call(client, QUEUE_OUTPUTS, page2)
    assert not set(second["queue-ids.data"]) & set(out["queue-ids.data"])


def test_bulk_assign_by_investigator_not_by_analyst(client, dash_app, app_db):
    _, out = call(client, QUEUE_OUTPUTS, QUEUE_INPUTS)
    ids = out["queue-ids.data"]
    status, res = call(client, [("assign-message", "children")], [("assign-button", "n_clicks", 1)],
                       [("queue-table", "selected_rows", [1, 2]), ("queue-ids", "data", ids),
                        ("assign-to", "value", "ivy")])
    assert status == 200 and res["assign-message.children"] == "2 alerts assigned to ivy"
    assert {r["assignee"] for r in app_db.read("MATCH (a:Alert) WHERE a.alert_id IN $ids RETURN a.assignee AS "
                                               "assignee", ids=ids[1:3])} == {"ivy"}
    analyst = dash_app.server.test_client()
    sign_in(analyst, "ann")
    _, res = call(analyst, [("assign-message", "children")], [("assign-button", "n_clicks", 1)],
                  [("queue-table", "selected_rows", [3]), ("queue-ids", "data", ids), ("assign-to", "value", "ann")])
    assert res["assign-message.children"] == "only investigators assign cases"


def test_case_decision_is_audited_and_analysts_cannot_decide(client, dash_app, app_db):
    alert_id = app_db.read("MATCH (a:Alert) RETURN a.alert_id AS id ORDER BY a.score DESC LIMIT 1")[0]["id"]
    outputs = [("case-message", "children"), ("case-audit", "children"), ("alert-status", "children")]
    state = [("case-alert-id", "data", alert_id), ("case-status", "value", "in_progress"),
             ("case-comment", "value", "looking at it")]
    status, out = call(client, outputs, [("case-save", "n_clicks", 1)], state)
    assert status == 200 and out["case-message.children"] == "saved"
    trail = queries.audit_trail(app_db, alert_id)
    assert [(e["user"], e["action"], e["after"], e["comment"]) for e in trail][-1] == ("ivy", "status",
                                                                                       "in_progress", "looking at it")
    analyst = dash_app.server.test_client()
    sign_in(analyst, "ann")
    state[1] = ("case-status", "value", "dismissed")
    status, out = call(analyst, outputs, [("case-save", "n_clicks", 1)], state)
    assert status == 204 or out is None or "case-message.children" not in out  # PreventUpdate: nothing changes
    assert queries.alert(app_db, alert_id)["status"] == "in_progress"


def test_pages_render_for_every_entity_type(client, app_db):
    for entity_type, label, key in (("card", "Card", "token"), ("terminal", "Terminal", "terminal_id"),
                                    ("merchant", "Merchant", "merchant_id"), ("ring", "Ring", "ring_id")):
        rows = app_db.read(f"MATCH (n:{label}) RETURN n.{key} AS id ORDER BY COUNT {{ (n)--() }} DESC LIMIT 1")
        assert rows, entity_type
        page = _page(client, f"/{entity_type}/{rows[0]['id']}")
        assert '"id": "graph"' in page and "Neighbourhood" in page
    assert "Merchant portfolio" in _page(client, "/portfolio")
    assert "Not found" in _page(client, "/nowhere/x")


def test_graph_expands_on_click_and_caps_what_it_draws(client, app_db):
    from app.figures import graph_elements

    terminal = app_db.read("MATCH (t:Terminal)<-[r:TXN]-() WITH t, count(r) AS n ORDER BY n DESC LIMIT 1 "
                           "RETURN t.terminal_id AS id")[0]["id"]
    neighbours, _ = queries.neighbourhood(app_db, "terminal", terminal)
    card = next(n for n in neighbours if n["label"] == "Card")
    # Terminal -> one of its cards, then card -> one of its other terminals: each click adds nodes.
    start, _ = graph_elements("Terminal", terminal, None, neighbours)
    status, out = call(client, [("graph", "elements"), ("graph-note", "children")],
                       [("graph", "tapNodeData", {"kind": "Card", "key": card["id"], "label": "x"})],
                       [("graph", "elements", start)])
    assert status == 200 and len(out["graph.elements"]) > len(start)
    card_neighbours, _ = queries.neighbourhood(app_db, "card", card["id"])
    other = next(n for n in card_neighbours if n["label"] == "Terminal" and n["id"] != terminal)
    start, _ = graph_elements("Card", card["id"], None, card_neighbours)
    status, out = call(client, [("graph", "elements"), ("graph-note", "children")],
                       [("graph", "tapNodeData", {"kind": "Terminal", "key": other["id"], "label": "x"})],
                       [("graph", "elements", start)])
    assert status == 200 and len(out["graph.elements"]) > len(start)
    assert " 0 relationships" not in out["graph-note.children"]
    small, left_out = graph_elements("Terminal", terminal, None, neighbours, cap=5)
    assert len(small) <= 5 and left_out == len(neighbours) - 2


def test_search_tokenizes_a_typed_pan_and_shows_only_last4(client, app_db, app_settings, raw_pans):
    pan = sorted(raw_pans)[0]
    path, message = search_target(app_db, " ".join([pan[:4], pan[4:8], pan[8:12], pan[12:]]),
                                  app_settings.token_key)
    assert path and path.startswith("/card/") and message == ""
    status, out = call(client, [("url", "pathname"), ("search", "value"), ("search-message", "children")],
                       [("search", "value", pan)])
    assert status == 200 and out["url.pathname"] == path and out["search.value"] == ""
    page = _page(client, path)
    assert pan not in page and f"**** {pan[-4:]}" in page


def test_skimming_victims_are_the_windows_reported_cards_with_their_later_use(client, app_db):
    terminal = app_db.read("MATCH (t:Terminal) WHERE t.skim_window_start IS NOT NULL "
                           "RETURN t.terminal_id AS id ORDER BY t.skim_score DESC LIMIT 1")[0]["id"]
    props = queries.entity(app_db, "terminal", terminal)["props"]  # the window as the page has it (text)
    victims = queries.skimming_victims(app_db, terminal, props["skim_window_start"], props["skim_window_end"])
    expected = app_db.read("MATCH (c:Card:Reported)-[v:TXN]->(t:Terminal {terminal_id: $id}) "
                           "WHERE t.skim_window_start <= v.ts <= t.skim_window_end RETURN count(DISTINCT c) AS n",
                           id=terminal)[0]["n"]
    assert expected > 0 and len(victims) == expected
    assert sum(len(v["later"]) for v in victims) > 0
    assert "victims' later use" in _page(client, f"/terminal/{terminal}")


def test_case_export_holds_csv_and_json_evidence(client, app_db):
    alert_id = app_db.read("MATCH (a:Alert {kind: 'cloned_card'}) RETURN a.alert_id AS id LIMIT 1")[0]["id"]
    bundle = zipfile.ZipFile(io.BytesIO(queries.case_bundle(app_db, alert_id)))
    assert set(bundle.namelist()) == {"case.csv", "evidence.json"}
    evidence = json.loads(bundle.read("evidence.json"))
    assert evidence["alert"]["alert_id"] == alert_id and len(evidence["transactions"]) > 0
    assert alert_id in bundle.read("case.csv").decode()


def test_no_raw_pan_in_anything_the_app_serves(client, app_db, raw_pans):
    served = [client.get("/").data.decode(), client.get("/_dash-layout").data.decode(),
              client.get("/login").data.decode()]
    served.append(json.dumps(call(client, QUEUE_OUTPUTS, QUEUE_INPUTS)[1]))
    paths = ["/", "/portfolio"]
    for row in app_db.read("MATCH (a:Alert) RETURN a.alert_id AS id, a.entity_type AS t, a.entity_id AS e "
                           "ORDER BY a.score DESC LIMIT 12"):
        paths += [f"/alert/{row['id']}", f"/{row['t']}/{row['e']}"]
    for path in paths:
        served.append(_page(client, path))
    for row in app_db.read("MATCH (a:Alert) RETURN a.alert_id AS id ORDER BY a.score DESC LIMIT 5"):
        served.append(zipfile.ZipFile(io.BytesIO(queries.case_bundle(app_db, row["id"]))).read("evidence.json")
                      .decode())
    text = "\n".join(served)
    assert len(text) > 100_000
    leaked = [pan for pan in raw_pans if pan in text]
    assert not leaked, f"{len(leaked)} raw PANs served"


# ------------------------------------------------------------------ issue 14: 404 for unknown alerts, Origin
CASE_OUTPUTS = [("case-message", "children"), ("case-audit", "children"), ("alert-status", "children")]


def test_save_and_export_of_an_unknown_alert_are_404_not_500(client, app_db):
    """Both answered 500 before (a None alert's .get, and case_bundle's LookupError)."""
    state = [("case-alert-id", "data", "no-such-alert"), ("case-status", "value", "confirmed"),
             ("case-comment", "value", "x")]
    assert call(client, CASE_OUTPUTS, [("case-save", "n_clicks", 1)], state)[0] == 404
    assert call(client, [("case-download", "data")], [("case-export", "n_clicks", 1)],
                [("case-alert-id", "data", "no-such-alert")])[0] == 404
    assert app_db.read("MATCH (a:Alert {alert_id: 'no-such-alert'}) RETURN count(a) AS n")[0]["n"] == 0
    real = app_db.read("MATCH (a:Alert) RETURN a.alert_id AS id LIMIT 1")[0]["id"]
    status, out = call(client, [("case-download", "data")], [("case-export", "n_clicks", 1)],
                       [("case-alert-id", "data", real)])
    assert status == 200 and out["case-download.data"]["filename"] == f"case-{real}.zip"


def _update(client, headers):
    body = {"output": "page.children", "outputs": {"id": "page", "property": "children"},
            "inputs": [{"id": "url", "property": "pathname", "value": "/"}], "changedPropIds": ["url.pathname"],
            "state": []}
    return client.post("/_dash-update-component", data=json.dumps(body), content_type="application/json",
                       headers=headers)


def test_state_changing_requests_from_another_origin_are_refused(client, dash_app):
    """SameSite=Strict was the only CSRF defence: callbacks and the login form now check Origin/Referer."""
    assert _update(client, {"Origin": "http://localhost"}).status_code == 200  # the explorer's own page
    assert _update(client, {}).status_code == 200  # no Origin, no Referer: not a browser
    for headers in ({"Origin": "https://evil.example"}, {"Origin": "null"},
                    {"Referer": "https://evil.example/page"}, {"Origin": "http://localhost.evil.example"}):
        response = _update(client, headers)
        assert response.status_code == 403 and b"cross-site" in response.data, headers
    anonymous = dash_app.server.test_client()
    forged = anonymous.post("/login", data={"username": "ivy", "password": "ivy-password-1"},
                            headers={"Origin": "https://evil.example"})
    assert forged.status_code == 403 and "posguard_session" not in forged.headers.get("Set-Cookie", "")
    assert anonymous.get("/login", headers={"Origin": "https://evil.example"}).status_code == 200  # reads are fine


def test_an_allowed_origin_behind_a_proxy_is_accepted(app_db, app_settings):
    app = create_app(app_db, token_key=app_settings.token_key, allowed_origins=("https://posguard.example.org/",))
    c = app.server.test_client()
    assert sign_in(c, "ivy").status_code == 302
    assert _update(c, {"Origin": "https://posguard.example.org"}).status_code == 200
    assert _update(c, {"Origin": "https://other.example.org"}).status_code == 403
