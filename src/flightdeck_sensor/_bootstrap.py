"""Interpreter start-up, run by ``flightdeck_sensor.pth`` when FLIGHTDECK_SERVER
(or FLIGHTDECK_EXPORT, which can send to OTLP without a server) is set.

Stdlib only, and cheap: resolve and validate the configuration, keep it with
its warnings, and install the import finder for the configured providers.
No thread, no network, no logging handler, no wrapt, no httpx, no
importlib.metadata: all of that waits until an SDK is imported, when the
finder's hook creates the sensor (see :func:`on_provider_import`).

The warnings are held, not logged: ``pip`` and every other process that never
calls an LLM stays silent. They are logged when the session starts, or, when
the configuration turned the sensor off, when an SDK is imported.
"""

from __future__ import annotations

import _thread

from ._config import Config, resolve_config

# The line shipped as site-packages/flightdeck_sensor.pth (tests check the file matches).
# It must start with "import" for site.py to execute it, and catch BaseException:
# one escaping a .pth is a "Fatal Python error" for every interpreter of the venv.
PTH_LINE = (
    "import os; (os.environ.get('FLIGHTDECK_SERVER', '').strip() or "
    "os.environ.get('FLIGHTDECK_EXPORT', '').strip()) and "
    "os.environ.get('FLIGHTDECK_ENABLED', '').strip().lower() not in "
    "('0', 'false', 'no', 'off', 'n', 'f') and "
    "exec('try:\\n import flightdeck_sensor._bootstrap as b\\n b.boot()\\n"
    "except BaseException:\\n pass', {})"
)

boot_config: Config | None = None
boot_warnings: list[str] = []
booted = False
_warned_disabled = False
_lock = _thread.allocate_lock()


def boot() -> None:
    """Idempotent: CPython executes a venv's .pth twice per process."""
    global booted, boot_config, boot_warnings
    with _lock:
        if booted:
            return
        booted = True
        config, warnings = resolve_config()
        boot_config, boot_warnings = config, warnings
    if config.enabled or warnings:
        from . import _hooks

        _hooks.install(config.providers, on_provider_import)


def on_provider_import(provider: str, module_name: str) -> None:
    """The import hook's callback, once a hooked module of ``provider`` has
    loaded: create the sensor from the boot configuration, then patch."""
    if not start_env_sensor():
        return
    from .interceptors import on_module_loaded

    on_module_loaded(provider, module_name)


def start_env_sensor() -> bool:
    """Called by an import hook: create the sensor from the boot configuration.

    False when the configuration turned the sensor off; its warnings are then
    logged once, as this is the moment the user expected it to work.
    """
    global _warned_disabled
    config = boot_config
    if config is None:  # no env boot: patch() after init() (or no sensor at all)
        return True
    if not config.enabled:
        with _lock:
            held, _warned_disabled = (not _warned_disabled), True
        if held:
            import logging

            logger = logging.getLogger("flightdeck_sensor")
            for message in boot_warnings:
                logger.warning(message)
        return False
    from ._sensor import ensure_sensor

    ensure_sensor(config, list(boot_warnings), origin="env")
    return True
