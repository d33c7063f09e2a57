"""LangChain's ChatAnthropic, as users run it, gives one event pair per call
attributed to ``framework: langchain``."""

from __future__ import annotations

from typing import Any

import pytest

from fixtures.anthropic_sdk import MODEL, SERVED_MODEL

langchain_anthropic = pytest.importorskip("langchain_anthropic")


def _chat(fake: Any) -> Any:
    return langchain_anthropic.ChatAnthropic(model=MODEL, base_url=fake.url,
                                             api_key="sk-ant-test", max_retries=0,
                                             max_tokens=64)


def _assert_one_langchain_pair(sensor: Any, streamed: bool) -> dict[str, Any]:
    events = sensor.call_events()
    assert [e["event_type"] for e in events] == ["pre_call", "post_call"]
    assert all(e["framework"] == "langchain" for e in events)
    post: dict[str, Any] = events[1]
    assert post["model"] == SERVED_MODEL
    assert post["usage_source"] == "reported"
    assert (post.get("streaming") is not None) is streamed
    return post


def test_chat_anthropic_invoke_is_one_langchain_call(sensor: Any, fake_llm: Any) -> None:
    sensor.init()
    reply = _chat(fake_llm).invoke("What is the capital of France")
    assert reply.content == "You said: What is the capital of France"
    post = _assert_one_langchain_pair(sensor, streamed=False)
    assert post["tokens_output"] == reply.usage_metadata["output_tokens"]


def test_chat_anthropic_stream_is_one_langchain_call(sensor: Any, fake_llm: Any) -> None:
    sensor.init()
    chunks = list(_chat(fake_llm).stream("What is the capital of France"))
    assert "".join(str(c.content) for c in chunks) == "You said: What is the capital of France"
    post = _assert_one_langchain_pair(sensor, streamed=True)
    assert post["streaming"]["final_outcome"] == "completed"


async def test_chat_anthropic_ainvoke_is_one_langchain_call(sensor: Any, fake_llm: Any) -> None:
    sensor.init()
    reply = await _chat(fake_llm).ainvoke("What is the capital of France")
    assert reply.content == "You said: What is the capital of France"
    _assert_one_langchain_pair(sensor, streamed=False)
