"""Two destinations (``FLIGHTDECK_EXPORT=both``): the events submitted go to one
queue, as with one destination (the caller's thread does the same work), and
each destination's sender moves them into the two destinations' own queues
when it looks for work. A destination that is down, backing off or slow holds
only its own queue back: the other's sender keeps moving and delivering.

Flightdeck gets every event, without the OTLP key; the OTLP destination gets
only the events that make a span, each the original (the Flightdeck copy is
the one the Flightdeck sender completes in place).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from ._queue import EventQueue
from ._wire import OTEL_KEY


class Tee:
    def __init__(self, source: EventQueue, flightdeck: EventQueue, otlp: EventQueue,
                 batch: int) -> None:
        self._source = source
        self._flightdeck = flightdeck
        self._otlp = otlp
        self._batch = batch
        self._lock = threading.Lock()
        # The senders' wake-ups: a queue that reaches a batch wakes its sender.
        self.wake_flightdeck: Callable[[], None] = _nothing
        self.wake_otlp: Callable[[], None] = _nothing

    def waiting(self) -> int:
        return len(self._source)

    def pump(self, wait: bool = False) -> None:
        """Move every submitted event on; another thread already doing it is
        left to it (``wait``: the closer, which must find them moved)."""
        if not self._lock.acquire(blocking=wait):
            return
        try:
            source, flightdeck, otlp = self._source, self._flightdeck, self._otlp
            moved = False
            while (event := source.pop()) is not None:
                moved = True
                if OTEL_KEY in event:
                    otlp.put(event)
                    event = {key: value for key, value in event.items() if key != OTEL_KEY}
                flightdeck.put(event)
        finally:
            self._lock.release()
        if moved:
            if len(flightdeck) >= self._batch:
                self.wake_flightdeck()
            if len(otlp) >= self._batch:
                self.wake_otlp()


def _nothing() -> None:
    return None
