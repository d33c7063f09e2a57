"""The first calls of a process, while the sensor's sender thread is starting.

The first event starts the sender thread, which imports httpx (~100 ms). The
OpenAI SDK looks for a loaded legacy ``httpx`` with ``sys.modules.get("httpx")``
on every request (``openai._httpx2.normalize_httpx_timeout``); during that
import it finds the half-initialized module and raises ``AttributeError:
partially initialized module 'httpx' has no attribute 'Timeout'`` into the
user's call. Found by scripts/bench_calls.py (fixed in 8299e0c: the OpenAI
hook imports httpx with the SDK); these tests keep it fixed.
"""

from __future__ import annotations

from typing import Any

import pytest

from fakes.fake_llm import FakeLLM
from reliability.sdk_agent import run_agent

pytestmark = pytest.mark.reliability


def test_openai_calls_made_while_the_sender_starts_never_fail(
        collector: Any, fake_llm: FakeLLM) -> None:
    # Given a fresh process whose first LLM call starts the sensor's sender
    # When it makes OpenAI calls back to back from its very first call
    result = run_agent("""
        client = openai_client()
        errors, calls, end = [], 0, time.monotonic() + 1.5
        while time.monotonic() < end:
            calls += 1
            try:
                chat(client)
            except Exception as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
        report(calls=calls, errors=errors[:3], failed=len(errors))
    """, collector.ingest_url, collector.token, fake_llm.url)

    # Then every call returns normally
    assert result.returncode == 0, result.stderr
    assert result.report["failed"] == 0, result.report


def test_anthropic_calls_made_while_the_sender_starts_never_fail(
        collector: Any, fake_llm: FakeLLM) -> None:
    result = run_agent("""
        client = anthropic_client()
        errors, calls, end = [], 0, time.monotonic() + 1.5
        while time.monotonic() < end:
            calls += 1
            try:
                message(client)
            except Exception as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
        report(calls=calls, errors=errors[:3], failed=len(errors))
    """, collector.ingest_url, collector.token, fake_llm.url)

    assert result.returncode == 0, result.stderr
    assert result.report["failed"] == 0, result.report
    assert result.report["calls"] > 0
