"""The one registry: patches every row of a provider's table
(``flightdeck_sensor._providers``) with the wrapper its kind names in the
provider module's ``WRAPPERS``, and restores every row through ``__wrapped__``,
as wrapt's ``patches.py``, dd-trace-py and OpenTelemetry's instrumentations do.

Our layer is a :class:`SensorWrapper`, recognised by that class only: a method
another tool (OpenTelemetry, ddtrace, Sentry, Langfuse) wrapped before us is
wrapped by us too. Ours goes beneath another tool's wrapt layer (whichever
patched first), since such tools unpatch by putting back what their top layer
wraps; any other wrapper gets ours on top. Unpatching puts back exactly what
was there before us: another tool's layer stays, ours is taken out from
beneath it (or, if that cannot be done, a warning says so).
"""

from __future__ import annotations

import importlib
import logging
import sys
from types import ModuleType
from typing import Any

import wrapt

from .._providers import HOOK_MODULES, table

logger = logging.getLogger("flightdeck_sensor")

# How deep a stack of other tools' wrappers is searched for ours.
_MAX_LAYERS = 16
# What every wrapt layer is (wrapt 2 put BaseObjectProxy under ObjectProxy and
# FunctionWrapper; wrapt 1 has ObjectProxy only).
_WRAPT_LAYER: type = getattr(wrapt, "BaseObjectProxy", wrapt.ObjectProxy)


class SensorWrapper(wrapt.FunctionWrapper):  # type: ignore[misc,type-arg,unused-ignore]
    """The flightdeck sensor's layer around one SDK entry point."""


# (provider, module) pairs already patched; (provider, owner, attribute, our
# layer) of every row patched, in the order patched.
_done: set[tuple[str, str]] = set()
_patched: list[tuple[str, Any, str, SensorWrapper]] = []


def implementation(provider: str) -> ModuleType:
    """The provider's interceptor module (it defines ``WRAPPERS``)."""
    return importlib.import_module(f"{__package__}._{provider}")


def on_module_loaded(provider: str, module_name: str) -> None:
    """Patch the rows ``module_name`` (one of the provider's hook modules, just
    loaded) defines, and those of the provider's other modules already loaded;
    idempotent."""
    if (provider, module_name) in _done:
        return
    wrappers = implementation(provider).WRAPPERS
    hooks = HOOK_MODULES[provider]
    for row_module, path, kind in table(provider):
        if row_module == module_name or (row_module not in hooks and row_module in sys.modules):
            module = sys.modules.get(row_module) or importlib.import_module(row_module)
            patch(module, path, wrappers[kind], provider)
    _done.add((provider, module_name))


def patch_loaded(providers: frozenset[str] | set[str]) -> None:
    """Patch every hook module of ``providers`` that is already imported."""
    for provider in providers:
        for module_name in HOOK_MODULES.get(provider, ()):
            if module_name in sys.modules:
                try:
                    on_module_loaded(provider, module_name)
                except Exception:
                    logger.warning("flightdeck-sensor could not patch %s; its calls will "
                                   "not be reported", module_name, exc_info=True)


def patch(module: ModuleType, path: str, wrapper: Any, provider: str = "") -> None:
    """Wrap ``module``'s ``path`` ("Class.method" or "function") with ``wrapper``
    (wrapt's ``(wrapped, instance, args, kwargs)`` shape), unless ours is there;
    ``provider`` names whose row it is (for :func:`unpatch_provider`)."""
    owner_name, _, attribute = path.rpartition(".")
    owner = getattr(module, owner_name, None) if owner_name else module
    if owner is None:
        logger.warning("flightdeck-sensor: %s.%s not found; those calls will not be "
                       "reported", module.__name__, owner_name)
        return
    # A class's own attribute (not one it inherits); a module's as the module gives it.
    original = vars(owner).get(attribute) if owner_name else getattr(owner, attribute, None)
    if original is None:  # e.g. parse() in older SDK versions
        logger.debug("flightdeck-sensor: %s.%s not in this SDK version", module.__name__, path)
        return
    if _layer_above(original, lambda layer: isinstance(layer, SensorWrapper)) is not None:
        return
    if isinstance(original, _WRAPT_LAYER) and _wrap_beneath(original, wrapper, owner,
                                                                 attribute, provider):
        return
    ours = SensorWrapper(original, wrapper)
    setattr(owner, attribute, ours)
    _patched.append((provider, owner, attribute, ours))


def _wrap_beneath(theirs: Any, wrapper: Any, owner: Any, attribute: str, provider: str) -> bool:
    """Another tool's wrapt layer is there: ours goes beneath it, so that its
    unpatch, which puts back what its layer wraps (OpenTelemetry's ``unwrap``),
    leaves ours in place. False if its layer does not let us."""
    try:
        ours = SensorWrapper(theirs.__wrapped__, wrapper)
        theirs.__wrapped__ = ours
    except (AttributeError, TypeError):
        return False
    _patched.append((provider, owner, attribute, ours))
    return True


def unpatch_all() -> None:
    """Restore, in reverse order, every entry point patched."""
    while _patched:
        _unpatch_row(*_patched.pop()[1:])
    _done.clear()


def unpatch_provider(provider: str) -> None:
    """Restore, in reverse order, every entry point of ``provider`` patched."""
    mine = [row for row in _patched if row[0] == provider]
    _patched[:] = [row for row in _patched if row[0] != provider]
    for row in reversed(mine):
        _unpatch_row(*row[1:])
    _done.difference_update({done for done in _done if done[0] == provider})


def _unpatch_row(owner: Any, attribute: str, ours: SensorWrapper) -> None:
    try:
        _restore(owner, attribute, ours)
    except Exception:
        logger.warning("flightdeck-sensor could not unpatch %s.%s",
                       getattr(owner, "__name__", owner), attribute, exc_info=True)


def _restore(owner: Any, attribute: str, ours: SensorWrapper) -> None:
    current = vars(owner).get(attribute)
    if current is ours or _is_binding_of(current, ours):
        # Ours on top (or a binding of ours another tool put back when it unpatched).
        setattr(owner, attribute, ours.__wrapped__)
        return
    above = _layer_above(current, lambda layer: layer is ours)
    if above is not None:
        try:  # another tool wrapped after us: keep its layer, take ours out from beneath
            above.__wrapped__ = ours.__wrapped__
            return
        except (AttributeError, TypeError):
            pass
    if current is not ours.__wrapped__:  # what was there before us is back: nothing to do
        logger.warning("flightdeck-sensor could not restore %s.%s: it was replaced after "
                       "the sensor patched it", getattr(owner, "__name__", owner), attribute)


def _is_binding_of(obj: Any, ours: SensorWrapper) -> bool:
    """wrapt binds a wrapper read off a class: a tool that restores what it read
    (``getattr(cls, name).__wrapped__``) may put back a binding of ours."""
    return getattr(obj, "_self_parent", None) is ours


def _layer_above(obj: Any, wanted: Any) -> Any:
    """The layer (``obj`` or one beneath it, through ``__wrapped__``) that is
    wanted itself, or whose ``__wrapped__`` is; None if none is."""
    layer = obj
    for _ in range(_MAX_LAYERS):
        if layer is None:
            return None
        if wanted(layer):
            return layer
        inner = getattr(layer, "__wrapped__", None)
        if inner is not None and wanted(inner):
            return layer
        layer = inner
    return None
