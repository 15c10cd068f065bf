"""The graph's constraints and indexes, created first and idempotently (IF NOT EXISTS)."""

__all__ = ["SCHEMA", "NODE_KEYS", "ENTITY_KEYS", "BROWSABLE_KEYS"]

# label -> key property; every node label posguard writes is MERGEd on its key.
NODE_KEYS = {
    "Card": "token",
    "Terminal": "terminal_id",
    "Merchant": "merchant_id",
    "Owner": "token",
    "Phone": "token",
    "BankAccount": "token",
    "Agent": "agent_id",
    "Firmware": "hash",
    "City": "name",
    "Alert": "alert_id",
    "Ring": "ring_id",
    "Case": "case_id",
    "Run": "run_id",
    "User": "name",
    "Session": "id_hash",
}

# The entities investigators and analysts address by type name: type -> (label, key property).
ENTITY_KEYS = {"card": ("Card", "token"), "terminal": ("Terminal", "terminal_id"),
               "merchant": ("Merchant", "merchant_id"), "ring": ("Ring", "ring_id")}

# Labels an investigator or analyst may walk through in a neighbourhood: all but logins and sessions.
BROWSABLE_KEYS = {label: key for label, key in NODE_KEYS.items() if label not in ("User", "Session")}

SCHEMA = tuple(
    f"CREATE CONSTRAINT {label.lower()}_{key}_unique IF NOT EXISTS "
    f"FOR (n:{label}) REQUIRE n.{key} IS UNIQUE"
    for label, key in NODE_KEYS.items()
) + (
    "CREATE CONSTRAINT txn_id_unique IF NOT EXISTS FOR ()-[r:TXN]-() REQUIRE r.txn_id IS UNIQUE",
    "CREATE INDEX txn_ts IF NOT EXISTS FOR ()-[r:TXN]-() ON (r.ts)",
    "CREATE INDEX alert_kind_severity IF NOT EXISTS FOR (a:Alert) ON (a.kind, a.severity)",
    "CREATE INDEX alert_score IF NOT EXISTS FOR (a:Alert) ON (a.score)",
    "CREATE INDEX card_last4 IF NOT EXISTS FOR (c:Card) ON (c.pan_last4)",
    "CREATE INDEX alert_status IF NOT EXISTS FOR (a:Alert) ON (a.status)",
    "CREATE INDEX alert_assignee IF NOT EXISTS FOR (a:Alert) ON (a.assignee)",
    "CREATE INDEX alert_created IF NOT EXISTS FOR (a:Alert) ON (a.created_at)",
    # the explorer's queue reads its first page in this index's order (graph.writeback.QUEUE_KEY)
    "CREATE INDEX alert_queue_key IF NOT EXISTS FOR (a:Alert) ON (a.queue_key)",
)
