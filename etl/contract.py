"""The input kinds of a drop and their columns, as data (docs/CONTRACT.md)."""

from __future__ import annotations

from dataclasses import dataclass

from graph.vocabulary import ENTRY_MODES, EVENTS, FRAUD_TYPES, TXN_TYPES

__all__ = ["Column", "KINDS", "SECRET_FIELDS", "kind_of_file"]


@dataclass(frozen=True)
class Column:
    """One input column: its type (string, timestamp, decimal, int, float, enum, mcc, currency, code)."""

    name: str
    type: str = "string"
    required: bool = False
    secret: bool = False
    enum: tuple[str, ...] = ()
    default: str | None = None


def _c(*args, **kw) -> Column:
    return Column(*args, **kw)


KINDS: dict[str, tuple[Column, ...]] = {
    "transactions": (
        _c("txn_id", required=True), _c("ts", "timestamp", required=True), _c("pan", required=True, secret=True),
        # merchant_id may be left empty when the terminal's merchant is known (etl.validate checks it)
        _c("terminal_id", required=True), _c("merchant_id"),
        _c("amount", "decimal", required=True), _c("currency", "currency", default="CNY"),
        _c("txn_type", "enum", enum=TXN_TYPES, default="purchase"),
        _c("entry_mode", "enum", enum=ENTRY_MODES, default="unknown"),
        _c("response_code", "code", default="00"), _c("atc", "int"), _c("stan", "int"), _c("mcc", "mcc"),
        _c("lat", "lat"), _c("lon", "lon"),
    ),
    "terminals": (
        _c("terminal_id", required=True), _c("merchant_id", required=True), _c("serial_no"), _c("model"),
        _c("firmware_hash"), _c("lat", "lat"), _c("lon", "lon"), _c("installed_at", "timestamp"),
    ),
    "merchants": (
        _c("merchant_id", required=True), _c("name"), _c("mcc", "mcc"), _c("owner_id", secret=True),
        _c("phone", secret=True), _c("bank_account", secret=True), _c("address"), _c("city"), _c("lat", "lat"),
        _c("lon", "lon"), _c("agent_id"), _c("onboarded_at", "timestamp"),
    ),
    "fraud_reports": (
        _c("pan", required=True, secret=True), _c("reported_at", "timestamp", required=True),
        _c("first_fraud_at", "timestamp"), _c("fraud_type", "enum", enum=FRAUD_TYPES, default="other"),
        _c("txn_id"),  # the fraudulent transaction, when known: one row per transaction, several per card
    ),
    "approved_firmware": (
        _c("firmware_hash", required=True), _c("model"), _c("approved_at", "timestamp"),
    ),
    "terminal_events": (
        _c("terminal_id", required=True), _c("ts", "timestamp", required=True),
        _c("event", "enum", required=True, enum=EVENTS), _c("firmware_hash"), _c("ip"), _c("lat", "lat"),
        _c("lon", "lon"),
    ),
}

# SECRET input column -> the staged token column that replaces it.
SECRET_FIELDS = {"pan": "card_token", "owner_id": "owner_token", "phone": "phone_token",
                 "bank_account": "bank_account_token"}


def kind_of_file(name: str) -> str | None:
    """The kind a file belongs to by its name (``transactions-2026-03-01.csv`` -> transactions), or None.

    Example
    -------
    >>> kind_of_file("Transactions-2026-03-01.csv.gz"), kind_of_file("notes.txt")
    ('transactions', None)
    """
    lower = name.lower()
    if not lower.endswith((".csv", ".csv.gz", ".csv.zst", ".parquet")):  # CSV may be gzip/zstd-compressed
        return None
    # longest kind first, so that "terminal_events" is not taken for "terminals"
    for kind in sorted(KINDS, key=len, reverse=True):
        if lower.startswith(kind):
            return kind
    return None
