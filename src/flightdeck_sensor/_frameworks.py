"""Which agent framework is loaded, read from sys.modules without importing anything."""

from __future__ import annotations

import sys

# Highest level first: a LangGraph app also has langchain loaded; CrewAI loads litellm.
FRAMEWORKS: tuple[str, ...] = (
    "crewai", "langgraph", "autogen", "smolagents", "pydantic_ai", "dspy",
    "haystack", "llama_index", "langchain", "langchain_core",
)
_REPORTED_NAME = {"langchain_core": "langchain"}

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


def loaded_frameworks() -> list[str]:
    """``name/version`` for every known framework loaded (for session_start.context)."""
    out = []
    for name in FRAMEWORKS:
        module = sys.modules.get(name)
        if module is None or (name == "langchain_core" and "langchain" in sys.modules):
            continue
        version = getattr(module, "__version__", None)
        out.append(f"{_REPORTED_NAME.get(name, name)}/{version}" if version else name)
    return out
