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
non_finite_number      amount / lat / lon is infinite (``inf``, ``Infinity``, ``-inf``)
implausible_timestamp  a timestamp before ``POSGUARD_EARLIEST_TS`` (default 2000-01-01) or more than
                       ``POSGUARD_MAX_FUTURE_HOURS`` (default 24) after the run's start
nul_byte               a field holds a NUL character (U+0000)
field_too_large        a field is longer than ``POSGUARD_MAX_FIELD_BYTES`` (default 131072) UTF-8 bytes; the
                       value shows its size, not its content
=====================  ==============================================================

In every rejected value and every message, a run of 13-19 digits (spaces or dashes between them allowed)
that passes the Luhn check is replaced by its card token (``etl.redact``), whatever the column.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from etl.contract import KINDS, SECRET_FIELDS, Column
from etl.redact import redact_values
from graph.tokens import pan_last4, tokenize

__all__ = ["validate", "Validated", "REJECT_COLUMNS", "parse_timestamps", "Limits"]

REJECT_COLUMNS = ["file", "line", "column", "reason", "value"]
_STR = pd.StringDtype("pyarrow")


@dataclass(frozen=True)
class Limits:
    """What a value may be, beyond its type: timestamps within [earliest, latest], fields up to max_field_bytes.

    One run computes them once (``latest`` = the run's start + ``max_future_hours``) and both engines
    validate every chunk with the same values.
    """

    earliest: pd.Timestamp | None = None
    latest: pd.Timestamp | None = None
    max_field_bytes: int | None = None

    @classmethod
    def from_settings(cls, settings, now) -> "Limits":
        """The limits of a run that starts at ``now`` (an aware datetime)."""
        return cls(earliest=pd.Timestamp(settings.earliest_ts).tz_convert("UTC"),
                   latest=pd.Timestamp(now).tz_convert("UTC") + pd.Timedelta(hours=settings.max_future_hours),
                   max_field_bytes=int(settings.max_field_bytes))

    def as_dict(self) -> dict:
        return {"earliest_ts": None if self.earliest is None else self.earliest.isoformat(),
                "latest_ts": None if self.latest is None else self.latest.isoformat(),
                "max_field_bytes": self.max_field_bytes}


_NO_LIMITS = Limits()


@dataclass
class Validated:
    """Valid rows (typed, tokenized, with ``_line``) and rejects (file, line, column, reason, value)."""

    valid: pd.DataFrame
    rejects: pd.DataFrame


def _text(raw: pd.Series) -> pd.Series:
    """Strings (pandas "string" dtype) with surrounding blanks removed; empty -> NA. Vectorised."""
    s = raw if raw.dtype == _STR else raw.astype(_STR)
    s = s.str.strip()
    return s.mask(s == "")


def parse_timestamps(raw: pd.Series, source_tz: str) -> pd.Series:
    """ISO-8601 values (strings or datetimes) -> UTC timestamps; no offset means ``source_tz``; bad -> NaT."""
    if pd.api.types.is_datetime64_any_dtype(raw.dtype):
        ts = raw if getattr(raw.dt, "tz", None) is not None else raw.dt.tz_localize(
            source_tz, ambiguous="NaT", nonexistent="NaT")
        return ts.dt.tz_convert("UTC").astype("datetime64[us, UTC]")
    out = pd.Series(pd.NaT, index=raw.index, dtype="datetime64[us, UTC]")
    text = _text(raw) if raw.dtype != object or not raw.map(lambda v: hasattr(v, "year")).any() else None
    if text is None:  # Python datetimes mixed with strings (rare: Parquet objects)
        return parse_timestamps(pd.to_datetime(raw, errors="coerce", utc=True), source_tz)
    present = text.notna()
    if not present.any():
        return out
    text = text[present]
    has_offset = text.str.contains(r"(?:Z|[+-]\d\d:?\d\d)$", regex=True).astype(bool)
    if has_offset.any():
        aware = pd.to_datetime(text[has_offset], errors="coerce", utc=True, format="ISO8601")
        out.loc[aware.index] = aware.astype("datetime64[us, UTC]")
    if (~has_offset).any():
        naive = pd.to_datetime(text[~has_offset], errors="coerce", format="ISO8601")
        local = naive.dt.tz_localize(source_tz, ambiguous="NaT", nonexistent="NaT").dt.tz_convert("UTC")
        out.loc[local.index] = local.astype("datetime64[us, UTC]")
    return out


def _is_in(values: pd.Series, allowed) -> pd.Series:
    """Boolean Series: each value is one of ``allowed`` (missing -> False), in Arrow rather than Python."""
    array = pa.array(values.astype(_STR).array) if values.dtype != _STR else pa.array(values.array)
    found = pc.is_in(array, value_set=pa.array([str(v) for v in allowed], pa.string()))
    return pd.Series(pc.fill_null(found, False).to_numpy(zero_copy_only=False), index=values.index)


def _parse(col: Column, raw: pd.Series, source_tz: str, limits: Limits = _NO_LIMITS
           ) -> tuple[pd.Series, pd.Series, str | pd.Series]:
    """(parsed values, bad mask, reason: one for the column or one per row) of one column; missing values
    are not bad here."""
    if col.type == "timestamp":
        parsed = parse_timestamps(raw, source_tz)
        present = raw.notna() if pd.api.types.is_datetime64_any_dtype(raw.dtype) else _text(raw).notna()
        unparsable = present & parsed.isna()
        implausible = pd.Series(False, index=raw.index)
        if limits.earliest is not None:
            implausible |= parsed.notna() & (parsed < limits.earliest)
        if limits.latest is not None:
            implausible |= parsed.notna() & (parsed > limits.latest)
        if not implausible.any():
            return parsed, unparsable, "bad_timestamp"
        reason = pd.Series(np.where(unparsable, "bad_timestamp", "implausible_timestamp"), index=raw.index)
        return parsed, unparsable | implausible, reason
    if col.type in ("decimal", "lat", "lon", "int"):
        if pd.api.types.is_numeric_dtype(raw.dtype) and not pd.api.types.is_bool_dtype(raw.dtype):
            numbers, present = raw.astype("float64"), raw.notna()
        else:
            text = _text(raw)
            numbers, present = pd.to_numeric(text, errors="coerce").astype("float64"), text.notna()
        finite = pd.Series(np.isfinite(numbers.to_numpy(dtype="float64", na_value=np.nan)), index=raw.index)
        if col.type == "int":
            ok = numbers.notna() & finite & (numbers == np.floor(numbers)) & (numbers >= 0)
            if col.name == "stan":
                ok &= numbers <= 999_999
            return numbers.where(ok).astype("Int64"), present & ~ok, "bad_integer"
        # per row: unparsable first, then out of range (a bad row elsewhere in the file changes nothing)
        unparsable = present & numbers.isna()
        infinite = present & numbers.notna() & ~finite
        numbers = numbers.where(~infinite)
        if col.type == "decimal":
            out_of_range, why = present & (numbers < 0), "negative_amount"
        else:
            limit = 90.0 if col.type == "lat" else 180.0
            out_of_range, why = present & numbers.notna() & ~numbers.between(-limit, limit), "bad_coordinates"
        reason = pd.Series(np.where(unparsable, "bad_number", np.where(infinite, "non_finite_number", why)),
                           index=raw.index)
        return numbers, unparsable | infinite | out_of_range, reason
    text = _text(raw)
    present = text.notna()
    none = pd.Series(False, index=raw.index)
    if col.type == "enum":
        lowered = text.str.lower()
        return lowered, present & ~_is_in(lowered, col.enum), f"unknown_{col.name}"
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
             known_merchants: set | None = None, token_cache: dict | None = None,
             limits: Limits = _NO_LIMITS) -> Validated:
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
    token_cache : dict, optional
        Shared by the files of one run: field -> {normalized value: token} (see ``tokenize``).
    limits : Limits, optional
        Plausible timestamps and the largest field (default: no limits).

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
        raw, unsafe, unsafe_why = _unsafe(raw, limits.max_field_bytes)
        parsed, bad, why = _parse(col, raw, source_tz, limits)
        if unsafe is not None:  # too large or NUL: rejected as such, whatever else the value is
            why = pd.Series(why, index=frame.index) if not isinstance(why, pd.Series) else why.copy()
            why[unsafe] = unsafe_why[unsafe]
            bad = bad | unsafe
        missing = parsed.isna() & ~bad
        if col.required:
            fresh = missing & reason.isna()
            reason[fresh], column[fresh] = "missing_value", col.name
        elif col.default is not None:
            parsed = parsed.where(~missing, col.default)
        fresh = bad & reason.isna()
        reason[fresh], column[fresh] = (why[fresh] if isinstance(why, pd.Series) else why), col.name
        out[col.name] = parsed
    if kind == "transactions":  # merchant_id may be empty only when the terminal is registered (its merchant known)
        orphan = out["merchant_id"].isna() & reason.isna() & (
            True if known_terminals is None else ~_is_in(out["terminal_id"], known_terminals))
        reason[orphan], column[orphan] = "missing_value", "merchant_id"
    for ref, known in (("terminal_id", known_terminals), ("merchant_id", known_merchants)):
        if known is not None and ref in out and not (kind == "terminals" and ref == "terminal_id") and not (
                kind == "merchants"):
            unknown = out[ref].notna() & ~_is_in(out[ref], known) & reason.isna()
            reason[unknown] = "unknown_terminal" if ref == "terminal_id" else "unknown_merchant"
            column[unknown] = ref
    rejected = reason.notna().to_numpy()
    rejects = pd.DataFrame({"file": file, "line": lines[rejected], "column": column[rejected].to_numpy(),
                            "reason": reason[rejected].to_numpy(),
                            "value": _reject_values(frame, column, reason, rejected, key)})
    valid = pd.DataFrame({name: values[~rejected].reset_index(drop=True) for name, values in out.items()})
    for secret, token_col in SECRET_FIELDS.items():
        if secret in valid.columns:
            raw_values = valid.pop(secret)
            if secret == "pan":
                valid["pan_last4"] = pan_last4(raw_values)
            cache = None if token_cache is None else token_cache.setdefault(secret, {})
            valid[token_col] = tokenize(raw_values, secret, key, cache)
    valid["_line"] = lines[~rejected]
    return Validated(valid=valid.reset_index(drop=True), rejects=rejects[REJECT_COLUMNS])


def _has_nul(array) -> bool:
    """Whether any string of an Arrow (chunked) string array holds a NUL: one scan of its data buffers."""
    chunks = array.chunks if isinstance(array, pa.ChunkedArray) else [array]
    for chunk in chunks:
        data = chunk.buffers()[2] if len(chunk.buffers()) > 2 else None
        if data is not None and data.size and not np.frombuffer(data, dtype=np.uint8).all():
            return True
    return False


def _unsafe(raw: pd.Series, max_bytes: int | None) -> tuple[pd.Series, pd.Series | None, pd.Series | None]:
    """(values to parse, mask of values too large or holding NUL, their reason); (raw, None, None) when none
    is. Two cheap whole-column tests (the longest value, a NUL anywhere in the buffers) first."""
    if raw.dtype != _STR and not (raw.dtype == object and pd.api.types.infer_dtype(raw, skipna=True) in (
            "string", "mixed", "mixed-integer")):
        return raw, None, None
    array = pa.array((raw if raw.dtype == _STR else raw.astype(_STR)).array)
    lengths = pc.binary_length(array)
    longest = pc.max(lengths).as_py() or 0
    big_any = max_bytes is not None and longest > max_bytes
    nul_any = _has_nul(array)
    if not big_any and not nul_any:
        return raw, None, None
    big = np.zeros(len(raw), dtype=bool)
    if big_any:
        big = pc.fill_null(pc.greater(lengths, max_bytes), False).to_numpy(zero_copy_only=False)
    nul = np.zeros(len(raw), dtype=bool)
    if nul_any:
        nul = pc.fill_null(pc.match_substring(array, "\x00"), False).to_numpy(zero_copy_only=False)
    unsafe = pd.Series(big | nul, index=raw.index)
    reason = pd.Series(np.where(big, "field_too_large", np.where(nul, "nul_byte", None)), index=raw.index)
    return raw.mask(unsafe), unsafe, reason


def _reject_values(frame: pd.DataFrame, column: pd.Series, reason: pd.Series, rejected: np.ndarray,
                   key: bytes) -> np.ndarray:
    """The offending value of each rejected row, as text; SECRET values tokenized, never raw; a PAN-looking
    number anywhere tokenized; a field too large shown by its size, a NUL as ``\\x00``."""
    names = column[rejected].to_numpy()
    why = reason[rejected].to_numpy()
    values = np.full(len(names), "", dtype=object)
    for name in pd.unique(names):
        if name is None or name not in frame.columns:
            continue
        at = names == name
        raw = _text(frame[name][rejected][at]).fillna("").to_numpy(dtype=object)
        if name in SECRET_FIELDS:
            tokens = tokenize(raw, name, key)
            raw = np.array(["token:" + t if v else "" for v, t in zip(raw, tokens)], dtype=object)
        else:
            big = why[at] == "field_too_large"
            raw = np.array([f"{len(v.encode('utf-8')):,} bytes, over the limit" if b else v.replace("\x00", "\\x00")
                            for v, b in zip(raw, big)], dtype=object)
            raw = redact_values(raw, key)
        values[at] = [v[:200] for v in raw]
    return values
