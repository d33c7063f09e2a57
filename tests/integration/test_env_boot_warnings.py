"""Configuration warnings of the environment boot are held until the session
starts (the first LLM call), so that pip and every process that never calls
an LLM stay silent (issue 2, item 4)."""

from __future__ import annotations

import os
import subprocess
import sys

from fakes.fake_llm import FakeLLM
from fixtures.collector import CollectorProcess

CALL = """
import sys, openai
client = openai.OpenAI()
sys.stderr.write("MARK imported\\n"); sys.stderr.flush()
if "--call" in sys.argv:
    client.chat.completions.create(model="gpt-4o-mini",
                                   messages=[{"role": "user", "content": "hi"}])
    sys.stderr.write("MARK called\\n"); sys.stderr.flush()
"""


def run(args: list[str], collector: CollectorProcess, fake: FakeLLM) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLIGHTDECK_")}
    env.update(collector.env(), FLIGHTDECK_AGENT_TYPE="robot", FLIGHTDECK_SPOOL="off",
               OPENAI_BASE_URL=f"{fake.url}/v1", OPENAI_API_KEY="sk-test")
    result = subprocess.run([sys.executable, "-c", CALL, *args], env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stderr


def test_bad_value_is_silent_in_a_process_that_never_calls_an_llm(
        collector: CollectorProcess, fake_llm: FakeLLM) -> None:
    assert run([], collector, fake_llm) == "MARK imported\n"


def test_bad_value_warning_is_logged_once_when_the_first_call_starts_the_session(
        collector: CollectorProcess, fake_llm: FakeLLM) -> None:
    stderr = run(["--call"], collector, fake_llm)
    lines = stderr.splitlines()
    warnings = [line for line in lines if "FLIGHTDECK_AGENT_TYPE" in line]
    assert len(warnings) == 1, stderr
    assert "robot" in warnings[0] and "production" in warnings[0]
    assert lines.index("MARK imported") < lines.index(warnings[0]) < lines.index("MARK called")
    assert collector.token not in stderr
    events = collector.wait_for_events(3)
    assert events[0]["agent_type"] == "production"
