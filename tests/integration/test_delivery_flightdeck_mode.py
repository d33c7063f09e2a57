"""Against an ingestion without the batch endpoint (a real Flightdeck), the
sender falls back to one event per request, in order, and every event passes
Flightdeck's validation (the collector in ``--no-batch`` mode)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable

from fakes.fake_llm import FakeLLM
from fixtures.collector import CollectorProcess

AGENT = """
import json, openai
import flightdeck_sensor
client = openai.OpenAI()
for n in range(5):
    client.chat.completions.create(model="gpt-4o-mini",
                                   messages=[{"role": "user", "content": f"question {n}"}])
flightdeck_sensor.flush(10)
print(json.dumps(flightdeck_sensor.get_status()))
"""


def test_no_batch_endpoint_switches_to_single_events_in_order(
        collector_factory: Callable[..., CollectorProcess], fake_llm: FakeLLM) -> None:
    collector = collector_factory(extra_args=("--no-batch",))
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLIGHTDECK_")}
    env.update(collector.env(), FLIGHTDECK_SPOOL="off", OPENAI_BASE_URL=f"{fake_llm.url}/v1",
               OPENAI_API_KEY="sk-test")

    result = subprocess.run([sys.executable, "-c", AGENT], env=env, capture_output=True,
                            text=True, timeout=60)

    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout.splitlines()[-1])
    assert status["mode"] == "single"
    assert not status["dropped"]
    events = collector.wait_for_events(12)  # session_start, 5 pairs, session_end
    types = [e["event_type"] for e in events]
    assert types == ["session_start"] + ["pre_call", "post_call"] * 5 + ["session_end"]
    prompts = [e["tokens_input"] for e in events if e["event_type"] == "post_call"]
    assert len(prompts) == 5
    assert len({e["id"] for e in events}) == 12
