"""Text from outside (a server's answer, a stored event's field) made safe to print.

A terminal obeys escape sequences (ESC ...) and a log reader trusts line
breaks: either, coming from a server or an event, can rewrite what the user
sees or forge log lines. ``printable`` turns every control character into a
visible escape and caps the length, so one field is one bounded line.
"""

from __future__ import annotations

ELLIPSIS = "\u2026"


def printable(text: object, limit: int = 200) -> str:
    """``str(text)`` with C0/C1 control characters, DEL and line/paragraph separators
    shown as ``\\xNN`` / ``\\uNNNN`` escapes, cut to ``limit`` characters with '…'."""
    raw = text if isinstance(text, str) else _str(text)
    limit = max(limit, 1)
    head = raw[:limit + 1]  # escaping only grows a string: never look further than this
    if head.isprintable() and len(raw) <= limit:
        return raw
    escaped = "".join(c if c.isprintable() else _escape(c) for c in head)
    if len(escaped) <= limit and len(raw) <= limit:
        return escaped
    return escaped[:limit - 1] + ELLIPSIS


def _escape(character: str) -> str:
    code = ord(character)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 \
        else f"\\U{code:08x}"


def _str(value: object) -> str:
    try:
        return str(value)
    except Exception:  # an object whose __str__ fails is still shown as something
        return f"<{type(value).__name__}>"
