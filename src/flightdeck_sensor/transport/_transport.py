"""PLACEHOLDER: replaced by the delivery work (issue 3). Keeps events in memory."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from .._config import Config


class Transport:
    def __init__(self, config: Config,
                 on_envelope: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.config = config
        self.on_envelope = on_envelope
        self.events: deque[dict[str, Any]] = deque(maxlen=config.max_queue_events)
        self._lock = threading.Lock()

    def submit(self, event: dict[str, Any]) -> None:
        self.events.append(event)

    def flush(self, timeout: float) -> bool:
        return True

    def close(self, timeout: float) -> None:
        pass

    def status(self) -> dict[str, Any]:
        return {"queued": len(self.events)}

    def after_fork_in_child(self) -> None:
        self.events.clear()
