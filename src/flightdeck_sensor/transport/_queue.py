"""The bounded in-memory event queue between the user's threads and the sender.

``put`` runs on the user's thread for every event: it takes no lock (a
``deque.append`` is atomic), so it can neither block nor deadlock, even from a
garbage-collector finalizer that interrupts a thread inside ``put``.
"""

from __future__ import annotations

from collections import deque
from typing import Any

# Serialized size of an event without content: about 900 bytes of common
# fields; rounded up so the byte bound errs on the safe side.
BASE_EVENT_BYTES = 1024
_CONTAINER_BYTES = 8


def estimate_size(event: dict[str, Any]) -> int:
    """Cheap upper-bound-ish size of the serialized event, without serializing it.

    Only ``content`` (present with prompt capture) can make an event large.
    """
    content = event.get("content")
    if content is None:
        return BASE_EVENT_BYTES
    return BASE_EVENT_BYTES + _content_size(content)


def _content_size(value: Any, depth: int = 0) -> int:
    if isinstance(value, str):
        return len(value) + 2
    if depth > 20:
        return _CONTAINER_BYTES
    if isinstance(value, dict):
        return _CONTAINER_BYTES + sum(len(str(k)) + 4 + _content_size(v, depth + 1)
                                      for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return _CONTAINER_BYTES + sum(_content_size(v, depth + 1) for v in value)
    return _CONTAINER_BYTES


class EventQueue:
    """FIFO of ``(event, estimated_size)`` bounded by count and by bytes.

    Counters are plain integers touched by ``+=`` without a lock: under the GIL
    that sequence has no switch point, and an off-by-one in a soft byte bound
    would be harmless anyway.
    """

    def __init__(self, max_events: int, max_bytes: int) -> None:
        self.max_events = max_events
        self.max_bytes = max_bytes
        self._items: deque[tuple[dict[str, Any], int]] = deque()
        self.bytes = 0
        self.dropped_full = 0  # refused: count bound reached
        self.dropped_bytes = 0  # refused: byte bound reached

    def __len__(self) -> int:
        return len(self._items)

    def put(self, event: dict[str, Any]) -> int:
        """Append ``event``; the number of events now waiting, or 0 (refused and
        counted) when a bound is reached."""
        items = self._items
        waiting = len(items)
        if waiting >= self.max_events:
            self.dropped_full += 1
            return 0
        # estimate_size, its common case written in: this runs for every event.
        size = BASE_EVENT_BYTES if event.get("content") is None else estimate_size(event)
        if self.bytes + size > self.max_bytes and waiting:
            self.dropped_bytes += 1
            return 0
        items.append((event, size))
        self.bytes += size
        return waiting + 1

    def pop(self) -> dict[str, Any] | None:
        """The oldest event, or None when empty."""
        taken = self.pop_with_size()
        return None if taken is None else taken[0]

    def pop_with_size(self) -> tuple[dict[str, Any], int] | None:
        """The oldest event and its size, or None."""
        try:
            event, size = self._items.popleft()
        except IndexError:
            return None
        self.bytes -= size
        return event, size

    def is_above(self, fraction: float) -> bool:
        """Whether the queue holds more than ``fraction`` of either bound."""
        return (len(self._items) > self.max_events * fraction
                or self.bytes > self.max_bytes * fraction)

    def clear(self) -> None:
        self._items.clear()
        self.bytes = 0
