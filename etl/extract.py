"""Read the files of a drop (CSV or Parquet) into frames of raw values with their source line numbers."""

from __future__ import annotations

import csv
import hashlib
import io
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from etl.contract import KINDS, SECRET_FIELDS, kind_of_file
from etl.errors import DropError

__all__ = ["RawFile", "find_files", "scan_drop", "read_file", "read_input", "is_compressed", "shown_name", "sha256_of",
           "csv_header", "parse_csv_body", "parquet_frame", "check_parquet_schema"]

_NUMERIC_TYPES = ("decimal", "int", "lat", "lon")
# The slow parser reads fields of any size; validation rejects those over the configured limit
# (Settings.max_field_bytes) with file, line and column, instead of the csv module's 128 KiB crash.
csv.field_size_limit(2**31 - 1)
_COMPRESSION = {".gz": "gzip", ".zst": "zstd"}


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


def shown_name(path: Path | str) -> str:
    """A file name as text that can be printed and written (bytes that are not UTF-8 shown as U+FFFD)."""
    name = Path(path).name
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def is_compressed(path: Path | str) -> bool:
    """True for ``.csv.gz`` and ``.csv.zst`` inputs (read whole, decompressed on the fly)."""
    return Path(path).suffix.lower() in _COMPRESSION


def _inside(path: Path, root: Path) -> bool:
    try:
        path.relative_to(root)
        return True
    except ValueError:
        return False


def scan_drop(drop: Path) -> tuple[list[tuple[str, Path]], list[dict]]:
    """((kind, path) of every input file sorted by kind then name, [{"name", "reason"} of every entry not read]).

    Every entry of the drop is either an input or in the second list (the manifest's ``ignored``).

    Raises
    ------
    DropError
        A symbolic link that leads outside the drop (or nowhere); a drop without a transactions file.
    """
    drop = Path(drop)
    root = drop.resolve()
    found, ignored = [], []
    for p in sorted(drop.iterdir(), key=lambda q: q.name):
        name = shown_name(p)
        if p.is_symlink():
            target = Path(os.path.realpath(p))
            if not target.exists():
                raise DropError(name, "a symbolic link that leads nowhere; refused")
            if not _inside(target, root):
                raise DropError(name, "a symbolic link that leads outside the drop; refused (copy the file into "
                                      "the drop instead)")
        kind = kind_of_file(p.name)
        if p.is_dir():
            ignored.append({"name": name, "reason": "a directory: drops are flat, sub-directories are not read"})
        elif not p.is_file():
            ignored.append({"name": name, "reason": "not a regular file"})
        elif kind is None:
            ignored.append({"name": name, "reason": "the name matches no input kind (names start with one of "
                                                    f"{', '.join(sorted(KINDS))} and end in .csv, .csv.gz, "
                                                    ".csv.zst or .parquet)"})
        else:
            found.append((kind, p))
    found.sort(key=lambda kp: (kp[0], kp[1].name))
    if not any(kind == "transactions" for kind, _ in found):
        raise DropError(shown_name(drop), "no transactions file (a drop needs at least one transactions*.csv, "
                                          "transactions*.csv.gz or transactions*.parquet)")
    return found, ignored


def find_files(drop: Path) -> list[tuple[str, Path]]:
    """(kind, path) of every input file in ``drop``, sorted by kind then name (see :func:`scan_drop`).

    Raises
    ------
    DropError
        When the drop has no transactions file, or a link leaves it.
    """
    return scan_drop(drop)[0]


def read_input(path: Path) -> bytes:
    """The bytes of a CSV input, decompressed when it is ``.gz`` or ``.zst``.

    Raises
    ------
    DropError
        A compressed file that cannot be decompressed.
    """
    path = Path(path)
    codec = _COMPRESSION.get(path.suffix.lower())
    if codec is None:
        return path.read_bytes()
    try:
        with pa.input_stream(str(path), compression=codec) as stream:
            return stream.read()
    except (pa.ArrowInvalid, OSError) as exc:
        raise DropError(shown_name(path), f"not a readable {codec} file ({type(exc).__name__})") from None


def _check_columns(path: Path, kind: str, names: list[str]) -> None:
    seen = set()
    for name in names:
        if name in seen:
            if not _NAME.fullmatch(name):  # data, not a header: not echoed
                raise DropError(str(path), f"required column is missing ({_header_shown(names)})", line=1)
            raise DropError(str(path), f"column {name!r} appears twice in the header", line=1, column=name)
        seen.add(name)
    for col in KINDS[kind]:
        if col.required and col.name not in seen:
            raise DropError(str(path), f"required column {col.name!r} is missing ({_header_shown(names)})",
                            line=1, column=col.name)


def _header_shown(names: list[str]) -> str:
    """The header's names for an error message, unless they look like data (a file without a header row):
    its first line is then not echoed, it may hold secrets."""
    if names and all(_NAME.fullmatch(n) for n in names):
        return "header has: " + ", ".join(names)
    return (f"the header's {len(names)} fields do not look like column names: a file without a header row?"
            if names else "header has nothing")


_NAME = re.compile(r"[a-z_][a-z0-9_ .-]{0,63}")


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


def csv_header(path: Path, kind: str, head: bytes) -> tuple[list[str], int]:
    """(column names, byte length of the header line) from a CSV file's first bytes; checks the columns.

    Raises
    ------
    DropError
        Empty file, a header that is not UTF-8, a wrong delimiter, a missing or repeated column.
    """
    if not head.strip():
        raise DropError(str(path), "empty file: a CSV needs at least a header row", line=1)
    names = _header(path, head)
    _check_columns(path, kind, names)
    newline = head.find(b"\n")
    return names, (len(head) if newline < 0 else newline + 1)


def _read_csv(path: Path, kind: str) -> tuple[pd.DataFrame, np.ndarray, list]:
    raw = read_input(path)
    names, header_bytes = csv_header(path, kind, raw)
    return parse_csv_body(raw[header_bytes:], names, first_line=2)


def parse_csv_body(body: bytes, names: list[str], first_line: int) -> tuple[pd.DataFrame, np.ndarray, list]:
    """Rows of a CSV body (no header) whose first byte starts line ``first_line`` of its file.

    Returns the raw string frame, each row's source line, and the rows that could not be split
    (``(line, reason, value)``). The same bytes give the same rows and lines whether the body is a
    whole file or one of its chunks (the Spark engine parses chunks that start on a record boundary).
    """
    blank_lines = b"\n\n" in body or b"\n\r\n" in body or body.startswith((b"\n", b"\r\n"))
    if body.strip() and not blank_lines:
        try:
            table = pacsv.read_csv(
                io.BytesIO(body),
                read_options=pacsv.ReadOptions(column_names=names, encoding="utf8"),
                parse_options=pacsv.ParseOptions(newlines_in_values=False),
                convert_options=pacsv.ConvertOptions(column_types={n: pa.string() for n in names},
                                                     strings_can_be_null=False, quoted_strings_can_be_null=False))
            frame = table.to_pandas(types_mapper={pa.string(): pd.StringDtype("pyarrow")}.get)
            if not any(frame[c].str.contains("\n", regex=False).any() for c in frame.columns if len(frame)):
                return frame, np.arange(first_line, len(frame) + first_line, dtype=np.int64), []
        except (pa.ArrowInvalid, UnicodeDecodeError):
            pass
    return _read_csv_slow(body, names, first_line)


def _invalid_fields(fields: list[str], names: list[str]) -> str:
    """Which fields of a row are not UTF-8, and their text with U+FFFD for the bad bytes; never the value of
    a SECRET column (it cannot be tokenized: its bytes are not text)."""
    out = []
    for i, value in enumerate(fields):
        if not any("\udc80" <= ch <= "\udcff" for ch in value):
            continue
        name = names[i] if i < len(names) else f"extra field {i + 1}"
        shown = "(SECRET, not shown)" if name in SECRET_FIELDS else repr(
            value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")[:80])
        out.append(f"{name}: {shown}")
    return "; ".join(out)


def _read_csv_slow(body: bytes, names: list[str], first_line: int) -> tuple[pd.DataFrame, np.ndarray, list]:
    """Row by row: exact line numbers (quoted newlines, blank lines), invalid UTF-8 and wrong field counts as
    bad rows."""
    text = body.decode("utf-8", errors="surrogateescape")
    reader = csv.reader(io.StringIO(text, newline=""))
    rows, lines, bad = [], [], []
    line = first_line
    for fields in reader:
        start, line = line, reader.line_num + first_line
        if not fields:
            continue
        if any("\udc80" <= ch <= "\udcff" for f in fields for ch in f):
            bad.append((start, "invalid_utf8", _invalid_fields(fields, names)))
        elif len(fields) != len(names):
            bad.append((start, "wrong_field_count", f"{len(fields)} fields, header has {len(names)}"))
        else:
            rows.append(fields)
            lines.append(start)
    frame = pd.DataFrame(rows, columns=names, dtype=pd.StringDtype("pyarrow")) if rows else pd.DataFrame(
        {n: pd.Series([], dtype=pd.StringDtype("pyarrow")) for n in names})
    return frame, np.asarray(lines, dtype=np.int64), bad


def check_parquet_schema(path: Path, kind: str, schema: pa.Schema) -> None:
    """Raise DropError unless a Parquet file's (lower-cased) columns can hold the kind's contract types."""
    names = [n.lower() for n in schema.names]
    _check_columns(path, kind, names)
    spec = {c.name: c for c in KINDS[kind]}
    for name, f in zip(names, schema):
        col = spec.get(name)
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
            raise DropError(str(path), f"column {name!r} has Parquet type {t}, which cannot hold a "
                                       f"{col.type} value", column=name)


def parquet_frame(table: pa.Table) -> pd.DataFrame:
    """Raw values of (part of) a Parquet input: lower-case names, strings as Arrow-backed pandas strings."""
    table = table.rename_columns([n.lower() for n in table.column_names])
    return table.to_pandas(types_mapper={pa.string(): pd.StringDtype("pyarrow"),
                                         pa.large_string(): pd.StringDtype("pyarrow")}.get)


def _read_parquet(path: Path, kind: str) -> tuple[pd.DataFrame, np.ndarray, list]:
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise DropError(str(path), f"not a readable Parquet file ({exc})") from None
    check_parquet_schema(path, kind, table.schema)
    frame = parquet_frame(table)
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
