"""The explicit API: init(), patch(), unpatch(), flush(), shutdown(), get_status()."""

from __future__ import annotations

import logging
from typing import Any

from . import _sensor
from ._config import PROVIDER_NAMES, resolve_config

logger = logging.getLogger("flightdeck_sensor")


def init(
    server: str | None = None,
    token: str | None = None,
    *,
    session_id: str | None = None,
    agent_name: str | None = None,
    agent_type: str | None = None,
    capture_prompts: bool | None = None,
    **options: Any,
) -> None:
    """Configure the sensor for this process (environment variables win).

    A second call, or a call after the environment already booted the sensor,
    does not create a second sensor. Never raises.
    """
    try:
        config, warnings = resolve_config(
            None, server=server, token=token, session_id=session_id, agent_name=agent_name,
            agent_type=agent_type, capture_prompts=capture_prompts, **options)
        if not config.enabled:
            for message in warnings:
                logger.warning(message)
            return
        _sensor.ensure_sensor(config, warnings, origin="init")
    except Exception:
        logger.warning("flightdeck_sensor.init() failed; the program runs on without "
                       "the sensor", exc_info=True)


def patch(providers: list[str] | tuple[str, ...] | set[str] | None = None) -> None:
    """Instrument the given providers (default: the configured ones) now and on import."""
    try:
        from . import _hooks
        from ._bootstrap import on_provider_import
        from .interceptors import patch_loaded

        sensor = _sensor.current()
        if providers is not None:
            chosen = frozenset(providers)
        else:
            chosen = sensor.config.providers if sensor is not None else frozenset(PROVIDER_NAMES)
        patch_loaded(chosen)
        _hooks.install(chosen, on_provider_import)
    except Exception:
        logger.warning("flightdeck_sensor.patch() failed", exc_info=True)


def unpatch() -> None:
    """Restore the SDKs' original entry points and stop hooking imports."""
    try:
        from . import _hooks
        from .interceptors import unpatch_all

        _hooks.uninstall()
        unpatch_all()
    except Exception:
        logger.warning("flightdeck_sensor.unpatch() failed", exc_info=True)


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


def get_status() -> dict[str, Any]:
    """Counters of the running sensor (queued, sent, dropped, ...), or ``{"enabled": False}``."""
    sensor = _sensor.current()
    if sensor is None:
        return {"enabled": False}
    try:
        return sensor.status()
    except Exception:
        return {"enabled": sensor.accepting, "error": "status unavailable"}
