"""PAN-looking numbers in free text (reject values, messages, file names) replaced by their tokens.

A value of a SECRET column is tokenized by its column; a card number typed into another column (columns
swapped, a PAN pasted into a comment, a file without a header) is caught here: any run of 13-19 digits,
spaces or dashes allowed between them, that passes the Luhn check becomes ``token:<hex>``, the same token
the card gets as ``card_token`` (field ``pan``), so an analyst can still find the card.
"""

from __future__ import annotations

import re

import numpy as np

from graph.tokens import token

__all__ = ["PAN_LIKE", "luhn_ok", "redact_pans", "redact_values"]

# a run of digit groups separated by single spaces or dashes; PANs are looked for inside it (13-19 digits)
PAN_LIKE = re.compile(r"(?<![0-9])[0-9]+(?:[ -][0-9]+)*(?![0-9])")
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
    """(start, end, digits) of the PAN-like spans of ``text``, left to right.

    Inside a run of digit groups (``T1 4111 1111 1111 1111``: the groups 1, 4111, ...), every span of whole
    groups holding 13-19 digits is a candidate; the longest Luhn-valid one starting at the leftmost group
    wins, and the search goes on after it.
    """
    found = []
    for m in PAN_LIKE.finditer(text):
        groups = [(g.start(), g.end()) for g in re.finditer(r"[0-9]+", m.group())]
        i = 0
        while i < len(groups):
            best = None
            digits = 0
            for j in range(i, len(groups)):
                digits += groups[j][1] - groups[j][0]
                if digits > 19:
                    break
                if digits >= 13:
                    span = re.sub(r"[ -]", "", m.group()[groups[i][0]:groups[j][1]])
                    if luhn_ok(span):
                        best = (j, span)
            if best is None:
                i += 1
                continue
            j, span = best
            found.append((m.start() + groups[i][0], m.start() + groups[j][1], span))
            i = j + 1
    return found


def redact_pans(text: str, key: bytes | None) -> str:
    """``text`` with every PAN-like run replaced by ``token:<token of the PAN>`` (``[PAN removed]`` when no key
    is at hand). Tokens already in the text are left alone.

    Example
    -------
    >>> redact_pans("T1 4111 1111 1111 1111 x", b"k") == "T1 token:" + token("4111111111111111", "pan", b"k") + " x"
    True
    >>> redact_pans("4111111111111111", None), redact_pans("order 12345", b"k")
    ('[PAN removed]', 'order 12345')
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
