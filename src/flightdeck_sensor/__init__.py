"""flightdeck-sensor: every LLM call of a Python process, reported to Flightdeck.

The public API is imported lazily so that ``import flightdeck_sensor`` (and the
``.pth`` bootstrap that imports this package) stays cheap.
"""

from __future__ import annotations

from ._version import __version__

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: typing is costly to import at start-up
if TYPE_CHECKING:
    from typing import Any

    from ._api import flush, get_status, init, patch, shutdown, unpatch

__all__ = ["__version__", "flush", "get_status", "init", "patch", "shutdown", "unpatch"]

_API = {"init", "patch", "unpatch", "flush", "shutdown", "get_status"}


def __getattr__(name: str) -> Any:
    if name in _API:
        from . import _api

        return getattr(_api, name)
    raise AttributeError(f"module 'flightdeck_sensor' has no attribute {name!r}")
