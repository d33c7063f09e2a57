"""Post-import hooks: our own tiny ``sys.meta_path`` finder (docs/decisions.md).

``PostImportFinder`` calls ``hook(module_name)`` once the module has fully
loaded, or at once when it is already imported. It wraps the real loader's
``exec_module`` (as ``wrapt.importer`` does) instead of importing wrapt, whose
import alone costs more than the whole start-up budget.

Rules it keeps: a hook fires at most once; its own lock is never held while
importing or running a hook (Python's per-module import lock already makes
concurrent importers of one module wait for the hook); a hook that raises is
logged and swallowed, the user's import succeeds; the finder leaves
``sys.meta_path`` once every target has fired.

Stdlib only, imported at interpreter start: ``_thread``, not ``threading``.
"""

from __future__ import annotations

import _thread
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from importlib.machinery import ModuleSpec
    from types import ModuleType
    from typing import Any

    Hook = Callable[[str], None]


class PostImportFinder:
    """A meta path finder that only answers for modules someone waits for."""

    def __init__(self) -> None:
        self._pending: dict[str, list[Hook]] = {}
        self._lock = _thread.allocate_lock()
        self._resolving = _thread._local()
        self.fired: list[str] = []  # module names whose hooks ran, in order

    # -- registration ---------------------------------------------------------
    def add(self, hooks: Mapping[str, Hook]) -> None:
        """Wait for each module of ``hooks``; fire at once for those already imported."""
        with self._lock:
            for name, hook in hooks.items():
                self._pending.setdefault(name, []).append(hook)
            self._attach()
        for name in hooks:
            module = sys.modules.get(name)
            if module is not None and not _is_initializing(module):
                self.fire(name)

    def pending(self) -> list[str]:
        with self._lock:
            return sorted(self._pending)

    def clear(self) -> None:
        """Forget every pending hook and leave ``sys.meta_path``."""
        with self._lock:
            self._pending.clear()
            self._detach()

    def discard(self, names: Sequence[str]) -> None:
        """Forget the pending hooks of ``names``; leave ``sys.meta_path`` if none is left."""
        with self._lock:
            for name in names:
                self._pending.pop(name, None)
            if not self._pending:
                self._detach()

    def _attach(self) -> None:
        if self._pending and self not in sys.meta_path:
            sys.meta_path.insert(0, self)

    def _detach(self) -> None:
        try:  # noqa: SIM105 (contextlib is costly to import at interpreter start)
            sys.meta_path.remove(self)
        except ValueError:
            pass

    # -- the import protocol --------------------------------------------------
    def find_spec(
        self, fullname: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if fullname not in self._pending:  # the common case: one dict lookup, no lock
            return None
        busy: set[str] = self._resolving.__dict__.setdefault("names", set())
        if fullname in busy:  # another finder asked the import system again: stay out
            return None
        busy.add(fullname)
        try:
            spec = self._real_spec(fullname, path, target)
        finally:
            busy.discard(fullname)
        loader = getattr(spec, "loader", None)
        if spec is not None and loader is not None and hasattr(loader, "exec_module"):
            spec.loader = _NotifyingLoader(loader, self, fullname)  # type: ignore[assignment]
        return spec

    def _real_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None
    ) -> ModuleSpec | None:
        """Ask the finders after us, as the import system would have."""
        finders = list(sys.meta_path)
        start = finders.index(self) + 1 if self in finders else 0
        for finder in finders[start:]:
            find_spec = getattr(finder, "find_spec", None)
            if find_spec is None:
                continue
            spec: ModuleSpec | None = find_spec(fullname, path, target)
            if spec is not None:
                return spec
        return None

    # -- firing ---------------------------------------------------------------
    def fire(self, name: str) -> None:
        """Run ``name``'s hooks if they have not run yet."""
        with self._lock:
            hooks = self._pending.pop(name, None)
            if hooks is None:
                return
            self.fired.append(name)
            if not self._pending:
                self._detach()
        for hook in hooks:
            _run_hook(hook, name)


class _NotifyingLoader:
    """Delegates to the real loader; fires the hooks after ``exec_module``."""

    def __init__(self, loader: Any, finder: PostImportFinder, name: str) -> None:
        self._loader = loader
        self._finder = finder
        self._name = name

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        create = getattr(self._loader, "create_module", None)
        return create(spec) if create is not None else None

    def exec_module(self, module: ModuleType) -> None:
        self._give_module_its_real_loader(module)
        self._loader.exec_module(module)
        self._finder.fire(self._name)

    def _give_module_its_real_loader(self, module: ModuleType) -> None:
        # importlib.resources, inspect and pkgutil read __loader__ / __spec__.loader.
        if getattr(module, "__loader__", None) in (None, self):
            try:  # noqa: SIM105 (contextlib is costly to import at interpreter start)
                module.__loader__ = self._loader
            except AttributeError:
                pass
        spec = getattr(module, "__spec__", None)
        if spec is not None and spec.loader is self:
            spec.loader = self._loader

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)


def _is_initializing(module: ModuleType) -> bool:
    spec = getattr(module, "__spec__", None)
    return bool(getattr(spec, "_initializing", False))


def _run_hook(hook: Hook, name: str) -> None:
    try:
        hook(name)
    except KeyboardInterrupt:
        raise
    except BaseException:
        try:
            import logging

            logging.getLogger("flightdeck_sensor").warning(
                "flightdeck-sensor: the import hook for %s failed; %s was imported normally "
                "but its calls will not be reported", name, name, exc_info=True)
        except Exception:
            pass


# -- the provider hooks used by the bootstrap and by patch() / unpatch() ---------

_finder: PostImportFinder | None = None
_finder_lock = _thread.allocate_lock()


def finder() -> PostImportFinder:
    """The process's finder (created on first use)."""
    global _finder
    with _finder_lock:
        if _finder is None:
            _finder = PostImportFinder()
        return _finder


def install(providers: frozenset[str], on_import: Callable[[str, str], None]) -> None:
    """Call ``on_import(provider, module_name)`` when a module of one of
    ``providers`` (``_providers.HOOK_MODULES`` names each provider's) loads, at
    once for those already loaded. The caller hands in what to run: this module
    sits below the sensor and the interceptors and imports neither."""
    from ._providers import HOOK_MODULES

    hooks: dict[str, Hook] = {}
    for provider in sorted(providers):
        for module_name in HOOK_MODULES.get(provider, ()):
            hooks[module_name] = _provider_hook(provider, on_import)
    if hooks:
        finder().add(hooks)


def uninstall(providers: frozenset[str] | None = None) -> None:
    """Stop hooking the imports of ``providers`` (default: every provider)."""
    if _finder is None:
        return
    if providers is None:
        _finder.clear()
        return
    from ._providers import HOOK_MODULES

    for provider in providers:
        _finder.discard(HOOK_MODULES.get(provider, ()))


def _provider_hook(provider: str, on_import: Callable[[str, str], None]) -> Hook:
    def on_module_import(module_name: str) -> None:
        on_import(provider, module_name)

    return on_module_import
