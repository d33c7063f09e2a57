"""Delivery of events: bounded queue, daemon sender, HTTP, spool.

Contract used by the rest of the sensor (``_sensor.Sensor``):

- ``Transport(config, on_envelope=callable, session_id=callable)``: starts no
  thread until the first ``submit``; it is built when an SDK is imported or
  ``init()`` runs, never at boot, and imports its HTTP client (``http.client``)
  then. ``session_id()`` gives the session id once a session started (else
  None): the sender keeps an idle session alive with heartbeats.
- ``submit(event: dict) -> None``: O(1), never blocks, never raises; safe from
  any thread and from a GC finalizer.
- ``flush(timeout: float) -> bool``: wait until everything queued so far is
  delivered (True) or the timeout passes (False).
- ``close(timeout: float) -> None``: final bounded flush at exit; what is not
  delivered goes to the spool. Never starts a thread during interpreter exit.
- ``status() -> dict``: queued, sent, dropped (by reason), spooled, retries,
  last_error, mode ("batch" / "single"), server_state, sender_errors (errors
  the sender survived), spool_quarantined (unreadable files set aside as
  ``*.bad``), spool_foreign (files of another user, left alone), heartbeats
  and heartbeats_failed: the first destination's (Flightdeck's, or OTLP's
  alone). With OTLP export, ``destinations`` has each destination's
  (``flightdeck``, ``otlp``) under its name.
- ``after_fork_in_child() -> None``: drop the inherited queue, fresh locks,
  sender restarted lazily.
- ``on_envelope(envelope: dict)`` is called (from the sender thread) with each
  parsed response envelope (event and heartbeat answers).

Also ``spool_summary(config) -> dict`` for ``flightdeck-sensor doctor``: the
spool's directory, whether it is on, its files, events and bytes, and how many
files are quarantined. ``_http.request(url, method, body, headers, *, timeout,
deadline, max_bytes, tls) -> Answer``: one request bounded as a whole (each
step within ``timeout``, all of it within ``deadline``), never raising, never
following a redirect; for ``doctor``'s checks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .._config import Config
    from ._transport import Transport


def __getattr__(name: str) -> Any:
    """``Transport`` is imported on first use: the session imports this package's
    wire format (``_wire``) without the sender, the spool or the HTTP client."""
    if name == "Transport":
        from ._transport import Transport

        return Transport
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def spool_summary(config: Config) -> dict[str, Any]:
    """The spool of ``config``'s server: directory, enabled, files, events, bytes."""
    from ._spool import Spool, spool_dir_for

    summary = Spool(spool_dir_for(config.server, config.spool_dir)).summary()
    summary["enabled"] = config.spool_enabled
    return summary


__all__ = ["Transport", "spool_summary"]
