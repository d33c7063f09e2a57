"""Responses are read from the model's instance dict when every field is there,
and field by field otherwise: a field pydantic keeps in ``__pydantic_extra__``
(an SDK older than the API), an object with slots, a model without the SDK's
``_request_id`` all report what attribute reads would."""

from __future__ import annotations

from typing import Any

import anthropic
import openai
from openai.types.chat.chat_completion import Choice
from openai.types.completion_usage import CompletionUsage

from fakes.fake_llm import openai_routes as routes
from flightdeck_sensor.interceptors._anthropic import message_outcome
from flightdeck_sensor.interceptors._openai_read import chat_outcome

BODY: dict[str, Any] = {"model": "gpt-fake", "messages": [{"role": "user", "content": "hello"}]}


class OlderSDKChatCompletion(openai.BaseModel):
    """A ChatCompletion as an SDK that predates ``system_fingerprint`` and
    ``service_tier`` declares it: the API's values land in ``__pydantic_extra__``."""

    id: str
    model: str
    choices: list[Choice]
    usage: CompletionUsage | None = None


class SlottedMessage:
    """A user-supplied response object without an instance dict."""

    __slots__ = ("content", "id", "model", "stop_reason", "usage")

    def __init__(self, usage: Any) -> None:
        self.id = "msg_slots"
        self.model = "claude-slots"
        self.stop_reason = "end_turn"
        self.usage = usage
        self.content: list[Any] = []


def test_fields_an_older_sdk_keeps_as_extra_are_still_reported() -> None:
    body = {**routes.chat_completion(BODY), "system_fingerprint": "fp_1", "service_tier": "flex"}
    completion = OlderSDKChatCompletion.model_validate(body)
    extra = completion.__pydantic_extra__
    assert extra is not None
    assert (extra["system_fingerprint"], extra["service_tier"]) == ("fp_1", "flex")

    outcome = chat_outcome(completion)

    assert outcome.provider_metadata == {"response_id": body["id"], "system_fingerprint": "fp_1",
                                         "service_tier": "flex"}
    assert (outcome.model, outcome.tokens_input, outcome.stop_reason) == (
        body["model"], body["usage"]["prompt_tokens"], "stop")
    assert outcome.request_id is None


def test_a_response_object_without_an_instance_dict_is_read_field_by_field() -> None:
    usage = anthropic.types.Usage(input_tokens=10, output_tokens=5, cache_read_input_tokens=3,
                                  cache_creation_input_tokens=None)

    outcome = message_outcome(SlottedMessage(usage))

    assert (outcome.model, outcome.stop_reason, outcome.tokens_input, outcome.tokens_output) == (
        "claude-slots", "end_turn", 13, 5)
    assert outcome.provider_metadata == {"message_id": "msg_slots"}
    assert outcome.request_id is None


def test_the_sdk_request_id_is_read_where_the_sdk_put_it_and_only_there() -> None:
    completion = openai.types.chat.ChatCompletion.model_validate(routes.chat_completion(BODY))
    assert chat_outcome(completion).request_id is None  # a model not made from a response

    completion._request_id = "req_1"  # as the SDK sets it on the model a call returns

    assert chat_outcome(completion).request_id == "req_1"
