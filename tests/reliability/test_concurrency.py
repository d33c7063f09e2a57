"""Many calls at once through the real SDKs: every call one event pair, the
session's token total exact, and the process exits without a deadlock.

(tests/integration/test_delivery_concurrency.py drives ``record()`` directly;
these go through the OpenAI and Anthropic SDKs and the interceptors.)
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from fakes.fake_llm import FakeLLM
from reliability.sdk_agent import run_agent

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(300)]

EXIT_LIMIT = 60  # seconds: far above the 2 s flush budget; only proves "no deadlock"


def assert_one_pair_per_call(events: list[dict[str, Any]], calls: int) -> None:
    kinds = Counter(e["event_type"] for e in events)
    assert kinds == Counter({"pre_call": calls, "post_call": calls, "session_start": 1,
                             "session_end": 1}), kinds
    ids = [e["id"] for e in events]
    assert len(ids) == len(set(ids)), "an event was stored twice"


def assert_every_call_reported_once(collector: Any, report: dict[str, Any], calls: int) -> None:
    """Every call succeeded, the collector holds exactly one pair per call, and the
    token totals (the agent's, the sensor's, the events') agree exactly."""
    assert report["failures"] == [] and report["calls"] == calls
    events = collector.wait_for_events(2 * calls + 2, session_id=report["session"])
    assert_one_pair_per_call(events, calls)
    assert report["sensor_total"] == report["total"]
    posts = [e for e in events if e["event_type"] == "post_call"]
    assert sum(e["tokens_total"] for e in posts) == report["total"]
    assert max(e["tokens_used_session"] for e in posts) == report["total"]


def test_32_threads_of_sdk_calls_report_each_call_once_with_exact_tokens(
        collector: Any, fake_llm: FakeLLM) -> None:
    # Given 32 threads released together, each making 4 calls (OpenAI and Anthropic)
    result = run_agent("""
        oai, ant = openai_client(), anthropic_client()
        barrier = threading.Barrier(32)
        totals, failures = [], []

        def worker(index):
            barrier.wait()
            for call in range(4):
                try:
                    response = chat(oai) if (index + call) % 2 else message(ant)
                    totals.append(tokens(response))
                except Exception as exc:
                    failures.append(repr(exc))

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(32)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        report(total=sum(totals), calls=len(totals), failures=failures[:3],
               session=SENSOR.session.id, sensor_total=SENSOR.session.tokens_used)
    """, collector.ingest_url, collector.token, fake_llm.url, timeout=EXIT_LIMIT)

    # Then the process exited on its own, every call succeeded, and the collector
    # holds exactly one pair per call, with the exact token total
    assert result.returncode == 0, result.stderr
    assert_every_call_reported_once(collector, result.report, 128)


def test_200_asyncio_tasks_report_each_call_once_with_exact_tokens(
        collector: Any, fake_llm: FakeLLM) -> None:
    # Given 200 concurrent asyncio tasks on async OpenAI and Anthropic clients
    result = run_agent("""
        import asyncio, httpx2

        async def main():
            limits = httpx2.Limits(max_connections=16)
            oai = openai.AsyncOpenAI(base_url=FAKE + "/v1", api_key="sk-test", max_retries=0,
                                     http_client=httpx2.AsyncClient(limits=limits))
            ant = anthropic.AsyncAnthropic(base_url=FAKE, api_key="sk-ant-test", max_retries=0,
                                           http_client=httpx2.AsyncClient(limits=limits))

            async def one(index):
                if index % 2:
                    return tokens(await oai.chat.completions.create(
                        model="gpt-4o-mini", messages=MESSAGES))
                return tokens(await ant.messages.create(
                    model="claude-3-5-haiku-latest", max_tokens=32, messages=MESSAGES))

            return await asyncio.gather(*(one(i) for i in range(200)), return_exceptions=True)

        answers = asyncio.run(main())
        failures = [repr(a) for a in answers if isinstance(a, BaseException)]
        totals = [a for a in answers if not isinstance(a, BaseException)]
        report(total=sum(totals), calls=len(totals), failures=failures[:3],
               session=SENSOR.session.id, sensor_total=SENSOR.session.tokens_used)
    """, collector.ingest_url, collector.token, fake_llm.url, timeout=EXIT_LIMIT)

    assert result.returncode == 0, result.stderr
    assert_every_call_reported_once(collector, result.report, 200)
