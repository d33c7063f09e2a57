"""The project's fake LLM provider (OpenAI and Anthropic wire formats) for tests and the demo."""

from ._server import FakeLLM, Reply, Request, json_reply, route, sse_reply

__all__ = ["FakeLLM", "Reply", "Request", "json_reply", "route", "sse_reply"]
