"""No code changes: an agent in a fresh virtualenv, configured by environment
variables alone, reports its calls whether its SDKs are imported after the
sensor boots (the usual case) or before it (another ``.pth`` that imports
them first, processed earlier because ``.pth`` files run in name order).

The agent talks to the project's fake LLM provider; the events are read back
from the real collector.
"""

from __future__ import annotations

from typing import Any

import pytest

from fakes.fake_llm import FakeLLM
from fixtures.collector import CollectorProcess
from fixtures.venvs import Venv

pytestmark = pytest.mark.e2e

AGENT = r"""
import anthropic, openai
gpt = openai.OpenAI()
reply = gpt.chat.completions.create(model="gpt-4o-mini",
                                    messages=[{"role": "user", "content": "hello there"}])
claude = anthropic.Anthropic()
message = claude.messages.create(model="claude-haiku-4-5", max_tokens=50,
                                 messages=[{"role": "user", "content": "hello there"}])
stream = gpt.chat.completions.create(model="gpt-4o-mini", stream=True,
                                     messages=[{"role": "user", "content": "stream please"}])
text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
print("ok", type(reply).__name__, type(message).__name__, bool(text))
"""

# Imports both SDKs and builds their resources before flightdeck_sensor.pth runs.
PRELOAD_PTH = ("import os; exec(\"import openai, anthropic\\n"
               "openai.OpenAI(api_key='x').chat.completions\\n"
               "anthropic.Anthropic(api_key='x').messages\")\n")


@pytest.fixture(scope="module")
def sdk_venv(make_venv: Any) -> Venv:
    venv: Venv = make_venv("3.12", extras=("openai", "anthropic"))
    return venv


def agent_env(collector: CollectorProcess, fake: FakeLLM) -> dict[str, str]:
    return {**collector.env(), "OPENAI_BASE_URL": f"{fake.url}/v1", "OPENAI_API_KEY": "sk-test",
            "ANTHROPIC_BASE_URL": fake.url, "ANTHROPIC_API_KEY": "sk-ant-test",
            "FLIGHTDECK_SPOOL": "off"}


def run_agent_and_read(venv: Venv, collector: CollectorProcess,
                       fake: FakeLLM) -> list[dict[str, Any]]:
    result = venv.run(AGENT, env=agent_env(collector, fake), timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok ChatCompletion Message True"), result.stdout
    assert result.stderr == ""
    # 3 calls x (pre + post) + session_start + session_end
    return collector.wait_for_events(8, timeout=15)


def assert_three_calls_reported(events: list[dict[str, Any]]) -> None:
    types = [e["event_type"] for e in events]
    assert types[0] == "session_start"
    assert types[-1] == "session_end"
    assert types.count("pre_call") == 3
    assert types.count("post_call") == 3
    posts = [e for e in events if e["event_type"] == "post_call"]
    assert [p["provider"] for p in posts] == ["openai", "anthropic", "openai"]
    assert all(p["tokens_output"] and p["tokens_output"] > 0 for p in posts[:2])
    assert posts[2]["streaming"]["final_outcome"] == "completed"
    assert len({e["session_id"] for e in events}) == 1


def test_sdks_imported_after_the_boot_are_reported(
        sdk_venv: Venv, collector: CollectorProcess, fake_llm: FakeLLM) -> None:
    events = run_agent_and_read(sdk_venv, collector, fake_llm)
    assert_three_calls_reported(events)


def test_sdks_imported_before_the_boot_are_reported(
        make_venv: Any, collector: CollectorProcess, fake_llm: FakeLLM) -> None:
    venv: Venv = make_venv("3.12", extras=("openai", "anthropic"), private=True)
    (venv.site_packages / "aaa_preload_sdks.pth").write_text(PRELOAD_PTH)
    probe = venv.run("import sys; print('openai.resources.chat.completions.completions' "
                     "in sys.modules)")
    assert probe.stdout.strip() == "True", "the preload .pth did not import the SDKs first"
    events = run_agent_and_read(venv, collector, fake_llm)
    assert_three_calls_reported(events)


def test_with_the_environment_unset_nothing_is_reported_and_nothing_loaded(
        sdk_venv: Venv, collector: CollectorProcess, fake_llm: FakeLLM) -> None:
    env = agent_env(collector, fake_llm)
    del env["FLIGHTDECK_SERVER"]
    result = sdk_venv.run(AGENT + "\nimport sys; print(sorted(m for m in sys.modules "
                          "if m.startswith('flightdeck')))", env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "[]"
    assert collector.events() == []
