"""The explorer's callbacks called over HTTP as the browser calls them, the session guard, and leaks."""

from __future__ import annotations

import io
import json
import zipfile
from datetime import datetime, timedelta, timezone

from app import entity_queries, exposure_queries, figures, queries
from app.frame import NO_MATCH_PATH, search_target
from app.pages import queue as queue_page
from app.pages.common import LATEST_ROWS
from app.pages.no_match import NO_MATCH_TEXT
from app.explorer import create_app
from graph.schema import ENTITY_KEYS
from tests.app.callbacks import call
from tests.app.conftest import sign_in

QUEUE_INPUTS = [("queue-kind", "value", None), ("queue-severity", "value", None), ("queue-status", "value", None),
                ("queue-assignee", "value", None), ("queue-dates", "start_date", None),
                ("queue-dates", "end_date", None), ("queue-new", "value", []),
                ("queue-assign-message", "children", None)]
QUEUE_OUTPUTS = [("queue-grid", "rowData"), ("queue-total", "children"), ("queue-query", "data")]
ROUTE_OUTPUTS = [("_pages_content", "children"), ("_pages_store", "data")]
# The callbacks that fill an entity page's sections after it is shown (outputs), by page prefix.
SECTIONS = {"card": (("timeline", "map"),), "terminal": (("timeline", "map"),), "merchant": (("timeline", "map"),),
            "ring": (("members",),)}


def _route(client, path, search=""):
    return call(client, ROUTE_OUTPUTS, [("_pages_location", "pathname", path), ("_pages_location", "search", search)])


def _page(client, path, search=""):
    """What the browser receives for ``path``: the routed page and, on an entity page, every section it loads
    and its first neighbourhood graph (as JSON text)."""
    status, out = _route(client, path, search)
    assert status == 200
    parts = [json.dumps(out["_pages_content.children"])]
    prefix, _, key = path.strip("/").partition("/")
    for names in SECTIONS.get(prefix, ()):
        status, sec = call(client, [(f"{prefix}-{name}-box", "children") for name in names],
                           [(f"{prefix}-key", "data", key)])
        assert status == 200 and sec, (path, names)
        parts.append(json.dumps(sec))
    if prefix in SECTIONS:
        status, graph = _draw(client, prefix, key)
        assert status == 200
        parts.append(json.dumps(graph))
    return "\n".join(parts)


def _draw(client, prefix, key):
    """The neighbourhood graph an entity page draws first."""
    return call(client, [(f"{prefix}-graph", "elements"), (f"{prefix}-graph-note", "children")],
                [(f"{prefix}-key", "data", key), (f"{prefix}-graph", "tapNodeData", None)],
                [(f"{prefix}-graph", "elements", [])])


def _tap(client, prefix, node, elements, key="x"):
    """A click on ``node`` of the graph drawn as ``elements``."""
    return call(client, [(f"{prefix}-graph", "elements"), (f"{prefix}-graph-note", "children")],
                [(f"{prefix}-key", "data", key), (f"{prefix}-graph", "tapNodeData", node)],
                [(f"{prefix}-graph", "elements", elements)], changed=f"{prefix}-graph.tapNodeData")


def test_no_session_no_data(dash_app):
    anonymous = dash_app.server.test_client()
    assert anonymous.get("/").status_code == 302 and anonymous.get("/").location.endswith("/login")
    assert anonymous.get("/_dash-layout").status_code == 401
    status, out = _route(anonymous, "/")
    assert status == 401 and out is None
    forged = dash_app.server.test_client()
    forged.set_cookie("posguard_session", "not-a-session")
    assert _route(forged, "/")[0] == 401


def test_wrong_password_refused(dash_app):
    c = dash_app.server.test_client()
    response = c.post("/login", data={"username": "ivy", "password": "not-her-password"})
    assert response.status_code == 401 and b"Wrong user name or password" in response.data
    assert _route(c, "/")[0] == 401


def test_queue_filters_and_default_order_severity_impact_score(client, app_db):
    status, out = call(client, QUEUE_OUTPUTS, QUEUE_INPUTS)
    assert status == 200
    rows, total = out["queue-grid.rowData"], int(out["queue-total.children"].split()[0].replace(",", ""))
    assert total == app_db.read("MATCH (a:Alert {active: true}) RETURN count(a) AS n")[0]["n"]
    assert len(rows) == min(total, queue_page.QUEUE_ROWS) and out["queue-query.data"] == ""
    # The documented default order: severity, then impact (cards at risk), then score.
    keys = [(r["severity_rank"], -r["impact"], -r["score"]) for r in rows]
    assert keys == sorted(keys)
    # a point's cards at risk: its exposed cards (those that used it inside its window), not every card seen
    skimming = app_db.read("MATCH (a:Alert {active: true, kind: 'skimming_point'})-[:ABOUT]->(t:Terminal) "
                           "RETURN a.alert_id AS id, a.severity AS severity, t.skim_cards_seen AS seen, "
                           "COUNT { (:Card)-[:EXPOSED_AT]->(t) } AS exposed ORDER BY exposed DESC LIMIT 1")[0]
    mine = next(r for r in rows if r["alert_id"] == skimming["id"])
    assert mine["impact"] == skimming["exposed"] > 1 and skimming["exposed"] < skimming["seen"]
    assert all(r["impact"] <= mine["impact"] for r in rows if r["severity"] == skimming["severity"])
    # The evidence date, not the scoring time: a cloned card shows its first cloning evidence.
    clone = next(r for r in rows if r["kind"] == "cloned_card")
    first = app_db.read("MATCH (a:Alert {alert_id: $id})-[:ABOUT]->(c:Card) RETURN toString(c.clone_first_evidence_at)"
                        " AS at", id=clone["alert_id"])[0]["at"]
    assert clone["evidence"] == first[:10]
    inputs = [("queue-severity", "value", "critical") if i == "queue-severity" else (i, p, v)
              for i, p, v in QUEUE_INPUTS]
    _, critical = call(client, QUEUE_OUTPUTS, inputs)
    assert {r["severity"] for r in critical["queue-grid.rowData"]} == {"critical"}
    assert critical["queue-query.data"] == "?severity=critical"
    # Paging of the query itself: a second page shares no alert with the first.
    first_page, _ = queries.queue_page(app_db, page=0, size=25)
    second_page, _ = queries.queue_page(app_db, page=1, size=25)
    assert first_page and not {r["alert_id"] for r in second_page} & {r["alert_id"] for r in first_page}
    assert [r["alert_id"] for r in first_page] == [r["alert_id"] for r in rows[:25]]


def test_queue_filters_live_in_the_url(client):
    filters = {"kind": "cloned_card", "severity": "high", "status": None, "assignee": "ivy", "since": "2026-01-01",
               "until": None, "new": True}
    qs = queue_page.query_string(filters)
    assert qs.startswith("?") and "kind=cloned_card" in qs and "new=1" in qs and "status" not in qs
    assert queue_page.parse_filters(dict(p.split("=") for p in qs[1:].split("&"))) == filters
    # A URL with filters opens the queue with them set.
    page = _page(client, "/", "?kind=cloned_card&severity=high")
    layout = json.loads(page.split("\n")[0])
    values = {}

    def walk(node):
        if isinstance(node, dict):
            props = node.get("props", {})
            if str(props.get("id", "")).startswith("queue-") and "value" in props:
                values[props["id"]] = props["value"]
            for v in props.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(layout)
    assert values["queue-kind"] == "cloned_card" and values["queue-severity"] == "high"
    assert values["queue-status"] is None


def test_queue_summary_counts_open_alerts_new_and_mine(client, app_db):
    summary = queries.queue_summary(app_db, "nobody-has-this-name")
    expected = app_db.read("MATCH (a:Alert) WHERE a.active AND a.status IN ['open', 'in_progress'] "
                           "RETURN a.kind AS kind, a.severity AS severity, count(a) AS n")
    assert {(c["kind"], c["severity"]): c["n"] for c in summary["cells"]} == {
        (e["kind"], e["severity"]): e["n"] for e in expected}
    assert summary["mine"] == 0 and summary["last_run"]["run_id"]
    new = app_db.read("MATCH (r:ScoreRun) WITH max(r.created_at) AS last MATCH (a:Alert) WHERE a.active AND "
                      "a.status IN ['open', 'in_progress'] AND a.first_raised_at >= last RETURN count(a) AS n")[0]["n"]
    assert summary["new"] == new
    mine = app_db.read("MATCH (a:Alert) WHERE a.active AND a.status IN ['open', 'in_progress'] AND a.assignee = 'ivy' "
                       "RETURN count(a) AS n")[0]["n"]
    assert queries.queue_summary(app_db, "ivy")["mine"] == mine
    page = _page(client, "/")
    assert "queue-summary" in page and "Assigned to me" in page


def test_bulk_assign_by_investigator_not_by_analyst(client, dash_app, app_db):
    _, out = call(client, QUEUE_OUTPUTS, QUEUE_INPUTS)
    rows = out["queue-grid.rowData"]
    ids = [r["alert_id"] for r in rows]
    status, res = call(client, [("queue-assign-message", "children")], [("queue-assign-button", "n_clicks", 1)],
                       [("queue-grid", "selectedRows", rows[1:3]), ("queue-assign-to", "value", "ivy")])
    assert status == 200 and res["queue-assign-message.children"] == "2 alerts assigned to ivy"
    assert {r["assignee"] for r in app_db.read("MATCH (a:Alert) WHERE a.alert_id IN $ids RETURN a.assignee AS "
                                               "assignee", ids=ids[1:3])} == {"ivy"}
    analyst = dash_app.server.test_client()
    sign_in(analyst, "ann")
    _, res = call(analyst, [("queue-assign-message", "children")], [("queue-assign-button", "n_clicks", 1)],
                  [("queue-grid", "selectedRows", rows[3:4]), ("queue-assign-to", "value", "ann")])
    assert res["queue-assign-message.children"] == "only investigators assign cases"
    assert app_db.read("MATCH (a:Alert {alert_id: $id}) RETURN a.assignee AS a", id=ids[3])[0]["a"] != "ann"


def test_case_decision_is_audited_and_analysts_cannot_decide(client, dash_app, app_db):
    alert_id = app_db.read("MATCH (a:Alert) RETURN a.alert_id AS id ORDER BY a.score DESC LIMIT 1")[0]["id"]
    outputs = [("alert-message", "children"), ("alert-audit", "children"), ("alert-status", "children"),
               ("alert-comment", "value")]
    state = [("alert-id", "data", alert_id), ("alert-decision", "value", "in_progress"),
             ("alert-comment", "value", "looking at it")]
    status, out = call(client, outputs, [("alert-save", "n_clicks", 1)], state)
    assert status == 200 and out["alert-message.children"] == "saved"
    trail = queries.audit_trail(app_db, alert_id)
    assert [(e["user"], e["action"], e["after"], e["comment"]) for e in trail][-1] == ("ivy", "status",
                                                                                       "in_progress", "looking at it")
    assert "looking at it" in json.dumps(out["alert-audit.children"])
    analyst = dash_app.server.test_client()
    sign_in(analyst, "ann")
    state[1] = ("alert-decision", "value", "dismissed")
    status, out = call(analyst, outputs, [("alert-save", "n_clicks", 1)], state)
    assert status == 204 or out is None or "alert-message.children" not in out  # PreventUpdate: nothing changes
    assert queries.alert(app_db, alert_id)["status"] == "in_progress"


def test_pages_render_for_every_entity_type(client, app_db):
    for entity_type, label, key in (("card", "Card", "token"), ("terminal", "Terminal", "terminal_id"),
                                    ("merchant", "Merchant", "merchant_id"), ("ring", "Ring", "ring_id")):
        rows = app_db.read(f"MATCH (n:{label}) RETURN n.{key} AS id ORDER BY COUNT {{ (n)--() }} DESC LIMIT 1")
        assert rows, entity_type
        page = _page(client, f"/{entity_type}/{rows[0]['id']}")
        assert f'"id": "{entity_type}-graph"' in page and "Neighbourhood" in page
        status, graph = _draw(client, entity_type, rows[0]["id"])
        assert len(graph[f"{entity_type}-graph.elements"]) > 1
    assert "Merchant portfolio" in _page(client, "/portfolio")
    assert "Not found" in _page(client, "/nowhere/x")
    assert "Not found" not in _page(client, "/audit")


def _positions(elements):
    return {e["data"]["id"]: e["position"] for e in elements if "position" in e}


def test_graph_expands_on_click_and_caps_what_it_draws(client, app_db):
    terminal = app_db.read("MATCH (t:Terminal)<-[r:TXN]-() WITH t, count(r) AS n ORDER BY n DESC LIMIT 1 "
                           "RETURN t.terminal_id AS id")[0]["id"]
    neighbours, _ = entity_queries.neighbourhood(app_db, "terminal", terminal)
    card = next(n for n in neighbours if n["label"] == "Card")
    # Terminal -> one of its cards, then card -> one of its other terminals: each click adds nodes.
    start, _ = figures.graph_elements("Terminal", terminal, None, neighbours)
    status, out = _tap(client, "terminal", {"kind": "Card", "key": card["id"], "label": "x"}, start)
    assert status == 200 and len(out["terminal-graph.elements"]) > len(start)
    # Positions are kept: every node drawn before the click is where it was.
    before = _positions(start)
    assert {k: v for k, v in _positions(out["terminal-graph.elements"]).items() if k in before} == before
    card_neighbours, _ = entity_queries.neighbourhood(app_db, "card", card["id"])
    other = next(n for n in card_neighbours if n["label"] == "Terminal" and n["id"] != terminal)
    start, _ = figures.graph_elements("Card", card["id"], None, card_neighbours)
    status, out = _tap(client, "card", {"kind": "Terminal", "key": other["id"], "label": "x"}, start)
    assert status == 200 and len(out["card-graph.elements"]) > len(start)
    assert " 0 relationships" not in out["card-graph-note.children"]
    # A cap of 5 draws at most 5 elements; every neighbour is drawn, in a drawn group, or counted as left out.
    small, left_out = figures.graph_elements("Terminal", terminal, None, neighbours, cap=5)
    assert len(small) <= 5 and left_out > 0
    drawn = {e["data"]["key"] for e in small if "source" not in e["data"]}
    grouped = {m["id"] for e in small for m in e["data"].get("members", [])}
    assert sum(1 for n in neighbours if n["id"] in drawn or n["id"] in grouped) + left_out == len(neighbours)


def test_graph_groups_cards_opens_groups_and_never_draws_more_than_the_cap(client, app_db):
    terminal = app_db.read("MATCH (t:Terminal)<-[r:TXN]-() WITH t, count(DISTINCT startNode(r)) AS n "
                           "ORDER BY n DESC LIMIT 1 RETURN t.terminal_id AS id, n")[0]
    assert terminal["n"] > figures.GROUP_OVER
    status, out = _draw(client, "terminal", terminal["id"])
    elements = out["terminal-graph.elements"]
    groups = [e for e in elements if e["data"].get("kind") == "Group"]
    reported = {r["token"] for r in app_db.read("MATCH (c:Card:Reported)-[:TXN]->(:Terminal {terminal_id: $id}) "
                                                "RETURN DISTINCT c.token AS token", id=terminal["id"])}
    assert groups and not [e for e in elements if e["data"].get("kind") == "Card"]  # cards only in groups
    for g in groups:  # reported / other, as the database says
        assert {m["id"] in reported for m in g["data"]["members"]} == {g["data"]["reported"]}
    assert sum(len(g["data"]["members"]) for g in groups) == terminal["n"]
    assert all(e["data"]["label"] == e["data"]["key"] for e in elements
               if e["data"].get("kind") in ("Terminal", "Merchant"))  # labelled by id
    # Opening the biggest group draws its cards inside it, within the cap; positions kept.
    big = max(groups, key=lambda g: len(g["data"]["members"]))
    status, out = _tap(client, "terminal", dict(big["data"]), elements)
    opened = out["terminal-graph.elements"]
    children = [e for e in opened if e["data"].get("parent") == big["data"]["id"]]
    assert children and len(opened) <= figures.GRAPH_CAP
    assert len(children) == min(len(big["data"]["members"]), figures.GRAPH_CAP - len(elements))
    before = _positions(elements)
    assert {k: v for k, v in _positions(opened).items() if k in before} == before
    # Keep clicking every node: the drawing never passes the cap.
    current = opened
    for node in [e["data"] for e in opened if e["data"].get("kind") in ("Card", "Merchant", "Group")][:12]:
        status, out = _tap(client, "terminal", node, current)
        if status == 200 and out:
            current = out["terminal-graph.elements"]
        assert len(current) <= figures.GRAPH_CAP


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


def test_search_without_a_match_leaves_the_previous_page_for_a_no_match_page(client, app_db, raw_pans):
    unknown_pan = "4000" + "0" * 11 + "9"
    assert unknown_pan not in raw_pans
    for text in ("T-no-such-terminal", unknown_pan):
        status, out = call(client, [("url", "pathname"), ("search", "value"), ("search-message", "children")],
                           [("search", "value", text)])
        assert status == 200 and out["url.pathname"] == NO_MATCH_PATH and out["search.value"] == ""
        assert out["search-message.children"] == "nothing found" and unknown_pan not in json.dumps(out)
    page = _page(client, NO_MATCH_PATH)
    assert NO_MATCH_TEXT in page and "card-title" not in page and "Not found" not in page


def test_skimming_victims_are_the_windows_reported_cards_with_their_later_use(client, app_db):
    terminal = app_db.read("MATCH (t:Terminal) WHERE t.skim_window_start IS NOT NULL "
                           "RETURN t.terminal_id AS id ORDER BY t.skim_score DESC LIMIT 1")[0]["id"]
    props = entity_queries.entity(app_db, "terminal", terminal)["props"]  # the window as the page has it (text)
    victims = exposure_queries.skimming_victims(app_db, terminal, props["skim_window_start"], props["skim_window_end"])
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


def test_comment_box_is_cleared_after_saving_and_a_second_click_adds_nothing(client, app_db):
    alert_id = app_db.read("MATCH (a:Alert {kind: 'cloned_card'}) RETURN a.alert_id AS id ORDER BY a.score "
                           "LIMIT 1")[0]["id"]
    status_now = queries.alert(app_db, alert_id)["status"]
    outputs = [("alert-message", "children"), ("alert-audit", "children"), ("alert-status", "children"),
               ("alert-comment", "value")]
    state = [("alert-id", "data", alert_id), ("alert-decision", "value", status_now),
             ("alert-comment", "value", "called the cardholder")]
    before = len(queries.audit_trail(app_db, alert_id))
    status, out = call(client, outputs, [("alert-save", "n_clicks", 1)], state)
    assert status == 200 and out["alert-message.children"] == "saved" and out["alert-comment.value"] == ""
    # The browser now holds the cleared box: a second click saves nothing and duplicates nothing.
    state[2] = ("alert-comment", "value", out["alert-comment.value"])
    status, out = call(client, outputs, [("alert-save", "n_clicks", 2)], state)
    assert out["alert-message.children"] == "nothing to save"
    trail = queries.audit_trail(app_db, alert_id)
    assert len(trail) == before + 1 and trail[-1]["comment"] == "called the cardholder"


def test_audit_log_page_filters_by_user_action_and_date(client, dash_app, app_db):
    alert_id = app_db.read("MATCH (a:Alert) RETURN a.alert_id AS id ORDER BY a.alert_id LIMIT 1")[0]["id"]
    adm = dash_app.server.test_client()
    sign_in(adm, "adm")
    outputs = [("alert-message", "children"), ("alert-audit", "children"), ("alert-status", "children"),
               ("alert-comment", "value")]
    status_now = queries.alert(app_db, alert_id)["status"]
    for who, comment in ((client, "ivy was here"), (adm, "adm was here")):
        assert call(who, outputs, [("alert-save", "n_clicks", 1)],
                    [("alert-id", "data", alert_id), ("alert-decision", "value", status_now),
                     ("alert-comment", "value", comment)])[1]["alert-message.children"] == "saved"
    today = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    yesterday = (datetime.now(timezone.utc) - timedelta(days=1)).strftime("%Y-%m-%d")
    audit_outputs = [("audit-grid", "rowData"), ("audit-total", "children")]

    def events(user=None, action=None, since=None, until=None):
        status, out = call(client, audit_outputs, [("audit-user", "value", user), ("audit-action", "value", action),
                                                   ("audit-dates", "start_date", since),
                                                   ("audit-dates", "end_date", until)])
        assert status == 200
        return out["audit-grid.rowData"]

    everything = events()
    assert {"ivy was here", "adm was here"} <= {e["comment"] for e in everything}
    assert len(everything) == app_db.read("MATCH (e:CaseEvent)-[:CONCERNS]->(:Alert) RETURN count(e) AS n")[0]["n"]
    by_adm = events(user="adm")
    assert by_adm and {e["user"] for e in by_adm} == {"adm"} and "ivy was here" not in {e["comment"] for e in by_adm}
    comments = events(action="comment")
    assert comments and {e["action"] for e in comments} == {"comment"}
    assert len(events(since=today, until=today)) == len(everything)  # "until" is the last day shown
    assert events(until=yesterday) == []
    assert all(e["href"].startswith("/alert/") for e in everything)
    assert "Audit log" in _page(client, "/audit")


# ------------------------------------------------------------------ issue 14: 404 for unknown alerts, Origin
CASE_OUTPUTS = [("alert-message", "children"), ("alert-audit", "children"), ("alert-status", "children"),
                ("alert-comment", "value")]


def test_save_and_export_of_an_unknown_alert_are_404_not_500(client, app_db):
    """Both answered 500 before (a None alert's .get, and case_bundle's LookupError)."""
    state = [("alert-id", "data", "no-such-alert"), ("alert-decision", "value", "confirmed"),
             ("alert-comment", "value", "x")]
    assert call(client, CASE_OUTPUTS, [("alert-save", "n_clicks", 1)], state)[0] == 404
    assert call(client, [("alert-download", "data")], [("alert-export", "n_clicks", 1)],
                [("alert-id", "data", "no-such-alert")])[0] == 404
    assert app_db.read("MATCH (a:Alert {alert_id: 'no-such-alert'}) RETURN count(a) AS n")[0]["n"] == 0
    real = app_db.read("MATCH (a:Alert) RETURN a.alert_id AS id LIMIT 1")[0]["id"]
    status, out = call(client, [("alert-download", "data")], [("alert-export", "n_clicks", 1)],
                       [("alert-id", "data", real)])
    assert status == 200 and out["alert-download.data"]["filename"] == f"case-{real}.zip"


def _update(client, headers):
    body = {"output": ".." + "...".join(f"{i}.{p}" for i, p in ROUTE_OUTPUTS) + "..",
            "outputs": [{"id": i, "property": p} for i, p in ROUTE_OUTPUTS],
            "inputs": [{"id": "_pages_location", "property": "pathname", "value": "/"},
                       {"id": "_pages_location", "property": "search", "value": ""}],
            "changedPropIds": ["_pages_location.pathname"], "state": []}
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


def test_busy_terminal_and_merchant_pages_ship_days_the_newest_transactions_and_distinct_positions(client, app_db):
    """A terminal's or merchant's page does not ship one point per transaction: one bar per day (the day's
    transactions, amount and those of reported cards, as counted from the transactions themselves), a grid of
    its newest LATEST_ROWS transactions, and each distinct position once."""
    for entity_type, match in (("terminal", "MATCH (t:Terminal {terminal_id: $id}) MATCH (c:Card)-[r:TXN]->(t)"),
                               ("merchant", "MATCH (t:Terminal)-[:INSTALLED_AT]->(:Merchant {merchant_id: $id}) "
                                            "MATCH (c:Card)-[r:TXN]->(t)")):
        label, key = ENTITY_KEYS[entity_type]
        busiest = app_db.read(f"MATCH (x:{label}) RETURN x.{key} AS id ORDER BY COUNT {{ (x)--() }} DESC LIMIT 1")
        entity_id = busiest[0]["id"]
        txns = app_db.read(match + " RETURN r.txn_id AS id, toString(r.ts) AS ts, r.amount AS amount, "
                                   "c:Reported AS reported, r.lat AS lat, r.lon AS lon", id=entity_id)
        assert len(txns) > LATEST_ROWS
        daily = entity_queries.daily_activity(app_db, entity_type, entity_id)
        by_day = {}
        for t in txns:
            d = by_day.setdefault(t["ts"][:10], [0, 0.0, 0])
            d[0], d[1], d[2] = d[0] + 1, d[1] + t["amount"], d[2] + bool(t["reported"])
        assert {d.strftime("%Y-%m-%d"): [n, round(a, 2), rep] for d, n, a, rep in zip(
            daily["day"], daily["txns"], daily["amount"].round(2), daily["reported_txns"])} == {
            k: [v[0], round(v[1], 2), v[2]] for k, v in by_day.items()}
        latest = entity_queries.latest_transactions(app_db, entity_type, entity_id, LATEST_ROWS)
        newest = sorted(txns, key=lambda t: t["ts"], reverse=True)[:LATEST_ROWS]
        assert len(latest) == LATEST_ROWS and [r["ts"] for r in latest] == [t["ts"] for t in newest]
        positions = entity_queries.activity_positions(app_db, entity_type, entity_id)
        located = [(t["lat"], t["lon"]) for t in txns if t["lat"] is not None]
        distinct = {(round(a, 4), round(b, 4)) for a, b in located}  # (Cypher rounds a half up, Python to even)
        assert abs(len(positions) - len(distinct)) <= max(2, len(distinct) // 50) < len(located)
        assert all(min(abs(a - p[0]) + abs(b - p[1]) for p in positions) <= 1.01e-4 for a, b in located)
        status, sec = call(client, [(f"{entity_type}-timeline-box", "children"), (f"{entity_type}-map-box",
                                                                                   "children")],
                           [(f"{entity_type}-key", "data", entity_id)])
        assert status == 200
        text = json.dumps(sec)
        figure = json.loads(text)[f"{entity_type}-timeline-box.children"]["props"]["children"][0]["props"]["figure"]
        assert max(len(trace["x"]) for trace in figure["data"]) == len(daily) < len(txns)
        assert f"{len(txns):,} transactions" in text and f"The newest {LATEST_ROWS}" in text
        assert text.count('"txn_type"') >= LATEST_ROWS and newest[0]["id"] not in text  # tokens and ids stay out


def test_a_merchant_page_lists_the_alerts_of_its_terminals_and_rings(app_db):
    """The merchant of a point of compromise (and of a ring member) sees those alerts on its own page, not
    "no alert about it"; a merchant with nothing against it, and its own alerts, stay as they are."""
    rows = app_db.read("MATCH (a:Alert)-[:ABOUT]->(:Terminal)-[:INSTALLED_AT {current: true}]->(m:Merchant) "
                       "RETURN m.merchant_id AS m, collect(a.alert_id) AS ids LIMIT 1")
    assert rows, "the test graph has alerts about terminals"
    merchant, ids = rows[0]["m"], set(rows[0]["ids"])
    got = {a["alert_id"] for a in entity_queries.entity(app_db, "merchant", merchant)["alerts"]}
    assert ids <= got
    ring = app_db.read("MATCH (a:Alert)-[:ABOUT]->(:Ring)<-[:MEMBER_OF]-(m:Merchant) "
                       "RETURN m.merchant_id AS m, a.alert_id AS id LIMIT 1")
    assert ring, "the test graph has a ring alert"
    assert ring[0]["id"] in {a["alert_id"] for a in entity_queries.entity(app_db, "merchant", ring[0]["m"])["alerts"]}
    quiet = app_db.read("MATCH (m:Merchant) WHERE NOT EXISTS { (:Alert)-[:ABOUT]->(m) } "
                        "AND NOT EXISTS { (:Alert)-[:ABOUT]->(:Terminal)-[:INSTALLED_AT {current: true}]->(m) } "
                        "AND NOT EXISTS { (:Alert)-[:ABOUT]->(:Ring)<-[:MEMBER_OF]-(m) } "
                        "RETURN m.merchant_id AS m LIMIT 1")[0]["m"]
    assert entity_queries.entity(app_db, "merchant", quiet)["alerts"] == []
    assert entity_queries.entity(app_db, "merchant", "no such merchant") is None
