"""A program that knows nothing of the sensor: with the environment set, the
import hook patches litellm as its import finishes, so even
``from litellm import completion`` as the program's first line is reported.

Runs the dev virtualenv's interpreter (where ``flightdeck_sensor.pth`` is
installed) as a subprocess; the fresh-virtualenv variants belong to the e2e
suite.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import uuid

from fakes.fake_llm import FakeLLM
from fixtures.collector import CollectorProcess
from fixtures.litellm_calls import ANTHROPIC, MESSAGES

PROGRAM = textwrap.dedent("""
    import sys
    from litellm import completion

    stream = completion(model=sys.argv[1], messages={messages!r}, api_base=sys.argv[2],
                        api_key="sk-test", stream=True)
    print("".join(chunk.choices[0].delta.content or "" for chunk in stream))
""").format(messages=MESSAGES)


def test_program_importing_litellm_by_name_is_reported_from_the_environment(
        sensor_collector: CollectorProcess, fake_llm: FakeLLM) -> None:
    session_id = str(uuid.uuid4())
    plain_env = {name: value for name, value in os.environ.items()
                 if not name.startswith("FLIGHTDECK_")}
    plain_env["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    sensor_env = {**plain_env, **sensor_collector.env(), "FLIGHTDECK_SESSION_ID": session_id,
                  "FLIGHTDECK_SPOOL": "off"}

    def run(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", PROGRAM, ANTHROPIC.model, ANTHROPIC.api_base(fake_llm)],
            env=env, capture_output=True, text=True, timeout=120)

    without_sensor = run(plain_env)
    finished = run(sensor_env)

    assert finished.returncode == 0, finished.stderr
    assert finished.stdout == without_sensor.stdout  # the program cannot tell
    assert finished.stdout.strip().endswith("You said: hello there world")
    events = sensor_collector.wait_for_events(4, session_id=session_id)
    assert [e["event_type"] for e in events] == ["session_start", "pre_call", "post_call",
                                                 "session_end"]
    post = events[2]
    assert post["provider"] == "anthropic"
    assert post["streaming"]["final_outcome"] == "completed"
    assert (post["tokens_input"], post["tokens_output"]) == (ANTHROPIC.tokens_input,
                                                             ANTHROPIC.tokens_output)
    assert "litellm" in events[0]["interceptor_versions"]
