"""Read the files of a drop (CSV or Parquet) into frames of raw values with their source line numbers."""

from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from etl.contract import KINDS, kind_of_file
from etl.errors import DropError

__all__ = ["RawFile", "find_files", "read_file", "sha256_of"]

_NUMERIC_TYPES = ("decimal", "int", "lat", "lon")


@dataclass
class RawFile:
    """One input file: its kind, checksum, raw rows (lower-case column names) and their line numbers.

    ``bad_rows`` holds rows that could not even be split into fields (invalid UTF-8, wrong field
    count) as ``(line, reason, value)``; they go to the rejects.
    """

    path: Path
    kind: str
    sha256: str
    size: int
    frame: pd.DataFrame
    lines: np.ndarray
    bad_rows: list[tuple[int, str, str]] = field(default_factory=list)

    @property
    def rows_read(self) -> int:
        return len(self.frame) + len(self.bad_rows)


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def find_files(drop: Path) -> list[tuple[str, Path]]:
    """(kind, path) of every input file in ``drop``, sorted by kind then name.

    Raises
    ------
    DropError
        When the drop has no transactions file.
    """
    drop = Path(drop)
    found = sorted(((kind_of_file(p.name), p) for p in drop.iterdir() if p.is_file() and kind_of_file(p.name)),
                   key=lambda kp: (kp[0], kp[1].name))
    if not any(kind == "transactions" for kind, _ in found):
        raise DropError(str(drop), "no transactions file (a drop needs at least one transactions*.csv or "
                                   "transactions*.parquet)")
    return found


def _check_columns(path: Path, kind: str, names: list[str]) -> None:
    seen = set()
    for name in names:
        if name in seen:
            raise DropError(str(path), f"column {name!r} appears twice in the header", line=1, column=name)
        seen.add(name)
    for col in KINDS[kind]:
        if col.required and col.name not in seen:
            raise DropError(str(path), f"required column {col.name!r} is missing (header has: "
                                       f"{', '.join(names) or 'nothing'})", line=1, column=col.name)


def _header(path: Path, raw: bytes) -> list[str]:
    first = raw.split(b"\n", 1)[0].rstrip(b"\r")
    try:
        text = first.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise DropError(str(path), "the header row is not valid UTF-8", line=1) from None
    names = [n.strip().lower() for n in next(csv.reader([text]), [])]
    if len(names) == 1:
        for delimiter, label in ((";", "semicolons"), ("\t", "tabs"), ("|", "pipes")):
            if delimiter in names[0]:
                raise DropError(str(path), f"wrong delimiter: the header is separated by {label}; the contract "
                                           "requires commas (RFC 4180)", line=1)
    return names


def _read_csv(path: Path, kind: str) -> tuple[pd.DataFrame, np.ndarray, list]:
    raw = path.read_bytes()
    if not raw.strip():
        raise DropError(str(path), "empty file: a CSV needs at least a header row", line=1)
    names = _header(path, raw)
    _check_columns(path, kind, names)
    try:
        table = pacsv.read_csv(
            io.BytesIO(raw),
            read_options=pacsv.ReadOptions(column_names=names, skip_rows=1, encoding="utf8"),
            parse_options=pacsv.ParseOptions(newlines_in_values=False),
            convert_options=pacsv.ConvertOptions(column_types={n: pa.string() for n in names},
                                                 strings_can_be_null=False, quoted_strings_can_be_null=False))
        frame = table.to_pandas(types_mapper={pa.string(): pd.StringDtype("pyarrow")}.get)
        if not any(frame[c].str.contains("\n", regex=False).any() for c in frame.columns if len(frame)):
            return frame, np.arange(2, len(frame) + 2, dtype=np.int64), []
    except (pa.ArrowInvalid, UnicodeDecodeError):
        pass
    return _read_csv_slow(raw, names)


def _read_csv_slow(raw: bytes, names: list[str]) -> tuple[pd.DataFrame, np.ndarray, list]:
    """Row by row: exact line numbers (quoted newlines), invalid UTF-8 and wrong field counts as bad rows."""
    text = raw.decode("utf-8", errors="surrogateescape").lstrip("\ufeff")
    reader = csv.reader(io.StringIO(text, newline=""))
    next(reader, None)
    rows, lines, bad = [], [], []
    line = reader.line_num + 1
    for fields in reader:
        start, line = line, reader.line_num + 1
        if not fields:
            continue
        joined = ",".join(fields)
        if any("\udc80" <= ch <= "\udcff" for ch in joined):
            bad.append((start, "invalid_utf8", joined.encode("utf-8", "surrogateescape").decode("utf-8", "replace")))
        elif len(fields) != len(names):
            bad.append((start, "wrong_field_count", f"{len(fields)} fields, header has {len(names)}"))
        else:
            rows.append(fields)
            lines.append(start)
    frame = pd.DataFrame(rows, columns=names, dtype=pd.StringDtype("pyarrow")) if rows else pd.DataFrame(
        {n: pd.Series([], dtype=pd.StringDtype("pyarrow")) for n in names})
    return frame, np.asarray(lines, dtype=np.int64), bad


def _read_parquet(path: Path, kind: str) -> tuple[pd.DataFrame, np.ndarray, list]:
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise DropError(str(path), f"not a readable Parquet file ({exc})") from None
    table = table.rename_columns([n.lower() for n in table.column_names])
    _check_columns(path, kind, table.column_names)
    spec = {c.name: c for c in KINDS[kind]}
    for f in table.schema:
        col = spec.get(f.name)
        if col is None:
            continue
        t = f.type
        ok = pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_null(t) or \
            pa.types.is_dictionary(t)
        if col.type == "timestamp":
            ok = ok or pa.types.is_timestamp(t) or pa.types.is_date(t)
        elif col.type in _NUMERIC_TYPES:
            ok = ok or pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)
        else:
            ok = ok or pa.types.is_integer(t)
        if not ok:
            raise DropError(str(path), f"column {f.name!r} has Parquet type {t}, which cannot hold a "
                                       f"{col.type} value", column=f.name)
    frame = table.to_pandas(types_mapper={pa.string(): pd.StringDtype("pyarrow"), pa.large_string(): pd.StringDtype("pyarrow")}.get)
    return frame, np.arange(1, len(frame) + 1, dtype=np.int64), []


def read_file(path: Path, kind: str) -> RawFile:
    """Read one file of a drop. Values stay raw (strings from CSV; typed from Parquet).

    Raises
    ------
    DropError
        Empty file, wrong delimiter, unreadable format, missing required column, or a Parquet column of
        a type that cannot hold its contract type.
    """
    path = Path(path)
    reader = _read_parquet if path.suffix.lower() == ".parquet" else _read_csv
    frame, lines, bad = reader(path, kind)
    return RawFile(path=path, kind=kind, sha256=sha256_of(path), size=path.stat().st_size, frame=frame,
                   lines=lines, bad_rows=bad)
