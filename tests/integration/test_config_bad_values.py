"""Bad values that used to break the sensor in a real process (issue 18, items 6.5
and 6.8): the program keeps working, one short warning says what was wrong."""

from __future__ import annotations

import os
import subprocess
import sys

from fakes.fake_llm import FakeLLM
from fixtures.collector import CollectorProcess

ONE_CALL = """
import openai
openai.OpenAI().chat.completions.create(model="gpt-4o-mini",
                                        messages=[{"role": "user", "content": "hi"}])
print("MARK done")
"""


def run_one_call(fake: FakeLLM, **env: str) -> subprocess.CompletedProcess[str]:
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("FLIGHTDECK_")}
    child_env.update(env, FLIGHTDECK_SPOOL="off", OPENAI_BASE_URL=f"{fake.url}/v1",
                     OPENAI_API_KEY="sk-test")
    return subprocess.run([sys.executable, "-c", ONE_CALL], env=child_env, capture_output=True,
                          text=True, timeout=60)


def sensor_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "flightdeck" in line.lower()]


def test_a_huge_shutdown_timeout_is_cut_and_every_event_still_arrives(
        collector: CollectorProcess, fake_llm: FakeLLM) -> None:
    result = run_one_call(fake_llm, **collector.env(), FLIGHTDECK_SHUTDOWN_TIMEOUT="1e10")

    assert result.returncode == 0 and "MARK done" in result.stdout, result.stderr
    events = collector.wait_for_events(4)
    assert [e["event_type"] for e in events] == ["session_start", "pre_call", "post_call",
                                                 "session_end"]
    [warning] = sensor_lines(result.stderr)
    assert "FLIGHTDECK_SHUTDOWN_TIMEOUT='1e10' is above the maximum of 300" in warning
    assert "Traceback" not in result.stderr


def test_a_url_with_an_impossible_port_turns_the_sensor_off_with_one_warning(
        fake_llm: FakeLLM) -> None:
    result = run_one_call(fake_llm, FLIGHTDECK_SERVER="http://127.0.0.1:99999",
                          FLIGHTDECK_TOKEN="tok-SECRET")

    assert result.returncode == 0 and "MARK done" in result.stdout, result.stderr
    [warning] = sensor_lines(result.stderr)
    assert "FLIGHTDECK_SERVER='http://127.0.0.1:99999' has no valid host[:port]" in warning
    assert warning.endswith("the sensor stays off")
    assert "Traceback" not in result.stderr and "SECRET" not in result.stderr


def test_a_huge_url_full_of_escape_sequences_gives_one_short_clean_warning(
        fake_llm: FakeLLM) -> None:
    url = "http://user:hunter2@127.0.0.1:4000/" + "\x1b[2J" * 25_000  # 100 KB

    result = run_one_call(fake_llm, FLIGHTDECK_SERVER=url, FLIGHTDECK_TOKEN="tok-SECRET")

    assert result.returncode == 0 and "MARK done" in result.stdout, result.stderr
    [warning] = sensor_lines(result.stderr)
    assert len(warning) < 400 and "\x1b" not in result.stderr
    assert "hunter2" not in result.stderr and "the sensor stays off" in warning
