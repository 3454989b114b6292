"""Bounded echoes of untrusted input for error messages and log lines (count and length capped).

A request body of several MB must not come back as a several-MB error or log line: every value
taken from the input goes through `echo_value`/`echo_items`, lists through `first_items`, and
whole messages through `clip_text`. Cut text always ends in the same ASCII mark, `CUT`, followed
by what was left out: `...(+5 chars)`, `...(+299,990 more)`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")

CUT = "..."
"""The one mark of left-out input (ASCII, so log lines stay greppable)."""
MAX_VALUE_CHARS = 60
"""Characters of one echoed value (a feature name, a cursor, a media type)."""
MAX_ITEMS = 10
"""Items of one echoed list (unknown feature names, validation errors)."""
MAX_MESSAGE_CHARS = 1000
"""Characters of one whole error message, in the response and in the log."""


def clip_text(text: str, *, max_chars: int = MAX_MESSAGE_CHARS) -> str:
    """`text` cut to `max_chars` characters, saying how many were cut.

    >>> clip_text("abcdefgh", max_chars=3)
    'abc...(+5 chars)'
    """
    if len(text) <= max_chars:
        return text
    return f"{text[:max_chars]}{CUT}(+{len(text) - max_chars:,} chars)"


def echo_value(value: object, *, max_chars: int = MAX_VALUE_CHARS) -> str:
    """`repr(value)` of at most about `max_chars` characters.

    >>> echo_value("moon_phase"), echo_value("x" * 100, max_chars=4)
    ("'moon_phase'", "'xxxx'...(+96 chars)")
    """
    if isinstance(value, str):
        if len(value) <= max_chars:
            return repr(value)
        return f"{value[:max_chars]!r}{CUT}(+{len(value) - max_chars:,} chars)"
    return clip_text(repr(value), max_chars=max_chars)


def first_items(values: Sequence[T], *, max_items: int = MAX_ITEMS) -> tuple[list[T], str]:
    """The first `max_items` values and a note counting the rest ("" when none were left out).

    >>> first_items(["a", "b", "c"], max_items=2)
    (['a', 'b'], '...(+1 more)')
    """
    left_out = len(values) - max_items
    return list(values[:max_items]), f"{CUT}(+{left_out:,} more)" if left_out > 0 else ""


def echo_items(
    values: Sequence[object], *, max_items: int = MAX_ITEMS, max_chars: int = MAX_VALUE_CHARS
) -> str:
    """A list-like text of the first `max_items` values (each `echo_value`d), then how many more.

    >>> echo_items(["rsi"]), echo_items(["a", "b", "c"], max_items=2)
    ("['rsi']", "['a', 'b', ...(+1 more)]")
    """
    shown, more = first_items(values, max_items=max_items)
    texts = [echo_value(value, max_chars=max_chars) for value in shown]
    return f"[{', '.join([*texts, more] if more else texts)}]"
