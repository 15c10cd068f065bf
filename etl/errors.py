"""Errors of the ETL: a drop that cannot be read at all (exit 2, nothing written)."""

__all__ = ["DropError"]


class DropError(ValueError):
    """A file of a drop cannot be read at all: wrong format, missing required column, empty file.

    The message names the file and, where it applies, the line and column. The CLI exits with 2.
    """

    exit_code = 2

    def __init__(self, file: str, message: str, *, line: int | None = None, column: str | None = None):
        where = file + (f", line {line}" if line is not None else "") + (f", column {column!r}" if column else "")
        super().__init__(f"{where}: {message}")
        self.file, self.line, self.column = file, line, column
