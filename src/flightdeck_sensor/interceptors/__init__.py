"""Provider registry: which modules to hook, and how to patch them.

Stdlib only at import time: the ``.pth`` bootstrap's import finder reads
``HOOK_MODULES``. A provider's interceptor module (``_openai``, ...; they
import wrapt) is loaded only when one of its hooked modules is imported.

Each provider module exposes ``patch_module(module_name: str) -> None``
(patch what that freshly loaded module defines; idempotent) and
``unpatch() -> None`` (restore every original it replaced).
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:  # keep interpreter start cheap: the bootstrap imports this module
    import logging
    from types import ModuleType


def _logger() -> logging.Logger:
    import logging

    return logging.getLogger("flightdeck_sensor")

# provider -> modules whose import triggers patching. openai 3.x loads its
# resource modules lazily (on first client.chat / .responses / .embeddings),
# so those submodules are hooked themselves.
HOOK_MODULES: dict[str, tuple[str, ...]] = {
    "anthropic": (
        "anthropic.resources.messages.messages",
        "anthropic.resources.beta.messages.messages",
        # older SDKs (0.40 checked): messages was a module, and a prompt-caching beta existed
        "anthropic.resources.messages",
        "anthropic.resources.beta.prompt_caching.messages",
    ),
    "openai": (
        "openai.resources.chat.completions.completions",
        # older SDKs (1.40 checked): chat.completions was a module, not a package
        "openai.resources.chat.completions",
        "openai.resources.responses.responses",
        "openai.resources.embeddings",
        "openai.resources.completions",
    ),
    "litellm": ("litellm",),
}

_IMPLEMENTATION = {
    "anthropic": "flightdeck_sensor.interceptors._anthropic",
    "openai": "flightdeck_sensor.interceptors._openai",
    "litellm": "flightdeck_sensor.interceptors._litellm",
}

patched: set[tuple[str, str]] = set()  # (provider, module name) already patched


def implementation(provider: str) -> ModuleType:
    import importlib  # not at module level: its import costs ~1 ms at interpreter start

    return importlib.import_module(_IMPLEMENTATION[provider])


def on_module_loaded(provider: str, module_name: str) -> None:
    """Called by the import hook once ``module_name`` has fully loaded."""
    if (provider, module_name) in patched:
        return
    implementation(provider).patch_module(module_name)
    patched.add((provider, module_name))


def patch_loaded(providers: frozenset[str] | set[str]) -> None:
    """Patch every hooked module of ``providers`` that is already imported."""
    for provider in providers:
        for module_name in HOOK_MODULES.get(provider, ()):
            if module_name in sys.modules:
                try:
                    on_module_loaded(provider, module_name)
                except Exception:
                    _logger().warning("flightdeck-sensor could not patch %s; its calls will "
                                   "not be reported", module_name, exc_info=True)


def unpatch_all() -> None:
    """Restore every original entry point of every provider that was patched."""
    for provider in {p for p, _ in patched}:
        try:
            implementation(provider).unpatch()
        except Exception:
            _logger().warning("flightdeck-sensor could not unpatch %s", provider, exc_info=True)
    patched.clear()
