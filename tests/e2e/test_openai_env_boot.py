"""The OpenAI SDK in a fresh virtualenv with nothing but FLIGHTDECK_* set: the
sensor boots from the environment and reports the calls, whether the SDK is
imported after the sensor booted (the usual case) or before it (another
``.pth`` imported it first)."""

from __future__ import annotations

from typing import Any

import pytest

from fixtures.venvs import Venv

pytestmark = pytest.mark.e2e

AGENT = """
import openai
client = openai.OpenAI(base_url=BASE + "/v1", api_key="sk-test", max_retries=0)
answer = client.chat.completions.create(
    model="gpt-fake", messages=[{"role": "user", "content": "hello there"}])
chunks = list(client.chat.completions.create(
    model="gpt-fake", messages=[{"role": "user", "content": "hello there"}], stream=True))
vectors = client.embeddings.create(model="text-embedding-fake", input="a b c")
print(answer.choices[0].message.content, len(chunks), len(vectors.data[0].embedding))
"""

EARLY_IMPORT_PTH = ("import openai.resources.chat.completions.completions, "
                    "openai.resources.embeddings\n")


def _run_agent(venv: Venv, fake_llm: Any, collector: Any) -> list[dict[str, Any]]:
    result = venv.run(f"BASE = {fake_llm.url!r}\n{AGENT}", env=collector.env())
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["You", "said:", "hello", "there", "6", "8"]
    assert "Traceback" not in result.stderr
    events = collector.wait_for_events(8)
    return [e for e in events if e["event_type"] not in ("session_start", "session_end")]


def _assert_three_calls(events: list[dict[str, Any]]) -> None:
    assert [e["event_type"] for e in events] == [
        "pre_call", "post_call", "pre_call", "post_call", "pre_call", "embeddings"]
    plain, streamed, embedded = events[1], events[3], events[5]
    assert (plain["tokens_input"], plain["tokens_output"]) == (2, 4)
    assert streamed["streaming"]["final_outcome"] == "completed"
    assert embedded["output_dimensions"] == {"count": 1, "dimension": 8}


def test_sdk_imported_after_env_boot_is_reported(
        make_venv: Any, fake_llm: Any, collector: Any) -> None:
    venv = make_venv("3.12", extras=("openai",))
    _assert_three_calls(_run_agent(venv, fake_llm, collector))


def test_sdk_imported_before_the_sensor_boots_is_reported(
        make_venv: Any, fake_llm: Any, collector: Any) -> None:
    # given: a .pth that sorts before ours imports the SDK's resource modules first
    venv = make_venv("3.12", extras=("openai",), private=True)
    (venv.site_packages / "aaa_early_openai.pth").write_text(EARLY_IMPORT_PTH)

    # then: the bootstrap patches what is already imported
    _assert_three_calls(_run_agent(venv, fake_llm, collector))
