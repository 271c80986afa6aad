"""Text that SQLite can store: Python strings may hold lone surrogates, UTF-8 cannot."""

from __future__ import annotations


def storable(text: str) -> str:
    """`text` with every character UTF-8 cannot encode (a lone surrogate) replaced by '?'.

    For records that must be written whatever the input was (a failed sign-in with a
    hostile user name): the record survives, the bad characters do not."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode()
    return text
