"""Parsers of configuration values, from the environment or ``init()``'s
keywords: each returns the value, or None when it cannot be used (the caller
warns and falls back). Stdlib only, imported at interpreter start."""

from __future__ import annotations

import os

AGENT_TYPES: tuple[str, ...] = ("production", "coding")
LOG_LEVELS: dict[str, int] = {
    "CRITICAL": 50, "FATAL": 50, "ERROR": 40, "WARNING": 30, "WARN": 30, "INFO": 20, "DEBUG": 10,
}
MAX_AGENT_ROLE_BYTES = 256
COMPRESSIONS: tuple[str, ...] = ("auto", "gzip", "none")  # auto: gzip unless on loopback

_TRUE = frozenset(("1", "true", "yes", "on", "y", "t"))
_FALSE = frozenset(("0", "false", "no", "off", "n", "f"))
_HEX = frozenset("0123456789abcdef")


def canonical_uuid(value: str) -> str | None:
    """The canonical lowercase 8-4-4-4-12 form of any UUID spelling, or None.

    Accepts what ``uuid.UUID`` accepts (32 hex digits, hyphens, braces,
    ``urn:uuid:``) without importing ``uuid`` at interpreter start.
    """
    if not isinstance(value, str):
        return None
    text = value.strip().lower().replace("urn:", "").replace("uuid:", "")
    digits = text.strip("{}").replace("-", "")
    if len(digits) != 32 or not _HEX.issuperset(digits):
        return None
    return f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}"


def parse_bool(value: object) -> bool | None:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    return True if text in _TRUE else False if text in _FALSE else None


def parse_log_level(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value if value >= 0 else None
    text = str(value).strip().upper()
    if text.isascii() and text.isdigit():  # not "²" (isdigit, but int() refuses it)
        return int(text) if len(text) <= 3 else None
    return LOG_LEVELS.get(text)


def parse_text(value: object) -> str | None:
    text = str(value).strip()
    return text if text and text.isprintable() else None


def parse_agent_type(value: object) -> str | None:
    text = str(value).strip().lower()
    return text if text in AGENT_TYPES else None


def parse_compression(value: object) -> str | None:
    text = str(value).strip().lower()
    return text if text in COMPRESSIONS else None


def parse_role(value: object) -> str | None:
    text = parse_text(value)
    return text if text and len(text.encode()) <= MAX_AGENT_ROLE_BYTES else None


def parse_uuid(value: object) -> str | None:
    return canonical_uuid(value) if isinstance(value, str) else None


def parse_seconds(value: object) -> float | None:
    try:
        seconds = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return seconds if 0 <= seconds < float("inf") else None


def parse_positive_int(value: object) -> int | None:
    try:
        number = int(str(value).strip().replace("_", ""))
    except ValueError:
        return None
    return number if number > 0 else None


def parse_fraction(value: object) -> float | None:
    """A fraction in (0, 1], given as one (``0.8``) or as a percentage (``80``)."""
    try:
        number = float(str(value).strip().rstrip("%"))
    except ValueError:
        return None
    if 1 < number <= 100:
        number /= 100
    return number if 0 < number <= 1 else None


def parse_path(value: object) -> str | None:
    text = os.fspath(value).strip() if isinstance(value, (str, os.PathLike)) else ""
    return os.path.expanduser(str(text)) if text else None
