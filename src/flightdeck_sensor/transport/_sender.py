"""The sender: takes events off the queue, batches, posts, retries, spools.

It runs in one daemon thread (``flightdeck-sensor-sender``) started on the
first event, or inline on the exiting thread when no thread is running at
exit (Python 3.12 refuses to start threads during interpreter shutdown).
Every wait is bounded; once the transport closes, every wait ends at its
deadline.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .._config import Config
from .._log import Throttle
from .._printable import printable
from ._http import REQUEST_DEADLINE
from ._queue import EventQueue, estimate_size
from ._spool import Claim, Spool
from ._wire import complete_event, encode_default, prepare_events, splice_shapes

if TYPE_CHECKING:
    from ._http import Answer, IngestClient

logger = logging.getLogger("flightdeck_sensor")

BATCH_EVENTS = 500
ENCODE_CHUNK = 50  # events per JSON encoder call (see Sender._batch_body)
BATCH_BYTES = 1024 * 1024  # before compression; Flightdeck reads at most 1 MiB
BATCH_WINDOW = 1.0  # seconds: the sender's tick; an event waits at most this long
BACKOFF_FIRST, BACKOFF_MAX = 0.5, 30.0
RETRY_AFTER_MAX, RETRY_AFTER_DEFAULT = 60.0, 60.0
# Warnings about the server, at most one per interval: a flapping server or a
# stream of rejections gives one line, not one per request.
OUTAGE_WARNING_INTERVAL = 300.0
REJECTION_WARNING_INTERVAL = 60.0
OVERFLOW_FRACTION = 0.5  # during an outage, spool what exceeds half the queue
BATCH_PATH, SINGLE_PATH = "/v1/events/batch", "/v1/events"
_TRANSIENT = frozenset((0, 408, 429))
# ASCII output and no cycle check: 15 % cheaper than the defaults. Events are
# acyclic (content is copied by _content.capped_content); a cycle would end
# in RecursionError, caught like any unserializable value.
_ENCODER = json.JSONEncoder(separators=(",", ":"), default=encode_default, check_circular=False)
_UNSERIALIZABLE = (ValueError, TypeError, RecursionError)

Event = dict[str, Any]
_UNAUTHORIZED = frozenset((401, 403))


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

    def drop(self, reason: str, count: int = 1) -> None:
        if count:
            self.dropped[reason] = self.dropped.get(reason, 0) + count


class Sender:
    def __init__(self, config: Config, queue: EventQueue, spool: Spool | None,
                 on_envelope: Callable[[dict[str, Any]], None] | None) -> None:
        self._config = config
        self._queue = queue
        self._spool = spool
        self._on_envelope = on_envelope
        self.stats = Stats()
        self._client: IngestClient | None = None
        self._carry: Event | None = None  # the event that did not fit the last batch
        self._in_flight: list[Event] = []
        # The next batch, taken and encoded while the server worked on the last
        # one (only when a full batch was already waiting): see _prefetch.
        self._next: list[Event] = []
        self._next_body: bytes | None = None
        self._claim: Claim | None = None
        self._replay_due = True
        self._backoff = BACKOFF_FIRST
        self._outage = False
        self._outage_warned = False  # this outage's warning was logged (so is its end)
        self._outage_warnings = Throttle(OUTAGE_WARNING_INTERVAL)
        self._rejection_warnings = Throttle(REJECTION_WARNING_INTERVAL)
        self.deadline: float | None = None  # set when the transport closes
        self.abandoned = False  # the closer took over what is left
        self.flush_wanted = False
        self._closing = threading.Event()
        # Set once the HTTP client is built: fork() waits for it, since a child forked
        # while another thread holds an import's module lock deadlocks on that
        # import (the lock's owner does not exist in the child).
        self.ready = threading.Event()
        self._idle = threading.Condition()
        # Guards the hand-over of undelivered events between the sender and the
        # closer, so that at the deadline each event is kept by exactly one side.
        self._handoff = threading.RLock()  # re-entrant: a SIGTERM handler may close
        # A binary semaphore the sender waits on; submitters release it without
        # ever blocking (Lock.release never blocks, unlike Event.set).
        self._wake = threading.Lock()
        self._wake.acquire()

    # -- signals from other threads ------------------------------------------
    def wake(self) -> None:
        if self._wake.locked():
            with contextlib.suppress(RuntimeError):  # another submitter released it first
                self._wake.release()

    def begin_close(self, deadline: float) -> None:
        self.deadline = deadline
        self._closing.set()
        self.wake()

    def wait_idle(self, timeout: float) -> bool:
        end = time.monotonic() + timeout
        with self._idle:
            while not self.is_idle():
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self.flush_wanted = True
                self.wake()
                self._idle.wait(min(left, 0.1))
        return True

    def is_idle(self) -> bool:
        return (not len(self._queue) and self._carry is None and not self._in_flight
                and not self._next
                and self._claim is None)

    def leftovers(self) -> list[Event]:
        """Everything not yet delivered (for the closer); the sender stops touching it."""
        with self._handoff:
            self.abandoned = True
            events = self._in_flight + self._next
            self._in_flight, self._next, self._next_body = [], [], None
            if self._carry is not None:
                events.append(self._carry)
                self._carry = None
            while (event := self._queue.pop()) is not None:
                events.append(event)
        if self._claim is not None and self._spool is not None:
            self._spool.release(self._claim)
            self._claim = None
        return events

    # -- the loop ---------------------------------------------------------------
    def run(self, replay: bool = True) -> None:
        """Deliver until closed and idle, or abandoned. Never raises, and no
        error ends it early: one bad answer or file must not stop delivery for
        the rest of the process."""
        self._replay_due = replay and self._spool is not None
        try:
            while not self.abandoned:
                try:
                    if self._step():
                        return
                except Exception:
                    if self._survive_internal_error():
                        return
        finally:
            self._notify_if_idle(force=True)

    def _step(self) -> bool:
        """One turn of the loop; True when the sender is done."""
        self._connect()
        if self._replay_due:
            self._replay_spool()
        if self._closing.is_set() and self.is_idle():
            return True
        if not self._next:
            self._wait_for_batch()
        batch, body = self._take_prefetched() if self._next else (self._take_batch(), None)
        if batch:
            self._deliver(batch, body=body)
        self._notify_if_idle()
        return False

    def _survive_internal_error(self) -> bool:
        """Count an error that escaped the loop, set aside what it was working
        on (a claimed spool file is quarantined, the live batch spooled), and
        wait a little before going on. True when the sender should stop."""
        self.stats.internal_errors += 1
        if self.stats.internal_errors == 1:
            logger.warning("flightdeck-sensor sender met an internal error and goes on "
                           "(further errors are counted in get_status()['sender_errors'])")
        logger.debug("flightdeck-sensor sender internal error", exc_info=True)
        try:
            self._set_aside_work()
        except Exception:
            self.stats.internal_errors += 1
        if self._closing.is_set():
            return True  # the closer takes over what is left
        self._closing.wait(self._retry_delay())
        return False

    def _set_aside_work(self) -> None:
        claim, self._claim = self._claim, None
        if claim is not None and self._spool is not None:
            self._spool.quarantine(claim)
        with self._handoff:
            if self.abandoned:
                return
            events = self._in_flight + self._next
            self._in_flight, self._next, self._next_body = [], [], None
        self.to_spool(events, "internal_error")

    def _notify_if_idle(self, force: bool = False) -> None:
        if force or self.is_idle():
            self.flush_wanted = False
            with self._idle:
                self._idle.notify_all()

    def _wait_for_batch(self) -> None:
        """Wait for a full batch, or for the end of a batch window with events
        waiting. A submitter wakes the sender only for a full batch: events
        that arrive while it sleeps wait for its tick, at most one window, so a
        trickle of calls costs the caller no thread wake-up (a woken thread
        waits for the GIL, and a caller that releases it briefly in every
        request, as the SDKs do, starves it meanwhile and runs slower; see
        docs/decisions.md)."""
        tick = time.monotonic() + BATCH_WINDOW
        while not (self._closing.is_set() or self.flush_wanted or self.abandoned):
            waiting = len(self._queue)
            if waiting >= BATCH_EVENTS or self._queue.bytes >= BATCH_BYTES:
                return
            left = tick - time.monotonic()
            if left <= 0:
                if waiting:
                    return
                tick, left = time.monotonic() + BATCH_WINDOW, BATCH_WINDOW  # idle: sleep on
            self._wake.acquire(timeout=left)

    def _take_prefetched(self) -> tuple[list[Event], bytes | None]:
        with self._handoff:
            if self.abandoned:
                return [], None
            batch, body = self._next, self._next_body
            self._in_flight, self._next, self._next_body = batch, [], None
        return batch, body

    def _prefetch(self) -> None:
        """Called while the server works on a batch: when a full batch is
        already waiting (the sender is behind), take and encode it now, so the
        sender's work and the server's overlap instead of alternating."""
        if self._next or (len(self._queue) < BATCH_EVENTS and self._queue.bytes < BATCH_BYTES):
            return
        batch = self._take_batch(hold="next")
        kept, body = self._batch_body(batch)
        with self._handoff:
            if not self.abandoned:
                self._next, self._next_body = kept, body

    def _take_batch(self, hold: str = "in_flight") -> list[Event]:
        """Up to 500 events and about 1 MiB (by the queue's size estimates).
        ``hold``: where the batch is kept until settled, so that the closer
        finds it (``in_flight``, ``next``), or ``none``."""
        batch: list[Event] = []
        with self._handoff:
            if self.abandoned:
                return batch
            if hold == "in_flight":
                self._in_flight = batch
            elif hold == "next":
                self._next = batch
            size = 0
            if self._carry is not None:
                batch.append(self._carry)
                size, self._carry = estimate_size(self._carry), None
            while len(batch) < BATCH_EVENTS:
                taken = self._queue.pop_with_size()
                if taken is None:
                    break
                event, event_size = taken
                if batch and size + event_size > BATCH_BYTES:
                    self._carry = event
                    break
                batch.append(event)
                size += event_size
        return batch

    def _encode_one(self, event: Event) -> bytes | None:
        try:
            return _ENCODER.encode(complete_event(event)).encode()
        except _UNSERIALIZABLE:
            self.stats.drop("unserializable")
            return None

    def _batch_body(self, events: list[Event]) -> tuple[list[Event], bytes]:
        """The batch body, each event's identity fields and the defaults it
        lacks spliced in as text made once per shape (_session.Shape); events
        that cannot be serialized are dropped, counted.

        Encoded ENCODE_CHUNK events per call: one call for many events is about
        twice as fast as one per event, but holds the GIL throughout (the C
        encoder never lets it go), and a user's thread back from the network
        waits for it. A chunk is about half a millisecond."""
        shapes = prepare_events(events)
        kept: list[Event] = []
        parts = []
        for start in range(0, len(events), ENCODE_CHUNK):
            chunk = events[start:start + ENCODE_CHUNK]
            try:
                parts.append(_ENCODER.encode(chunk)[1:-1])
            except _UNSERIALIZABLE:
                chunk = [e for e in chunk if self._encode_one(e) is not None]
                parts.append(_ENCODER.encode(chunk)[1:-1])
            kept += chunk
        text = '{"events":[' + ",".join(part for part in parts if part) + "]}"
        return kept, splice_shapes(text, shapes).encode()

    # -- delivery ---------------------------------------------------------------
    def _deliver(self, events: list[Event], spool_leftovers: bool = True,
                 body: bytes | None = None) -> list[Event]:
        """Send until settled (sent or dropped); on give-up spool (or return) the rest.
        ``body``: the events already encoded (a prefetched batch), for the first try.
        Only the live queue's batches (``spool_leftovers``) prefetch the next one."""
        while events and not self.abandoned:
            if self._may_send():
                events = self._send(events, body, prefetch=spool_leftovers)
                body = None
                if spool_leftovers:
                    with self._handoff:
                        if not self.abandoned:
                            self._in_flight = events
                if not events:
                    break
            if self._closing.is_set() or self.stats.server_state == "unauthorized":
                break
            self.stats.retries += 1
            self._pause(self._retry_delay())
        with self._handoff:
            give_up = bool(events) and not self.abandoned and spool_leftovers
            if not self.abandoned:
                self._in_flight = []
        if give_up:
            self.to_spool(events, "undeliverable")
            events = []
        return events

    def _may_send(self) -> bool:
        state = self.stats.server_state
        if state == "unauthorized" or self._past_deadline():
            return False
        return not (state == "paused" and self._closing.is_set())  # 429: told to wait

    def _past_deadline(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline

    def _send(self, events: list[Event], body: bytes | None = None,
              prefetch: bool = False) -> list[Event]:
        """One attempt; returns the events to retry (empty when settled)."""
        if self.stats.mode == "single":
            return self._send_singly(events)
        if body is None:
            events, body = self._batch_body(events)
        if len(body) > BATCH_BYTES:  # the size estimates were short: halve before sending
            if len(events) > 1:
                middle = len(events) // 2
                return self._send(events[:middle]) + self._send(events[middle:])
            self._reject_unsent("too_large", "an event is larger than 1 MiB")
            return []
        if not events:
            return []
        answer = self._post(BATCH_PATH, body, self._prefetch if prefetch else None)
        status = answer.status
        if 200 <= status < 300:
            self._accept_batch(events, answer)
            return []
        if status in (404, 405):
            self.stats.mode = "single"
            logger.info("flightdeck-sensor: the server has no batch endpoint; "
                        "sending events one by one")
            return self._send_singly(events)
        if self._is_retryable(answer) or status in _UNAUTHORIZED:
            return events
        if len(events) > 1:  # 413 or a rejection without per-event detail: halve
            middle = len(events) // 2
            return self._send(events[:middle]) + self._send(events[middle:])
        self._reject(1, status, answer, "too_large" if status == 413 else "rejected")
        return []

    def _send_singly(self, events: list[Event]) -> list[Event]:
        for position, event in enumerate(events):
            body = self._encode_one(event)
            if body is None:
                continue
            answer = self._post(SINGLE_PATH, body)
            status = answer.status
            if 200 <= status < 300:
                self.stats.sent += 1
                self._read_envelope(answer.body)
            elif status in (404, 405):
                self._stop_sending(status, "has no ingest endpoint at this URL")
                return events[position:]
            elif self._is_retryable(answer) or status in _UNAUTHORIZED:
                return events[position:]
            else:
                self._reject(1, status, answer, "too_large" if status == 413 else "rejected")
        return []

    def _connect(self) -> None:
        """Build the HTTP client (once); ``ready`` is set even on failure."""
        if self._client is not None:
            return
        try:
            from ._http import IngestClient

            self._client = IngestClient(self._config.server, self._config.token,
                                        self._config.compression)
        finally:
            self.ready.set()

    def _post(self, path: str, body: bytes,
              meanwhile: Callable[[], None] | None = None) -> Answer:
        """POST ``body``; ``meanwhile`` runs after the request is sent, before
        the answer is read."""
        if self._client is None:
            self._connect()
        client = self._client
        assert client is not None
        left = REQUEST_DEADLINE
        if self.deadline is not None:  # closing: no request outlives the exit budget
            left = self.deadline - time.monotonic()
        failed = client.begin(path, body, deadline=left)
        try:
            if failed is None and meanwhile is not None:
                meanwhile()
        finally:
            answer = failed or client.finish()  # read even if meanwhile raised
        self._note_answer(answer)
        return answer

    def _is_retryable(self, answer: Answer) -> bool:
        return answer.status in _TRANSIENT or answer.status >= 500 or 300 <= answer.status < 400

    # -- what answers do to the sender's state ------------------------------------
    def _note_answer(self, answer: Answer) -> None:
        status = answer.status
        if status in _UNAUTHORIZED:
            self._stop_sending(status, "refused the token")
        elif self._is_retryable(answer):
            self.stats.last_error = printable(answer.error or f"HTTP {status}")
            if status == 429:
                self.stats.server_state = "paused"
                self._pause_for = _retry_after_seconds(answer.retry_after)
            elif not self._outage:
                self._outage = True
                self.stats.server_state = "unreachable"
                self._warn_outage()
        else:
            if self._outage:
                if self._outage_warned:
                    logger.info("flightdeck-sensor delivery to %s recovered",
                                _shown(self._config.server))
                self._replay_due = self._spool is not None
            self._outage = self._outage_warned = False
            self._backoff = BACKOFF_FIRST
            if self.stats.server_state != "unauthorized":
                self.stats.server_state = "ok"

    def _warn_outage(self) -> None:
        """One WARNING per outage, and for a flapping server at most one per
        interval (the outages in between are counted in the next one)."""
        if not self._outage_warnings.allow():
            return
        self._outage_warned = True
        also = self._outage_warnings.take_held_back()
        logger.warning("flightdeck-sensor cannot deliver events to %s (%s); "
                       "retrying in the background, events are kept%s",
                       _shown(self._config.server), self.stats.last_error,
                       f" ({also} more outages since the last warning)" if also else "")

    _pause_for: float | None = None

    def _retry_delay(self) -> float:
        """The backoff's next delay (0.5 s doubling to 30 s, with jitter); a
        Retry-After can lengthen it, never shorten it: a server answering 429
        with ``Retry-After: 0`` (or a date in the past) would otherwise have
        the sender retry in a tight loop."""
        import random

        delay = self._backoff * random.uniform(0.5, 1.0)
        self._backoff = min(self._backoff * 2, BACKOFF_MAX)
        asked, self._pause_for = self._pause_for, None
        return delay if asked is None else max(asked, delay)

    def _pause(self, seconds: float) -> None:
        """Wait, interruptible by close; meanwhile move queue overflow to the spool."""
        end = time.monotonic() + seconds
        while not self._closing.is_set():
            self._spool_overflow()
            left = end - time.monotonic()
            if left <= 0:
                return
            self._closing.wait(min(left, 0.25))

    def _spool_overflow(self) -> None:
        if self._spool is None or not self._spool.enabled:
            return
        while self._queue.is_above(OVERFLOW_FRACTION) and not self.abandoned:
            self.to_spool(self._take_batch(hold="none"), "queue_full")

    def _stop_sending(self, status: int, what: str) -> None:
        if self.stats.server_state == "unauthorized":
            return
        self.stats.server_state = "unauthorized"
        self.stats.last_error = f"HTTP {status}"
        logger.error("flightdeck-sensor: %s %s (HTTP %d); sending stopped for this process, "
                     "events are kept in the spool", _shown(self._config.server), what, status)

    def _accept_batch(self, events: list[Event], answer: Answer) -> None:
        envelope = self._read_envelope(answer.body)
        rejected = _rejections(envelope, len(events))
        if rejected:
            messages = list(dict.fromkeys(rejected.values()))[:3]
            self._warn_dropped(f"the server rejected {len(rejected)} event(s): "
                               + "; ".join(messages))
        self.stats.drop("rejected", len(rejected))
        self.stats.sent += len(events) - len(rejected)

    def _reject(self, count: int, status: int, answer: Answer, reason: str) -> None:
        self.stats.drop(reason, count)
        message = _error_message(answer.body) or f"HTTP {status}"
        self.stats.last_error = f"HTTP {status}: {message}"
        self._warn_dropped(f"the server rejected an event (HTTP {status}): {message}")

    def _reject_unsent(self, reason: str, message: str) -> None:
        self.stats.drop(reason)
        self._warn_dropped(message)

    def _warn_dropped(self, message: str) -> None:
        """A WARNING for events the server refused, at most one per interval
        (the drops are all counted in get_status()["dropped"])."""
        if self._rejection_warnings.allow():
            also = self._rejection_warnings.take_held_back()
            logger.warning("flightdeck-sensor: %s; dropped and counted%s", message,
                           f" ({also} more such warnings held back)" if also else "")

    def _read_envelope(self, body: bytes) -> dict[str, Any] | None:
        envelope = _parse_json_object(body)
        if envelope is not None and self._on_envelope is not None:
            try:
                self._on_envelope(envelope)
            except Exception:
                logger.debug("envelope handler failed", exc_info=True)
        return envelope

    # -- spool --------------------------------------------------------------------
    def to_spool(self, events: list[Event], reason: str) -> None:
        if not events:
            return
        lines = [line for line in map(self._encode_one, events) if line is not None]
        if self._spool is not None and self._spool.write(lines):
            self.stats.spooled += len(lines)
        else:
            self.stats.drop(reason, len(lines))

    def _replay_spool(self) -> None:
        """Ship spooled files first, one claimed file at a time; pause (and resume
        on the next loop) when this process's own queue fills past half."""
        self._replay_due = False
        spool = self._spool
        while spool is not None and not self.abandoned and not self._past_deadline():
            if self._queue.is_above(OVERFLOW_FRACTION):
                self._replay_due = True
                return
            claim = self._claim = spool.claim_next()
            if claim is None:
                return
            self.stats.drop("expired", claim.expired)
            self.stats.drop("spool_unreadable", claim.unreadable)
            for start in range(0, len(claim.events), BATCH_EVENTS):
                chunk = claim.events[start:start + BATCH_EVENTS]
                if self._deliver(chunk, spool_leftovers=False):
                    if self._claim is not None:
                        spool.release(claim)
                    self._claim = None
                    return
            spool.done(claim)
            self._claim = None

    def close_client(self) -> None:
        if self._client is not None:
            self._client.close()


def _shown(url: str) -> str:
    """``url`` without any ``user:password@`` part, for log lines."""
    scheme, sep, rest = url.partition("://")
    host, slash, path = rest.partition("/")
    return printable(f"{scheme}{sep}{host.rpartition('@')[2]}{slash}{path}")


def _parse_json_object(body: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):  # deep nesting: not an envelope
        return None
    return value if isinstance(value, dict) else None


def _rejections(envelope: dict[str, Any] | None, batch_size: int) -> dict[int, str]:
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


def _error_message(body: bytes) -> str:
    envelope = _parse_json_object(body)
    message = envelope.get("error") if envelope else None
    return printable(message) if message else ""


def _retry_after_seconds(value: str | None) -> float:
    """Seconds to wait from a Retry-After header (seconds or HTTP date), capped."""
    if not value:
        return RETRY_AFTER_DEFAULT
    try:
        seconds = float(value)
    except ValueError:
        from email.utils import parsedate_to_datetime  # ~5 ms: only when needed

        try:
            seconds = parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError, IndexError):
            return RETRY_AFTER_DEFAULT
    if seconds != seconds:  # NaN
        return RETRY_AFTER_DEFAULT
    return max(0.0, min(seconds, RETRY_AFTER_MAX))
