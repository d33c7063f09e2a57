"""The first calls of a process, while the sensor's sender thread is starting.

The OpenAI SDK looks for a loaded legacy ``httpx`` with ``sys.modules.get("httpx")``
on every request (``openai._httpx2.normalize_httpx_timeout``). When the sender
thread imported httpx lazily, a call made during that import found the
half-initialized module and raised ``AttributeError: partially initialized
module 'httpx' has no attribute 'Timeout'`` into the user's code. Found by
benchmarks/calls.py; fixed first by importing httpx when the sensor was
created, then for good by sending with the standard library's ``http.client``
(the sensor no longer imports httpx at all). These tests keep it fixed,
including for a program whose OpenAI SDK is not instrumented at all.
"""

from __future__ import annotations

from typing import Any

import pytest

from fakes.fake_llm import FakeLLM
from reliability.sdk_agent import run_agent

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(300)]

# Calls ``CALL`` back to back for 1.5 s from the program's first call on, and
# reports how many raised.
CALLS_FOR_A_WHILE = """
{setup}
errors, calls, end = [], 0, time.monotonic() + 1.5
while time.monotonic() < end:
    calls += 1
    try:
        {call}
    except Exception as exc:
        errors.append(f"{{type(exc).__name__}}: {{exc}}")
report(calls=calls, errors=errors[:3], failed=len(errors))
"""


def calls_for_a_while(setup: str, call: str, collector: Any, fake_llm: FakeLLM) -> dict[str, Any]:
    result = run_agent(CALLS_FOR_A_WHILE.format(setup=setup, call=call),
                       collector.ingest_url, collector.token, fake_llm.url)
    assert result.returncode == 0, result.stderr
    return result.report


def test_openai_calls_made_while_the_sender_starts_never_fail(
        collector: Any, fake_llm: FakeLLM) -> None:
    # Given a fresh process whose first LLM call starts the sensor's sender
    # When it makes OpenAI calls back to back from its very first call
    report = calls_for_a_while("client = openai_client()", "chat(client)", collector, fake_llm)
    # Then every call returns normally
    assert report["failed"] == 0, report
    assert report["calls"] > 0


def test_anthropic_calls_made_while_the_sender_starts_never_fail(
        collector: Any, fake_llm: FakeLLM) -> None:
    report = calls_for_a_while("client = anthropic_client()", "message(client)",
                               collector, fake_llm)
    assert report["failed"] == 0, report
    assert report["calls"] > 0


def test_uninstrumented_openai_calls_never_fail_while_the_sender_starts(
        collector: Any, fake_llm: FakeLLM) -> None:
    # Given a program that instruments only Anthropic but also uses the OpenAI SDK
    # When an Anthropic call starts the sender while OpenAI calls run
    setup = """
flightdeck_sensor.unpatch()
flightdeck_sensor.patch(["anthropic"])
client = openai_client()
threading.Thread(target=message, args=(anthropic_client(),)).start()"""
    report = calls_for_a_while(setup, "chat(client)", collector, fake_llm)
    # Then every OpenAI call returns normally
    assert report["failed"] == 0, report
    assert report["calls"] > 0
