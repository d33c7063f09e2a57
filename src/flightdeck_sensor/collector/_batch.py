"""The batch path: validate_batch, which answers for each event of a batch what
validate_event would, through a fast path that only ever accepts.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import datetime

from ._validate import (
    AGENT_TYPES,
    CLIENT_TYPE,
    EVENT_TYPES,
    FIELD_KINDS,
    MAX_AGE,
    MAX_AGENT_ROLE_BYTES,
    MAX_COUNT,
    MAX_SKEW_AHEAD,
    TYPE_RULES,
    UUID_PATTERN,
    Event,
    InvalidEvent,
    utc_text,
    validate_event,
)

# validate_event (_validate.py) is the reference: every rule, every error message. The batch path
# first tries _FastPath.accept, which only ever *accepts* (returning the very Event the reference
# would) or defers; anything it is not sure of -- every rejection included -- goes to
# validate_event, so the answers cannot differ. tests/unit/test_validate.py holds the two
# to agreement on generated events.

# The sensor's own timestamp form, in UTC, on a day every month has (29-31 go the long way):
# for these the text is already utc_text(moment), and fixed-width text sorts as time does.
# ASCII digits only: in a str pattern, \d also matches other scripts' digits.
_UTC_STAMP = re.compile(
    r"[0-9]{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|1[0-9]|2[0-8])"
    r"T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]\.[0-9]{6}\+00:00"
)
_REQUIRED_STRINGS = ("id", "session_id", "event_type", "agent_type", "client_type", "timestamp")
_MAX_SHAPES = 1024
# (keys in order, exact type of each value) -> the count fields holding an int, whose sign
# is still to be checked; None: some field has a type the rules refuse (the reference says which).
_SHAPES: dict[tuple[tuple[str, ...], tuple[type, ...]], tuple[str, ...] | None] = {}


def _shape_verdict(keys: tuple[str, ...], types: tuple[type, ...]) -> tuple[str, ...] | None:
    """What the field-type rules say about every event with these keys and value types."""
    kinds = dict(zip(keys, types, strict=True))
    for field in _REQUIRED_STRINGS:
        if not issubclass(kinds.get(field, type(None)), str):
            return None
    counts = []
    for field, kind in kinds.items():
        if kind is type(None) or field not in FIELD_KINDS:
            continue
        expected = FIELD_KINDS[field][0]
        if expected is int:
            if not issubclass(kind, int) or issubclass(kind, bool):
                return None
            counts.append(field)
        elif not issubclass(kind, expected):
            return None
    return tuple(counts)


def _shape_counts(keys: tuple[str, ...], types: tuple[type, ...]) -> tuple[str, ...] | None:
    """_shape_verdict for these keys and types, from the _SHAPES cache when it has it."""
    try:
        return _SHAPES[keys, types]
    except KeyError:
        counts = _shape_verdict(keys, types)
        if len(_SHAPES) < _MAX_SHAPES:  # bounded: the keys come from the network
            _SHAPES[keys, types] = counts
        return counts


# Event(...) runs NamedTuple's Python-level __new__; this is what that __new__ does, in C.
_new_tuple = tuple.__new__


class _FastPath:
    """The fast path for the events of one batch, taken in order.

    A sensor's batch is one shape over and over, of one session: an event with the
    same keys and value types as the one before it takes that one's shape verdict (the
    verdict depends on nothing else), and a session id equal to the one before it is
    known well-formed. Only equal values are reused, so each answer is the one the
    event would get on its own.
    """

    __slots__ = ("counts", "keys", "newest", "oldest", "session_id", "session_key", "types")

    def __init__(self, oldest: str, newest: str) -> None:
        self.oldest, self.newest = oldest, newest
        self.keys: tuple[str, ...] = ()
        self.types: tuple[type, ...] = ()
        self.counts: tuple[str, ...] | None = None
        self.session_id = self.session_key = ""  # never equal to a well-formed id

    def accept(self, raw: object, body: str | None) -> Event | None:
        """The Event validate_event would return, or None: not sure, ask the reference."""
        if type(raw) is not dict:
            return None
        keys = tuple(raw)
        types = tuple(map(type, raw.values()))
        if keys == self.keys and types == self.types:
            counts = self.counts
        else:
            counts = self.counts = _shape_counts(keys, types)
            self.keys, self.types = keys, types
        if counts is None:
            return None
        for field in counts:
            count = raw[field]
            if count < 0 or count > MAX_COUNT:
                return None
        # From here on the shape guarantees: the _REQUIRED_STRINGS are str, the rest are typed.
        session_id: str = raw["session_id"]
        if session_id != self.session_id:
            if UUID_PATTERN.fullmatch(session_id) is None:
                return None
            self.session_id, self.session_key = session_id, session_id.lower()
        event_id: str = raw["id"]
        event_type: str = raw["event_type"]
        stamp: str = raw["timestamp"]
        role = raw.get("agent_role")
        parent = raw.get("parent_session_id")
        if (UUID_PATTERN.fullmatch(event_id) is None
                or event_type not in EVENT_TYPES or raw["agent_type"] not in AGENT_TYPES
                or raw["client_type"] != CLIENT_TYPE
                or (parent is not None and UUID_PATTERN.fullmatch(parent) is None)
                or (role is not None and len(role) * 4 > MAX_AGENT_ROLE_BYTES)
                or stamp < self.oldest or stamp > self.newest
                or _UTC_STAMP.fullmatch(stamp) is None):
            return None
        rule = TYPE_RULES.get(event_type)
        if rule is not None:
            try:
                rule(raw)
            except InvalidEvent:
                return None
        event: Event = _new_tuple(
            Event, (event_id.lower(), self.session_key, event_type, stamp, raw, body))
        return event


def validate_batch(events: Sequence[object], now: datetime, bodies: Sequence[str] | None = None,
                   ) -> tuple[list[Event], list[tuple[int, str]]]:
    """Each event validated as validate_event(event, now) would: the accepted Events, and
    ``(index, error)`` for each rejected one. ``bodies``: the events' JSON texts, kept on
    the Events the fast path accepts."""
    oldest, newest = utc_text(now - MAX_AGE), utc_text(now + MAX_SKEW_AHEAD)
    accepted: list[Event] = []
    rejected: list[tuple[int, str]] = []
    fast: Callable[[object, str | None], Event | None] = _FastPath(oldest, newest).accept
    append = accepted.append
    texts: Sequence[str | None] = bodies if bodies is not None else [None] * len(events)
    for index, (raw, body) in enumerate(zip(events, texts, strict=True)):
        event = fast(raw, body)
        if event is None:
            try:
                event = validate_event(raw, now)
            except InvalidEvent as invalid:
                rejected.append((index, str(invalid)))
                continue
        append(event)
    return accepted, rejected
