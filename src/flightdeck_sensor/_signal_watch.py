"""Makes sure a Python signal handler runs when its signal arrives.

CPython runs a Python handler on the main thread, at the next bytecode after
the signal's C handler flagged it. A signal that lands while the main thread
is on its way into a blocking C call (a lock, a semaphore) is flagged, yet the
call is not interrupted: the handler waits until the call returns, maybe for
ever. A pool worker going to wait for its next task when ``Pool.terminate()``
SIGTERMs it then never dies, and its parent waits for it in ``join()`` for
ever. The sensor's SIGTERM handler is what makes that possible, so the sensor
watches for it: the C handler also writes the signal's number to the wakeup
fd, a watcher thread reads it, and when the handler has not started shortly
after, it sends the signal again to the main thread, which is then
interrupted in its call and runs the handler.

Used only when nobody else owns the wakeup fd (asyncio's
``add_signal_handler`` and trio set their own, which replaces ours).
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable

# How long the main thread has to start the handler on its own before the
# signal is sent to it again, and how many times it is sent again.
GRACE_SECONDS = 0.25
RETRIES = 3

# Signals an application may handle: threads of ours run with them blocked,
# so the kernel gives them to a thread that handles them (Python runs the
# handlers on the main thread only).
APPLICATION_SIGNALS = frozenset(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1",
                                       "SIGUSR2", "SIGALRM", "SIGCHLD", "SIGWINCH")
    if hasattr(signal, name))


def start_with_signals_blocked(thread: threading.Thread) -> None:
    """Start ``thread`` with the application's signals blocked: a new thread
    inherits its creator's mask, which is put back at once."""
    mask = getattr(signal, "pthread_sigmask", None)
    if mask is None:  # Windows
        thread.start()
        return
    previous = mask(signal.SIG_BLOCK, APPLICATION_SIGNALS)
    try:
        thread.start()
    finally:
        mask(signal.SIG_SETMASK, previous)


class Watch:
    """Watches for ``signum`` on behalf of one handler (see the module's doc)."""

    def __init__(self, signum: int, handler: Callable[..., object]) -> None:
        self.signum = signum
        self.handler = handler
        self.started = False  # set by the handler when it runs
        self._resent = 0
        self._fds: tuple[int, int] | None = None

    def start(self) -> bool:
        """From the main thread. False when the wakeup fd is someone else's."""
        if not hasattr(signal, "pthread_kill") or not hasattr(os, "set_blocking"):
            return False
        read, write = os.pipe()
        os.set_blocking(write, False)
        try:
            previous = signal.set_wakeup_fd(write, warn_on_full_buffer=False)
        except (ValueError, OSError):
            previous = None
        if previous != -1:  # someone else's (or refused): leave it to them
            if previous is not None:
                signal.set_wakeup_fd(previous)
            os.close(read)
            os.close(write)
            return False
        self._fds = (read, write)
        start_with_signals_blocked(threading.Thread(
            target=self._watch, args=(read,), name="flightdeck-sensor-signals", daemon=True))
        return True

    def stop_in_child(self) -> None:
        """In a fork child: the pipe is the parent's, and its watcher did not
        come along. Give the wakeup fd back (unless someone else's is set now)."""
        fds, self._fds = self._fds, None
        if fds is None:
            return
        try:
            previous = signal.set_wakeup_fd(-1)
            if previous not in (fds[1], -1):  # someone else's: put it back
                signal.set_wakeup_fd(previous)
        except (ValueError, OSError):
            pass
        finally:
            for fd in fds:
                os.close(fd)

    def _watch(self, read: int) -> None:
        while True:
            try:
                received = os.read(read, 512)
            except OSError:
                return
            if not received:
                return
            if self.signum in received:
                self._make_sure_it_runs()

    def _make_sure_it_runs(self) -> None:
        """Send the signal again to the main thread while the handler has not
        started, a few times at most (each one comes back through the pipe)."""
        main = threading.main_thread().ident
        if self.started or main is None or self._resent >= RETRIES:
            return
        threading.Event().wait(GRACE_SECONDS)
        if self.started or signal.getsignal(self.signum) is not self.handler:
            return  # it ran, or it is not ours to run any more
        self._resent += 1
        with contextlib.suppress(OSError):
            signal.pthread_kill(main, self.signum)
