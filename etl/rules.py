"""The ETL's rules, one definition each, called by both engines (``etl.pipeline.LocalEngine``, ``etl.spark``).

Every function here works on pandas frames of one *part* of the data and holds no I/O except
:func:`known_references` (which reads the staged reference ids). The local engine calls them on whole files
and kinds; the Spark engine only decides what each call sees (a chunk of a file, the rows of a group of
keys with the staged rows of the same keys) and calls the same functions in its tasks.

- :data:`VALIDATION_ORDER`: reference kinds first, so that later kinds are checked against them;
- :func:`known_references`: the merchant and terminal ids a kind must reference (staged ones and this run's);
- :func:`check_part`: parse-level and validation rejects of a part, its valid rows with their ``row_hash``;
- :func:`duplicate_status`: kept, duplicate or conflicting row, against the drop and earlier runs;
- :func:`conflict_rejects`, :func:`bad_row_rejects`, :func:`concat_rejects`: the rows of ``rejects.csv``;
- :func:`kind_counts`: a kind's read / loaded / duplicate / rejected counts.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from etl.validate import Limits, REJECT_COLUMNS, Validated, validate
from graph.catalog import DUPLICATE_KEYS, REFERENCE_KEYS, STAGED_SCHEMAS, read_staged

__all__ = ["VALIDATION_ORDER", "KNOWN_BEFORE", "STATUSES", "hex16", "row_hash", "known_references", "check_part",
           "duplicate_status", "dedupe", "conflict_rejects", "bad_row_rejects", "concat_rejects", "kind_counts"]

# Reference kinds first, so that transactions and events can be checked against them.
VALIDATION_ORDER = ("merchants", "terminals", "approved_firmware", "transactions", "fraud_reports",
                    "terminal_events")
# id column -> (the reference kind that defines it, the kinds whose rows must reference a known one)
KNOWN_BEFORE = {"merchant_id": ("merchants", ("transactions", "terminals", "terminal_events")),
                "terminal_id": ("terminals", ("transactions", "terminal_events"))}
# What de-duplication says of a valid row.
STATUSES = ("kept", "duplicate", "conflict")

_HEX = np.frombuffer(b"0123456789abcdef", dtype="S1")


def hex16(values: np.ndarray) -> np.ndarray:
    """uint64 values as 16-digit lower-case hex strings (object array), vectorised.

    Example
    -------
    >>> hex16(np.array([255], np.uint64)).tolist()
    ['00000000000000ff']
    """
    octets = np.asarray(values, dtype=">u8").view(np.uint8).reshape(-1, 8)
    nibbles = np.stack([octets >> 4, octets & 15], axis=2).reshape(-1, 16)
    return _HEX[nibbles].view("S16").ravel().astype(str).astype(object)


def row_hash(frame: pd.DataFrame, kind: str) -> np.ndarray:
    """The content hash of each valid row of ``kind`` (every staged column but ``row_hash`` and ``run_id``).

    Row by row: the same row gives the same hash in a whole file (local engine) or in a chunk (Spark).
    """
    if not len(frame):
        return np.zeros(0, dtype=object)
    cols = [c for c in STAGED_SCHEMAS[kind].names if c not in ("row_hash", "run_id")]
    return hex16(pd.util.hash_pandas_object(frame[cols], index=False).to_numpy(dtype=np.uint64))


def known_references(home: Path, kind: str, known: dict, kept: dict) -> dict:
    """The ids rows of ``kind`` must reference: fixed when the first kind that needs them comes.

    Parameters
    ----------
    home : Path
        POSGUARD_HOME (its committed staging is read).
    kind : str
        The kind about to be validated (kinds come in :data:`VALIDATION_ORDER`).
    known : dict
        ``{"merchant_id": set or None, "terminal_id": set or None}`` so far (None: not needed yet).
    kept : dict
        Reference kind -> the ids this run keeps of it (the kinds validated already).

    Returns
    -------
    dict
        ``known`` with the staged ids and this run's ids of every reference ``kind`` needs.
    """
    known = dict(known)
    for column, (reference, needed_by) in KNOWN_BEFORE.items():
        if kind in needed_by and known.get(column) is None:
            staged = set(read_staged(home, reference, [column])[column].to_pylist())
            known[column] = staged | set(kept.get(reference, ()))
    return known


def bad_row_rejects(name: str, bad_rows: list) -> pd.DataFrame:
    """Rejects of the rows a file's parser could not split (``(line, reason, value)`` tuples)."""
    return pd.DataFrame([(name, line, None, reason, value) for line, reason, value in bad_rows],
                        columns=REJECT_COLUMNS)


def check_part(kind: str, frame: pd.DataFrame, lines: np.ndarray, name: str, bad_rows: list, *, key: bytes,
               source_tz: str, known: dict, token_cache: dict, limits: Limits) -> Validated:
    """Validate and tokenize one part of a file (a whole file, or a Spark chunk of it).

    Returns
    -------
    Validated
        ``valid`` with ``_line`` and ``row_hash``; ``rejects`` of validation and of the parser (``bad_rows``).
    """
    checked = validate(kind, frame, lines, name, key=key, source_tz=source_tz,
                       known_terminals=known.get("terminal_id") if kind != "terminals" else None,
                       known_merchants=known.get("merchant_id") if kind != "merchants" else None,
                       token_cache=token_cache, limits=limits)
    valid = checked.valid.assign(row_hash=row_hash(checked.valid, kind))
    rejects = checked.rejects
    if bad_rows:
        rejects = concat_rejects([rejects, bad_row_rejects(name, bad_rows)])
    return Validated(valid=valid, rejects=rejects)


def duplicate_status(kind: str, frame: pd.DataFrame, staged: pd.DataFrame) -> np.ndarray:
    """``kept``, ``duplicate`` or ``conflict`` for each valid row of ``frame``, given in input order.

    The same key with the same content (``row_hash``) is a duplicate, with other content a conflict: within
    the drop the first row of a key is kept; a row whose key and content are staged already is a duplicate;
    a row whose key alone is staged is a conflict, except for reference kinds, where it is an update.

    Parameters
    ----------
    kind : str
    frame : pandas.DataFrame
        Valid rows with the key columns of ``kind`` (``etl.contract.DUPLICATE_KEYS``) and ``row_hash``, in
        the order of the drop (file, then line). Rows of other keys do not change a row's status, so any
        set of whole keys may be passed at once.
    staged : pandas.DataFrame
        Key columns and ``row_hash`` of the committed staged rows (reference kinds: the latest per key) of
        at least the keys in ``frame``.

    Returns
    -------
    numpy.ndarray
        Object array of :data:`STATUSES` values.
    """
    keys = list(DUPLICATE_KEYS[kind])
    first = ~frame.duplicated(keys, keep="first").to_numpy(bool)
    same_as_first = frame.duplicated(keys + ["row_hash"], keep="first").to_numpy(bool)
    conflict = ~first & ~same_as_first
    duplicate = ~first & same_as_first
    if len(staged) and len(frame):
        known = frame[keys + ["row_hash"]].merge(staged[keys + ["row_hash"]].drop_duplicates(),
                                                 how="left", on=keys + ["row_hash"], indicator=True)
        dup_staged = (known["_merge"] == "both").to_numpy()
        key_known = frame[keys].merge(staged[keys].drop_duplicates(), how="left", on=keys, indicator=True)
        key_staged = (key_known["_merge"] == "both").to_numpy()
        duplicate |= first & dup_staged
        if kind not in REFERENCE_KEYS:
            conflict |= first & key_staged & ~dup_staged
    return np.where(duplicate, "duplicate", np.where(conflict, "conflict", "kept")).astype(object)


def conflict_rejects(kind: str, rows: pd.DataFrame, files) -> pd.DataFrame:
    """The rejects of conflicting rows: their file (``files``, one per row), line, first key and its value."""
    key = DUPLICATE_KEYS[kind][0]
    return pd.DataFrame({"file": np.asarray(files, dtype=object), "line": rows["_line"].to_numpy(),
                         "column": key, "reason": "conflicting_duplicate",
                         "value": rows[key].astype(str).to_numpy(dtype=object)}, columns=REJECT_COLUMNS)


def dedupe(kind: str, frame: pd.DataFrame, staged: pd.DataFrame) -> tuple[pd.DataFrame, int, pd.DataFrame]:
    """(rows to stage, duplicates, conflict rejects) of a kind's valid rows (``_file``, ``_line``, ``row_hash``).

    :func:`duplicate_status` over the whole frame, then its kept rows and :func:`conflict_rejects`.
    """
    status = duplicate_status(kind, frame, staged)
    conflicts = frame[status == "conflict"]
    return (frame[status == "kept"], int((status == "duplicate").sum()),
            conflict_rejects(kind, conflicts, conflicts["_file"].to_numpy(dtype=object)))


def concat_rejects(parts: list[pd.DataFrame]) -> pd.DataFrame:
    """Reject frames one after another, as ``rejects.csv`` lists them (the columns even when there is none)."""
    parts = [p for p in parts if len(p)]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=REJECT_COLUMNS)


def kind_counts(read: int, loaded: int, duplicate: int) -> dict[str, int]:
    """A kind's counts in the manifest: every row read is loaded, a duplicate, or rejected."""
    return {"read": int(read), "loaded": int(loaded), "duplicate": int(duplicate),
            "rejected": int(read - loaded - duplicate)}
