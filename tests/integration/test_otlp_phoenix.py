"""Against a real OTLP backend nobody here wrote (Arize Phoenix, local SQLite):
unmodified agents, configured by the environment only, have every call shown
as an LLM span with its model and token counts, in the right trace, as
Phoenix's own REST API reports them. Phoenix reads the GenAI conventions
itself (it derives its OpenInference attributes from them), so the sensor
sends no attributes of Phoenix's own (docs/decisions.md)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from fixtures.phoenix import Phoenix

# One Phoenix for the module: its tests run on one xdist worker.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("phoenix")]

AGENT = """
import anthropic, openai
chat = openai.OpenAI(max_retries=0).chat.completions
chat.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "one two three"}])
chat.create(model="gpt-4.1", messages=[{"role": "user", "content": "four five"}])
for _ in chat.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "six"}],
                     stream=True, stream_options={"include_usage": True}):
    pass
anthropic.Anthropic(max_retries=0).messages.create(
    model="claude-3-5-haiku-latest", max_tokens=50,
    messages=[{"role": "user", "content": "seven eight"}])
"""

# An agent that already traces with OpenTelemetry, its own spans sent to Phoenix.
TRACED_AGENT = """
import os, openai
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
provider = TracerProvider()
provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
trace.set_tracer_provider(provider)
chat = openai.OpenAI(max_retries=0).chat.completions
with trace.get_tracer("the-agent").start_as_current_span("handle ticket"):
    chat.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "first"}])
    chat.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "second"}])
provider.shutdown()
"""


def run_agent(source: str, phoenix: Phoenix, fake_llm: Any, session: str,
              tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLIGHTDECK_", "OTEL_"))}
    env.update(FLIGHTDECK_EXPORT="otlp", OTEL_EXPORTER_OTLP_ENDPOINT=phoenix.url,
               FLIGHTDECK_SESSION_ID=session, FLIGHTDECK_SPOOL_DIR=str(tmp_path),
               FLIGHTDECK_SHUTDOWN_TIMEOUT="10", OPENAI_BASE_URL=f"{fake_llm.url}/v1",
               OPENAI_API_KEY="sk-test", ANTHROPIC_BASE_URL=fake_llm.url,
               ANTHROPIC_API_KEY="sk-ant-test")
    result = subprocess.run([sys.executable, "-c", source], env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def of_session(spans: list[dict[str, Any]], session: str) -> list[dict[str, Any]]:
    return sorted((s for s in spans if s["attributes"].get("session.id") == session),
                  key=lambda s: s["start_time"])


def test_every_call_is_an_llm_span_with_its_model_and_tokens(
        phoenix: Phoenix, fake_llm: Any, tmp_path: Path) -> None:
    session = str(uuid.uuid4())

    run_agent(AGENT, phoenix, fake_llm, session, tmp_path)
    spans = of_session(phoenix.wait_for_spans(lambda s: len(of_session(s, session)) == 4),
                       session)

    assert [s["attributes"]["llm.model_name"] for s in spans] == [
        "gpt-4o-mini", "gpt-4.1", "gpt-4o-mini", "claude-3-5-haiku-latest"]
    assert {s["span_kind"] for s in spans} == {"LLM"}
    for span in spans:
        attributes = span["attributes"]
        assert attributes["llm.token_count.prompt"] == attributes["gen_ai.usage.input_tokens"] > 0
        assert (attributes["llm.token_count.completion"]
                == attributes["gen_ai.usage.output_tokens"] > 0)
        assert span["parent_id"] is None
    assert len({s["context"]["trace_id"] for s in spans}) == 4  # a trace per call
    assert [s["attributes"]["llm.provider"] for s in spans] == ["openai"] * 3 + ["anthropic"]


def test_an_agent_that_traces_gets_the_calls_inside_its_own_trace(
        phoenix: Phoenix, fake_llm: Any, tmp_path: Path) -> None:
    session = str(uuid.uuid4())

    run_agent(TRACED_AGENT, phoenix, fake_llm, session, tmp_path)
    spans = phoenix.wait_for_spans(lambda s: len(of_session(s, session)) == 2
                                   and any(span["name"] == "handle ticket" for span in s))
    calls = of_session(spans, session)

    [root] = [s for s in spans if s["name"] == "handle ticket"
              and s["context"]["trace_id"] == calls[0]["context"]["trace_id"]]
    assert len(calls) == 2
    for call in calls:
        assert call["context"]["trace_id"] == root["context"]["trace_id"]
        assert call["parent_id"] == root["context"]["span_id"]
        assert call["span_kind"] == "LLM"
        assert call["attributes"]["llm.token_count.total"] > 0
