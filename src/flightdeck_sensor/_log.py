"""Logging of logger ``flightdeck_sensor``: the application's logging as usual, plus
stderr at FLIGHTDECK_LOG_LEVEL when that variable is set.

An operator sets FLIGHTDECK_LOG_LEVEL=INFO to see the sensor's lines in a cron
job's log without touching the code. Our stderr handler stays on our logger
with propagation kept, and skips each line that a handler of the application
already prints to the terminal (a stream handler on stdout/stderr up the
propagation chain that accepts the record), so nothing is printed twice.
"""

from __future__ import annotations

import logging
import sys
import time

from ._config import Config

LOGGER_NAME = "flightdeck_sensor"
_FORMAT = "%(asctime)s flightdeck_sensor %(levelname)s %(message)s"
class Throttle:
    """At most one log line per ``interval`` seconds; the lines it holds back
    are counted, for the next line to mention."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.held_back = 0
        self._last: float | None = None

    def allow(self) -> bool:
        now = time.monotonic()
        if self._last is not None and now - self._last < self.interval:
            self.held_back += 1
            return False
        self._last = now
        return True

    def take_held_back(self) -> int:
        count, self.held_back = self.held_back, 0
        return count


class StderrUnlessShown(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to the current ``sys.stderr`` unless the application prints the record."""

    def __init__(self, level: int) -> None:
        super().__init__(sys.stderr)
        self.setLevel(level)
        self.setFormatter(logging.Formatter(_FORMAT))

    def emit(self, record: logging.LogRecord) -> None:
        if _printed_by_application(record, self):
            return
        self.stream = sys.stderr  # follow redirections made after we were installed
        super().emit(record)


def configure_logging(config: Config) -> None:
    """Apply FLIGHTDECK_LOG_LEVEL (idempotent); without it, leave logging alone."""
    if config.log_level is None:
        return
    logger = logging.getLogger(LOGGER_NAME)
    logger.setLevel(config.log_level)
    for handler in logger.handlers:
        if isinstance(handler, StderrUnlessShown):
            handler.setLevel(config.log_level)
            return
    logger.addHandler(StderrUnlessShown(config.log_level))


def _printed_by_application(record: logging.LogRecord, ours: logging.Handler) -> bool:
    terminals = {id(s) for s in (sys.stderr, sys.stdout, sys.__stderr__, sys.__stdout__)
                 if s is not None}
    logger: logging.Logger | None = logging.getLogger(record.name)
    while logger is not None:
        for handler in logger.handlers:
            if (handler is not ours
                    and isinstance(handler, logging.StreamHandler)
                    and not isinstance(handler, logging.FileHandler)
                    and id(handler.stream) in terminals
                    and record.levelno >= handler.level
                    and handler.filter(record)):
                return True
        logger = logger.parent if logger.propagate else None
    return False
