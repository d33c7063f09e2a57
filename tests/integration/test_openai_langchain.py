"""LangChain's ChatOpenAI, as users run it, against the fake provider: one
event pair per call, attributed to langchain."""

from __future__ import annotations

from typing import Any

import pytest

from fixtures.openai_sdk import ANSWER, MODEL, PROMPT, SERVED_MODEL

langchain_openai = pytest.importorskip("langchain_openai")


def _chat(fake: Any) -> Any:
    return langchain_openai.ChatOpenAI(model=MODEL, base_url=fake.url + "/v1",
                                       api_key="sk-test", max_retries=0)


def test_chat_openai_invoke_reports_one_call_as_langchain(sensor: Any, fake_llm: Any) -> None:
    # given
    sensor.init()

    # when
    message = _chat(fake_llm).invoke(PROMPT)

    # then
    assert message.content == ANSWER
    events = sensor.call_events()
    assert [e["event_type"] for e in events] == ["pre_call", "post_call"]
    assert {e["framework"] for e in events} == {"langchain"}
    post = events[1]
    assert post["model"] == SERVED_MODEL
    assert (post["tokens_input"], post["tokens_output"]) == (6, 8)


def test_chat_openai_stream_reports_one_call_as_langchain(sensor: Any, fake_llm: Any) -> None:
    # given
    sensor.init()

    # when
    text = "".join(str(chunk.content) for chunk in _chat(fake_llm).stream(PROMPT))

    # then
    assert text == ANSWER
    events = sensor.call_events()
    assert [e["event_type"] for e in events] == ["pre_call", "post_call"]
    assert {e["framework"] for e in events} == {"langchain"}
    assert events[1]["streaming"]["final_outcome"] == "completed"
