"""The transport: the queue the sensor writes to and the sender that drains it."""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

from .._config import Config
from .._printable import printable
from .._signal_watch import start_with_signals_blocked
from ._http import IngestClient  # noqa: F401 - imported here, not on the sender thread
from ._queue import EventQueue
from ._sender import BATCH_EVENTS, Sender
from ._spool import Spool, spool_dir_for
from ._tee import Tee

logger = logging.getLogger("flightdeck_sensor")

THREAD_NAME = "flightdeck-sensor-sender"
# No exit waits longer than this, whatever it is asked: a budget past
# threading.TIMEOUT_MAX makes join() raise OverflowError, and every event is lost.
CLOSE_TIMEOUT_MAX = 24 * 3600.0


class Transport:
    def __init__(self, config: Config,
                 on_envelope: Callable[[dict[str, Any]], None] | None = None,
                 session_id: Callable[[], str | None] | None = None) -> None:
        """``on_envelope`` gets every envelope the server answers with;
        ``session_id`` gives the session that heartbeats keep alive (None
        while none started); without it there are no heartbeats."""
        self.config = config
        self._on_envelope = on_envelope
        self._session_id = session_id
        self._reset()
        if hasattr(os, "register_at_fork"):
            this = weakref.ref(self)
            os.register_at_fork(before=lambda: _before_fork(this))

    def _reset(self) -> None:
        config = self.config
        self._pid = os.getpid()
        self._closed = False
        self._leftovers_taken = False  # close() has taken what the sender left
        self._dropped_after_close = 0
        self._queue = EventQueue(config.max_queue_events, config.max_queue_bytes)
        self._lanes = self._make_lanes()
        # The first destination's sender and thread: what submit() looks at.
        self._sender = self._lanes[0].sender
        self._spool = self._lanes[0].spool
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def _make_lanes(self) -> list[_Lane]:
        """One lane per destination: Flightdeck, OTLP, or both (fed by a Tee
        from the one queue submit() writes to)."""
        config = self.config
        to_flightdeck = bool(config.server) or not config.to_otlp
        both = to_flightdeck and config.to_otlp
        lanes: list[_Lane] = []
        tee: Tee | None = None
        queues = [self._queue]
        if both:
            queues = [EventQueue(config.max_queue_events, config.max_queue_bytes)
                      for _ in range(2)]
            tee = Tee(self._queue, queues[0], queues[1], BATCH_EVENTS)
        if to_flightdeck:
            spool = (Spool(spool_dir_for(config.server, config.spool_dir))
                     if config.spool_enabled else None)
            lanes.append(_Lane("flightdeck", Sender(config, queues[0], spool, self._on_envelope,
                                                    self._session_id, tee), spool))
        if config.to_otlp:
            from ._otlp_sender import OtlpSender

            spool = (Spool(spool_dir_for(config.otlp_endpoint, config.spool_dir))
                     if config.spool_enabled else None)
            lanes.append(_Lane("otlp", OtlpSender(config, queues[-1], spool, None, None, tee,
                                                  url=config.otlp_endpoint), spool))
        if tee is not None:
            tee.wake_flightdeck, tee.wake_otlp = lanes[0].sender.wake, lanes[1].sender.wake
        return lanes

    # -- the hot path -----------------------------------------------------------
    def submit(self, event: dict[str, Any]) -> None:
        """Queue one event: O(1), never blocks, never raises."""
        try:
            if self._closed:
                self._dropped_after_close += 1
                return
            waiting = self._queue.put(event)
            if self._leftovers_taken:  # passed the check above as close() ran
                self._drop_stranded()
                return
            if waiting >= BATCH_EVENTS:  # else the sender's tick takes it
                self._sender.wake()  # with two destinations, its Tee wakes the other
            if self._thread is None:
                self._start_sender()
        except Exception:
            pass

    def _start_sender(self) -> None:
        if not self._start_lock.acquire(blocking=False):
            return  # another thread is starting it
        try:
            if self._thread is not None or self._closed:
                return
            if getattr(threading, "_SHUTTING_DOWN", False):
                self._send_inline_at_exit()
                return
            for lane in self._lanes[::-1]:  # the first one's thread last: submit() checks it
                if lane.thread is not None:  # started by an attempt that failed after it
                    continue
                name = THREAD_NAME if lane is self._lanes[0] else f"{THREAD_NAME}-{lane.name}"
                thread = threading.Thread(target=lane.sender.run, name=name, daemon=True)
                start_with_signals_blocked(thread)
                lane.thread = thread
            self._thread = self._lanes[0].thread
        except RuntimeError:
            pass  # interpreter shutting down: close() sends inline
        finally:
            self._start_lock.release()

    def _send_inline_at_exit(self) -> None:
        """An event recorded during interpreter exit (an atexit handler calling an
        LLM before the sensor ever started): atexit callbacks registered now never
        run and a new thread would not be joined (or, on 3.12, not start), so
        deliver on this thread, all such events sharing one shutdown budget."""
        deadline = self._sender.deadline
        if deadline is None:
            deadline = time.monotonic() + self.config.shutdown_timeout
        for lane in self._lanes:  # one after the other, all within the one budget
            if lane.sender.deadline is None:
                lane.sender.begin_close(deadline)
            lane.sender.run(replay=False)

    def deliver_soon(self) -> None:
        """Ask the sender to send what is queued now (it does not wait for its tick)."""
        for lane in self._lanes:
            lane.sender.flush_wanted = True
            lane.sender.wake()

    def _sender_running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # -- lifecycle ----------------------------------------------------------------
    def flush(self, timeout: float) -> bool:
        """Wait until everything queued so far is delivered; False on timeout."""
        if not self._sender_running():
            return not len(self._queue)
        end = time.monotonic() + _bounded(timeout, CLOSE_TIMEOUT_MAX)
        return all([lane.sender.wait_idle(max(0.0, end - time.monotonic()))
                    for lane in self._lanes])

    def close(self, timeout: float) -> None:
        """Final flush within ``timeout`` seconds; what is left goes to the spool.
        Each destination has the whole budget, at the same time: one that is
        down does not take the other's time."""
        if self._closed:
            return
        self._closed = True
        deadline = time.monotonic() + _bounded(timeout, CLOSE_TIMEOUT_MAX)
        for lane in self._lanes:
            lane.sender.begin_close(deadline)
        finished = self._finish_lanes(deadline)
        for lane in self._lanes:
            leftovers = lane.sender.leftovers()
            if leftovers:
                lane.sender.to_spool(leftovers, "exit_timeout")
        # A thread that passed submit()'s closed check before close() began can
        # queue its event after the leftovers were taken: nothing would send,
        # spool or count it. What came in meanwhile is spooled here; what comes
        # later, submit() finds the flag and counts (see _drop_stranded).
        self._leftovers_taken = True
        for lane in self._lanes:
            stranded = lane.sender.leftovers()
            if stranded:
                lane.sender.to_spool(stranded, "after_close")
        for lane, done in zip(self._lanes, finished, strict=True):
            if done:
                lane.sender.close_client()
        for lane in self._lanes:
            self._say_where_events_went(lane)

    def _finish_lanes(self, deadline: float) -> list[bool]:
        """Let each sender finish by ``deadline``; whether each did."""
        finished = []
        for lane in self._lanes:
            thread = lane.thread
            if thread is not None and thread.is_alive():
                thread.join(max(0.0, deadline - time.monotonic()))
                finished.append(not thread.is_alive())
            else:
                if not lane.sender.is_idle():
                    lane.sender.run(replay=False)  # inline on this thread; bounded by the deadline
                finished.append(True)
        return finished

    def _say_where_events_went(self, lane: _Lane) -> None:
        """The sensor's last line: a process that ends during an outage says how
        many events wait in the spool, and that the next run sends them."""
        stats = lane.sender.stats
        spool = lane.spool
        if not stats.spooled or spool is None:
            return
        waiting = spool.waiting_from_this_process()
        if not waiting:  # shipped by this process after the server came back
            return
        why = {"unreachable": "server unreachable", "paused": "server asked to wait",
               "unauthorized": "server refused the token"}.get(stats.server_state,
                                                               "not delivered in time")
        what = "spans" if lane.name == "otlp" else "events"
        logger.warning("flightdeck-sensor: %d %s spooled to %s (%s); they will be sent "
                       "by the next run with this %s, or by `flightdeck-sensor spool flush`",
                       waiting, what, printable(spool.directory, 300), why,
                       "endpoint" if lane.name == "otlp" else "server")

    def _drop_stranded(self) -> None:
        """Count as dropped after close the events queued once close() had taken
        its leftovers (no I/O on the user's thread; the queue is otherwise
        empty by then)."""
        while self._queue.pop() is not None:
            self._dropped_after_close += 1

    def status(self) -> dict[str, Any]:
        """The first destination's counters; with OTLP, each destination's under
        ``destinations`` too."""
        status = self._lane_status(self._lanes[0])
        for reason, count in (("queue_full", self._queue.dropped_full),
                              ("queue_bytes_full", self._queue.dropped_bytes),
                              ("after_close", self._dropped_after_close)):
            if count:
                status["dropped"][reason] = status["dropped"].get(reason, 0) + count
        status["queued"] = len(self._queue) + (
            len(self._lanes[0].sender.queue) if len(self._lanes) > 1 else 0)
        if self.config.to_otlp:
            status["destinations"] = {lane.name: self._lane_status(lane) for lane in self._lanes}
        return status

    def _lane_status(self, lane: _Lane) -> dict[str, Any]:
        stats = lane.sender.stats
        dropped = dict(stats.dropped)
        queue = lane.sender.queue
        if queue is not self._queue:  # a destination's own queue, fed by the Tee
            for reason, count in (("queue_full", queue.dropped_full),
                                  ("queue_bytes_full", queue.dropped_bytes)):
                if count:
                    dropped[reason] = dropped.get(reason, 0) + count
        spool = lane.spool
        if spool is not None and spool.dropped_oldest:
            dropped["spool_full"] = spool.dropped_oldest
        return {
            "queued": len(queue),
            "sent": stats.sent,
            "dropped": dropped,
            "spooled": stats.spooled,
            "retries": stats.retries,
            "last_error": stats.last_error,
            "mode": stats.mode,
            "server_state": stats.server_state,
            "sender_errors": stats.internal_errors,
            "heartbeats": stats.heartbeats,
            "heartbeats_failed": stats.heartbeats_failed,
            "spool_quarantined": spool.quarantined if spool is not None else 0,
            "spool_foreign": spool.foreign if spool is not None else 0,
        }

    def wait_until_sender_ready(self, timeout: float) -> None:
        if self._sender_running():
            for lane in self._lanes:
                lane.sender.ready.wait(timeout)

    def after_fork_in_child(self) -> None:
        """The parent ships the inherited events; the child starts afresh."""
        self._reset()


class _Lane:
    """One destination: its sender, its spool, its thread (once started)."""

    __slots__ = ("name", "sender", "spool", "thread")

    def __init__(self, name: str, sender: Sender, spool: Spool | None) -> None:
        self.name = name
        self.sender = sender
        self.spool = spool
        self.thread: threading.Thread | None = None


def _bounded(seconds: float, most: float) -> float:
    """``seconds`` within [0, most]; NaN is 0."""
    return min(seconds, most) if seconds > 0 else 0.0


FORK_WAIT_SECONDS = 5.0  # only a fork in the first moments of the sender ever waits


def _before_fork(transport: weakref.ref[Transport]) -> None:
    live = transport()
    if live is not None and live._pid == os.getpid():
        live.wait_until_sender_ready(FORK_WAIT_SECONDS)

