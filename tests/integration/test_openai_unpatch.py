"""unpatch() puts the OpenAI SDK's own methods back; patch() is idempotent."""

from __future__ import annotations

from typing import Any

import openai.resources.chat.completions.completions as chat_module
import openai.resources.completions as legacy_module
import openai.resources.embeddings as embeddings_module
import openai.resources.responses.responses as responses_module
import wrapt

import flightdeck_sensor
from fixtures.openai_sdk import MESSAGES, MODEL, sync_client

ENTRY_POINTS = [
    (chat_module.Completions, "create"), (chat_module.Completions, "parse"),
    (chat_module.Completions, "stream"), (chat_module.AsyncCompletions, "create"),
    (chat_module.AsyncCompletions, "parse"), (chat_module.AsyncCompletions, "stream"),
    (responses_module.Responses, "create"), (responses_module.Responses, "parse"),
    (responses_module.Responses, "stream"), (responses_module.AsyncResponses, "create"),
    (responses_module.AsyncResponses, "parse"), (responses_module.AsyncResponses, "stream"),
    (embeddings_module.Embeddings, "create"), (embeddings_module.AsyncEmbeddings, "create"),
    (legacy_module.Completions, "create"), (legacy_module.AsyncCompletions, "create"),
]


def test_unpatch_restores_every_original_and_patch_wraps_once(sensor: Any, fake_llm: Any) -> None:
    # given: patched (twice: idempotent)
    sensor.init()
    flightdeck_sensor.patch()
    for cls, name in ENTRY_POINTS:
        wrapper = vars(cls)[name]
        assert isinstance(wrapper, wrapt.FunctionWrapper), (cls, name)
        assert not isinstance(wrapper.__wrapped__, wrapt.FunctionWrapper), (cls, name)

    # when
    flightdeck_sensor.unpatch()

    # then: plain functions again, and calls are no longer reported
    try:
        for cls, name in ENTRY_POINTS:
            assert not isinstance(vars(cls)[name], wrapt.FunctionWrapper), (cls, name)
        sync_client(fake_llm).chat.completions.create(model=MODEL, messages=MESSAGES)
        assert sensor.call_events() == []
    finally:
        flightdeck_sensor.patch()  # leave the process as the other tests expect it
