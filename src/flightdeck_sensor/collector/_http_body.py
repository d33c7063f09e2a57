"""Request bodies: ``Content-Encoding`` undone within bounds, and the batch body parsed.

The server reads the bytes (its handler bounds them by ``MAX_BODY_BYTES``); this
module turns them into events. A body it cannot read raises :class:`HttpError`
with the status to answer.
"""

from __future__ import annotations

import json
import json.scanner
import re
import zlib
from collections.abc import Callable
from typing import Any, NoReturn

MAX_BODY_BYTES = 1024 * 1024  # docs/protocol.md: 1 MiB, before and after decompression


class HttpError(Exception):
    """An answer to send instead of going on; ``close`` drops the connection after it."""

    def __init__(self, status: int, message: str, close: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.close = close


def decode_body(body: bytes, content_encoding: str | None) -> bytes:
    """The body with its ``Content-Encoding`` undone, at most MAX_BODY_BYTES (gzip bombs: 413)."""
    encoding = (content_encoding or "identity").strip().lower()
    if encoding == "identity":
        return body
    if encoding not in ("gzip", "x-gzip"):
        raise HttpError(415, f"unsupported Content-Encoding: {encoding[:40]}")
    return _gunzip_bounded(body)


def _gunzip_bounded(body: bytes) -> bytes:
    # One member, as every sensor sends: its output as it comes, no copies.
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        first = inflater.decompress(body, MAX_BODY_BYTES + 1)
    except zlib.error:
        raise HttpError(400, "invalid gzip body") from None
    if len(first) > MAX_BODY_BYTES or inflater.unconsumed_tail:
        raise HttpError(413, f"decompressed body larger than {MAX_BODY_BYTES} bytes")
    if not inflater.eof:
        raise HttpError(400, "truncated gzip body")
    if not inflater.unused_data.strip(b"\0"):
        return first
    out = bytearray(first)
    remaining = inflater.unused_data
    try:
        while True:  # a gzip stream may hold several members
            inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
            out += inflater.decompress(remaining, MAX_BODY_BYTES + 1 - len(out))
            if len(out) > MAX_BODY_BYTES or inflater.unconsumed_tail:
                raise HttpError(413, f"decompressed body larger than {MAX_BODY_BYTES} bytes")
            if not inflater.eof:
                raise HttpError(400, "truncated gzip body")
            remaining = inflater.unused_data
            if not remaining.strip(b"\0"):
                return bytes(out)
    except zlib.error:
        raise HttpError(400, "invalid gzip body") from None


# The batch body as the sensor sends it: {"events": [ event, event, ... ]} (JSON whitespace
# anywhere between tokens). split_batch reads that form only; anything else, and anything
# it finds wrong, goes to parse_json (json.loads), which gives the one and only answer.
_BATCH_HEAD = re.compile(r'[ \t\n\r]*\{[ \t\n\r]*"events"[ \t\n\r]*:[ \t\n\r]*(\[)[ \t\n\r]*')
_OBJECT_TAIL = re.compile(r"[ \t\n\r]*\}[ \t\n\r]*")
_COMMA = re.compile(r"[ \t\n\r]*,[ \t\n\r]*")


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON")


# json.loads's own C scanner, with json.loads's settings (NaN and Infinity refused): called
# at an offset, it gives the value there and where it ends. (typeshed wants the decoder's
# type to be the scanner's own; at run time it is the decoder, as json.decoder does it.)
_scan_value: Callable[[str, int], tuple[Any, int]] = json.scanner.make_scanner(
    json.JSONDecoder(parse_constant=_reject_constant))  # type: ignore[arg-type]


def split_batch(body: bytes) -> tuple[list[Any], list[str]] | None:
    """``(json.loads(body)["events"], each event's JSON text)`` for a batch body of exactly
    the form {"events": [...]}, or None: parse the body with parse_json instead.

    The texts let the store save each event as it was sent instead of serialising it
    again (which cost more than parsing it). Whenever this returns a list, it is the
    list json.loads would give: same C scanner, strict UTF-8 (the encoding json.loads
    detects for a body starting with '{'), and every byte between the events checked.
    """
    try:
        text = body.decode("utf-8")
        head = _BATCH_HEAD.match(text)
        if head is None:
            return None
        # The whole list in one scanner call: the scanner then makes each key string once
        # for the batch, not once per event (a third of the parse).
        opening = head.start(1)
        events, end = _scan_value(text, opening)
        if _OBJECT_TAIL.fullmatch(text, end) is None:
            return None
        texts = _compact_texts(text, opening + 1, end - 1, events)
        if texts is not None:
            return events, texts
        # Not the compact form: each event's text found by scanning it on its own.
        return events, _scanned_texts(text, head.end(), len(events))
    except (ValueError, StopIteration, RecursionError, IndexError):
        return None


def _compact_texts(text: str, start: int, stop: int, events: list[Any]) -> list[str] | None:
    """The texts of ``events``, the objects scanned from ``text[start:stop]``, when that is
    written as the sensor writes it ("},{" between objects); None when not certain.

    With no whitespace around any "}" "," "{" that separates two events, each of the
    len(events) - 1 separators is a "},{" in the text (and two such cannot overlap); if
    the text holds no more than that many, they are the separators. More (a "},{" inside
    a string or a nested list): None.
    """
    if not events:
        return []
    if (text[start] != "{" or text[stop - 1] != "}"
            or not all(type(event) is dict for event in events)
            or text.find("\n", start, stop) >= 0 or text.find("\r", start, stop) >= 0
            or text.find("\t", start, stop) >= 0):
        return None
    # A one-character search runs at memchr speed, two-character ones several times slower.
    if text.find(" ", start, stop) >= 0 and (text.find("} ", start, stop) >= 0
                                             or text.find(" {", start, stop) >= 0):
        return None
    texts = []
    find = text.find
    position = start
    for _ in range(len(events) - 1):
        comma = find("},{", position, stop) + 1
        if comma == 0:
            return None
        texts.append(text[position:comma])
        position = comma + 1
    if find("},{", position, stop) >= 0:
        return None
    texts.append(text[position:stop])
    return texts


def _scanned_texts(text: str, position: int, count: int) -> list[str]:
    """The texts of the ``count`` values of a list from ``position`` (its first value),
    scanned one by one; the list is well-formed (it was scanned whole)."""
    texts = []
    for _ in range(count):
        _, end = _scan_value(text, position)
        texts.append(text[position:end])
        comma = _COMMA.match(text, end)
        position = end if comma is None else comma.end()
    return texts


def parse_json(body: bytes) -> object:
    if not body.strip():
        raise HttpError(400, "empty body")
    try:
        return json.loads(body, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as error:
        raise HttpError(400, f"invalid JSON: {str(error)[:100]}") from None
