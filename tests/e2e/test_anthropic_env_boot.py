"""The Anthropic SDK in a fresh virtualenv with nothing but FLIGHTDECK_* set:
every entry-point shape (create, create(stream=True), the messages.stream()
helper, async) is reported, whether the SDK is imported after the sensor
booted or before it (another ``.pth`` imported it first)."""

from __future__ import annotations

from typing import Any

import pytest

from fixtures.venvs import Venv

pytestmark = pytest.mark.e2e

AGENT = """
import asyncio
import anthropic
ARGS = dict(model="claude-fake", max_tokens=50,
            messages=[{"role": "user", "content": "hello there"}])
client = anthropic.Anthropic(base_url=BASE, api_key="sk-ant-test", max_retries=0)
message = client.messages.create(**ARGS)
events = list(client.messages.create(**ARGS, stream=True))
with client.messages.stream(**ARGS) as stream:
    text = stream.get_final_text()

async def main():
    aclient = anthropic.AsyncAnthropic(base_url=BASE, api_key="sk-ant-test", max_retries=0)
    async with aclient.messages.stream(**ARGS) as stream:
        return "".join([t async for t in stream.text_stream])

print(message.content[0].text, "|", events[-1].type, "|", text, "|", asyncio.run(main()))
"""

EARLY_IMPORT_PTH = "import anthropic; anthropic.Anthropic(api_key='x').messages\n"


def _run_agent(venv: Venv, fake_llm: Any, collector: Any) -> list[dict[str, Any]]:
    result = venv.run(f"BASE = {fake_llm.url!r}\n{AGENT}", env=collector.env())
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        "You said: hello there | message_stop | You said: hello there | You said: hello there")
    assert "Traceback" not in result.stderr
    events = collector.wait_for_events(10)
    return [e for e in events if e["event_type"] not in ("session_start", "session_end")]


def _assert_four_calls(events: list[dict[str, Any]]) -> None:
    assert [e["event_type"] for e in events] == ["pre_call", "post_call"] * 4
    posts = events[1::2]
    assert all((p["tokens_input"], p["tokens_output"]) == (2, 4) for p in posts)
    assert posts[0].get("streaming") is None
    assert all(p["streaming"]["final_outcome"] == "completed" for p in posts[1:])


def test_sdk_imported_after_env_boot_is_reported(
        make_venv: Any, fake_llm: Any, collector: Any) -> None:
    venv = make_venv("3.12", extras=("anthropic",))
    _assert_four_calls(_run_agent(venv, fake_llm, collector))


def test_sdk_imported_before_the_sensor_boots_is_reported(
        make_venv: Any, fake_llm: Any, collector: Any) -> None:
    # given: a .pth that sorts before ours imports the SDK and builds its resources
    venv = make_venv("3.12", extras=("anthropic",), private=True)
    (venv.site_packages / "aaa_early_anthropic.pth").write_text(EARLY_IMPORT_PTH)
    probe = venv.run("import sys; print('anthropic.resources.messages.messages' in sys.modules)")
    assert probe.stdout.strip() == "True", "the early .pth did not import the SDK first"
    # then: the bootstrap patches what is already imported
    _assert_four_calls(_run_agent(venv, fake_llm, collector))
