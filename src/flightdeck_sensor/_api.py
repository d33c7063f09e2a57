"""The explicit API: the published sensor's names, none of which raises.

init(), patch(), unpatch(), wrap(), flush(), shutdown(), teardown(),
get_status(), shutdown_requested(), and the per-provider interceptors
(patch_anthropic_classes() ...) that the published documentation names.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Iterable
from typing import Any

from . import _sensor
from ._config import PROVIDER_NAMES, resolve_config
from ._provider_enum import NOT_INSTRUMENTED
from ._status import Status, sensor_off

logger = logging.getLogger("flightdeck_sensor")

ProviderNames = Iterable[str]  # Provider members are strings


def init(
    server: str | None = None,
    token: str | None = None,
    api_url: str | None = None,
    capture_prompts: bool | None = None,
    quiet: bool = False,
    limit: int | None = None,
    warn_at: float | None = None,
    session_id: str | None = None,
    agent_type: str | None = None,
    agent_name: str | None = None,
    **options: Any,
) -> None:
    """Configure the sensor for this process (environment variables win).

    A second call, or a call after the environment already booted the sensor,
    does not create a second sensor (``teardown()`` first for a new one).
    Never raises: where the published sensor raised ``ConfigurationError`` (no
    server, no token, a bad ``agent_type``), this one warns and the program
    runs on, without the sensor when there is no server. ``quiet=True``
    silences the warning of a second ``init()``.
    """
    try:
        if "providers" in options and isinstance(options["providers"], (list, tuple, set)):
            options["providers"] = [_name(p) for p in options["providers"]]
        config, warnings = resolve_config(
            None, server=server, token=token, api_url=api_url, capture_prompts=capture_prompts,
            limit=limit, warn_at=warn_at, session_id=session_id, agent_type=agent_type,
            agent_name=agent_name, **options)
        if not config.enabled:
            for message in warnings:
                logger.warning(message)
            return
        existing = _sensor.current()
        if existing is not None and existing.origin == "init" and not quiet:
            logger.warning("flightdeck_sensor.init() called again: the sensor already running "
                           "keeps its configuration and session (teardown() first for a new "
                           "one)")
        _sensor.ensure_sensor(config, warnings, origin="init")
    except Exception:
        logger.warning("flightdeck_sensor.init() failed; the program runs on without "
                       "the sensor", exc_info=True)


def patch(*args: Any, providers: ProviderNames | None = None, quiet: bool = False) -> None:
    """Instrument the given providers (default: the configured ones) now and on import.

    ``providers`` holds ``Provider`` members or strings, mixed. Positionally,
    ``patch(providers, quiet)`` and the published order ``patch(quiet,
    providers)`` both work: a bool is ``quiet``. An unknown name gets one
    warning (unless ``quiet``) and is ignored."""
    try:
        for arg in args[:2]:
            if isinstance(arg, bool):
                quiet = arg
            elif arg is not None:
                providers = arg
        chosen = _chosen_providers(providers, quiet)
        _patch(chosen)
    except Exception:
        logger.warning("flightdeck_sensor.patch() failed", exc_info=True)


def _chosen_providers(providers: ProviderNames | None, quiet: bool) -> frozenset[str]:
    if providers is None:
        sensor = _sensor.current()
        return sensor.config.providers if sensor is not None else frozenset(PROVIDER_NAMES)
    if isinstance(providers, str):  # patch("anthropic"): one name, not its letters
        providers = [providers]
    names = [_name(p) for p in providers]
    not_instrumented = sorted(set(names) & NOT_INSTRUMENTED)
    unknown = sorted(set(names) - set(PROVIDER_NAMES) - NOT_INSTRUMENTED)
    if not_instrumented and not quiet:
        _warn_not_instrumented(not_instrumented)
    if unknown and not quiet:
        logger.warning("flightdeck_sensor.patch(): unknown provider(s) %s ignored (known: %s)",
                       ", ".join(unknown), ", ".join(PROVIDER_NAMES))
    return frozenset(n for n in names if n in PROVIDER_NAMES)


def _name(provider: object) -> str:
    """A provider's name: a Provider member's value, or the string (lower case)."""
    value = getattr(provider, "value", provider)
    return value.strip().lower() if isinstance(value, str) else repr(value)[:60]


_warned_not_instrumented: set[str] = set()
_warn_lock = threading.Lock()


def _warn_not_instrumented(names: list[str]) -> None:
    with _warn_lock:
        new = [n for n in names if n not in _warned_not_instrumented]
        _warned_not_instrumented.update(new)
    if new:
        logger.warning("flightdeck_sensor.patch(): this sensor does not instrument %s; the LLM "
                       "calls made through the Anthropic SDK, the OpenAI SDK and litellm are "
                       "reported all the same", ", ".join(new))


def _patch(chosen: frozenset[str]) -> None:
    from . import _hooks
    from ._bootstrap import on_provider_import
    from .interceptors import patch_loaded

    patch_loaded(chosen)
    _hooks.install(chosen, on_provider_import)


def unpatch() -> None:
    """Restore the SDKs' original entry points and stop hooking imports."""
    try:
        from . import _hooks
        from .interceptors import unpatch_all

        _hooks.uninstall()
        unpatch_all()
    except Exception:
        logger.warning("flightdeck_sensor.unpatch() failed", exc_info=True)


def _patch_one(provider: str, quiet: bool) -> None:
    try:
        _patch(frozenset((provider,)))
    except Exception:
        if not quiet:
            logger.warning("flightdeck_sensor could not patch %s", provider, exc_info=True)


def _unpatch_one(provider: str) -> None:
    try:
        from . import _hooks
        from .interceptors import unpatch_provider

        _hooks.uninstall(frozenset((provider,)))
        unpatch_provider(provider)
    except Exception:
        logger.warning("flightdeck_sensor could not unpatch %s", provider, exc_info=True)


# The published sensor's interceptors, one provider each, now and on import.
def patch_anthropic_classes(quiet: bool = False) -> None:
    """Instrument the Anthropic SDK (every client, sync and async)."""
    _patch_one("anthropic", quiet)


def unpatch_anthropic_classes() -> None:
    _unpatch_one("anthropic")


def patch_openai_classes(quiet: bool = False) -> None:
    """Instrument the OpenAI SDK (every client, sync and async)."""
    _patch_one("openai", quiet)


def unpatch_openai_classes() -> None:
    _unpatch_one("openai")


def patch_litellm_functions(quiet: bool = False) -> None:
    """Instrument litellm's module functions (completion, acompletion, ...)."""
    _patch_one("litellm", quiet)


def unpatch_litellm_functions() -> None:
    _unpatch_one("litellm")


def wrap(client: Any, quiet: bool = False) -> Any:
    """Return ``client`` itself, its provider patched: an Anthropic or OpenAI
    client (sync or async) is then instrumented like every other client of its
    SDK. Anything else is returned unchanged, with a warning unless ``quiet``."""
    try:
        provider = _client_provider(client)
        if provider is not None:
            _patch_one(provider, quiet)
        elif not quiet:
            logger.warning("flightdeck_sensor.wrap(): %s is not an Anthropic or OpenAI client; "
                           "returned unchanged", type(client).__name__)
    except Exception:
        logger.warning("flightdeck_sensor.wrap() failed", exc_info=True)
    return client


def _client_provider(client: Any) -> str | None:
    """``"anthropic"`` or ``"openai"`` for one of that SDK's clients (its base
    client class, so Azure, Bedrock and Vertex clients count too), else None.
    Imports no SDK: a client exists only once its SDK is imported."""
    for provider in ("anthropic", "openai"):
        base = getattr(sys.modules.get(f"{provider}._base_client"), "BaseClient", None)
        if isinstance(base, type) and isinstance(client, base):
            return provider
    return None


def flush(timeout: float | None = None) -> bool:
    """Wait until queued events are delivered; False if ``timeout`` passed first."""
    sensor = _sensor.current()
    if sensor is None:
        return True
    try:
        return sensor.flush(timeout)
    except Exception:
        return False


def shutdown(timeout: float | None = None) -> None:
    """End the session and flush, bounded by ``timeout`` (default: the shutdown budget)."""
    sensor = _sensor.current()
    if sensor is not None:
        try:
            sensor.shutdown(timeout)
        except Exception:
            logger.warning("flightdeck_sensor.shutdown() failed", exc_info=True)


def teardown(timeout: float | None = None) -> None:
    """Shut the sensor down (``session_end`` and a bounded flush), unpatch, and
    forget it: the next ``init()`` creates a new sensor with a new session.

    The old sensor's threads end with its shutdown; its exit and at-fork
    handling act for the process's current sensor only, so neither an exit nor
    a later fork brings it back."""
    sensor = _sensor.current()
    if sensor is not None:
        shutdown(timeout)
        try:
            _forget(sensor)
        except Exception:
            logger.warning("flightdeck_sensor.teardown() failed", exc_info=True)
    unpatch()


def _forget(sensor: _sensor.Sensor) -> None:
    from . import _directives

    _sensor.retire(sensor)
    if getattr(_directives.on_register, "__self__", None) is sensor.control:
        _directives.on_register = None  # new registrations are the next sensor's to sync


def get_status() -> Status:
    """The sensor's status: a dict (queued, sent, dropped, ... ``state``) whose
    published names (``session_id``, ``state``, ``tokens_used`` ...) read as
    attributes too. Before ``init()`` or with the sensor off: ``enabled`` False
    and those attributes None."""
    sensor = _sensor.current()
    if sensor is None:
        return sensor_off()
    try:
        return Status(sensor.status())
    except Exception:
        return Status(enabled=sensor.accepting, error="status unavailable")


def shutdown_requested() -> bool:
    """True once an operator stopped this agent (a shutdown directive): every
    LLM call now raises ``DirectiveError``, so a loop can stop cleanly between
    calls."""
    sensor = _sensor.current()
    try:
        return sensor is not None and sensor.shutdown_requested()
    except Exception:
        return False
