"""The wire format of an event: its id, its RFC 3339 timestamp, and the
session's identity fields and defaults spliced into its JSON by the sender.

A pending event (made by ``Session.stamp`` on the caller's thread) names its
session's identity under :data:`COMMON_KEY`; the sender gives it an id and a
timestamp and splices the identity and defaults in (``prepare_events``,
``splice_shapes``), or completes it as a dict (``complete_event``).
"""

from __future__ import annotations

import binascii
import json
import os
import struct
import time
from collections import deque
from collections.abc import Iterable
from typing import Any

from .._frameworks import current_framework

_last_second: tuple[int, str] = (-1, "")


def utc_timestamp(seconds: float) -> str:
    """RFC 3339 UTC with offset of ``seconds`` since the epoch, to the microsecond
    (what ``datetime.isoformat`` gives, for less work: the sender formats every
    event, and events come many to a second; docs/decisions.md)."""
    global _last_second
    whole = int(seconds)
    second, prefix = _last_second  # one tuple: threads never pair a second with another's text
    if second != whole:
        prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
        _last_second = (whole, prefix)
    # %d truncates the float (no round() call, no carry into the next second):
    # within a microsecond of datetime's rounding, for less work.
    return "%s.%06d+00:00" % (prefix, (seconds - whole) * 1_000_000)  # noqa: UP031


_ID_BATCH = 64
# Ids are made 64 at a time, each step one operation for all of them: the
# random bytes' version (4) and variant (10) bits set by two big-integer
# operations, the hex digits cut into each id's five groups by one struct
# unpack and laid out by one format (half the work of slicing each id).
_ID_KEEP = int.from_bytes(bytes.fromhex("ffffffffffff0fff3fffffffffffffff") * _ID_BATCH, "big")
_ID_SET = int.from_bytes(bytes.fromhex("00000000000040008000000000000000") * _ID_BATCH, "big")
_ID_GROUPS = struct.Struct("8s4s4s4s12s" * _ID_BATCH).unpack
_ID_LAYOUT = b"%s-%s-%s-%s-%s," * _ID_BATCH
_ready_ids: deque[str] = deque()


def _make_ids() -> list[str]:
    """``_ID_BATCH`` random (version 4) UUIDs from one os.urandom read."""
    size = 16 * _ID_BATCH
    bits = (int.from_bytes(os.urandom(size), "big") & _ID_KEEP) | _ID_SET
    groups = _ID_GROUPS(binascii.hexlify(bits.to_bytes(size, "big")))
    return (_ID_LAYOUT % groups).decode().split(",")[:-1]


def new_event_id() -> str:
    """A random (version 4) UUID, like ``uuid.uuid4()`` for much less work
    (docs/decisions.md): ids are made 64 at a time.
    ``deque.popleft`` is atomic, so threads (and a GC finalizer interrupting
    one) never get the same id; racing refills only add fresh ones."""
    while True:
        try:
            return _ready_ids.popleft()
        except IndexError:
            _ready_ids.extend(_make_ids())


def _forget_ready_ids() -> None:
    """A forked child must not hand out ids its parent may also use."""
    _ready_ids.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_ready_ids)


# Fields every event carries with a default, when the event's own fields
# do not set them (docs/protocol.md: "null / 0 where not applicable"); "framework"
# too, whose value the sender reads for each batch.
_DEFAULTS: dict[str, Any] = {
    "framework": None, "model": None, "tokens_input": None, "tokens_output": None,
    "tokens_total": None, "tokens_cache_read": None, "tokens_cache_creation": None,
    "latency_ms": None, "has_content": False, "content": None}
_DEFAULT_KEYS = frozenset(_DEFAULTS)
_KEY_ORDERS_KEPT = 64  # per identity: see Identity.shape_of

# The key under which a pending event (see ``Session.stamp``) carries its
# session's identity, as a nonce, until the sender completes or encodes it.
COMMON_KEY = "_flightdeck_common"
# The key under which a terminal event of a call traced to OTLP carries what
# its span needs beyond the event (interceptors._call.TracedCall); the OTLP
# sender reads it, and it never reaches Flightdeck (transport._tee).
OTEL_KEY = "_otel"

# Every identity made in this process, by the nonces that name it (its own and
# its shapes'): a handful (one identity per session, sessions are made by
# init() and fork(), and a few shapes each), kept so that a pending event of a
# session since replaced still finds its fields.
_IDENTITIES: dict[str, Identity] = {}


class Identity:
    """A session's identity fields (the same in each of its events), with their
    JSON text, made once: the sender splices the text into each encoded event
    instead of copying and encoding eleven fields per event (``Sender._batch_body``).

    A pending event names its identity by ``nonce``, a string, not by the
    object: a dict holding only strings and numbers (a ``pre_call``) is not
    tracked by the garbage collector, so however long it waits in the queue
    (seconds in normal operation, minutes in an outage) it is never promoted
    into the oldest generation, whose growth sets off full collections of the
    user's heap. (A ``post_call`` nests ``provider_metadata`` and stays tracked.)
    """

    __slots__ = ("_by_missing", "by_keys", "fields", "nonce", "text")

    def __init__(self, fields: dict[str, Any]) -> None:
        self.fields = fields
        self.text = json.dumps(fields, separators=(",", ":"))[1:-1]
        # A random nonce names this identity in a pending event (and each of its
        # shapes in the encoder's output: random, so no content can forge the
        # text that is replaced).
        self.nonce = os.urandom(12).hex()
        # Shapes by the defaults their events lack, and by the events' keys in
        # order (events made by one piece of code have the same keys in the
        # same order: a tuple of them is the cheapest key that tells the shape).
        self._by_missing: dict[frozenset[str], Shape] = {}
        self.by_keys: dict[tuple[str, ...], Shape] = {}
        _IDENTITIES[self.nonce] = self

    def shape_of(self, event: dict[str, Any], keys: tuple[str, ...]) -> Shape | None:
        """The shape of ``event`` (its ``keys``), or None when the event sets an
        identity field itself. (``prepare_events`` first looks in ``by_keys``.)"""
        if not event.keys().isdisjoint(self.fields):
            return None
        missing = _DEFAULT_KEYS.difference(event)
        shape = self._by_missing.get(missing)
        if shape is None:
            shape = self._by_missing[missing] = Shape(self, missing)
            _IDENTITIES[shape.nonce] = self
        if len(self.by_keys) < _KEY_ORDERS_KEPT:  # bounded: events a user makes may vary
            self.by_keys[keys] = shape
        return shape


class Shape:
    """An identity and the defaults its events of one shape lack: what the
    sender splices in for them, as one text (``text``), in place of the
    placeholder the encoder writes for the event's ``COMMON_KEY`` key.

    The defaults are spliced, not set in each event: setting five to ten keys
    per event and encoding them was a large share of the sender's work for
    an event (docs/decisions.md, "Defaults are spliced"). Events of a kind
    lack the same defaults, so a session has a handful of shapes."""

    __slots__ = ("_text", "identity", "missing", "nonce", "placeholder")

    def __init__(self, identity: Identity, missing: frozenset[str]) -> None:
        self.identity = identity
        self.missing = tuple(key for key in _DEFAULTS if key in missing)
        self.nonce = os.urandom(12).hex()
        self.placeholder = f'"{COMMON_KEY}":"{self.nonce}"'
        self._text: tuple[str | None, str] | None = None

    def text(self, framework: str | None) -> str:
        """The identity's fields and the missing defaults, as JSON members."""
        made = self._text
        if made is None or made[0] != framework:
            defaults = json.dumps(_defaults(self.missing, framework), separators=(",", ":"))[1:-1]
            made = self._text = (framework, ",".join(filter(None, (self.identity.text, defaults))))
        return made[1]


def prepare_events(events: list[dict[str, Any]]) -> set[Shape]:
    """Give each pending event its id (one already set is kept), its RFC 3339
    time and its shape (the defaults it lacks), in place, on the sender thread;
    return the shapes whose text the encoder's output needs spliced in (see
    :func:`splice_shapes`). Idempotent, so a retried batch keeps its ids.
    One loop for the batch, not a function call per event: the sender runs it
    for every event it ships."""
    shapes = set()
    for event in events:
        stamp = event.get("timestamp")
        if type(stamp) is float:
            event["timestamp"] = utc_timestamp(stamp)
        identity = _IDENTITIES.get(event.get(COMMON_KEY))  # type: ignore[arg-type]
        if identity is None:
            continue
        if "id" not in event:
            event["id"] = new_event_id()
        keys = tuple(event)
        shape = identity.by_keys.get(keys) or identity.shape_of(event, keys)
        if shape is not None:
            event[COMMON_KEY] = shape.nonce
            shapes.add(shape)
        else:
            # The event sets an identity field itself: completed here (its own
            # value wins), never spliced in as a second copy of that key.
            _complete_in_place(event, identity)
    return shapes


def _complete_in_place(event: dict[str, Any], identity: Identity) -> None:
    """Give ``event`` its identity fields and defaults, where it lacks them."""
    for key, value in identity.fields.items():
        event.setdefault(key, value)
    event.update(_defaults(_DEFAULT_KEYS.difference(event), current_framework()))
    del event[COMMON_KEY]


def _defaults(keys: Iterable[str], framework: str | None) -> dict[str, Any]:
    """The default values of ``keys``: "framework"'s is the framework loaded."""
    return {key: framework if key == "framework" else _DEFAULTS[key] for key in keys}


def complete_event(event: dict[str, Any]) -> dict[str, Any]:
    """The whole wire event as a dict (for the spool and single-event sends): a
    new dict for a pending event, the event itself for a complete one."""
    identity = _IDENTITIES.get(event.get(COMMON_KEY))  # type: ignore[arg-type]
    if identity is None:
        return event
    prepare_events([event])
    if COMMON_KEY not in event:
        return event
    whole = dict(event)
    _complete_in_place(whole, identity)
    return whole


def identity_fields(event: dict[str, Any]) -> dict[str, Any]:
    """The session's identity fields of ``event``: its identity's for a pending
    event, the event itself for a complete one (they are in it)."""
    identity = _IDENTITIES.get(event.get(COMMON_KEY))  # type: ignore[arg-type]
    return identity.fields if identity is not None else event


def encode_default(value: Any) -> Any:
    """``default`` of the sender's JSON encoder: anything unserializable as its
    ``str``. (A pending event's ``COMMON_KEY`` nonce is a string already, so its
    key and value are written as its shape's ``placeholder``.)"""
    return str(value)


def splice_shapes(text: str, shapes: Iterable[Shape]) -> str:
    """Replace each shape's placeholder in encoded JSON with its fields."""
    framework = current_framework()
    for shape in shapes:
        text = text.replace(shape.placeholder, shape.text(framework))
    return text
