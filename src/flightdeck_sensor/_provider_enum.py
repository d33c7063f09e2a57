"""The ``Provider`` enum of the published sensor's ``patch(providers=...)``.

Each member is a string (``Provider.ANTHROPIC == "anthropic"``), so lists of
members, of strings, or of both mean the same. ``(str, Enum)`` rather than
``StrEnum``, which Python 3.10 lacks.

``MCP``, ``CREWAI`` and ``LANGGRAPH`` are kept so that code written for the
published sensor still runs; this sensor does not instrument them
(docs/decisions.md, "Control plane: the published API"): ``patch()`` says so
once and goes on.
The LLM calls that CrewAI and LangGraph make through the Anthropic SDK, the
OpenAI SDK or litellm are reported all the same.
"""

from __future__ import annotations

from enum import Enum


class Provider(str, Enum):
    """What ``flightdeck_sensor.patch(providers=[...])`` accepts."""

    ANTHROPIC = "anthropic"
    OPENAI = "openai"
    LITELLM = "litellm"
    # Accepted, not instrumented (see the module's docstring).
    MCP = "mcp"
    CREWAI = "crewai"
    LANGGRAPH = "langgraph"


NOT_INSTRUMENTED = frozenset({Provider.MCP.value, Provider.CREWAI.value,
                              Provider.LANGGRAPH.value})
