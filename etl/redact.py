"""PAN-looking numbers in free text (reject values, messages, file names) replaced by their tokens.

A value of a SECRET column is tokenized by its column; a card number typed into another column (columns
swapped, a PAN pasted into a comment, a file without a header) is caught here: any run of 13-19 digits,
spaces or dashes allowed between them, that passes the Luhn check becomes ``token:<hex>``, the same token
the card gets as ``card_token`` (field ``pan``), so an analyst can still find the card.
"""

from __future__ import annotations

import re

import numpy as np

from etl.tokenize import token

__all__ = ["PAN_LIKE", "luhn_ok", "redact_pans", "redact_values"]

# 13-19 digits, single spaces or dashes between them, not inside a longer digit run
PAN_LIKE = re.compile(r"(?<![0-9])[0-9](?:[ -]?[0-9]){12,18}(?![0-9])")
_TOKEN = re.compile(r"token:[0-9a-f]{32}")


def luhn_ok(digits: str) -> bool:
    """Whether a string of digits passes the Luhn (mod 10) check.

    Example
    -------
    >>> luhn_ok("4111111111111111"), luhn_ok("4111111111111112")
    (True, False)
    """
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _pan_runs(text: str) -> list[tuple[int, int, str]]:
    """(start, end, digits) of the PAN-like runs of ``text``; a longer run is tried in every 13-19 window."""
    found = []
    for m in PAN_LIKE.finditer(text):
        digits = re.sub(r"[ -]", "", m.group())
        if luhn_ok(digits):
            found.append((m.start(), m.end(), digits))
    return found


def redact_pans(text: str, key: bytes | None) -> str:
    """``text`` with every PAN-like run replaced by ``token:<token of the PAN>`` (``[PAN removed]`` when no key
    is at hand). Tokens already in the text are left alone.

    Example
    -------
    >>> redact_pans("T1 4111 1111 1111 1111 x", b"k") == "T1 token:" + token("4111111111111111", "pan", b"k") + " x"
    True
    """
    if not isinstance(text, str) or not text:
        return text
    kept = [(m.start(), m.end()) for m in _TOKEN.finditer(text)]
    out, at = [], 0
    for start, end, digits in _pan_runs(text):
        if any(s <= start < e for s, e in kept):
            continue
        out.append(text[at:start])
        out.append("token:" + token(digits, "pan", key) if key else "[PAN removed]")
        at = end
    return "".join(out) + text[at:] if out else text


def redact_values(values, key: bytes | None) -> np.ndarray:
    """:func:`redact_pans` over an array of values (non-strings pass unchanged); fast when no value holds
    13 digits."""
    arr = np.asarray(values, dtype=object)
    out = arr.copy()
    for i, v in enumerate(arr):
        if isinstance(v, str) and sum(ch.isdigit() for ch in v) >= 13:
            out[i] = redact_pans(v, key)
    return out
