"""Row validation and typing of one kind: raw frame in, (valid typed frame, rejects) out; pure.

Reject reasons (one per rejected row: the first failing column in contract order):

=====================  ==============================================================
reason                 meaning
=====================  ==============================================================
missing_value          a required column is empty
bad_timestamp          not an ISO-8601 timestamp
bad_number             amount / lat / lon is not a number
negative_amount        amount < 0
bad_integer            atc / stan is not a non-negative integer (stan <= 999999)
bad_coordinates        latitude outside [-90, 90] or longitude outside [-180, 180]
unknown_<column>       value not in the column's enumeration (unknown_entry_mode, unknown_txn_type,
                       unknown_fraud_type, unknown_event)
bad_mcc                MCC is not four digits
bad_currency           currency is not three letters (ISO 4217)
bad_response_code      response code is not two letters or digits
unknown_terminal       the terminal is in neither this drop's nor earlier drops' terminals
unknown_merchant       the merchant is in neither this drop's nor earlier drops' merchants
conflicting_duplicate  the same key (txn_id; a reference key) again with other content
invalid_utf8           the row's bytes are not UTF-8 (from extraction)
wrong_field_count      the row has more or fewer fields than the header (from extraction)
=====================  ==============================================================
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from etl.contract import KINDS, SECRET_FIELDS, Column
from etl.tokenize import pan_last4, tokenize

__all__ = ["validate", "Validated", "REJECT_COLUMNS", "parse_timestamps"]

REJECT_COLUMNS = ["file", "line", "column", "reason", "value"]


@dataclass
class Validated:
    """Valid rows (typed, tokenized, with ``_line``) and rejects (file, line, column, reason, value)."""

    valid: pd.DataFrame
    rejects: pd.DataFrame


def _text(raw: pd.Series) -> pd.Series:
    """Strings with surrounding blanks removed; empty -> None."""
    s = raw.map(lambda v: None if v is None or (isinstance(v, float) and np.isnan(v)) else str(v).strip(),
                na_action=None)
    return s.where(s != "", None)


def parse_timestamps(raw: pd.Series, source_tz: str) -> pd.Series:
    """ISO-8601 values (strings or datetimes) -> UTC timestamps; no offset means ``source_tz``; bad -> NaT."""
    out = pd.Series(pd.NaT, index=raw.index, dtype="datetime64[us, UTC]")
    present = raw.notna()
    if not present.any():
        return out
    values = raw[present]
    is_dt = values.map(lambda v: hasattr(v, "year"))
    if is_dt.any():
        dts = pd.to_datetime(values[is_dt].tolist(), errors="coerce")
        dts = pd.Series(dts, index=values[is_dt].index)
        if getattr(dts.dt, "tz", None) is None:
            dts = dts.dt.tz_localize(source_tz, ambiguous="NaT", nonexistent="NaT")
        out.loc[dts.index] = dts.dt.tz_convert("UTC").astype("datetime64[us, UTC]")
    text = values[~is_dt].astype(str)
    if len(text):
        has_offset = text.str.contains(r"(?:Z|[+-]\d\d:?\d\d)$", regex=True)
        if has_offset.any():
            aware = pd.to_datetime(text[has_offset], errors="coerce", utc=True, format="ISO8601")
            out.loc[aware.index] = aware.astype("datetime64[us, UTC]")
        if (~has_offset).any():
            naive = pd.to_datetime(text[~has_offset], errors="coerce", format="ISO8601")
            local = naive.dt.tz_localize(source_tz, ambiguous="NaT", nonexistent="NaT").dt.tz_convert("UTC")
            out.loc[local.index] = local.astype("datetime64[us, UTC]")
    return out


def _parse(col: Column, raw: pd.Series, source_tz: str) -> tuple[pd.Series, pd.Series, str]:
    """(parsed values, bad mask, reason) of one column; missing values are not bad here."""
    text = _text(raw) if col.type != "timestamp" else raw.where(raw.map(lambda v: v is not None and v == v and str(
        v).strip() != ""), None)
    present = text.notna()
    none = pd.Series(False, index=raw.index)
    if col.type == "timestamp":
        parsed = parse_timestamps(text, source_tz)
        return parsed, present & parsed.isna(), "bad_timestamp"
    if col.type in ("decimal", "lat", "lon"):
        parsed = pd.to_numeric(text, errors="coerce").astype("float64")
        bad = present & parsed.isna()
        if bad.any():
            return parsed, bad, "bad_number"
        if col.type == "decimal":
            return parsed, present & (parsed < 0), "negative_amount"
        limit = 90.0 if col.type == "lat" else 180.0
        return parsed, present & ~parsed.between(-limit, limit), "bad_coordinates"
    if col.type == "int":
        numbers = pd.to_numeric(text, errors="coerce")
        ok = numbers.notna() & (numbers == np.floor(numbers)) & (numbers >= 0)
        if col.name == "stan":
            ok &= numbers <= 999_999
        parsed = numbers.where(ok).astype("Int64")
        return parsed, present & ~ok, "bad_integer"
    if col.type == "enum":
        lowered = text.str.lower()
        return lowered, present & ~lowered.isin(col.enum), f"unknown_{col.name}"
    if col.type == "mcc":
        return text, present & ~text.str.fullmatch(r"\d{4}").fillna(False).astype(bool), "bad_mcc"
    if col.type == "currency":
        upper = text.str.upper()
        return upper, present & ~upper.str.fullmatch(r"[A-Z]{3}").fillna(False).astype(bool), "bad_currency"
    if col.type == "code":
        return text, present & ~text.str.fullmatch(r"[0-9A-Za-z]{2}").fillna(False).astype(bool), \
            "bad_response_code"
    return text, none, ""


def validate(kind: str, frame: pd.DataFrame, lines: np.ndarray, file: str, *, key: bytes,
             source_tz: str = "UTC", known_terminals: set | None = None,
             known_merchants: set | None = None) -> Validated:
    """Validate, type and tokenize the rows of one file of ``kind``; never modifies ``frame``.

    Parameters
    ----------
    kind : str
        The input kind (a key of :data:`etl.contract.KINDS`).
    frame : pandas.DataFrame
        Raw values, lower-case column names (from :func:`etl.extract.read_file`).
    lines : numpy.ndarray
        Source line of each row.
    file : str
        File name for the rejects.
    key : bytes
        Tokenization key.
    source_tz : str
        Time zone of timestamps without an offset.
    known_terminals, known_merchants : set, optional
        Ids that references must resolve to (None: not checked).

    Returns
    -------
    Validated
        ``valid`` has the staging columns (SECRET columns replaced by tokens) plus ``_line``.
    """
    n = len(frame)
    reason = pd.Series(None, index=frame.index, dtype=object)
    column = pd.Series(None, index=frame.index, dtype=object)
    out = {}
    for col in KINDS[kind]:
        raw = frame[col.name] if col.name in frame.columns else pd.Series([None] * n, index=frame.index,
                                                                           dtype=object)
        parsed, bad, why = _parse(col, raw, source_tz)
        missing = parsed.isna() & ~bad
        if col.required:
            fresh = missing & reason.isna()
            reason[fresh], column[fresh] = "missing_value", col.name
        elif col.default is not None:
            parsed = parsed.where(~missing, col.default)
        fresh = bad & reason.isna()
        reason[fresh], column[fresh] = why, col.name
        out[col.name] = parsed
    for ref, known in (("terminal_id", known_terminals), ("merchant_id", known_merchants)):
        if known is not None and ref in out and not (kind == "terminals" and ref == "terminal_id") and not (
                kind == "merchants"):
            unknown = out[ref].notna() & ~out[ref].isin(known) & reason.isna()
            reason[unknown] = "unknown_terminal" if ref == "terminal_id" else "unknown_merchant"
            column[unknown] = ref
    rejected = reason.notna().to_numpy()
    rejects = pd.DataFrame({"file": file, "line": lines[rejected], "column": column[rejected].to_numpy(),
                            "reason": reason[rejected].to_numpy(),
                            "value": _reject_values(frame, column, rejected, key)})
    valid = pd.DataFrame({name: values[~rejected].reset_index(drop=True) for name, values in out.items()})
    for secret, token_col in SECRET_FIELDS.items():
        if secret in valid.columns:
            raw_values = valid.pop(secret)
            if secret == "pan":
                valid["pan_last4"] = pan_last4(raw_values)
            valid[token_col] = tokenize(raw_values, secret, key)
    valid["_line"] = lines[~rejected]
    return Validated(valid=valid.reset_index(drop=True), rejects=rejects[REJECT_COLUMNS])


def _reject_values(frame: pd.DataFrame, column: pd.Series, rejected: np.ndarray, key: bytes) -> np.ndarray:
    """The offending value of each rejected row, as text; SECRET values tokenized, never raw."""
    values = []
    for idx, name in zip(frame.index[rejected], column[rejected]):
        raw = frame.at[idx, name] if name in frame.columns else None
        text = "" if raw is None or (isinstance(raw, float) and np.isnan(raw)) else str(raw)
        if name in SECRET_FIELDS and text:
            text = "token:" + tokenize([text], name, key)[0]
        values.append(text[:200])
    return np.asarray(values, dtype=object)
