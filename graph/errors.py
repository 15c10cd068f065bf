"""Errors of the database layer that every package may raise or catch (the layer below graph/db.py)."""

__all__ = ["ServerError"]


class ServerError(RuntimeError):
    """The local Neo4j server could not be resolved, started, reached or stopped (exit status 1)."""
