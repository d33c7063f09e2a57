"""OpenAI API routes of the fake provider.

``POST /v1/chat/completions``, ``POST /v1/responses``, ``POST /v1/embeddings``
and ``POST /v1/completions`` (legacy text completion) answer with the JSON the
API returns or, with ``"stream": true``, the exact SSE the API sends:

- chat / legacy completions: ``data: {chunk}`` frames without event names,
  the first chat delta carrying ``role``, then one content delta per word, a
  last chunk with ``finish_reason``; a final usage-only chunk (``choices: []``)
  only when ``stream_options.include_usage`` is true (every other chunk then
  carries ``"usage": null``), and ``data: [DONE]``;
- responses: typed events (``event: response.created`` ... ``event:
  response.completed``), each data with ``type`` and ``sequence_number``;
  usage only on ``response.completed`` (or ``response.incomplete``).

Everything is derived from the request, so tests can assert exact numbers:

- token counts are whitespace-separated words (:func:`words`);
- prompt tokens are the words of every message text (chat), of
  ``instructions`` and every input text (responses), of the prompt (legacy),
  of the input (embeddings); with ``prompt_cache_key`` set, the words of the
  ``system`` / ``developer`` messages (chat) or of ``instructions``
  (responses) are reported as cached (``cached_tokens``, included in the
  prompt tokens as the API does);
- the reply text is ``"You said: <last user text>"``, cut to ``max_tokens`` /
  ``max_completion_tokens`` / ``max_output_tokens`` words (then
  ``finish_reason: length`` / ``status: incomplete``), streamed one word per
  delta;
- with ``tools`` (and ``tool_choice`` not ``none``) the reply is one function
  call per tool (only the named one when ``tool_choice`` names a function),
  arguments ``{<first property>: <last user text>}``, ``finish_reason:
  tool_calls``; output tokens are the words of the arguments JSON;
- with a ``json_schema`` response format, the reply text is a JSON object with
  each schema property filled (strings: the last user text, numbers: 1,
  booleans: true), so ``parse()`` helpers succeed;
- embeddings: one vector per input, ``dimensions`` long (default 8); floats,
  or base64 little-endian float32 with ``encoding_format: base64`` (the SDK
  asks for base64 by default and decodes it);
- the served model is the requested one plus ``-2025-01-01`` unless it already
  ends in a date (embedding models are served as requested);
- ``x-request-id`` is ``req_`` + a hash of the request body; ids likewise.

A model named ``fake-error-<status>`` or ``fake-error-<status>-<code>`` (e.g.
``fake-error-429``, ``fake-error-400-context_length_exceeded``) gets that
status with the API's error body (429 adds ``retry-after: 7``);
:func:`error_reply` builds the same for ``fake.script(...)``, and
:func:`chat_stream_events` / :func:`response_stream_events` the raw SSE
events, to script variations.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import struct
from typing import Any

from ._server import Reply, Request, json_reply, route, sse_reply

CHAT_PATH = "/v1/chat/completions"
RESPONSES_PATH = "/v1/responses"
EMBEDDINGS_PATH = "/v1/embeddings"
COMPLETIONS_PATH = "/v1/completions"

CREATED = 1_735_689_600  # 2025-01-01T00:00:00Z
DEFAULT_DIMENSIONS = 8

ERRORS: dict[int, tuple[str, str | None]] = {  # status -> (type, code)
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", "unsupported_country_region_territory"),
    404: ("invalid_request_error", "model_not_found"),
    409: ("invalid_request_error", None),
    422: ("invalid_request_error", None),
    429: ("requests", "rate_limit_exceeded"),
    500: ("server_error", None),
    503: ("server_error", None),
}


def words(text: str) -> int:
    """The fake's token count of ``text``."""
    return len(text.split())


# --------------------------------------------------------------------------
# Reading the request.

def _content_text(content: Any) -> str:
    """Text of a message ``content``: a string or a list of typed parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [str(part.get("text")) for part in content
                 if isinstance(part, dict) and isinstance(part.get("text"), str)]
        return " ".join(texts)
    return ""


def _messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [m for m in body.get("messages") or [] if isinstance(m, dict)]


def _input_items(body: dict[str, Any]) -> list[dict[str, Any]]:
    """Responses API ``input``: a string is one user message."""
    value = body.get("input")
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    if isinstance(value, list):
        return [item for item in value if isinstance(item, dict)]
    return []


def last_user_text(items: list[dict[str, Any]]) -> str:
    for item in reversed(items):
        if item.get("role") == "user":
            return _content_text(item.get("content"))
    return ""


def _cached_roles_words(items: list[dict[str, Any]]) -> int:
    return sum(words(_content_text(m.get("content"))) for m in items
               if m.get("role") in ("system", "developer"))


def chat_prompt_usage(body: dict[str, Any]) -> tuple[int, int]:
    """(prompt_tokens, cached_tokens) of a chat request."""
    messages = _messages(body)
    prompt = sum(words(_content_text(m.get("content"))) for m in messages)
    cached = _cached_roles_words(messages) if body.get("prompt_cache_key") else 0
    return prompt, cached


def responses_prompt_usage(body: dict[str, Any]) -> tuple[int, int]:
    """(input_tokens, cached_tokens) of a responses request."""
    instructions = body.get("instructions")
    instruction_words = words(instructions) if isinstance(instructions, str) else 0
    items = _input_items(body)
    prompt = instruction_words + sum(words(_content_text(i.get("content"))) for i in items)
    cached = instruction_words if body.get("prompt_cache_key") else 0
    return prompt, cached


def served_model(requested: str) -> str:
    if re.search(r"\d{4}-\d{2}-\d{2}$", requested) or "embedding" in requested:
        return requested
    return f"{requested}-2025-01-01"


def _request_hash(body: dict[str, Any]) -> str:
    return hashlib.sha1(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()[:24]


def request_id(body: dict[str, Any]) -> str:
    return f"req_{_request_hash(body)}"


def _headers(body: dict[str, Any]) -> dict[str, str]:
    return {"x-request-id": request_id(body), "openai-processing-ms": "1"}


def _word_limit(body: dict[str, Any], *names: str) -> int | None:
    for name in names:
        value = body.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
    return None


# --------------------------------------------------------------------------
# Deriving the answer.

def _function_tools(body: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(name, parameters schema) of each function tool, chat or responses shape."""
    found: list[tuple[str, dict[str, Any]]] = []
    for tool in body.get("tools") or []:
        if not isinstance(tool, dict):
            continue
        function = tool.get("function")
        spec: dict[str, Any] = function if isinstance(function, dict) else tool
        name = spec.get("name")
        if isinstance(name, str) and name:
            parameters = spec.get("parameters")
            found.append((name, parameters if isinstance(parameters, dict) else {}))
    return found


def chosen_tools(body: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    tools = _function_tools(body)
    choice = body.get("tool_choice")
    if choice == "none":
        return []
    if isinstance(choice, dict):
        named = choice.get("name") or (choice.get("function") or {}).get("name")
        if named:
            return [t for t in tools if t[0] == named]
    return tools


def tool_arguments(parameters: dict[str, Any], text: str) -> str:
    properties = parameters.get("properties")
    key = next(iter(properties)) if isinstance(properties, dict) and properties else "input"
    return json.dumps({key: text})


def _schema_instance(schema: dict[str, Any], text: str, depth: int = 0) -> Any:
    kind = schema.get("type")
    if kind == "object" and depth < 5:
        properties = schema.get("properties") or {}
        return {name: _schema_instance(sub if isinstance(sub, dict) else {}, text, depth + 1)
                for name, sub in properties.items()}
    if kind == "array":
        return []
    if kind in ("integer", "number"):
        return 1
    if kind == "boolean":
        return True
    return text


def _json_schema(body: dict[str, Any]) -> dict[str, Any] | None:
    """The JSON schema asked for: chat ``response_format`` or responses ``text.format``."""
    chat_format = body.get("response_format")
    if isinstance(chat_format, dict) and chat_format.get("type") == "json_schema":
        schema = (chat_format.get("json_schema") or {}).get("schema")
        return schema if isinstance(schema, dict) else {}
    text = body.get("text")
    text_format = text.get("format") if isinstance(text, dict) else None
    if isinstance(text_format, dict) and text_format.get("type") == "json_schema":
        schema = text_format.get("schema")
        return schema if isinstance(schema, dict) else {}
    return None


def reply_text(body: dict[str, Any], user_text: str, limit: int | None) -> tuple[str, bool]:
    """(reply text, cut short by the token limit)."""
    schema = _json_schema(body)
    if schema is not None:
        return json.dumps(_schema_instance(schema, user_text)), False
    reply = f"You said: {user_text}".split()
    if limit is not None and len(reply) > limit:
        return " ".join(reply[:limit]), True
    return " ".join(reply), False


def _text_deltas(text: str) -> list[str]:
    """One delta per word, spaces kept, so the deltas join back to ``text``."""
    parts = text.split(" ")
    return [part if i == 0 else " " + part for i, part in enumerate(parts)] if text else []


def error_body(status: int, code: str | None = None, message: str | None = None) -> dict[str, Any]:
    error_type, default_code = ERRORS.get(status, ("server_error" if status >= 500
                                                  else "invalid_request_error", None))
    if code == "insufficient_quota":
        error_type = "insufficient_quota"
    return {"error": {"message": message or f"Fake error {status}", "type": error_type,
                      "param": None, "code": code or default_code}}


def error_reply(status: int, code: str | None = None, message: str | None = None,
                headers: dict[str, str] | None = None) -> Reply:
    """The API's error answer; 429 carries ``retry-after: 7`` unless headers say otherwise."""
    all_headers = {"x-request-id": f"req_error_{status}"}
    if status == 429:
        all_headers["retry-after"] = "7"
    all_headers.update(headers or {})
    return json_reply(error_body(status, code, message), status, all_headers)


def _error_for_model(body: dict[str, Any]) -> Reply | None:
    model = body.get("model")
    if not isinstance(model, str):
        return None
    match = re.fullmatch(r"fake-error-(\d{3})(?:-(\w+))?", model)
    if match is None:
        return None
    return error_reply(int(match.group(1)), match.group(2))


def _streamed(reply: Reply) -> Reply:
    reply.chunked = True  # as the API streams: a dropped connection is an error, not an end
    return reply


# --------------------------------------------------------------------------
# Chat completions.

def _chat_usage(body: dict[str, Any], completion_tokens: int) -> dict[str, Any]:
    prompt, cached = chat_prompt_usage(body)
    return {"prompt_tokens": prompt, "completion_tokens": completion_tokens,
            "total_tokens": prompt + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": cached, "cache_write_tokens": 0,
                                      "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                          "accepted_prediction_tokens": 0,
                                          "rejected_prediction_tokens": 0}}


def chat_answer(body: dict[str, Any]) -> tuple[str | None, list[dict[str, Any]], str, int]:
    """(content, tool_calls, finish_reason, completion_tokens) for a chat request."""
    user_text = last_user_text(_messages(body))
    tools = chosen_tools(body)
    if tools:
        arguments = [tool_arguments(params, user_text) for _, params in tools]
        calls: list[dict[str, Any]] = [
            {"id": f"call_{_request_hash(body)[:16]}_{i}", "type": "function",
             "function": {"name": name, "arguments": arguments[i]}}
            for i, (name, _) in enumerate(tools)]
        tokens = sum(words(text) for text in arguments)
        return None, calls, "tool_calls", tokens
    limit = _word_limit(body, "max_completion_tokens", "max_tokens")
    text, cut = reply_text(body, user_text, limit)
    return text, [], "length" if cut else "stop", words(text)


def chat_completion(body: dict[str, Any]) -> dict[str, Any]:
    content, calls, finish, tokens = chat_answer(body)
    message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None,
                               "annotations": []}
    if calls:
        message["tool_calls"] = calls
    return {"id": f"chatcmpl-{_request_hash(body)}", "object": "chat.completion",
            "created": CREATED, "model": served_model(str(body.get("model"))),
            "choices": [{"index": 0, "message": message, "logprobs": None,
                         "finish_reason": finish}],
            "usage": _chat_usage(body, tokens), "service_tier": "default",
            "system_fingerprint": "fp_fake"}


def _include_usage(body: dict[str, Any]) -> bool:
    options = body.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


def chat_stream_events(body: dict[str, Any]) -> list[tuple[str | None, Any]]:
    """The SSE the API streams for ``body`` (chunks, optional usage chunk, [DONE])."""
    content, calls, finish, tokens = chat_answer(body)
    with_usage = _include_usage(body)
    base = {"id": f"chatcmpl-{_request_hash(body)}", "object": "chat.completion.chunk",
            "created": CREATED, "model": served_model(str(body.get("model"))),
            "service_tier": "default", "system_fingerprint": "fp_fake"}

    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        data = dict(base, choices=[{"index": 0, "delta": delta, "logprobs": None,
                                    "finish_reason": finish_reason}])
        if with_usage:
            data["usage"] = None
        return data

    deltas: list[dict[str, Any]] = []
    if calls:
        for i, call in enumerate(calls):
            head = {"index": i, "id": call["id"], "type": "function",
                    "function": {"name": call["function"]["name"], "arguments": ""}}
            deltas.append({"role": "assistant", "content": None, "tool_calls": [head]}
                          if i == 0 else {"tool_calls": [head]})
            for piece in _text_deltas(call["function"]["arguments"]):
                deltas.append({"tool_calls": [{"index": i, "function": {"arguments": piece}}]})
    else:
        deltas.append({"role": "assistant", "content": "", "refusal": None})
        deltas.extend({"content": piece} for piece in _text_deltas(content or ""))
    events: list[tuple[str | None, Any]] = [(None, chunk(d)) for d in deltas]
    events.append((None, chunk({}, finish)))
    if with_usage:
        events.append((None, dict(base, choices=[], usage=_chat_usage(body, tokens))))
    events.append((None, "[DONE]"))
    return events


@route("POST", CHAT_PATH)
@route("POST", "/chat/completions")  # Azure: /openai/deployments/{name}/chat/completions
def chat_completions(request: Request) -> Reply:
    body = request.json
    error = _error_for_model(body)
    if error is not None:
        return error
    if body.get("stream"):
        return _streamed(sse_reply(chat_stream_events(body), _headers(body)))
    return json_reply(chat_completion(body), headers=_headers(body))


# --------------------------------------------------------------------------
# Legacy text completions.

def _prompt_text(body: dict[str, Any]) -> str:
    prompt = body.get("prompt")
    if isinstance(prompt, list):
        return " ".join(p for p in prompt if isinstance(p, str))
    return prompt if isinstance(prompt, str) else ""


def _completion_usage(body: dict[str, Any], completion_tokens: int) -> dict[str, Any]:
    prompt = words(_prompt_text(body))
    return {"prompt_tokens": prompt, "completion_tokens": completion_tokens,
            "total_tokens": prompt + completion_tokens}


def text_completion(body: dict[str, Any]) -> tuple[str, str]:
    """(text, finish_reason) for a legacy completion request."""
    limit = _word_limit(body, "max_tokens")
    text, cut = reply_text({}, _prompt_text(body), 16 if limit is None else limit)
    return text, "length" if cut else "stop"


@route("POST", COMPLETIONS_PATH)
def completions(request: Request) -> Reply:
    body = request.json
    error = _error_for_model(body)
    if error is not None:
        return error
    text, finish = text_completion(body)
    base = {"id": f"cmpl-{_request_hash(body)}", "object": "text_completion",
            "created": CREATED, "model": served_model(str(body.get("model"))),
            "system_fingerprint": "fp_fake"}
    if not body.get("stream"):
        return json_reply(dict(base, choices=[{"text": text, "index": 0, "logprobs": None,
                                               "finish_reason": finish}],
                               usage=_completion_usage(body, words(text))),
                          headers=_headers(body))
    with_usage = _include_usage(body)
    pieces = _text_deltas(text)
    events: list[tuple[str | None, Any]] = []
    for i, piece in enumerate(pieces):
        data = dict(base, choices=[{"text": piece, "index": 0, "logprobs": None,
                                    "finish_reason": finish if i == len(pieces) - 1 else None}])
        if with_usage:
            data["usage"] = None
        events.append((None, data))
    if with_usage:
        events.append((None, dict(base, choices=[], usage=_completion_usage(body, words(text)))))
    events.append((None, "[DONE]"))
    return _streamed(sse_reply(events, _headers(body)))


# --------------------------------------------------------------------------
# Embeddings.

def _embedding_inputs(body: dict[str, Any]) -> list[Any]:
    value = body.get("input")
    if isinstance(value, list) and value and not isinstance(value[0], int):
        return value  # several inputs (strings or token arrays)
    return [value]


def _input_tokens(value: Any) -> int:
    if isinstance(value, list):
        return len(value)  # a token array
    return words(value) if isinstance(value, str) else 0


def embedding_vector(index: int, dimension: int) -> list[float]:
    """Deterministic and exactly representable in float32."""
    return [((index + i) % 8) / 8 for i in range(dimension)]


@route("POST", EMBEDDINGS_PATH)
@route("POST", "/embeddings")
def embeddings(request: Request) -> Reply:
    body = request.json
    error = _error_for_model(body)
    if error is not None:
        return error
    dimension = _word_limit(body, "dimensions") or DEFAULT_DIMENSIONS
    inputs = _embedding_inputs(body)
    as_base64 = body.get("encoding_format") == "base64"
    data = []
    for index in range(len(inputs)):
        vector = embedding_vector(index, dimension)
        encoded: Any = (base64.b64encode(struct.pack(f"<{dimension}f", *vector)).decode()
                        if as_base64 else vector)
        data.append({"object": "embedding", "index": index, "embedding": encoded})
    tokens = sum(_input_tokens(value) for value in inputs)
    return json_reply({"object": "list", "data": data, "model": str(body.get("model")),
                       "usage": {"prompt_tokens": tokens, "total_tokens": tokens}},
                      headers=_headers(body))


# --------------------------------------------------------------------------
# Responses.

def _responses_usage(body: dict[str, Any], output_tokens: int) -> dict[str, Any]:
    prompt, cached = responses_prompt_usage(body)
    return {"input_tokens": prompt,
            "input_tokens_details": {"cached_tokens": cached, "cache_write_tokens": 0},
            "output_tokens": output_tokens, "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": prompt + output_tokens}


def _response_output(body: dict[str, Any]) -> tuple[list[dict[str, Any]], int, bool]:
    """(output items, output tokens, cut short by max_output_tokens)."""
    digest = _request_hash(body)
    user_text = last_user_text(_input_items(body))
    tools = chosen_tools(body)
    if tools:
        items = [{"type": "function_call", "id": f"fc_{digest}_{i}",
                  "call_id": f"call_{digest[:16]}_{i}", "name": name,
                  "arguments": tool_arguments(params, user_text), "status": "completed"}
                 for i, (name, params) in enumerate(tools)]
        return items, sum(words(item["arguments"]) for item in items), False
    text, cut = reply_text(body, user_text, _word_limit(body, "max_output_tokens"))
    message = {"type": "message", "id": f"msg_{digest}", "role": "assistant",
               "status": "incomplete" if cut else "completed",
               "content": [{"type": "output_text", "text": text, "annotations": [],
                            "logprobs": []}]}
    return [message], words(text), cut


def response_object(body: dict[str, Any], status: str = "completed",
                    output: list[dict[str, Any]] | None = None,
                    usage: dict[str, Any] | None = None) -> dict[str, Any]:
    cut = status == "incomplete"
    return {"id": f"resp_{_request_hash(body)}", "object": "response", "created_at": CREATED,
            "status": status, "background": False, "error": None,
            "incomplete_details": {"reason": "max_output_tokens"} if cut else None,
            "instructions": body.get("instructions"),
            "max_output_tokens": body.get("max_output_tokens"),
            "model": served_model(str(body.get("model"))), "output": output or [],
            "parallel_tool_calls": True, "previous_response_id": None,
            "reasoning": {"effort": None, "summary": None}, "service_tier": "default",
            "store": True, "temperature": 1.0,
            "text": body.get("text") or {"format": {"type": "text"}},
            "tool_choice": body.get("tool_choice") or "auto", "tools": body.get("tools") or [],
            "top_p": 1.0, "truncation": "disabled", "usage": usage, "user": None,
            "metadata": {}}


def response_answer(body: dict[str, Any]) -> dict[str, Any]:
    output, tokens, cut = _response_output(body)
    return response_object(body, "incomplete" if cut else "completed", output,
                           _responses_usage(body, tokens))


def response_stream_events(body: dict[str, Any]) -> list[tuple[str | None, Any]]:
    """The typed SSE events the API streams for ``body``."""
    output, tokens, cut = _response_output(body)
    events: list[tuple[str | None, Any]] = []

    def emit(event_type: str, **data: Any) -> None:
        events.append((event_type, dict(type=event_type, sequence_number=len(events), **data)))

    emit("response.created", response=response_object(body, "in_progress"))
    emit("response.in_progress", response=response_object(body, "in_progress"))
    for index, item in enumerate(output):
        if item["type"] == "function_call":
            emit("response.output_item.added", output_index=index,
                 item=dict(item, arguments="", status="in_progress"))
            for piece in _text_deltas(item["arguments"]):
                emit("response.function_call_arguments.delta", item_id=item["id"],
                     output_index=index, delta=piece)
            emit("response.function_call_arguments.done", item_id=item["id"],
                 output_index=index, name=item["name"], arguments=item["arguments"])
        else:
            text = item["content"][0]["text"]
            emit("response.output_item.added", output_index=index,
                 item=dict(item, status="in_progress", content=[]))
            part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
            emit("response.content_part.added", item_id=item["id"], output_index=index,
                 content_index=0, part=part)
            for piece in _text_deltas(text):
                emit("response.output_text.delta", item_id=item["id"], output_index=index,
                     content_index=0, delta=piece, logprobs=[])
            emit("response.output_text.done", item_id=item["id"], output_index=index,
                 content_index=0, text=text, logprobs=[])
            emit("response.content_part.done", item_id=item["id"], output_index=index,
                 content_index=0, part=dict(part, text=text))
        emit("response.output_item.done", output_index=index, item=item)
    final = "response.incomplete" if cut else "response.completed"
    emit(final, response=response_object(body, "incomplete" if cut else "completed", output,
                                         _responses_usage(body, tokens)))
    return events


@route("POST", RESPONSES_PATH)
@route("POST", "/responses")
def responses(request: Request) -> Reply:
    body = request.json
    error = _error_for_model(body)
    if error is not None:
        return error
    if body.get("stream"):
        return _streamed(sse_reply(response_stream_events(body), _headers(body)))
    return json_reply(response_answer(body), headers=_headers(body))
