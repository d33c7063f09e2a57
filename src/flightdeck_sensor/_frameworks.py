"""Which agent framework is loaded, read from sys.modules without importing anything."""

from __future__ import annotations

import sys

# Highest level first: a LangGraph app also has langchain loaded; CrewAI loads litellm.
# Each is the module that tells the framework is loaded; openai-agents' package is
# ``agents``, a name an application's own package may have, so one of its own
# submodules (imported by ``import agents``) tells it.
FRAMEWORKS: tuple[str, ...] = (
    "crewai", "langgraph", "autogen", "smolagents", "pydantic_ai",
    "agents.models.openai_provider", "dspy", "haystack", "llama_index", "instructor",
    "langchain", "langchain_core",
)
_REPORTED_NAME = {"langchain_core": "langchain", "agents.models.openai_provider": "openai_agents"}
# Where the version is, for a name whose module is not the framework's top package.
_TOP_MODULE = {"agents.models.openai_provider": "agents"}
# Distributions that may hold a framework whose module has no ``__version__``
# (langgraph, llama_index), by reported name; otherwise the name, dashed.
_DISTRIBUTIONS = {"llama_index": ("llama-index-core", "llama-index"),
                  "openai_agents": ("openai-agents",), "pydantic_ai": ("pydantic-ai-slim",
                                                                       "pydantic-ai")}

_cache: tuple[int, str | None] = (-1, None)


def current_framework() -> str | None:
    """Bare name of the highest-level framework imported so far, or None.

    Cached on the size of sys.modules: a rescan only happens after new imports.
    """
    global _cache
    size = len(sys.modules)
    if _cache[0] == size:
        return _cache[1]
    found = None
    for name in FRAMEWORKS:
        if name in sys.modules:
            found = _REPORTED_NAME.get(name, name)
            break
    _cache = (size, found)
    return found


def loaded_frameworks() -> list[object]:
    """``name/version`` for every known framework loaded (for session_start.context).

    A framework whose module has no ``__version__`` is a :class:`VersionFromMetadata`,
    which becomes its ``name/version`` text when the event is encoded, on the
    sender thread: reading distribution metadata imports ``importlib.metadata``
    and searches ``sys.path``, too slow for the first call's thread."""
    out: list[object] = []
    for name in FRAMEWORKS:
        module = sys.modules.get(_TOP_MODULE.get(name, name))
        if module is None or name not in sys.modules or (
                name == "langchain_core" and "langchain" in sys.modules):
            continue
        reported = _REPORTED_NAME.get(name, name)
        version = getattr(module, "__version__", None)
        if isinstance(version, str) and version:
            out.append(f"{reported}/{version}")
        else:
            out.append(VersionFromMetadata(reported))
    return out


_versions: dict[str, str | None] = {}


class VersionFromMetadata:
    """A framework's ``name/version``, its version read from the installed
    distribution when first turned into text (the sender's JSON encoder calls
    ``str`` on what it cannot encode); the name alone if none is found."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __str__(self) -> str:
        if self.name not in _versions:
            _versions[self.name] = _distribution_version(self.name)
        version = _versions[self.name]
        return f"{self.name}/{version}" if version else self.name

    def __repr__(self) -> str:
        return f"VersionFromMetadata({self.name!r})"


def _distribution_version(name: str) -> str | None:
    try:
        from importlib import metadata
    except ImportError:
        return None
    for distribution in _DISTRIBUTIONS.get(name, (name.replace("_", "-"),)):
        try:
            version = metadata.version(distribution)
        except Exception:  # not installed under that name, or unreadable metadata
            continue
        if isinstance(version, str) and version:
            return version[:64]
    return None
