"""Errors of the local Neo4j server management."""

__all__ = ["ServerError"]


class ServerError(RuntimeError):
    """The local Neo4j server could not be resolved, started, reached or stopped (exit status 1)."""
