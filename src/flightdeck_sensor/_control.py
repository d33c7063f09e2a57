"""The control plane's side in the process: the directive thread.

Directives arrive in the envelope of the server's answers, read on the
sender's thread; the sender only queues them here (it must keep delivering).
One daemon thread, ``flightdeck-sensor-control``, started when the session
starts or the first directive arrives, acts on them in order, fetches the
session's token policy and syncs the custom directives the agent registered.
A custom directive's handler runs on a thread of its own, bounded in time: a
handler that hangs delays neither delivery nor the directives after it.

Everything that comes from the server is untrusted: a directive of the wrong
shape gets one WARNING and is dropped; the policy and registration calls fail
open (the program runs on as if there were no control plane).
"""

from __future__ import annotations

import collections
import contextlib
import json
import logging
import threading
import urllib.parse
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from . import _directives
from ._gate import MAX_MODEL_CHARS, Budget, Degrade, Gate, Stop, directive_result
from ._log import Throttle
from ._printable import printable
from ._signal_watch import start_with_signals_blocked
from ._version import __version__

if TYPE_CHECKING:
    from ._config import Config
    from ._session import Session


class Sensor(Protocol):
    """What the control plane needs of the sensor (``_sensor`` imports this module)."""

    config: Config
    session: Session
    gate: Gate | None
    last_model: str | None

    @property
    def session_started(self) -> bool: ...

    def record(self, event_type: str, fields: dict[str, Any]) -> None: ...

    def note_internal_error(self, where: str) -> None: ...

    def ensure_gate(self) -> Gate: ...

    def flush(self, timeout: float | None = None) -> bool: ...

    def tokens_used(self) -> int: ...

logger = logging.getLogger("flightdeck_sensor")

THREAD_NAME = "flightdeck-sensor-control"
MAX_PENDING = 100  # directives waiting for the thread; more are dropped, counted
HANDLER_TIMEOUT = 5.0  # seconds a custom directive's handler may run
POLICY_TIMEOUT = 1.0
REGISTRATION_TIMEOUT = 2.0
MAX_API_ANSWER = 64 * 1024
MAX_TEXT = 1000  # reason, names: what a directive's text may hold
MAX_RESULT_BYTES = 16 * 1024
ACTIONS = frozenset({"shutdown", "shutdown_flavor", "warn", "degrade", "policy_update", "custom",
                     "throttle", "checkpoint"})

Task = Callable[[], None]


class BadDirective(ValueError):
    """A directive the sensor cannot act on (its shape, not the server, is at fault)."""


class Directive:
    __slots__ = ("action", "degrade_to", "id", "payload", "reason")

    def __init__(self, raw: object) -> None:
        if not isinstance(raw, dict):
            raise BadDirective("not an object")
        self.id: str = _text(raw.get("id"), "id", required=True) or ""
        action = raw.get("action")
        if not isinstance(action, str) or action not in ACTIONS:
            raise BadDirective(f"unknown action {printable(action, 60)}")
        self.action = action
        reason = raw.get("reason")
        if reason is not None and not isinstance(reason, str):
            raise BadDirective("reason is not a string")
        # An operator's reason is free text: a long or multi-line one is shown
        # escaped and cut, never a reason to ignore a stop.
        self.reason = printable(reason, MAX_TEXT) if reason else ""
        payload = raw.get("payload")
        if payload is not None and not isinstance(payload, dict):
            raise BadDirective("payload is not an object")
        self.payload: dict[str, Any] = payload or {}
        degrade_to = raw.get("degrade_to", self.payload.get("degrade_to"))
        self.degrade_to = _text(degrade_to, "degrade_to", limit=MAX_MODEL_CHARS)


def _text(value: object, name: str, required: bool = False, limit: int = MAX_TEXT) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str) or (required and not value):
        raise BadDirective(f"{name} is not a string")
    if len(value) > limit or not value.isprintable():
        raise BadDirective(f"{name} is longer than {limit} characters or not printable")
    return value


class ControlPlane:
    def __init__(self, sensor: Sensor) -> None:
        self._sensor = sensor
        self._reset()

    def _reset(self) -> None:
        self._tasks: collections.deque[Task] = collections.deque()
        self._wake = threading.Condition(threading.Lock())
        self._thread: threading.Thread | None = None
        self._closed = False
        self._warned = Throttle(60.0)
        self.dropped = 0
        self.received = 0

    # -- from other threads (never blocking) -------------------------------------
    def on_envelope(self, envelope: dict[str, Any]) -> None:
        """The sender's hand-over: queue the directive, if any."""
        raw = envelope.get("directive")
        if raw is None:
            return
        self.received += 1
        self._submit(lambda: self._handle(raw))

    def session_started(self) -> None:
        self._submit(self._fetch_policy)
        self._submit(self._sync_directives)
        _directives.on_register = self._registered

    def _registered(self, registration: _directives.Registration) -> None:
        if self._sensor.session_started:
            self._submit(self._sync_directives)

    def _submit(self, task: Task) -> None:
        with self._wake:
            if self._closed:
                return
            if len(self._tasks) >= MAX_PENDING:
                self.dropped += 1
                return
            self._tasks.append(task)
            self._wake.notify()
        if self._thread is None:
            self._start()

    def _start(self) -> None:
        with self._wake:
            if self._thread is not None or self._closed:
                return
            thread = threading.Thread(target=self._run, name=THREAD_NAME, daemon=True)
            self._thread = thread
        with contextlib.suppress(RuntimeError):  # interpreter shutting down
            start_with_signals_blocked(thread)

    def close(self) -> None:
        with self._wake:
            self._closed = True
            self._wake.notify()

    def after_fork_in_child(self) -> None:
        """The parent's thread does not exist in the child, nor do its tasks."""
        self._reset()

    # -- the directive thread -------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._tasks and not self._closed:
                    self._wake.wait()
                if not self._tasks:
                    return
                task = self._tasks.popleft()
            try:
                task()
            except Exception:  # one bad directive must not stop the next
                self._sensor.note_internal_error("control plane")

    def _handle(self, raw: object) -> None:
        try:
            directive = Directive(raw)
        except BadDirective as problem:
            self._warn(f"flightdeck-sensor: ignored a directive of the wrong shape ({problem})")
            return
        act = getattr(self, f"_on_{directive.action}")
        act(directive)

    def _warn(self, message: str) -> None:
        if self._warned.allow():
            logger.warning(message)

    # -- the actions -----------------------------------------------------------------
    def _on_shutdown(self, directive: Directive) -> None:
        whole_agent = directive.action == "shutdown_flavor"
        gate = self._sensor.ensure_gate()
        gate.stop = Stop(directive.action, directive.reason, directive.id)
        logger.warning("flightdeck-sensor: %s stopped by the control plane%s; every LLM call now "
                       "raises DirectiveError", "this agent" if whole_agent else "this session",
                       f" ({printable(directive.reason)})" if directive.reason else "")
        message = "agent shutting down" + (" (every session of the agent)" if whole_agent else "")
        self._acknowledge(directive, {"message": message,
                                      "reason": directive.reason or "directive received"})
        self._sensor.flush()

    _on_shutdown_flavor = _on_shutdown

    def _on_warn(self, directive: Directive) -> None:
        logger.warning("flightdeck-sensor: warning from the control plane: %s",
                       printable(directive.reason or "(no reason given)"))
        sensor = self._sensor
        budget = sensor.gate.server if sensor.gate is not None else None
        used = sensor.tokens_used()
        sensor.record("policy_warn", {
            "source": "server", "threshold_pct": None, "tokens_used": used,
            "token_limit": budget.token_limit if budget is not None else None,
            "policy_decision": {"policy_id": directive.id, "scope": "directive",
                                "decision": "warn",
                                "reason": directive.reason or "warning from the operator"}})

    def _on_degrade(self, directive: Directive) -> None:
        target = directive.degrade_to
        if not target:
            self._warn("flightdeck-sensor: ignored a degrade directive without a model")
            self._sensor.record("directive_result", directive_result(
                "degrade", "degrade", "error", directive.id, error="no degrade_to model"))
            return
        sensor = self._sensor
        gate = sensor.ensure_gate()
        gate.degrade = Degrade(target, directive.id)
        from_model = sensor.last_model
        logger.warning("flightdeck-sensor: the control plane degraded this agent to %s",
                       printable(target))
        budget = gate.server
        sensor.record("policy_degrade", {
            "source": "server", "threshold_pct": None, "tokens_used": sensor.tokens_used(),
            "token_limit": budget.token_limit if budget is not None else None,
            "model": from_model, "from_model": from_model, "to_model": target,
            "policy_decision": {"policy_id": directive.id, "scope": "directive",
                                "decision": "degrade",
                                "reason": directive.reason or f"operator degraded to {target}"}})
        self._acknowledge(directive, {"message": "model degraded", "from_model": from_model,
                                      "to_model": target})

    def _on_policy_update(self, directive: Directive) -> None:
        gate = self._sensor.ensure_gate()
        current = gate.server
        try:
            budget = budget_from(directive.payload, current)
        except BadDirective as problem:
            self._warn(f"flightdeck-sensor: ignored a policy update ({problem})")
            self._sensor.record("directive_result", directive_result(
                "policy_update", "policy_update", "error", directive.id, error=str(problem)))
            return
        gate.set_server_budget(budget)
        logger.info("flightdeck-sensor: token policy updated: %r", budget)
        self._acknowledge(directive, {"message": "policy updated"})

    def _on_throttle(self, directive: Directive) -> None:
        self._warn(f"flightdeck-sensor: the control plane sent a {directive.action} directive, "
                   "which this sensor does not act on; ignored")

    _on_checkpoint = _on_throttle

    def _on_custom(self, directive: Directive) -> None:
        payload = directive.payload
        name = payload.get("directive_name")
        parameters = payload.get("parameters") or {}
        if not isinstance(name, str) or not isinstance(parameters, dict) or not all(
                isinstance(key, str) for key in parameters):
            self._warn("flightdeck-sensor: ignored a custom directive of the wrong shape")
            return
        shown = printable(name, 100)
        registration = _directives.find(name)
        error = ("handler not found" if registration is None else
                 "fingerprint mismatch" if registration.fingerprint != payload.get("fingerprint")
                 else None)
        if registration is None or error is not None:
            self._warn(f"flightdeck-sensor: custom directive {shown}: {error}")
            self._sensor.record("directive_result", directive_result(
                shown, "custom", "error", directive.id, error=error))
            return
        status, value = run_bounded(registration.handler, self._context(), parameters,
                                    HANDLER_TIMEOUT)
        if status == "success":
            self._sensor.record("directive_result", directive_result(
                shown, "custom", "success", directive.id, result=json_safe(value)))
        else:
            self._warn(f"flightdeck-sensor: custom directive {shown} failed: {value}")
            self._sensor.record("directive_result", directive_result(
                shown, "custom", "error", directive.id, error=str(value)))

    def _context(self) -> _directives.DirectiveContext:
        sensor = self._sensor
        return _directives.DirectiveContext(session_id=sensor.session.id,
                                            flavor=sensor.session.flavor,
                                            tokens_used=sensor.tokens_used(),
                                            model=sensor.last_model or "")

    def _acknowledge(self, directive: Directive, result: dict[str, Any]) -> None:
        self._sensor.record("directive_result", directive_result(
            directive.action, directive.action, "acknowledged", directive.id, result=result))

    # -- the control-plane API (fail open) ----------------------------------------------
    def _api(self, method: str, path: str, body: object = None,
             timeout: float = REGISTRATION_TIMEOUT) -> tuple[int, Any]:
        from .transport._http import request

        config = self._sensor.config
        headers = {"User-Agent": f"flightdeck-sensor/{__version__}"}
        if config.token:
            headers["Authorization"] = f"Bearer {config.token}"
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        answer = request(config.api_url + path, method, data, headers, timeout=timeout,
                         deadline=timeout, max_bytes=MAX_API_ANSWER)
        if answer.status != 200:
            logger.debug("flightdeck-sensor: %s %s answered %s %s", method, path.partition("?")[0],
                         answer.status, printable(answer.error))
            return answer.status, None
        try:
            return 200, json.loads(answer.body)
        except ValueError:
            return 200, None

    def _fetch_policy(self) -> None:
        session = self._sensor.session
        query = urllib.parse.urlencode({"flavor": session.flavor, "session_id": session.id})
        status, answer = self._api("GET", f"/v1/policy?{query}", timeout=POLICY_TIMEOUT)
        if status != 200:
            return
        try:
            budget = budget_from(answer, None, require_limit=True)
        except BadDirective as problem:
            self._warn(f"flightdeck-sensor: ignored the server's token policy ({problem})")
            return
        if budget is not None:
            self._sensor.ensure_gate().set_server_budget(budget)
            logger.info("flightdeck-sensor: token policy in force: %r", budget)

    def _sync_directives(self) -> None:
        registrations = _directives.registered()
        if not registrations:
            return
        flavor = self._sensor.session.flavor
        status, answer = self._api("POST", "/v1/directives/sync", {
            "flavor": flavor,
            "directives": [{"name": r.name, "fingerprint": r.fingerprint} for r in registrations]})
        unknown = answer.get("unknown_fingerprints") if isinstance(answer, dict) else None
        if status != 200 or not isinstance(unknown, list):
            return
        wanted = {f for f in unknown[:10_000] if isinstance(f, str)}
        new = [r.schema() for r in registrations if r.fingerprint in wanted]
        if new:
            self._api("POST", "/v1/directives/register", {"flavor": flavor, "directives": new})


def budget_from(raw: object, current: Budget | None, require_limit: bool = False) -> Budget | None:
    """A server budget from a policy answer or a ``policy_update`` payload (whose
    fields replace those of ``current``). Raises BadDirective for a wrong shape."""
    if not isinstance(raw, dict):
        raise BadDirective("not an object")
    limit = _count(raw, "token_limit", current.token_limit if current else None)
    if limit is None:
        if require_limit:
            return None  # a policy without a limit budgets nothing
        raise BadDirective("no token_limit")
    scope = _text(raw.get("scope"), "scope") or (current.scope if current else "server")
    scope_value = _text(raw.get("scope_value"), "scope_value")
    policy_id = raw.get("id", current.policy_id if current else None)
    return Budget(
        "server", printable(policy_id, 100) if policy_id is not None else "server",
        f"{scope}:{scope_value}" if scope_value and ":" not in scope else scope, limit,
        warn_pct=_pct(raw, "warn_at_pct", current.warn_pct if current else 80) or 80,
        degrade_pct=_pct(raw, "degrade_at_pct", current.degrade_pct if current else 90),
        block_pct=_pct(raw, "block_at_pct", current.block_pct if current else 100),
        degrade_to=_text(raw.get("degrade_to", current.degrade_to if current else None),
                         "degrade_to", limit=MAX_MODEL_CHARS))


def _count(raw: dict[str, Any], name: str, default: int | None) -> int | None:
    value = raw.get(name, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 1 << 53:
        raise BadDirective(f"{name} is not a positive integer")
    return value


def _pct(raw: dict[str, Any], name: str, default: int | None) -> int | None:
    value = raw.get(name)
    if value is None:  # absent or null: the default (or the budget's current value)
        value = default
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1000:
        raise BadDirective(f"{name} is not a percentage")
    return int(value)


def run_bounded(handler: Callable[..., Any], context: Any, parameters: dict[str, Any],
                timeout: float) -> tuple[str, Any]:
    """``handler(context, **parameters)`` on a daemon thread of its own, waited
    for at most ``timeout`` seconds: ``("success", value)`` or ``("error", why)``
    (``"timeout"``, or the exception's class). A handler that never returns
    keeps only its own thread."""
    outcome: list[tuple[str, Any]] = []

    def run() -> None:
        try:
            outcome.append(("success", handler(context, **parameters)))
        except BaseException as exc:  # the handler's own failure is its result
            outcome.append(("error", type(exc).__name__))

    thread = threading.Thread(target=run, name=f"{THREAD_NAME}-handler", daemon=True)
    start_with_signals_blocked(thread)
    thread.join(timeout)
    return outcome[0] if outcome else ("error", "timeout")


def json_safe(value: Any) -> Any:
    """A handler's result as the event can carry it: JSON as it is when it fits
    in 16 KiB, else its text, cut."""
    try:
        if len(json.dumps(value)) <= MAX_RESULT_BYTES:
            return value
    except (TypeError, ValueError, RecursionError):
        pass
    return printable(value, MAX_RESULT_BYTES // 4)

