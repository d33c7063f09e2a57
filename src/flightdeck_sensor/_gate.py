"""The gate every intercepted call passes when the control plane is in force:
the kill switch, the token budgets and the degrade.

A sensor has no gate (``Sensor.gate is None``) until a local budget is
configured or the control plane sends a policy or a directive that needs one;
until then a call pays one attribute test for all of this. With a gate, the
check before a call is integer comparisons on the caller's thread, no network:
the directive thread (``_control``) sets what the gate holds, the caller only
reads it. Crossing a threshold records its ``policy_*`` event once (a lock
makes "once" hold across threads; it is taken only when a threshold is crossed).
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Protocol

from ._exceptions import BudgetExceededError, DirectiveError
from ._printable import printable

logger = logging.getLogger("flightdeck_sensor")

DEFAULT_WARN_PCT, DEFAULT_DEGRADE_PCT, DEFAULT_BLOCK_PCT = 80, 90, 100
MAX_MODEL_CHARS = 256


class Recorder(Protocol):
    """What the gate needs of the sensor (it does not import it)."""

    def record(self, event_type: str, fields: dict[str, Any]) -> None: ...

    def tokens_used(self) -> int: ...

    def session_id(self) -> str: ...

    def deliver_soon(self) -> None: ...


class Budget:
    """A token budget, its thresholds turned into token counts once (the check
    compares integers), and who set it, for the events' ``policy_decision``."""

    __slots__ = ("block_at", "block_pct", "degrade_at", "degrade_pct", "degrade_to", "first_at",
                 "policy_id", "scope", "source", "token_limit", "warn_at", "warn_pct")

    def __init__(self, source: str, policy_id: str, scope: str, token_limit: int,
                 warn_pct: int = DEFAULT_WARN_PCT, degrade_pct: int | None = DEFAULT_DEGRADE_PCT,
                 block_pct: int | None = DEFAULT_BLOCK_PCT, degrade_to: str | None = None) -> None:
        self.source = source  # "server" or "local"
        self.policy_id = policy_id
        self.scope = scope
        self.token_limit = token_limit
        self.warn_pct = warn_pct
        self.degrade_pct = degrade_pct if degrade_to else None
        self.block_pct = block_pct
        self.degrade_to = degrade_to
        self.warn_at = _tokens_at(token_limit, warn_pct)
        self.degrade_at = _tokens_at(token_limit, self.degrade_pct)
        self.block_at = _tokens_at(token_limit, block_pct)
        # Below this count nothing can fire: the one comparison an ordinary call makes.
        self.first_at = min(at for at in (self.warn_at, self.degrade_at, self.block_at, _NEVER)
                            if at is not None)

    def __repr__(self) -> str:
        return (f"Budget({self.source}, limit={self.token_limit}, warn={self.warn_pct}%, "
                f"degrade={self.degrade_pct}%->{self.degrade_to}, block={self.block_pct}%)")


_NEVER = 1 << 62  # more tokens than any session will use


def _tokens_at(limit: int, pct: int | None) -> int | None:
    return None if pct is None else limit * pct // 100


def local_budget(token_limit: int, warn_at: float) -> Budget:
    """``init(limit=, warn_at=)`` / FLIGHTDECK_TOKEN_LIMIT: it only warns."""
    return Budget("local", "local", "local_failsafe", token_limit,
                  warn_pct=max(1, min(100, round(warn_at * 100))), degrade_pct=None,
                  block_pct=None)


class Stop:
    __slots__ = ("action", "directive_id", "reason")

    def __init__(self, action: str, reason: str, directive_id: str) -> None:
        self.action = action
        self.reason = reason
        self.directive_id = directive_id


class Degrade:
    """Every later call goes to ``model`` (a degrade directive, or a budget's
    degrade threshold crossed)."""

    __slots__ = ("directive_id", "model")

    def __init__(self, model: str, directive_id: str | None) -> None:
        self.model = model
        self.directive_id = directive_id  # None: the budget's, not an operator's


class Gate:
    def __init__(self, local: Budget | None = None) -> None:
        self.stop: Stop | None = None
        self.blocked: tuple[int, int] | None = None  # (tokens used, limit) when it blocked
        self.server: Budget | None = None
        self.local = local
        self.degrade: Degrade | None = None
        self._warned: set[str] = set()  # sources ("server", "local") that warned
        self._degraded = False  # the server budget's degrade threshold was crossed
        self._refused: set[tuple[str, str]] = set()  # (provider, model) refused degrades
        self._lock = threading.Lock()

    # -- set by the directive thread -------------------------------------------
    def set_server_budget(self, budget: Budget | None) -> None:
        """A new server policy: the degrade it caused, its latches and a block
        are cleared (a raised limit lets calls through again)."""
        with self._lock:
            self.server = budget
            self._warned.discard("server")
            self._degraded = False
            self.degrade = None
            self.blocked = None
            self._refused.clear()

    def after_fork_in_child(self) -> None:
        self._lock = threading.Lock()

    # -- the caller's thread -------------------------------------------------------
    def admit(self, recorder: Recorder, provider: str, model: str | None,
              estimate: int) -> str | None:
        """Raise if the call may not go out; else the model to send it to
        instead of ``model`` (a degrade), or None."""
        stop = self.stop
        if stop is not None:
            raise DirectiveError(stop.action, stop.reason or "stopped by the control plane")
        if self.blocked is not None:
            raise BudgetExceededError(recorder.session_id(), *self.blocked)
        used = recorder.tokens_used()
        projected = used + estimate
        for budget in (self.server, self.local):
            if budget is not None and projected >= budget.first_at:
                self._crossed(recorder, budget, used, projected, model)
        degrade = self.degrade
        if degrade is None or degrade.model == model:
            return None
        return self._degrade_target(recorder, provider, model, degrade)

    def _crossed(self, recorder: Recorder, budget: Budget, used: int, projected: int,
                 model: str | None) -> None:
        if budget.block_at is not None and projected >= budget.block_at:
            self._block(recorder, budget, used, model)
        if (budget.degrade_at is not None and projected >= budget.degrade_at
                and budget.degrade_to and not self._degraded):
            with self._lock:
                first, self._degraded = not self._degraded, True
            if first:
                self.degrade = Degrade(budget.degrade_to, None)
                recorder.record("policy_degrade", policy_fields(
                    budget, "degrade", budget.degrade_pct, used, model,
                    f"degrade at {budget.degrade_pct}%: {model or '?'} -> {budget.degrade_to}",
                    from_model=model, to_model=budget.degrade_to))
        if (budget.warn_at is not None and projected >= budget.warn_at
                and budget.source not in self._warned):
            with self._lock:
                first = budget.source not in self._warned
                self._warned.add(budget.source)
            if first:
                logger.warning("flightdeck-sensor: %s token budget warning: %d of %d tokens "
                               "used (warn at %d%%)", budget.source, used, budget.token_limit,
                               budget.warn_pct)
                recorder.record("policy_warn", policy_fields(
                    budget, "warn", budget.warn_pct, used, model, f"warn at {budget.warn_pct}%"))

    def _block(self, recorder: Recorder, budget: Budget, used: int, model: str | None) -> None:
        with self._lock:
            first = self.blocked is None
            if first:
                self.blocked = (used, budget.token_limit)
        if first:
            logger.warning("flightdeck-sensor: token budget exhausted (%d of %d tokens): every "
                           "LLM call now raises BudgetExceededError", used, budget.token_limit)
            recorder.record("policy_block", policy_fields(
                budget, "block", budget.block_pct, used, model, f"block at {budget.block_pct}%",
                intended_model=model))
            recorder.deliver_soon()
        blocked = self.blocked or (used, budget.token_limit)
        raise BudgetExceededError(recorder.session_id(), *blocked)

    def _degrade_target(self, recorder: Recorder, provider: str, model: str | None,
                        degrade: Degrade) -> str | None:
        if model is None or compatible(provider, model, degrade.model):
            return degrade.model
        key = (provider, model)
        if key not in self._refused:
            with self._lock:
                first = key not in self._refused
                self._refused.add(key)
            if first:
                logger.warning(
                    "flightdeck-sensor: cannot degrade %s calls from %s to %s (another "
                    "provider's model); they keep their model", provider,
                    printable(model, MAX_MODEL_CHARS), printable(degrade.model, MAX_MODEL_CHARS))
                if degrade.directive_id is not None:
                    recorder.record("directive_result", directive_result(
                        "degrade", "degrade", "error", degrade.directive_id,
                        error=f"{degrade.model} is not a {provider} model; {model} kept"))
        return None


def policy_fields(budget: Budget, decision: str, threshold_pct: int | None, used: int,
                  model: str | None, why: str, **extra: Any) -> dict[str, Any]:
    """A ``policy_*`` event's fields, with the four-key ``policy_decision`` that
    Flightdeck's ingestion requires (every key a non-empty string)."""
    limit = budget.token_limit
    reason = f"{budget.source} budget: {used} of {limit} tokens used, {why}"
    fields: dict[str, Any] = {
        "source": budget.source,
        "threshold_pct": threshold_pct,
        "tokens_used": used,
        "token_limit": limit,
        "model": model,
        "policy_decision": {"policy_id": budget.policy_id or "unknown",
                            "scope": budget.scope or "unknown",
                            "decision": decision, "reason": reason},
    }
    fields.update(extra)
    return fields


def directive_result(name: str, action: str, status: str, directive_id: str | None,
                     result: Any = None, error: str | None = None) -> dict[str, Any]:
    fields: dict[str, Any] = {"directive_name": name, "directive_action": action,
                              "directive_status": status, "directive_id": directive_id}
    if result is not None:
        fields["result"] = result
    if error is not None:
        fields["error"] = error
    return fields


# --------------------------------------------------------------------------
# Which provider family a model belongs to (by its name; None: cannot tell).

_FAMILY_PREFIXES = (
    ("claude", "anthropic"),
    ("gpt-", "openai"), ("gpt4", "openai"), ("chatgpt", "openai"), ("o1", "openai"),
    ("o3", "openai"), ("o4", "openai"), ("text-embedding", "openai"), ("davinci", "openai"),
    ("babbage", "openai"), ("codex", "openai"), ("omni-moderation", "openai"),
    ("gemini", "google"), ("gemma", "google"), ("mistral", "mistral"), ("mixtral", "mistral"),
    ("codestral", "mistral"), ("command", "cohere"), ("llama", "meta"), ("grok", "xai"),
    ("deepseek", "deepseek"),
)
# A provider prefix as litellm writes it ("anthropic/claude-...").
_ROUTE_FAMILIES = {"anthropic": "anthropic", "openai": "openai", "azure": "openai",
                   "gemini": "google", "vertex_ai": "google", "mistral": "mistral",
                   "cohere": "cohere", "xai": "xai", "deepseek": "deepseek"}
# What each SDK can send: an OpenAI or Anthropic client talks to its own API.
_SDK_FAMILY = {"openai": "openai", "anthropic": "anthropic"}


def model_family(model: str) -> str | None:
    name = model.strip().lower()
    route, slash, rest = name.partition("/")
    if slash:
        if route in _ROUTE_FAMILIES:
            return _ROUTE_FAMILIES[route]
        name = rest.rpartition("/")[2]
    name = name.rpartition(".")[2] if name.startswith(("us.", "eu.", "anthropic.")) else name
    for prefix, family in _FAMILY_PREFIXES:
        if name.startswith(prefix):
            return family
    return None


def compatible(provider: str, requested: str, target: str) -> bool:
    """Whether a call of ``provider`` asking for ``requested`` can be sent to
    ``target`` instead: not when the names tell two different families (an
    Anthropic model on the OpenAI SDK fails at the provider). A name no rule
    knows is given the benefit of the doubt (an OpenAI-compatible server's own
    models)."""
    target_family = model_family(target)
    if target_family is None:
        return True
    requested_family = model_family(requested) or _SDK_FAMILY.get(provider)
    return requested_family is None or requested_family == target_family
