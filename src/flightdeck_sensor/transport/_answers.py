"""What the server's answers mean to the sender: the counters and server
state they set, the warnings they give (sanitized, rate-limited), the backoff
they call for, and the defensive reading of envelopes, rejections and
Retry-After. Anything a server sends is untrusted: bounded and printable."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .._log import Throttle
from .._printable import printable
from .._url import redact_url

if TYPE_CHECKING:
    from ._http import Answer

logger = logging.getLogger("flightdeck_sensor")

BACKOFF_FIRST, BACKOFF_MAX = 0.5, 30.0
RETRY_AFTER_MAX, RETRY_AFTER_DEFAULT = 60.0, 60.0
# Warnings about the server, at most one per interval: a flapping server or a
# stream of rejections gives one line, not one per request.
OUTAGE_WARNING_INTERVAL = 300.0
REJECTION_WARNING_INTERVAL = 60.0
TRANSIENT = frozenset((0, 408, 429))
UNAUTHORIZED = frozenset((401, 403))


class Stats:
    """The sender's counters, read by ``Transport.status()``."""

    def __init__(self) -> None:
        self.sent = 0
        self.spooled = 0
        self.internal_errors = 0  # bugs or inputs the sender survived
        self.retries = 0
        self.dropped: dict[str, int] = {}
        self.last_error: str | None = None
        self.mode = "batch"  # batch | single
        self.server_state = "unknown"  # ok | unreachable | paused | unauthorized
        self.heartbeats = 0  # answered with an envelope
        self.heartbeats_failed = 0  # no answer, an error status, or not an envelope

    def drop(self, reason: str, count: int = 1) -> None:
        if count:
            self.dropped[reason] = self.dropped.get(reason, 0) + count



def is_retryable(answer: Answer) -> bool:
    return answer.status in TRANSIENT or answer.status >= 500 or 300 <= answer.status < 400


class Answers:
    """Reads the server's answers for one sender: sets its ``stats``, warns,
    keeps the backoff, and hands each envelope to ``on_envelope``."""

    def __init__(self, server: str, stats: Stats,
                 on_envelope: Callable[[dict[str, Any]], None] | None) -> None:
        self._server = server
        self.stats = stats
        self._on_envelope = on_envelope
        self._backoff = BACKOFF_FIRST
        self._pause_for: float | None = None
        self._outage = False
        self._outage_warned = False  # this outage's warning was logged (so is its end)
        self._outage_warnings = Throttle(OUTAGE_WARNING_INTERVAL)
        self._rejection_warnings = Throttle(REJECTION_WARNING_INTERVAL)

    def note(self, answer: Answer) -> bool:
        """Take in what ``answer`` says of the server; True when it ends an
        outage (the spool is worth another try)."""
        status = answer.status
        recovered = False
        if status in UNAUTHORIZED:
            self.stop_sending(status, "refused the token")
        elif is_retryable(answer):
            self.stats.last_error = printable(answer.error or f"HTTP {status}")
            if status == 429:
                self.stats.server_state = "paused"
                self._pause_for = retry_after_seconds(answer.retry_after)
            elif not self._outage:
                self._outage = True
                self.stats.server_state = "unreachable"
                self._warn_outage()
        else:
            if self._outage:
                if self._outage_warned:
                    logger.info("flightdeck-sensor delivery to %s recovered",
                                shown(self._server))
                recovered = True
            self._outage = self._outage_warned = False
            self._backoff = BACKOFF_FIRST
            if self.stats.server_state != "unauthorized":
                self.stats.server_state = "ok"
        return recovered

    def _warn_outage(self) -> None:
        """One WARNING per outage, and for a flapping server at most one per
        interval (the outages in between are counted in the next one)."""
        if not self._outage_warnings.allow():
            return
        self._outage_warned = True
        also = self._outage_warnings.take_held_back()
        logger.warning("flightdeck-sensor cannot deliver events to %s (%s); "
                       "retrying in the background, events are kept%s",
                       shown(self._server), self.stats.last_error,
                       f" ({also} more outages since the last warning)" if also else "")

    def retry_delay(self) -> float:
        """The backoff's next delay (doubling from BACKOFF_FIRST to BACKOFF_MAX,
        with jitter); a Retry-After can lengthen it, never shorten it: a server
        answering 429 with ``Retry-After: 0`` (or a date in the past) would
        otherwise have the sender retry in a tight loop."""
        import random

        delay = self._backoff * random.uniform(0.5, 1.0)
        self._backoff = min(self._backoff * 2, BACKOFF_MAX)
        asked, self._pause_for = self._pause_for, None
        return delay if asked is None else max(asked, delay)

    def stop_sending(self, status: int, what: str) -> None:
        if self.stats.server_state == "unauthorized":
            return
        self.stats.server_state = "unauthorized"
        self.stats.last_error = f"HTTP {status}"
        logger.error("flightdeck-sensor: %s %s (HTTP %d); sending stopped for this process, "
                     "events are kept in the spool", shown(self._server), what, status)

    def accept_batch(self, events: list[Any], answer: Answer) -> None:
        envelope = self.read_envelope(answer.body)
        rejected = rejections(envelope, len(events))
        if rejected:
            messages = list(dict.fromkeys(rejected.values()))[:3]
            self._warn_dropped(f"the server rejected {len(rejected)} event(s): "
                               + "; ".join(messages))
        self.stats.drop("rejected", len(rejected))
        self.stats.sent += len(events) - len(rejected)

    def reject(self, count: int, status: int, answer: Answer) -> None:
        self.stats.drop("too_large" if status == 413 else "rejected", count)
        message = error_message(answer.body) or f"HTTP {status}"
        self.stats.last_error = f"HTTP {status}: {message}"
        self._warn_dropped(f"the server rejected an event (HTTP {status}): {message}")

    def reject_unsent(self, reason: str, message: str) -> None:
        self.stats.drop(reason)
        self._warn_dropped(message)

    def _warn_dropped(self, message: str) -> None:
        """A WARNING for events the server refused, at most one per interval
        (the drops are all counted in get_status()["dropped"])."""
        if self._rejection_warnings.allow():
            also = self._rejection_warnings.take_held_back()
            logger.warning("flightdeck-sensor: %s; dropped and counted%s", message,
                           f" ({also} more such warnings held back)" if also else "")

    def heartbeat_answered(self, answer: Answer) -> bool:
        """Take in a heartbeat's answer: its envelope goes to ``on_envelope``
        like an event answer's; anything else is counted, and changes nothing
        else (no outage, no backoff, no pause: a heartbeat is best effort and
        must not hold events back). False when the server has no heartbeat
        endpoint: the process sends no more."""
        status = answer.status
        if 200 <= status < 300 and self.read_envelope(answer.body) is not None:
            self.stats.heartbeats += 1
            return True
        self.stats.heartbeats_failed += 1
        if status in (404, 405):
            logger.info("flightdeck-sensor: %s has no heartbeat endpoint (HTTP %d); an idle "
                        "agent receives directives only with its next event", shown(self._server),
                        status)
            return False
        logger.debug("flightdeck-sensor heartbeat failed: %s",
                     printable(answer.error or f"HTTP {status}"))
        return True

    def read_envelope(self, body: bytes) -> dict[str, Any] | None:
        envelope = parse_json_object(body)
        if envelope is not None and self._on_envelope is not None:
            try:
                self._on_envelope(envelope)
            except Exception:
                logger.debug("envelope handler failed", exc_info=True)
        return envelope


def shown(url: str) -> str:
    """``url`` for log lines: credentials masked, control characters replaced."""
    return printable(redact_url(url))


def parse_json_object(body: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):  # deep nesting: not an envelope
        return None
    return value if isinstance(value, dict) else None


def rejections(envelope: dict[str, Any] | None, batch_size: int) -> dict[int, str]:
    """``{index: message}`` from a batch envelope's ``rejected`` list, defensively."""
    items = envelope.get("rejected") if envelope else None
    found: dict[int, str] = {}
    if not isinstance(items, list):
        return found
    for item in items:
        if isinstance(item, dict):
            index = item.get("index")
            if isinstance(index, int) and not isinstance(index, bool) and 0 <= index < batch_size:
                found[index] = printable(item.get("error") or "rejected")
    return found


def error_message(body: bytes) -> str:
    envelope = parse_json_object(body)
    message = envelope.get("error") if envelope else None
    return printable(message) if message else ""


def retry_after_seconds(value: str | None) -> float:
    """Seconds to wait from a Retry-After header (seconds or HTTP date), capped."""
    if not value:
        return RETRY_AFTER_DEFAULT
    try:
        seconds = float(value)
    except ValueError:
        from email.utils import parsedate_to_datetime  # costly to import: only when needed

        try:
            seconds = parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError, IndexError):
            return RETRY_AFTER_DEFAULT
    if seconds != seconds:  # NaN
        return RETRY_AFTER_DEFAULT
    return max(0.0, min(seconds, RETRY_AFTER_MAX))
