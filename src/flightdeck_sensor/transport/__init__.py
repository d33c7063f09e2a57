"""Delivery of events: bounded queue, daemon sender, HTTP, spool.

Contract used by the rest of the sensor (``_sensor.Sensor``):

- ``Transport(config, on_envelope=callable)``: cheap; starts no thread and
  imports no httpx until the first ``submit``.
- ``submit(event: dict) -> None``: O(1), never blocks, never raises; safe from
  any thread and from a GC finalizer.
- ``flush(timeout: float) -> bool``: wait until everything queued so far is
  delivered (True) or the timeout passes (False).
- ``close(timeout: float) -> None``: final bounded flush at exit; what is not
  delivered goes to the spool. Never starts a thread during interpreter exit.
- ``status() -> dict``: queued, sent, dropped (by reason), spooled, retries,
  last_error, mode ("batch" / "single").
- ``after_fork_in_child() -> None``: drop the inherited queue, fresh locks,
  sender restarted lazily.
- ``on_envelope(envelope: dict)`` is called (from the sender thread) with each
  parsed response envelope.
"""

from ._transport import Transport

__all__ = ["Transport"]
