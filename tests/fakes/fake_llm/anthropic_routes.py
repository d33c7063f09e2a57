"""Anthropic Messages API routes of the fake provider.

``POST /v1/messages`` (also ``?beta=true``: the server strips queries) answers
a ``Message`` JSON or, with ``"stream": true``, the exact SSE sequence the API
sends (``message_start``, ``content_block_start``, ``ping``,
``content_block_delta``..., ``content_block_stop``, ``message_delta``,
``message_stop``). Vertex (``...:rawPredict`` / ``...:streamRawPredict``) and
Bedrock (``/model/{model}/invoke``, non-streamed) paths get the same answers.

Everything is derived from the request, so tests can assert exact numbers:

- token counts are whitespace-separated words (:func:`words`);
- ``input_tokens`` counts the words of the system prompt and of every message
  text block *without* ``cache_control``; words of system blocks with
  ``cache_control`` are reported as ``cache_creation_input_tokens``, words of
  message blocks with ``cache_control`` as ``cache_read_input_tokens``
  (the API's ``input_tokens`` excludes cached tokens);
- the reply text is ``"You said: <last user text>"``, cut to ``max_tokens``
  words (then ``stop_reason`` is ``max_tokens``), streamed one word per
  ``text_delta``;
- with ``tools`` (and ``tool_choice`` not ``none``) the reply is the text
  ``"Using tools."`` then one ``tool_use`` block per tool (only the named one
  for ``tool_choice: {"type": "tool"}``), input ``{<first property>: <last
  user text>}``, ``stop_reason: tool_use``; each tool block adds the words of
  its JSON input to ``output_tokens``;
- the served model is the requested one, except that ``-latest`` becomes
  ``-20250101``;
- ``request-id`` is ``req_`` + a hash of the request body; the message id
  ``msg_`` + the same hash.

A model named ``fake-error-<status>`` (e.g. ``fake-error-429``) gets that
status with the API's error body; :func:`error_reply` builds the same for
``fake.script(...)``, and :func:`message_events` the raw SSE events, to script
variations (an ``error`` event mid-stream, a truncated stream).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from ._server import Reply, Request, json_reply, route, sse_reply

MESSAGES_PATH = "/v1/messages"

ERROR_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


def words(text: str) -> int:
    """The fake's token count of ``text``."""
    return len(text.split())


# --------------------------------------------------------------------------
# Reading the request.

def _blocks(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if isinstance(content, list):
        return [block for block in content if isinstance(block, dict)]
    return []


def _block_text(block: dict[str, Any]) -> str:
    if block.get("type") == "text" and isinstance(block.get("text"), str):
        return str(block["text"])
    if block.get("type") == "tool_result":
        return " ".join(_block_text(inner) for inner in _blocks(block.get("content")))
    return ""


def input_usage(body: dict[str, Any]) -> dict[str, int]:
    """``input_tokens`` / ``cache_creation_input_tokens`` / ``cache_read_input_tokens``."""
    uncached = creation = read = 0
    for block in _blocks(body.get("system")):
        count = words(_block_text(block))
        if block.get("cache_control"):
            creation += count
        else:
            uncached += count
    for message in body.get("messages") or []:
        if not isinstance(message, dict):
            continue
        for block in _blocks(message.get("content")):
            count = words(_block_text(block))
            if block.get("cache_control"):
                read += count
            else:
                uncached += count
    return {"input_tokens": uncached, "cache_creation_input_tokens": creation,
            "cache_read_input_tokens": read}


def last_user_text(body: dict[str, Any]) -> str:
    for message in reversed(body.get("messages") or []):
        if isinstance(message, dict) and message.get("role") == "user":
            return " ".join(filter(None, (_block_text(b) for b in _blocks(message.get("content")))))
    return ""


def served_model(requested: str) -> str:
    if requested.endswith("-latest"):
        return requested[: -len("-latest")] + "-20250101"
    return requested


def _request_hash(body: dict[str, Any]) -> str:
    return hashlib.sha1(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()[:24]


def request_id(body: dict[str, Any]) -> str:
    return f"req_{_request_hash(body)}"


def _chosen_tools(body: dict[str, Any]) -> list[dict[str, Any]]:
    tools = [t for t in body.get("tools") or [] if isinstance(t, dict) and t.get("name")]
    choice = body.get("tool_choice") or {}
    if not isinstance(choice, dict):
        return tools
    if choice.get("type") == "none":
        return []
    if choice.get("type") == "tool":
        return [t for t in tools if t.get("name") == choice.get("name")]
    return tools


def _tool_input(tool: dict[str, Any], text: str) -> dict[str, Any]:
    schema = tool.get("input_schema") or {}
    properties = schema.get("properties") if isinstance(schema, dict) else None
    if isinstance(properties, dict) and properties:
        return {next(iter(properties)): text}
    return {"input": text}


# --------------------------------------------------------------------------
# Building the answer.

def message_content(body: dict[str, Any]) -> tuple[list[dict[str, Any]], str, int]:
    """(content blocks, stop_reason, output_tokens) the fake answers ``body`` with."""
    text = last_user_text(body)
    tools = _chosen_tools(body)
    if tools:
        blocks: list[dict[str, Any]] = [{"type": "text", "text": "Using tools."}]
        output = words("Using tools.")
        for index, tool in enumerate(tools):
            tool_input = _tool_input(tool, text)
            blocks.append({"type": "tool_use", "id": f"toolu_{_request_hash(body)[:16]}{index:02d}",
                           "name": tool["name"], "input": tool_input})
            output += words(json.dumps(tool_input))
        return blocks, "tool_use", output
    reply = f"You said: {text}".split()
    max_tokens = body.get("max_tokens")
    stop_reason = "end_turn"
    if isinstance(max_tokens, int) and 0 <= max_tokens < len(reply):
        reply, stop_reason = reply[:max_tokens], "max_tokens"
    return [{"type": "text", "text": " ".join(reply)}], stop_reason, len(reply)


def _model_of(request: Request) -> str:
    model = request.json.get("model")
    if isinstance(model, str):
        return model
    # Vertex moves the model into the path (.../models/{model}:rawPredict),
    # Bedrock too (/model/{model}/invoke).
    path = request.path
    if ":" in path:
        return path.rsplit("/", 1)[-1].split(":", 1)[0]
    parts = path.split("/")
    return parts[-2] if len(parts) >= 2 else ""


def message_body(body: dict[str, Any], model: str) -> dict[str, Any]:
    """The non-streamed ``Message`` JSON."""
    content, stop_reason, output_tokens = message_content(body)
    return {
        "id": f"msg_{_request_hash(body)}",
        "type": "message",
        "role": "assistant",
        "model": served_model(model),
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {**input_usage(body), "output_tokens": output_tokens,
                  "service_tier": "standard"},
    }


def message_events(body: dict[str, Any], model: str) -> list[tuple[str, dict[str, Any]]]:
    """The SSE events (name, data) of a streamed answer, as the API sends them."""
    content, stop_reason, output_tokens = message_content(body)
    start_message: dict[str, Any] = {
        "id": f"msg_{_request_hash(body)}", "type": "message", "role": "assistant",
        "model": served_model(model), "content": [], "stop_reason": None, "stop_sequence": None,
        "usage": {**input_usage(body), "output_tokens": 1, "service_tier": "standard"},
    }
    events: list[tuple[str, dict[str, Any]]] = [
        ("message_start", {"type": "message_start", "message": start_message})]
    for index, block in enumerate(content):
        events.extend(_block_events(index, block))
        if index == 0:
            events.append(("ping", {"type": "ping"}))
    events.append(("message_delta", {
        "type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": None},
        "usage": {"output_tokens": output_tokens}}))
    events.append(("message_stop", {"type": "message_stop"}))
    return events


def _block_events(index: int, block: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    if block["type"] == "tool_use":
        start = {**block, "input": {}}
        arguments = json.dumps(block["input"])
        half = len(arguments) // 2
        deltas = ["", arguments[:half], arguments[half:]]
        delta_events = [("content_block_delta", {
            "type": "content_block_delta", "index": index,
            "delta": {"type": "input_json_delta", "partial_json": part}}) for part in deltas]
    else:
        start = {"type": "text", "text": ""}
        pieces = block["text"].split(" ")
        delta_events = [("content_block_delta", {
            "type": "content_block_delta", "index": index,
            "delta": {"type": "text_delta", "text": piece if i == 0 else " " + piece}})
            for i, piece in enumerate(pieces) if piece or i == 0]
    return [("content_block_start", {"type": "content_block_start", "index": index,
                                     "content_block": start}),
            *delta_events,
            ("content_block_stop", {"type": "content_block_stop", "index": index})]


def stream_reply(events: list[tuple[str, dict[str, Any]]],
                 headers: dict[str, str] | None = None) -> Reply:
    """An SSE answer framed as the API frames it (chunked transfer encoding)."""
    reply = sse_reply(events, headers)
    reply.chunked = True
    return reply


def error_body(status: int, message: str = "fake error") -> dict[str, Any]:
    return {"type": "error",
            "error": {"type": ERROR_TYPES.get(status, "api_error"), "message": message}}


def error_reply(status: int, message: str = "fake error", *, retry_after: str | None = None,
                request_id: str = "req_fake_error", should_retry: bool | None = None) -> Reply:
    """An API error answer. ``should_retry`` sets ``x-should-retry`` (the SDK obeys it)."""
    headers = {"request-id": request_id}
    if retry_after is not None:
        headers["retry-after"] = retry_after
    if should_retry is not None:
        headers["x-should-retry"] = "true" if should_retry else "false"
    return json_reply(error_body(status, message), status, headers)


def stream_error_event(error_type: str = "overloaded_error",
                       message: str = "Overloaded") -> tuple[str, dict[str, Any]]:
    """The ``error`` event the API sends when a stream fails after it started."""
    return ("error", {"type": "error", "error": {"type": error_type, "message": message}})


# --------------------------------------------------------------------------
# Routes.

def _answer(request: Request, streamed: bool | None = None) -> Reply:
    body = request.json
    model = _model_of(request)
    if model.startswith("fake-error-"):
        status = int(model.removeprefix("fake-error-") or 500)
        return error_reply(status, f"fake {status}", request_id=request_id(body))
    headers = {"request-id": request_id(body), "anthropic-organization-id": "org_fake"}
    if streamed if streamed is not None else bool(body.get("stream")):
        return stream_reply(message_events(body, model), headers)
    return json_reply(message_body(body, model), 200, headers)


@route("POST", MESSAGES_PATH)
def messages(request: Request) -> Reply:
    return _answer(request)


@route("POST", "/v1/messages/count_tokens")
def count_tokens(request: Request) -> Reply:
    usage = input_usage(request.json)
    return json_reply({"input_tokens": sum(usage.values())})


@route("POST", ":rawPredict")
def vertex_messages(request: Request) -> Reply:
    return _answer(request, streamed=False)


@route("POST", ":streamRawPredict")
def vertex_stream_messages(request: Request) -> Reply:
    return _answer(request, streamed=True)


@route("POST", "/invoke")
def bedrock_messages(request: Request) -> Reply:
    return _answer(request, streamed=False)
