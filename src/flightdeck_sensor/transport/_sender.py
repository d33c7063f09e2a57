"""The sender: takes events off the queue, batches, posts, retries, spools.

It runs in one daemon thread (``flightdeck-sensor-sender``) started on the
first event, or inline on the exiting thread when no thread is running at
exit (Python 3.12 refuses to start threads during interpreter shutdown).
Every wait is bounded; once the transport closes, every wait ends at its
deadline. While it has nothing to send it beats: a session that posted nothing
for a heartbeat interval posts its id to the heartbeat endpoint, whose answer
carries the control plane's directives like an event answer.
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
from ._answers import UNAUTHORIZED, Answers, Stats, is_retryable
from ._http import REQUEST_DEADLINE
from ._queue import EventQueue, estimate_size
from ._spool import Claim, Spool
from ._wire import complete_event, encode_default, prepare_events, splice_shapes

if TYPE_CHECKING:
    from ._http import Answer, IngestClient
    from ._tee import Tee

logger = logging.getLogger("flightdeck_sensor")

BATCH_EVENTS = 500
ENCODE_CHUNK = 50  # events per JSON encoder call (see Sender._batch_body)
BATCH_BYTES = 1024 * 1024  # before compression; Flightdeck reads at most 1 MiB
BATCH_WINDOW = 1.0  # seconds: the sender's tick; an event waits at most this long
OVERFLOW_FRACTION = 0.5  # during an outage, spool what exceeds half the queue
BATCH_PATH, SINGLE_PATH = "/v1/events/batch", "/v1/events"
HEARTBEAT_PATH = "/v1/heartbeat"
# A heartbeat is best effort: it gives up sooner than an event request, since
# events that come in meanwhile wait for the connection it holds.
HEARTBEAT_DEADLINE = 2.0
# ASCII output and no cycle check: cheaper than the defaults. Events are
# acyclic (content is copied by _content.capped_content); a cycle would end
# in RecursionError, caught like any unserializable value.
_ENCODER = json.JSONEncoder(separators=(",", ":"), default=encode_default, check_circular=False)
_UNSERIALIZABLE = (ValueError, TypeError, RecursionError)

Event = dict[str, Any]


class Sender:
    def __init__(self, config: Config, queue: EventQueue, spool: Spool | None,
                 on_envelope: Callable[[dict[str, Any]], None] | None,
                 session_id: Callable[[], str | None] | None = None,
                 tee: Tee | None = None, url: str | None = None) -> None:
        """``session_id``: the session to keep alive with heartbeats (None while
        no session started); without it the sender sends none. ``tee``: with
        two destinations, what fills ``queue`` from the events submitted.
        ``url``: the destination, when it is not ``config.server``."""
        self._config = config
        self._queue = queue
        self._spool = spool
        self._tee = tee
        self.stats = Stats()
        self._answers = self._make_answers(url or config.server, on_envelope)
        self._client: IngestClient | None = None
        self._carry: Event | None = None  # the event that did not fit the last batch
        self._in_flight: list[Event] = []
        # The next batch, taken and encoded while the server worked on the last
        # one (only when a full batch was already waiting): see _prefetch.
        self._next: list[Event] = []
        self._next_body: bytes | None = None
        self._claim: Claim | None = None
        self._replay_due = True
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
        self._session_id = session_id
        self._beat_every = config.heartbeat_interval if session_id is not None else 0.0
        # Reset by every POST. The thread starts with the session's first event
        # waiting, and no heartbeat goes while an event waits: that one goes first.
        self._last_post = time.monotonic()
        # Guards "a heartbeat is on the connection", so that the closer aborts
        # only a heartbeat, never the request after it.
        self._beat_lock = threading.RLock()  # re-entrant: a SIGTERM handler may close
        self._beating = False

    @property
    def queue(self) -> EventQueue:
        return self._queue

    def _make_answers(self, url: str,
                      on_envelope: Callable[[dict[str, Any]], None] | None) -> Answers:
        return Answers(url, self.stats, on_envelope)

    def _pump(self) -> None:
        """With two destinations: move what was submitted into this one's queue
        (and the other's), whichever sender comes first."""
        if self._tee is not None:
            self._tee.pump()

    # -- signals from other threads ------------------------------------------
    def wake(self) -> None:
        if self._wake.locked():
            with contextlib.suppress(RuntimeError):  # another submitter released it first
                self._wake.release()

    def begin_close(self, deadline: float) -> None:
        self.deadline = deadline
        with self._beat_lock:
            self._closing.set()
            if self._beating and self._client is not None:
                # A heartbeat left waiting would hold the connection the last
                # events need; its answer matters no more to a closing process.
                self._client.abort()
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
                and self._claim is None and (self._tee is None or not self._tee.waiting()))

    def leftovers(self) -> list[Event]:
        """Everything not yet delivered (for the closer); the sender stops touching it."""
        if self._tee is not None:
            self._tee.pump(wait=True)
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
        self._pump()
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
        self._closing.wait(self._answers.retry_delay())
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
        docs/decisions.md). With nothing waiting, it sends the heartbeat
        when one is due."""
        tick = time.monotonic() + BATCH_WINDOW
        while not (self._closing.is_set() or self.flush_wanted or self.abandoned):
            self._pump()
            waiting = len(self._queue)
            if waiting >= BATCH_EVENTS or self._queue.bytes >= BATCH_BYTES:
                return
            now = time.monotonic()
            left = tick - now
            if left <= 0:
                if waiting:
                    return
                tick, left = now + BATCH_WINDOW, BATCH_WINDOW  # idle: sleep on
            if not waiting and self._carry is None and self._beat_every:
                beat_in = self._last_post + self._beat_every - now
                if beat_in <= 0:
                    self._heartbeat()
                    continue
                left = min(left, beat_in)
            self._wake.acquire(timeout=left)

    def _heartbeat(self) -> None:
        """POST the session's id to the heartbeat endpoint, once; hand the
        answer's envelope on. Best effort: a failure is counted, never retried
        nor spooled, and leaves the server's state (outage, backoff, pause,
        token refused) to the event requests. A server without the endpoint
        gets no more heartbeats from this process."""
        session_id = self._session_id() if self._session_id is not None else None
        if session_id is None or self.stats.server_state == "unauthorized":
            self._last_post = time.monotonic()  # look again an interval later
            return
        body = _ENCODER.encode({"session_id": session_id}).encode()
        with self._beat_lock:
            if self._closing.is_set():
                return
            self._beating = True
        try:
            answer = self._exchange(HEARTBEAT_PATH, body, deadline=HEARTBEAT_DEADLINE)
        finally:
            with self._beat_lock:
                self._beating = False
        # From its end: a server that lets heartbeats time out gets one an interval.
        self._last_post = time.monotonic()
        if not self._answers.heartbeat_answered(answer):
            self._beat_every = 0.0

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
        lacks spliced in as text made once per shape (_wire.Shape); events
        that cannot be serialized are dropped, counted.

        Encoded ENCODE_CHUNK events per call: one call for many events is
        cheaper than one per event, but holds the GIL throughout (the C
        encoder never lets it go), and a user's thread back from the network
        waits for it (docs/decisions.md, "The sender never holds the GIL")."""
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
            self._pause(self._answers.retry_delay())
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
            self._answers.reject_unsent("too_large", "an event is larger than 1 MiB")
            return []
        if not events:
            return []
        answer = self._post(BATCH_PATH, body, self._prefetch if prefetch else None)
        status = answer.status
        if 200 <= status < 300:
            self._answers.accept_batch(events, answer)
            return []
        if status in (404, 405):
            self.stats.mode = "single"
            logger.info("flightdeck-sensor: the server has no batch endpoint; "
                        "sending events one by one")
            return self._send_singly(events)
        if is_retryable(answer) or status in UNAUTHORIZED:
            return events
        if len(events) > 1:  # 413 or a rejection without per-event detail: halve
            middle = len(events) // 2
            return self._send(events[:middle]) + self._send(events[middle:])
        self._answers.reject(1, status, answer)
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
                self._answers.read_envelope(answer.body)
            elif status in (404, 405):
                self._answers.stop_sending(status, "has no ingest endpoint at this URL")
                return events[position:]
            elif is_retryable(answer) or status in UNAUTHORIZED:
                return events[position:]
            else:
                self._answers.reject(1, status, answer)
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
        """POST events; ``meanwhile`` runs after the request is sent, before
        the answer is read. The answer sets the server's state."""
        answer = self._exchange(path, body, meanwhile)
        if self._answers.note(answer):
            self._replay_due = self._spool is not None
        return answer

    def _exchange(self, path: str, body: bytes, meanwhile: Callable[[], None] | None = None,
                  deadline: float = REQUEST_DEADLINE) -> Answer:
        """POST ``body`` on the keep-alive connection and read the answer."""
        if self._client is None:
            self._connect()
        client = self._client
        assert client is not None
        left = deadline
        if self.deadline is not None:  # closing: no request outlives the exit budget
            left = min(left, self.deadline - time.monotonic())
        self._last_post = time.monotonic()
        failed = client.begin(path, body, deadline=left)
        try:
            if failed is None and meanwhile is not None:
                meanwhile()
        finally:
            answer = failed or client.finish()  # read even if meanwhile raised
        return answer

    def _pause(self, seconds: float) -> None:
        """Wait, interruptible by close; meanwhile move queue overflow to the spool."""
        end = time.monotonic() + seconds
        while not self._closing.is_set():
            self._pump()  # the other destination is not held back by this one's pause
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
