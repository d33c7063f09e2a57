"""Ending the session when the process ends: atexit, SIGTERM, multiprocessing.

- atexit: registered once; it is inherited by ``os.fork()`` children, whose
  own sensor (fresh session after fork) it shuts down.
- SIGTERM, only when the application left it at its default and only from the
  main thread (``signal.signal`` refuses other threads): shut down within the
  budget, then restore the default and re-raise SIGTERM so the process dies
  of it, as it would have without us. Installed when the sensor is created
  (an SDK's import or ``init()``, nearly always on the main thread), so it is
  in place even when the first LLM call runs on a worker thread.
  A SIGTERM that arrives while a shutdown is already running lets that
  shutdown finish first: ``multiprocessing.Pool.terminate()`` SIGTERMs a
  worker that is still in its exit finalizer, flushing, and dying there
  lost the worker's whole session. An application handler that chains to
  ours (ours no longer installed) gets a bounded flush, and decides itself
  how the process ends.
- ``multiprocessing`` fork children leave through ``os._exit`` without
  running atexit; they run ``multiprocessing.util._exit_function`` first,
  which calls the registered ``Finalize`` callbacks. Their registry is cleared
  when the child starts, so this registers in the child, on its first event.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from types import FrameType

from ._signal_watch import Watch

_atexit_registered = False
_sigterm_installed = False
_finalizer_pid: int | None = None
# The thread running Sensor.shutdown(), and a SIGTERM that waits for it to end.
_closing_thread: int | None = None
_closed = threading.Event()
_sigterm_deferred = False
_watch: Watch | None = None  # makes sure our SIGTERM handler runs (see _signal_watch)


def _nothing() -> None:
    pass


def _no_wait() -> float:
    return 0.0


# What the sensor registered (see register): this module does not import the
# sensor, which sits above it.
_on_shutdown: Callable[[], None] = _nothing
_on_flush: Callable[[], None] = _nothing
_budget: Callable[[], float] = _no_wait


def register(shutdown: Callable[[], None], flush: Callable[[], None],
             budget: Callable[[], float]) -> None:
    """Set what runs at exit and on SIGTERM: ``shutdown`` (ends the current
    sensor's session), ``flush`` (for an application's SIGTERM handler that
    chains to ours) and ``budget`` (seconds a SIGTERM waits for a shutdown
    already running)."""
    global _on_shutdown, _on_flush, _budget
    _on_shutdown, _on_flush, _budget = shutdown, flush, budget


def install() -> None:
    """Make sure the registered shutdown runs however the process ends."""
    global _atexit_registered
    if not _atexit_registered:
        _atexit_registered = True
        atexit.register(_shutdown_current)
    install_sigterm()
    _install_multiprocessing_finalizer()


def _shutdown_current() -> None:
    with contextlib.suppress(Exception):
        _on_shutdown()


def install_sigterm() -> None:
    global _sigterm_installed
    if _sigterm_installed or threading.current_thread() is not threading.main_thread():
        return
    try:
        if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
            return  # the application handles SIGTERM itself
        signal.signal(signal.SIGTERM, _on_sigterm)
        _sigterm_installed = True
    except (ValueError, OSError, AttributeError):
        return
    _watch_sigterm()


def _watch_sigterm() -> None:
    global _watch
    try:
        watch = Watch(signal.SIGTERM, _on_sigterm)
        if watch.start():
            _watch = watch
    except Exception:
        pass  # without the watch, a SIGTERM landing as a blocking call starts waits for it


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    global _sigterm_deferred
    if _watch is not None:
        _watch.started = True
    if signal.getsignal(signal.SIGTERM) is not _on_sigterm:
        _flush_current()  # called by the application's handler: it decides the exit
        return
    closing = _closing_thread
    if closing == threading.get_ident():
        # This thread was interrupted inside a shutdown (an exit finalizer, atexit,
        # shutdown()): dying here would abandon its flush, so it dies at its end.
        _sigterm_deferred = True
        return
    if closing is not None:
        _closed.wait(_budget())
    else:
        _shutdown_current()
    _die_of_sigterm()


def _die_of_sigterm() -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)


@contextlib.contextmanager
def sigterm_waits() -> Iterator[None]:
    """Run a shutdown that a SIGTERM does not cut short: one arriving meanwhile
    takes effect when the shutdown ends (see _on_sigterm)."""
    global _closing_thread, _sigterm_deferred
    _closed.clear()
    _closing_thread = threading.get_ident()
    try:
        yield
    finally:
        _closing_thread = None
        _closed.set()
        if _sigterm_deferred:
            _sigterm_deferred = False
            _die_of_sigterm()


def after_fork_in_child() -> None:
    """A shutdown running in the parent is not running in the child. Nor is
    the parent's signal watcher: the child runs with SIGTERM at its default
    (it has nothing to flush yet) until its session starts and ``install()``
    puts the handler and a watcher of its own back, after every at-fork hook
    has run (asyncio's clears the wakeup fd in the child)."""
    global _closing_thread, _closed, _sigterm_deferred, _sigterm_installed, _watch
    _closing_thread, _closed, _sigterm_deferred = None, threading.Event(), False
    watch, _watch = _watch, None
    if watch is not None:
        watch.stop_in_child()
    if _sigterm_installed:
        _sigterm_installed = False
        with contextlib.suppress(ValueError, OSError):
            if signal.getsignal(signal.SIGTERM) is _on_sigterm:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _flush_current() -> None:
    with contextlib.suppress(Exception):
        _on_flush()


def _install_multiprocessing_finalizer() -> None:
    global _finalizer_pid
    multiprocessing = sys.modules.get("multiprocessing")
    if multiprocessing is None or _finalizer_pid == os.getpid():
        return
    try:
        if multiprocessing.parent_process() is None:
            return
        from multiprocessing import util

        util.Finalize(None, _shutdown_current, exitpriority=100)
        _finalizer_pid = os.getpid()
    except Exception:
        pass
