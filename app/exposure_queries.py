"""The explorer's points of compromise: exposed cards, decisions on them and their CSV, exposures, skimming victims."""

from __future__ import annotations

import csv
import io

from app.queries import alert
from app.query_values import iso_text
from graph.vocabulary import CARD_DECISIONS, POINT_KIND_OF_MODE

__all__ = ["EXPOSURE_MODE", "EXPOSED_CSV_COLUMNS", "exposed_cards", "decide_cards", "card_exposures",
           "terminal_exposures", "exposure_window", "exposed_csv", "skimming_victims"]

# The exposure mode behind each point-of-compromise alert kind (EXPOSED_AT.mode).
EXPOSURE_MODE = {kind: mode for mode, kind in POINT_KIND_OF_MODE.items()}
CYPHER = {
    "exposed": """
MATCH (c:Card)-[e:EXPOSED_AT]->(:Terminal {terminal_id: $id}) WHERE ($mode IS NULL OR e.mode = $mode)
  AND ($cards IS NULL OR c.token IN $cards)
CALL (c) { MATCH (c)-[r:TXN]->() RETURN max(r.ts) AS last }
RETURN c.token AS card, c.pan_last4 AS last4, e.mode AS mode, e.p_compromised AS p_compromised,
       e.reported AS reported, e.recommended_action AS recommended_action,
       toString(e.first_exposed_at) AS first_exposed_at, toString(last) AS last_activity,
       e.decision AS decision, e.decided_by AS decided_by, toString(e.decided_at) AS decided_at
ORDER BY coalesce(e.reported, false), e.p_compromised DESC, c.token""",
    # Only cards exposed at the alert's own terminal in the alert's mode can be decided through it.
    "decide_cards": """
MATCH (a:Alert {alert_id: $id})-[:ABOUT]->(t:Terminal)
UNWIND $cards AS token
MATCH (c:Card {token: token})-[e:EXPOSED_AT {mode: $mode}]->(t)
WITH a, c, e, e.decision AS before
SET e.decision = $decision, e.decided_by = $user, e.decided_at = datetime()
CREATE (ev:CaseEvent {at: datetime(), seq: timestamp(), user: $user, action: 'card ' + $decision, before: before,
                      after: $decision, card: c.token, last4: c.pan_last4, comment: $comment})-[:CONCERNS]->(a)
RETURN count(ev) AS n""",
    "exposure_window": "MATCH (:Card)-[e:EXPOSED_AT {mode: $mode}]->(:Terminal {terminal_id: $id}) "
                       "RETURN toString(min(e.window_start)) AS start, toString(max(e.window_end)) AS end",
    "terminal_exposures": """
MATCH (:Card)-[e:EXPOSED_AT]->(t:Terminal {terminal_id: $id})
WITH t, e.mode AS mode, count(e) AS cards, count(CASE WHEN e.reported THEN 1 END) AS reported,
     count(e.decision) AS decided
OPTIONAL MATCH (a:Alert)-[:ABOUT]->(t) WHERE a.kind = CASE mode WHEN 'at_terminal' THEN 'compromised_terminal'
                                                      ELSE 'skimming_point' END
RETURN mode, cards, reported, decided, a.alert_id AS alert_id ORDER BY mode""",
    "card_exposures": """
MATCH (:Card {token: $id})-[e:EXPOSED_AT]->(t:Terminal)
OPTIONAL MATCH (a:Alert)-[:ABOUT]->(t) WHERE a.kind = CASE e.mode WHEN 'at_terminal' THEN 'compromised_terminal'
                                                           ELSE 'skimming_point' END
RETURN t.terminal_id AS terminal_id, e.mode AS mode, toString(e.window_start) AS window_start,
       toString(e.window_end) AS window_end, toString(e.first_exposed_at) AS first_exposed_at,
       e.p_compromised AS p_compromised, e.reported AS reported, e.recommended_action AS recommended_action,
       e.decision AS decision, a.alert_id AS alert_id ORDER BY e.first_exposed_at""",
    "skim_victims": "MATCH (c:Card:Reported)-[v:TXN]->(:Terminal {terminal_id: $id}) "
                    "WHERE v.ts >= datetime($start) AND v.ts <= datetime($end) WITH DISTINCT c "
                    "OPTIONAL MATCH (c)-[r:TXN]->(o) WHERE r.ts > datetime($end) AND o.terminal_id <> $id "
                    "RETURN c.token AS card, c.pan_last4 AS last4, toString(c.reported_at) AS reported_at, "
                    "collect([coalesce(r.lat, o.lat), coalesce(r.lon, o.lon)])[..50] AS later ORDER BY card",
}


def skimming_victims(db, terminal_id: str, start, end) -> list[dict]:
    """Reported cards that used a skimming point inside its window, with where each was used afterwards."""
    start, end = (iso_text(v) for v in (start, end))
    rows = db.read(CYPHER["skim_victims"], id=terminal_id, start=start, end=end)
    for row in rows:
        row["later"] = [p for p in row["later"] if p[0] is not None and p[1] is not None]
    return rows


def exposed_cards(db, terminal_id: str, mode: str | None = None, cards: list[str] | None = None) -> list[dict]:
    """The cards exposed at a point of compromise (``EXPOSED_AT``), the cards at risk (not yet reported) first,
    each group most probably compromised first: last four
    digits, probability, reported or not, first exposure, last activity, recommended action and the decision
    taken (if any). ``mode``: one mode of compromise; ``cards``: only these tokens."""
    return db.read(CYPHER["exposed"], id=terminal_id, mode=mode, cards=list(cards) if cards is not None else None)


def decide_cards(db, alert_id: str, cards: list[str], decision: str, user, comment: str | None = None) -> int:
    """Record ``decision`` (reissue, watch, dismiss) for cards exposed at a point-of-compromise alert's terminal:
    on each ``EXPOSED_AT`` relationship and as one CaseEvent per card in the alert's audit trail (investigators
    and admins). Cards not exposed there are ignored. Returns how many cards were decided."""
    if not user.can("decide"):
        raise PermissionError(f"{user.name} ({user.role}) may not decide cases")
    if decision not in CARD_DECISIONS:
        raise ValueError(f"decision must be one of {CARD_DECISIONS}")
    a = alert(db, alert_id)
    if a is None or a.get("kind") not in EXPOSURE_MODE:
        raise LookupError(f"no point-of-compromise alert {alert_id}")
    if not cards:
        return 0
    return db.run(CYPHER["decide_cards"], id=alert_id, cards=list(cards), mode=EXPOSURE_MODE[a["kind"]],
                  decision=decision, user=user.name, comment=(comment or "").strip() or None)[0]["n"]


def card_exposures(db, token: str) -> list[dict]:
    """The points of compromise a card was exposed at, with the window, the probability and the decision."""
    return db.read(CYPHER["card_exposures"], id=token)


def exposure_window(db, terminal_id: str, mode: str) -> tuple:
    """The compromise window of a point in one mode (from its exposed cards), or (None, None)."""
    rows = db.read(CYPHER["exposure_window"], id=terminal_id, mode=mode)
    return (rows[0]["start"], rows[0]["end"]) if rows else (None, None)


def terminal_exposures(db, terminal_id: str) -> list[dict]:
    """Per mode of compromise at a terminal: how many cards were exposed, reported, decided, and the alert."""
    return db.read(CYPHER["terminal_exposures"], id=terminal_id)


EXPOSED_CSV_COLUMNS = ["card_token", "pan_last4", "terminal_id", "mode", "p_compromised", "reported",
                       "recommended_action", "decision", "first_exposed_at", "last_activity"]


def exposed_csv(db, terminal_id: str, mode: str | None, cards: list[str]) -> str:
    """The chosen exposed cards as CSV for the card-management system: card tokens and last four digits only
    (never a PAN), read back from the database (only cards exposed at ``terminal_id``)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(EXPOSED_CSV_COLUMNS)
    for r in exposed_cards(db, terminal_id, mode, cards):
        writer.writerow([r["card"], r["last4"], terminal_id, r["mode"], r["p_compromised"], r["reported"],
                         r["recommended_action"], r["decision"] or "", r["first_exposed_at"], r["last_activity"]])
    return out.getvalue()

