"""The import graph of ``src/flightdeck_sensor``: no cycle, and each layer
imports only its own layer or the layers below it (docs/architecture.md).

Every ``import`` / ``from ... import`` statement counts: at module level, in a
function (lazy imports), under ``TYPE_CHECKING``, relative or absolute.
(``cli`` finds its commands with ``importlib.import_module`` by name: a
dispatcher's lookup, not an import statement, so not an edge here.)
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

import flightdeck_sensor

PACKAGE = "flightdeck_sensor"
SOURCE = Path(flightdeck_sensor.__file__).parent

# The layer map: a module may import modules of its own layer or below.
LAYERS: dict[str, int] = {
    # 0: leaves, stdlib only
    "_version": 0, "_printable": 0, "_identity": 0, "_token_file": 0, "_providers": 0,
    "_signal_watch": 0,
    "_url": 0, "_env_values": 0, "_exceptions": 0, "_directives": 0, "_provider_enum": 0,
    "_status": 0, "_otel_env": 0,
    # 1: configuration
    "_config": 1, "_frameworks": 1,
    # 2: what the configuration sets up
    "_log": 2, "_context": 2,
    # 3: the import finder, stdlib only, imported at interpreter start
    "_hooks": 3,
    # 4: the transport (every module of transport/ but its command line, below)
    "transport": 4,
    # 5: the session and the process's exit
    "_session": 5, "_exit": 5, "_gate": 5,
    # 6: the one sensor of the process
    "_sensor": 6, "_control": 6,
    # 7: the interceptors (every module of interceptors/)
    "interceptors": 7,
    # 8: start-up from the .pth: installs the finder at interpreter start; when an
    # SDK loads, creates the sensor and patches (so it sits above both)
    "_bootstrap": 8,
    # 9: the public API
    "_api": 9, "": 9,
    # 10: the command line
    "cli": 10, "__main__": 10, "_doctor": 10, "_launcher": 10, "transport._spool_cli": 10,
}
STANDS_APART = "collector"  # imports only layer 0 and itself; nothing imports it
PACKAGES = ("transport", "interceptors", STANDS_APART)


def module_name(path: Path) -> str:
    """``flightdeck_sensor.transport._wire`` for ``src/.../transport/_wire.py``."""
    parts = list(path.relative_to(SOURCE).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join([PACKAGE, *parts])


def is_package(module: str) -> bool:
    return (SOURCE.joinpath(*module.split(".")[1:]) / "__init__.py").exists()


def is_module(module: str) -> bool:
    """An existing module of the package (or a layer-map module not written yet)."""
    relative = module.split(".")[1:]
    return (not relative or is_package(module)
            or SOURCE.joinpath(*relative).with_suffix(".py").exists())


def imported_modules(module: str, tree: ast.Module) -> Iterator[str]:
    """The package's modules that ``module``'s import statements name."""
    own_package = module if is_package(module) else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names if alias.name.startswith(PACKAGE))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = own_package.split(".")[:len(own_package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            elif node.module and node.module.startswith(PACKAGE):
                source = node.module
            else:
                continue
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                yield submodule if is_module(submodule) else source


def import_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in sorted(SOURCE.rglob("*.py")):
        module = module_name(path)
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        graph[module] = set(imported_modules(module, tree)) - {module}
    return graph


def relative_name(module: str) -> str:
    return module[len(PACKAGE) + 1:]


def layer_of(module: str) -> int | str:
    """The module's layer, or ``STANDS_APART`` for the collector."""
    name = relative_name(module)
    if name in LAYERS:
        return LAYERS[name]
    top = name.partition(".")[0]
    if top == STANDS_APART:
        return STANDS_APART
    if top in LAYERS and top in PACKAGES:
        return LAYERS[top]
    raise AssertionError(f"{module} is not in the layer map of {__name__}: place it")


def may_import(importer: str, imported: str) -> bool:
    importer_layer, imported_layer = layer_of(importer), layer_of(imported)
    if importer_layer == STANDS_APART:
        return imported_layer in (STANDS_APART, 0)
    if imported_layer == STANDS_APART:
        return False
    assert isinstance(importer_layer, int) and isinstance(imported_layer, int)
    return imported_layer <= importer_layer


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle through each strongly connected group of modules (depth first)."""
    found: list[list[str]] = []
    state: dict[str, str] = {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for imported in sorted(graph.get(module, ())):
            if state.get(imported) == "open":
                found.append([*path[path.index(imported):], imported])
            elif imported not in state:
                visit(imported, [*path, imported])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    return found


GRAPH = import_graph()


def test_the_walker_sees_lazy_relative_absolute_and_type_checking_imports() -> None:
    tree = ast.parse(
        "from .. import _sensor\n"
        "if TYPE_CHECKING:\n    from .._log import Throttle\n"
        "def send():\n"
        "    from ._wire import complete_event\n"
        "    import flightdeck_sensor._config\n"
        "    from . import spool_summary\n")
    assert set(imported_modules(f"{PACKAGE}.transport._sender", tree)) == {
        f"{PACKAGE}._sensor", f"{PACKAGE}._log", f"{PACKAGE}.transport._wire",
        f"{PACKAGE}._config", f"{PACKAGE}.transport"}


def test_the_checks_catch_a_cycle_and_an_upward_import() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]
    assert not may_import(f"{PACKAGE}._hooks", f"{PACKAGE}._bootstrap")
    assert not may_import(f"{PACKAGE}.collector._cli", f"{PACKAGE}._config")
    assert not may_import(f"{PACKAGE}._sensor", f"{PACKAGE}.collector._store")
    assert may_import(f"{PACKAGE}.interceptors._any_new_module", f"{PACKAGE}._providers")


def test_every_module_is_in_the_layer_map() -> None:
    for module in GRAPH:
        layer_of(module)


def test_the_import_graph_has_no_cycle() -> None:
    assert cycles(GRAPH) == []


@pytest.mark.parametrize("importer", sorted(GRAPH))
def test_each_module_imports_only_its_layer_and_the_layers_below(importer: str) -> None:
    upward = sorted(imported for imported in GRAPH[importer] if not may_import(importer, imported))
    assert upward == [], f"layer {layer_of(importer)} imports " + ", ".join(
        f"{imported} (layer {layer_of(imported)})" for imported in upward)
