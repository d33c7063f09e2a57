"""The fake LLM provider in process: an ``httpx2.MockTransport`` answering with the
fake provider's own replies (``tests/fakes/fake_llm``), no sockets, so the network
does not hide the sensor's cost; and the SDK clients that talk to it. A request's
``x-bench-deltas`` header sets how many content deltas a streamed answer has."""

from __future__ import annotations

import json
from typing import Any

import httpx2

from fakes.fake_llm import Reply, Request
from fakes.fake_llm._server import ROUTES, _load_routes

_load_routes()  # the route modules register themselves into ROUTES

N_SHORT, N_LONG = 4, 64  # content deltas per streamed answer


def _is_delta(name: str | None, data: str) -> bool:
    if name in ("content_block_delta", "response.output_text.delta"):
        return True
    if name is None and '"delta"' in data:
        try:
            choices = json.loads(data).get("choices") or [{}]
        except ValueError:
            return False
        return bool(choices[0].get("delta", {}).get("content"))
    return False


def _with_deltas(events: list[tuple[str | None, str]], count: int) -> list[tuple[str | None, str]]:
    """The same stream with exactly ``count`` content deltas (copies of the first)."""
    deltas = [e for e in events if _is_delta(*e)]
    if not deltas:
        return events
    first = events.index(deltas[0])
    rest = [e for e in events[first:] if not _is_delta(*e)]
    return events[:first] + [deltas[0]] * count + rest


def _render(reply: Reply, deltas: int) -> httpx2.Response:
    if reply.sse is None:
        return httpx2.Response(reply.status, headers={"content-type": "application/json",
                                                      **reply.headers},
                               content=json.dumps(reply.body).encode())
    frames = b"".join(((f"event: {name}\n" if name else "") + f"data: {data}\n\n").encode()
                      for name, data in _with_deltas(reply.sse, deltas))
    return httpx2.Response(reply.status, headers={"content-type": "text/event-stream",
                                                  **reply.headers}, content=frames)


class Provider:
    """Answers like the fake LLM, in process; replies cached per request body."""

    def __init__(self) -> None:
        self._cache: dict[tuple[str, bytes, int], tuple[int, dict[str, str], bytes]] = {}

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        raw = request.read()
        deltas = int(request.headers.get("x-bench-deltas", N_SHORT))
        key = (request.url.path, raw, deltas)
        cached = self._cache.get(key)
        if cached is None:
            response = _render(self._answer(request, raw), deltas)
            cached = (response.status_code, dict(response.headers), response.read())
            self._cache[key] = cached
        status, headers, content = cached
        return httpx2.Response(status, headers=headers, content=content)

    def _answer(self, request: httpx2.Request, raw: bytes) -> Reply:
        path = request.url.path
        handler = ROUTES.get(("POST", path))
        if handler is None:
            handler = next((h for (m, p), h in ROUTES.items()
                            if m == "POST" and path.endswith(p)), None)
        if handler is None:
            raise LookupError(f"the fake provider has no route for {path}")
        headers = {k.lower(): v for k, v in request.headers.items()}
        return handler(Request("POST", path, headers, json.loads(raw) if raw else None))


def mock_http_client(provider: Provider, deltas: int) -> httpx2.Client:
    return httpx2.Client(transport=httpx2.MockTransport(provider),
                         headers={"x-bench-deltas": str(deltas)})


def openai_client(provider: Provider, deltas: int) -> Any:
    """An OpenAI client whose requests ``provider`` answers, streams with ``deltas`` deltas."""
    import openai

    return openai.OpenAI(base_url="http://fake.invalid/v1", api_key="sk-bench", max_retries=0,
                         http_client=mock_http_client(provider, deltas))


def anthropic_client(provider: Provider, deltas: int) -> Any:
    """An Anthropic client whose requests ``provider`` answers, as :func:`openai_client`."""
    import anthropic

    return anthropic.Anthropic(base_url="http://fake.invalid", api_key="sk-ant-bench",
                               max_retries=0, http_client=mock_http_client(provider, deltas))
