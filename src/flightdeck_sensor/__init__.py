"""flightdeck-sensor: every LLM call of a Python process, reported to Flightdeck.

The public API is imported lazily so that ``import flightdeck_sensor`` (and the
``.pth`` bootstrap that imports this package) stays cheap.
"""

from __future__ import annotations

from ._version import __version__

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: typing is costly to import at start-up
if TYPE_CHECKING:
    from typing import Any

    from ._api import (
        flush,
        get_status,
        init,
        patch,
        patch_anthropic_classes,
        patch_litellm_functions,
        patch_openai_classes,
        shutdown,
        shutdown_requested,
        teardown,
        unpatch,
        unpatch_anthropic_classes,
        unpatch_litellm_functions,
        unpatch_openai_classes,
        wrap,
    )
    from ._directives import DirectiveContext, DirectiveParameter, Parameter, directive
    from ._exceptions import (
        BudgetExceededError,
        ConfigurationError,
        DirectiveError,
        MCPPolicyBlocked,
    )
    from ._provider_enum import Provider
    from ._status import Status

__all__ = [
    "BudgetExceededError",
    "ConfigurationError",
    "DirectiveContext",
    "DirectiveError",
    "DirectiveParameter",
    "MCPPolicyBlocked",
    "Parameter",
    "Provider",
    "Status",
    "__version__",
    "directive",
    "flush",
    "get_status",
    "init",
    "patch",
    "patch_anthropic_classes",
    "patch_litellm_functions",
    "patch_openai_classes",
    "shutdown",
    "shutdown_requested",
    "teardown",
    "unpatch",
    "unpatch_anthropic_classes",
    "unpatch_litellm_functions",
    "unpatch_openai_classes",
    "wrap",
]

# Where each public name lives (imported on first access).
_LAZY = {
    **dict.fromkeys(
        ("init", "patch", "unpatch", "wrap", "flush", "shutdown", "teardown", "get_status",
         "shutdown_requested", "patch_anthropic_classes", "unpatch_anthropic_classes",
         "patch_openai_classes", "unpatch_openai_classes", "patch_litellm_functions",
         "unpatch_litellm_functions"), "_api"),
    **dict.fromkeys(("directive", "Parameter", "DirectiveParameter", "DirectiveContext"),
                    "_directives"),
    **dict.fromkeys(("ConfigurationError", "DirectiveError", "BudgetExceededError",
                     "MCPPolicyBlocked"), "_exceptions"),
    "Provider": "_provider_enum",
    "Status": "_status",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is not None:
        from importlib import import_module

        return getattr(import_module(f".{module}", __name__), name)
    raise AttributeError(f"module 'flightdeck_sensor' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
