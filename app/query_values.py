"""Values read through the explorer's Cypher as it shows them: timestamps as ISO text, properties without noise."""

from __future__ import annotations

__all__ = ["iso_text", "shown_properties"]

# Properties never shown or exported (none is SECRET: tokens only; these are just noise for investigators).
_HIDDEN = {"run_id", "score_run", "skim_run", "clone_run", "integrity_run"}


def iso_text(value) -> str:
    """A timestamp (Neo4j, Python or already a string) as ISO 8601 text, for Cypher's datetime()."""
    if hasattr(value, "iso_format"):
        return value.iso_format()
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def shown_properties(props: dict) -> dict:
    """A node's properties to show or export: sorted, timestamps as ISO text, without the noise of ``_HIDDEN``
    and without a password hash."""
    return {k: (v.iso_format() if hasattr(v, "iso_format") else v) for k, v in sorted(props.items())
            if k not in _HIDDEN and k != "pw_hash"}

