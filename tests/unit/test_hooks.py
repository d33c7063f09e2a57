"""The post-import finder, on dummy target packages built per test.

Specification (issue 2; docs/decisions.md, import hooks): a hook fires once, after its
module has fully loaded, or at once when the module is already imported;
concurrent imports fire it once and every importer sees the hooked module;
a hook that raises never fails the user's import; the finder leaves
sys.meta_path when every target fired, and ``unpatch()`` removes it.
"""

from __future__ import annotations

import importlib
import logging
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest

from flightdeck_sensor._hooks import PostImportFinder


class DummyPackages:
    """Writes uniquely named packages under a directory on sys.path."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.names: list[str] = []

    def make(self, body: str = "", submodules: dict[str, str] | None = None) -> str:
        name = f"dummy_sdk_{uuid.uuid4().hex[:10]}"
        package = self.root / name
        package.mkdir()
        (package / "__init__.py").write_text(body + "\nLOADED = True  # last line\n")
        for sub, sub_body in (submodules or {}).items():
            (package / f"{sub}.py").write_text(sub_body + "\nLOADED = True  # last line\n")
        self.names.append(name)
        importlib.invalidate_caches()
        return name


@pytest.fixture
def dummies(tmp_path: Path) -> Iterator[DummyPackages]:
    sys.path.insert(0, str(tmp_path))
    packages = DummyPackages(tmp_path)
    yield packages
    sys.path.remove(str(tmp_path))
    for name in list(sys.modules):
        if name.split(".")[0] in packages.names:
            del sys.modules[name]


@pytest.fixture
def finder() -> Iterator[PostImportFinder]:
    finder = PostImportFinder()
    yield finder
    finder.clear()


class Recorder:
    def __init__(self, action: Callable[[ModuleType], None] | None = None) -> None:
        self.calls: list[tuple[str, bool]] = []
        self.action = action
        self._lock = threading.Lock()

    def __call__(self, name: str) -> None:
        module = sys.modules[name]
        with self._lock:
            self.calls.append((name, getattr(module, "LOADED", False)))
        if self.action is not None:
            self.action(module)


def test_hook_fires_at_once_for_an_already_imported_module(
        dummies: DummyPackages, finder: PostImportFinder) -> None:
    name = dummies.make()
    importlib.import_module(name)
    hook = Recorder()

    finder.add({name: hook})

    assert hook.calls == [(name, True)]
    assert finder not in sys.meta_path


def test_hook_fires_once_after_a_later_import_has_fully_loaded(
        dummies: DummyPackages, finder: PostImportFinder) -> None:
    name = dummies.make()
    hook = Recorder()
    finder.add({name: hook})
    assert hook.calls == []

    module = importlib.import_module(name)
    importlib.import_module(name)

    assert hook.calls == [(name, True)]
    assert module.LOADED is True
    assert finder.fired == [name]


def test_lazily_imported_submodule_is_hooked_itself(
        dummies: DummyPackages, finder: PostImportFinder) -> None:
    name = dummies.make(submodules={"resources": "VALUE = 1"})
    hook = Recorder()
    finder.add({f"{name}.resources": hook})

    importlib.import_module(name)
    assert hook.calls == []
    importlib.import_module(f"{name}.resources")

    assert hook.calls == [(f"{name}.resources", True)]


def test_hooked_module_keeps_its_real_loader(
        dummies: DummyPackages, finder: PostImportFinder) -> None:
    name = dummies.make()
    finder.add({name: Recorder()})

    module = importlib.import_module(name)

    assert type(module.__loader__).__name__ == "SourceFileLoader"
    assert module.__spec__ is not None and module.__spec__.loader is module.__loader__


def test_concurrent_imports_from_8_threads_fire_once_and_all_see_the_hooked_module(
        dummies: DummyPackages, finder: PostImportFinder) -> None:
    name = dummies.make("import time\ntime.sleep(0.2)  # keep the import in flight")
    hook = Recorder(action=lambda module: setattr(module, "PATCHED", True))
    finder.add({name: hook})
    start = threading.Barrier(8)
    seen: list[bool] = []
    errors: list[BaseException] = []

    def importer() -> None:
        try:
            start.wait()
            seen.append(getattr(importlib.import_module(name), "PATCHED", False))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=importer) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert not any(thread.is_alive() for thread in threads), "an import deadlocked"
    assert errors == []
    assert seen == [True] * 8
    assert hook.calls == [(name, True)]


def test_a_hook_that_imports_another_target_fires_both_without_deadlock(
        dummies: DummyPackages, finder: PostImportFinder) -> None:
    first, second = dummies.make(), dummies.make()
    second_hook = Recorder()
    first_hook = Recorder(action=lambda _: importlib.import_module(second) and None)
    finder.add({first: first_hook, second: second_hook})

    importlib.import_module(first)

    assert first_hook.calls == [(first, True)]
    assert second_hook.calls == [(second, True)]
    assert finder not in sys.meta_path


def test_a_hook_that_raises_is_logged_and_the_import_still_succeeds(
        dummies: DummyPackages, finder: PostImportFinder, caplog: pytest.LogCaptureFixture
) -> None:
    name = dummies.make()

    def broken_hook(module_name: str) -> None:
        raise RuntimeError("patch exploded")

    finder.add({name: broken_hook})
    with caplog.at_level(logging.WARNING, logger="flightdeck_sensor"):
        module = importlib.import_module(name)

    assert module.LOADED is True
    [record] = [r for r in caplog.records if r.name == "flightdeck_sensor"]
    assert f"the import hook for {name} failed" in record.getMessage()
    assert record.exc_info is not None and "patch exploded" in str(record.exc_info[1])


def test_a_module_that_fails_to_import_does_not_fire_until_it_imports(
        dummies: DummyPackages, finder: PostImportFinder) -> None:
    name = dummies.make("raise ImportError('not yet')")
    hook = Recorder()
    finder.add({name: hook})

    with pytest.raises(ImportError, match="not yet"):
        importlib.import_module(name)
    assert hook.calls == []
    (dummies.root / name / "__init__.py").write_text("LOADED = True\n")
    importlib.invalidate_caches()
    importlib.import_module(name)

    assert hook.calls == [(name, True)]


def test_finder_stays_until_every_target_fired(
        dummies: DummyPackages, finder: PostImportFinder) -> None:
    first, second = dummies.make(), dummies.make()
    finder.add({first: Recorder(), second: Recorder()})

    importlib.import_module(first)
    assert finder in sys.meta_path
    importlib.import_module(second)

    assert finder not in sys.meta_path
    assert finder.fired == [first, second]


def test_clear_removes_the_finder_and_nothing_fires_later(
        dummies: DummyPackages, finder: PostImportFinder) -> None:
    name = dummies.make()
    hook = Recorder()
    finder.add({name: hook})

    finder.clear()
    importlib.import_module(name)

    assert finder not in sys.meta_path
    assert hook.calls == []


def test_unpatch_stops_hooking_imports(tmp_path: Path) -> None:
    """Through the public API, in a subprocess (unpatch() is process-wide)."""
    (tmp_path / "dummy_target").mkdir()
    (tmp_path / "dummy_target" / "__init__.py").write_text("")
    code = f"""
import sys
sys.path.insert(0, {str(tmp_path)!r})
import flightdeck_sensor
from flightdeck_sensor import _hooks
fired = []
_hooks.finder().add({{"dummy_target": fired.append}})
assert _hooks.finder() in sys.meta_path
flightdeck_sensor.unpatch()
import dummy_target
print(fired, _hooks.finder() in sys.meta_path)
"""
    env = {"PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=env, timeout=60)

    assert result.returncode == 0, result.stderr
    assert result.stdout == "[] False\n"
