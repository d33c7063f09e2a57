"""The fake provider's OpenAI answers validate strictly against the SDK's own
types, so what the extractors are tested on is what the API sends."""

from __future__ import annotations

from typing import Any

import pytest
from openai.types import Completion, CreateEmbeddingResponse
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from fakes.fake_llm import openai_routes as routes

CHAT_TOOLS = [{"type": "function", "function": {"name": "lookup", "parameters": {
    "type": "object", "properties": {"q": {"type": "string"}}}}}]
RESPONSES_TOOLS = [{"type": "function", "name": "lookup", "parameters": {}}]
MESSAGES = [{"role": "user", "content": "hello there"}]

CHAT_BODIES = {
    "plain": {"model": "m", "messages": MESSAGES},
    "tools": {"model": "m", "messages": MESSAGES, "tools": CHAT_TOOLS},
    "cut": {"model": "m", "messages": MESSAGES, "max_tokens": 1},
}
RESPONSES_BODIES = {
    "plain": {"model": "m", "input": "hello there", "instructions": "be brief"},
    "tools": {"model": "m", "input": "hello there", "tools": RESPONSES_TOOLS},
    "cut": {"model": "m", "input": "hello there", "max_output_tokens": 1},
}


@pytest.mark.parametrize("usage", [False, True])
@pytest.mark.parametrize("name", list(CHAT_BODIES))
def test_chat_answers_and_chunks_are_valid(name: str, usage: bool) -> None:
    body: dict[str, Any] = dict(CHAT_BODIES[name])
    ChatCompletion.model_validate(routes.chat_completion(body), strict=False)
    if usage:
        body["stream_options"] = {"include_usage": True}
    events = routes.chat_stream_events({**body, "stream": True})
    assert events[-1] == (None, "[DONE]")
    chunks = [ChatCompletionChunk.model_validate(data) for _, data in events[:-1]]
    assert (chunks[-1].usage is not None) is usage
    assert all(chunk.usage is None for chunk in chunks[:-1])


@pytest.mark.parametrize("name", list(RESPONSES_BODIES))
def test_responses_answers_and_events_are_valid(name: str) -> None:
    body = RESPONSES_BODIES[name]
    Response.model_validate(routes.response_answer(body))
    adapter: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)
    events = routes.response_stream_events({**body, "stream": True})
    for event_name, data in events:
        assert adapter.validate_python(data).type == event_name
    assert [d["sequence_number"] for _, d in events] == list(range(len(events)))


def test_embeddings_and_legacy_completions_are_valid() -> None:
    request = routes.Request("POST", routes.EMBEDDINGS_PATH, {},
                             {"model": "e", "input": "a b c", "encoding_format": "float"})
    CreateEmbeddingResponse.model_validate(routes.embeddings(request).body)
    request = routes.Request("POST", routes.COMPLETIONS_PATH, {}, {"model": "m", "prompt": "p q"})
    Completion.model_validate(routes.completions(request).body)
