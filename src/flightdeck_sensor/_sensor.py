"""The one sensor of this process: configuration, session, transport, lifecycle.

Created when the first provider hook fires (env boot) or by ``init()``; the
session starts lazily on the first recorded event (docs/decisions.md).
"""

from __future__ import annotations

import logging
import os
import threading
from typing import TYPE_CHECKING, Any

from . import _exit
from ._config import Config
from ._control import ControlPlane
from ._gate import Gate, local_budget
from ._session import Session

if TYPE_CHECKING:
    from .transport import Transport

logger = logging.getLogger("flightdeck_sensor")

# The process's one sensor (None until created); read directly on the call path.
process_sensor: Sensor | None = None
_create_lock = threading.Lock()


def active() -> Sensor | None:
    """The running sensor, or None when the sensor is off or shut down (hot path)."""
    s = process_sensor
    return s if s is not None and s.accepting else None


def current() -> Sensor | None:
    return process_sensor


# What _exit runs at exit and on SIGTERM (it does not import this module).
def _shutdown_current() -> None:
    sensor = process_sensor
    if sensor is not None:
        sensor.shutdown()


def _flush_current() -> None:
    sensor = process_sensor
    if sensor is not None:
        sensor.flush()


def _shutdown_budget() -> float:
    sensor = process_sensor
    return sensor.config.shutdown_timeout if sensor is not None else 0.0


_fork_hook_registered = False


def _register_fork_hook() -> None:
    """One at-fork hook for the process, acting for whichever sensor is the
    process's then: one that ``teardown()`` retired (os.register_at_fork cannot
    take a hook back) must not come back to life in a child."""
    global _fork_hook_registered
    if not _fork_hook_registered and hasattr(os, "register_at_fork"):
        _fork_hook_registered = True
        os.register_at_fork(after_in_child=_after_fork_in_child)


def _after_fork_in_child() -> None:
    sensor = process_sensor
    if sensor is not None:
        sensor._after_fork_in_child()
    else:  # a retired sensor's exit handling (signal watch, SIGTERM handler) is the parent's
        _exit.after_fork_in_child()


def retire(sensor: Sensor) -> None:
    """``sensor`` is no longer the process's (``teardown()``): the next
    ``init()`` or env boot creates a new one."""
    global process_sensor
    with _create_lock:
        if process_sensor is sensor:
            process_sensor = None


def ensure_sensor(config: Config, warnings: list[str], origin: str) -> Sensor:
    """Create the process's sensor once; later calls return the existing one.

    ``origin`` is ``"env"`` (warnings are held until the session starts) or
    ``"init"`` (warnings are logged now, as the original documentation says).
    """
    global process_sensor
    with _create_lock:
        if process_sensor is None:
            process_sensor = Sensor(config, warnings, origin)
        elif origin == "init":
            process_sensor.log_warnings_now(warnings)
        return process_sensor


class Sensor:
    def __init__(self, config: Config, warnings: list[str], origin: str,
                 transport: Transport | None = None) -> None:
        self.config = config
        self.origin = origin
        self.accepting = True
        self._held_warnings: list[str] = []
        self.session = Session(config)
        self._started = False
        self._start_lock = threading.Lock()
        self.internal_errors = 0
        # The control plane's gate, read by every intercepted call: None (one
        # attribute test per call) until a budget or a directive needs one.
        self.gate: Gate | None = None
        self._gate_lock = threading.Lock()
        if config.token_limit:
            self.gate = Gate(local_budget(config.token_limit, config.warn_at))
        # Calls record what their OTLP span needs (interceptors._call.TracedCall).
        self.traced = config.to_otlp
        self.last_model: str | None = None  # the model of the latest call (a directive's context)
        self.control = ControlPlane(self)
        if transport is None:
            from .transport import Transport as _Transport

            transport = _Transport(config, on_envelope=self._on_envelope,
                                   session_id=lambda: self.session.id if self._started else None)
        self.transport = transport
        if origin == "init":
            self.log_warnings_now(warnings)
            self._warn_custom_session_id()
        else:
            self._held_warnings = list(warnings)
        _register_fork_hook()
        _exit.register(_shutdown_current, _flush_current, _shutdown_budget)
        _exit.install_sigterm()

    # -- warnings ---------------------------------------------------------
    def log_warnings_now(self, warnings: list[str]) -> None:
        from ._log import configure_logging

        configure_logging(self.config)
        for message in warnings:
            logger.warning(message)

    def _warn_custom_session_id(self) -> None:
        if self.session.custom_id:
            logger.warning(
                "Custom session_id %s in play: if the server already knows it, this run "
                "is attached to that session.", self.session.id)

    # -- recording ----------------------------------------------------------
    def record(self, event_type: str, fields: dict[str, Any]) -> None:
        """Enqueue one event made of ``fields`` (taken over, not copied); starts
        the session on first use. Never raises."""
        try:
            if not self._started:
                self._start_session()
            self.transport.submit(self.session.stamp(event_type, fields))
        except Exception:
            self.note_internal_error("record")

    def note_internal_error(self, where: str) -> None:
        self.internal_errors += 1
        if self.internal_errors == 1:
            logger.warning("flightdeck-sensor internal error in %s; the call went on "
                           "unaffected (further errors are counted, not logged)",
                           where, exc_info=True)

    def _start_session(self) -> None:
        with self._start_lock:
            if self._started:
                return
            self._started = True
            if self._held_warnings:
                held, self._held_warnings = self._held_warnings, []
                self.log_warnings_now(held)
            elif self.origin == "env":
                from ._log import configure_logging

                configure_logging(self.config)
            if self.origin == "env":
                self._warn_custom_session_id()
            from ._context import session_start_fields

            self.transport.submit(self.session.build(
                "session_start", session_start_fields(self.config)))
            _exit.install()
            if self.config.server:  # no control plane without Flightdeck (OTLP alone)
                self.control.session_started()

    # -- server answers -----------------------------------------------------
    _attached_logged = False

    def _on_envelope(self, envelope: dict[str, Any]) -> None:
        """On the sender's thread: note an attachment, hand a directive over."""
        if envelope.get("attached") is True and not Sensor._attached_logged:
            Sensor._attached_logged = True
            logger.info("Attached to existing session %s.", self.session.id)
        self.control.on_envelope(envelope)

    # -- the control plane ------------------------------------------------------
    def ensure_gate(self) -> Gate:
        with self._gate_lock:
            if self.gate is None:
                self.gate = Gate()
            return self.gate

    @property
    def session_started(self) -> bool:
        return self._started

    def tokens_used(self) -> int:
        return self.session.tokens_used

    def session_id(self) -> str:
        return self.session.id

    def deliver_soon(self) -> None:
        """Have the sender send what is queued now rather than at its next tick."""
        self.transport.deliver_soon()

    def shutdown_requested(self) -> bool:
        gate = self.gate
        return gate is not None and gate.stop is not None

    def _close_reason(self) -> str:
        gate = self.gate
        if gate is not None and gate.stop is not None:
            return "directive_shutdown"
        if gate is not None and gate.blocked is not None:
            return "policy_block"
        return "normal_exit"

    # -- lifecycle ------------------------------------------------------------
    def flush(self, timeout: float | None = None) -> bool:
        return self.transport.flush(self.config.shutdown_timeout if timeout is None else timeout)

    def shutdown(self, timeout: float | None = None, close_reason: str | None = None) -> None:
        """session_end (if a session started) and a flush bounded by ``timeout``."""
        if not self.accepting:
            return
        with _exit.sigterm_waits():
            budget = self.config.shutdown_timeout if timeout is None else timeout
            if self._started:
                self.transport.submit(self.session.build(
                    "session_end", {"close_reason": close_reason or self._close_reason()}))
            self.accepting = False
            self.control.close()
            self.transport.close(budget)

    def status(self) -> dict[str, Any]:
        status = {
            "enabled": self.accepting,
            "session_id": self.session.id,
            "session_started": self._started,
            "flavor": self.session.flavor,
            "agent_type": self.config.agent_type,
            "tokens_used_session": self.session.tokens_used,
            "internal_errors": self.internal_errors,
        }
        status.update(self._control_status())
        status.update(self.transport.status())
        return status

    def _control_status(self) -> dict[str, Any]:
        gate = self.gate
        budget = (gate.server or gate.local) if gate is not None else None
        limit = budget.token_limit if budget is not None else None
        used = self.session.tokens_used
        if gate is not None and gate.stop is not None:
            state = "stopped"
        elif gate is not None and gate.blocked is not None:
            state = "blocked"
        else:
            state = "active" if self.accepting else "closed"
        return {
            "state": state,
            "shutdown_requested": gate is not None and gate.stop is not None,
            "shutdown_reason": gate.stop.reason if gate is not None and gate.stop else None,
            "token_limit": limit,
            "pct_used": round(used * 100 / limit, 1) if limit else None,
            "degraded_to": gate.degrade.model if gate is not None and gate.degrade else None,
            "directives_received": self.control.received,
            "directives_dropped": self.control.dropped,
        }

    def _after_fork_in_child(self) -> None:
        self._start_lock = threading.Lock()
        self.session = self.session.forked()
        self._started = False
        self._held_warnings = []
        self.transport.after_fork_in_child()
        # The child keeps the parent's gate (a stopped agent's child is stopped
        # too), not its directive thread.
        if self.gate is not None:
            self.gate.after_fork_in_child()
        self._gate_lock = threading.Lock()
        self.control.after_fork_in_child()
        _exit.after_fork_in_child()
