"""The interceptors: one module per provider (``_anthropic``, ``_openai``,
``_litellm``: an adapter and the ``WRAPPERS`` its table's rows name) over one
recording core (``_core``, its public surface), patched by one registry
(``_registry``). The providers and their tables are named in
``flightdeck_sensor._providers``.

Stdlib only at import time: wrapt and a provider's module are imported when
one of its hooked modules has been imported (or by ``patch()``).
"""

from __future__ import annotations


def on_module_loaded(provider: str, module_name: str) -> None:
    """Called by the import hook once ``module_name`` has fully loaded."""
    from ._registry import on_module_loaded as patch_rows

    patch_rows(provider, module_name)


def patch_loaded(providers: frozenset[str] | set[str]) -> None:
    """Patch every hooked module of ``providers`` that is already imported."""
    from ._registry import patch_loaded as patch_all_loaded

    patch_all_loaded(providers)


def unpatch_all() -> None:
    """Restore every original entry point of every provider that was patched."""
    from ._registry import unpatch_all as restore_all

    restore_all()


def unpatch_provider(provider: str) -> None:
    """Restore every original entry point of ``provider`` that was patched."""
    from ._registry import unpatch_provider as restore_provider

    restore_provider(provider)
