"""The agent of the compatibility matrix: real OpenAI, Anthropic and litellm
calls against the fake provider, run inside a leg's virtualenv with the sensor
booted from FLIGHTDECK_* alone (no code changes, as a user runs it).

Run as ``python -c <this file's text>`` with ``COMPAT_LLM`` (the fake's base
URL) and ``COMPAT_CHECKS``: ``{"check": "model", ...}`` in JSON, a check being
the name of a function below and the model one no other check asks for, so
that its events can be told apart. Each check prints
``CHECK ["name", "ok" | "<error>"]``. Only the SDKs a check uses are imported,
so a leg may lack litellm.
"""

import asyncio
import json
import os
from typing import Any

BASE = os.environ["COMPAT_LLM"]
MESSAGES = [{"role": "user", "content": "hello there"}]


def openai_client(asynchronous: bool = False) -> Any:
    import openai

    client = openai.AsyncOpenAI if asynchronous else openai.OpenAI
    return client(base_url=BASE + "/v1", api_key="sk-test", max_retries=0)


def anthropic_client(asynchronous: bool = False) -> Any:
    import anthropic

    client = anthropic.AsyncAnthropic if asynchronous else anthropic.Anthropic
    return client(base_url=BASE, api_key="sk-ant-test", max_retries=0)


def openai_chat(model: str) -> None:
    openai_client().chat.completions.create(model=model, messages=MESSAGES)


def openai_stream(model: str) -> None:
    for _ in openai_client().chat.completions.create(model=model, messages=MESSAGES,
                                                     stream=True):
        pass


def openai_async_chat(model: str) -> None:
    asyncio.run(openai_client(asynchronous=True).chat.completions.create(
        model=model, messages=MESSAGES))


def openai_embeddings(model: str) -> None:
    openai_client().embeddings.create(model=model, input="a b c")


def anthropic_messages(model: str) -> None:
    anthropic_client().messages.create(model=model, max_tokens=32, messages=MESSAGES)


def anthropic_stream(model: str) -> None:
    with anthropic_client().messages.stream(model=model, max_tokens=32,
                                            messages=MESSAGES) as stream:
        stream.get_final_message()


def anthropic_stream_dropped(model: str) -> None:
    """The fake drops this stream midway: the SDK raising that is the call working."""
    try:
        for _ in anthropic_client().messages.create(model=model, max_tokens=32,
                                                    messages=MESSAGES, stream=True):
            pass
    except Exception as exc:
        # httpx's RemoteProtocolError, wrapped in APIConnectionError by anthropic 2.17 on
        if type(exc).__name__ not in ("RemoteProtocolError", "APIConnectionError"):
            raise
        return
    raise AssertionError("the stream was not dropped")


def anthropic_async_messages(model: str) -> None:
    asyncio.run(anthropic_client(asynchronous=True).messages.create(
        model=model, max_tokens=32, messages=MESSAGES))


def litellm_openai(model: str) -> None:
    import litellm

    litellm.completion(model="openai/" + model, messages=MESSAGES, api_base=BASE + "/v1",
                       api_key="sk-test", max_retries=0)


def litellm_anthropic(model: str) -> None:
    import litellm

    litellm.completion(model="anthropic/" + model, messages=MESSAGES, api_base=BASE,
                       api_key="sk-ant-test", max_retries=0)


def litellm_stream(model: str) -> None:
    import litellm

    for _ in litellm.completion(model="openai/" + model, messages=MESSAGES,
                                api_base=BASE + "/v1", api_key="sk-test", max_retries=0,
                                stream=True):
        pass


for check, model in json.loads(os.environ["COMPAT_CHECKS"]).items():
    try:
        globals()[check](model)
        outcome = "ok"
    except Exception as exc:  # the report says which check broke, and how
        outcome = f"{type(exc).__name__}: {exc}"[:300]
    print("CHECK", json.dumps([check, outcome]), flush=True)
