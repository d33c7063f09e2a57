"""An agent program for the reliability tests: real OpenAI and Anthropic SDK
calls against the fake provider, the sensor configured by ``init()``, in a
fresh Python process (anything about exit, fork or signals runs there).

    result = run_agent('''
        total = sum(chat().usage.total_tokens for _ in range(3))
        report(total=total, session=SENSOR.session.id)
    ''', server=collector.ingest_url, token=collector.token, llm=fake_llm.url)
    result.report["total"]

The program prints ``REPORT {json}`` lines through ``report(**values)``;
``AgentResult.report`` merges them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PRELUDE = """\
import json, logging, os, sys, threading, time
logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                    format="%(created).3f %(levelname)s %(name)s %(message)s")
import anthropic, openai
import flightdeck_sensor
from flightdeck_sensor import _sensor
flightdeck_sensor.init(server=os.environ["TEST_SERVER"], token=os.environ["TEST_TOKEN"])
flightdeck_sensor.patch()
SENSOR = _sensor.current()
FAKE = os.environ["TEST_LLM"]
MESSAGES = [{"role": "user", "content": "What is the capital of France"}]


def openai_client():
    return openai.OpenAI(base_url=FAKE + "/v1", api_key="sk-test", max_retries=0)


def anthropic_client():
    return anthropic.Anthropic(base_url=FAKE, api_key="sk-ant-test", max_retries=0)


def async_openai_client():
    return openai.AsyncOpenAI(base_url=FAKE + "/v1", api_key="sk-test", max_retries=0)


def async_anthropic_client():
    return anthropic.AsyncAnthropic(base_url=FAKE, api_key="sk-ant-test", max_retries=0)


def chat(client=None):
    return (client or openai_client()).chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES)


def message(client=None):
    return (client or anthropic_client()).messages.create(
        model="claude-3-5-haiku-latest", max_tokens=32, messages=MESSAGES)


def tokens(response):
    usage = response.usage
    total = getattr(usage, "total_tokens", None)
    return total if total is not None else usage.input_tokens + usage.output_tokens


def report(**values):
    sys.stdout.flush()  # one write per line: forked children share this pipe
    os.write(1, ("REPORT " + json.dumps(values) + "\\n").encode())


def log_submitted_ids(path):
    \"\"\"Append every event id the sensor submits to ``path`` (line-buffered).\"\"\"
    ids = open(path, "a", buffering=1)
    submit = SENSOR.transport.submit

    def logged(event):
        # The sensor may stamp ids on its sender thread; one stamped here is kept.
        event.setdefault("id", str(__import__("uuid").uuid4()))
        ids.write(event["id"] + "\\n")
        submit(event)

    SENSOR.transport.submit = logged
"""


@dataclass
class AgentResult:
    returncode: int
    stdout: str
    stderr: str

    @property
    def report(self) -> dict[str, Any]:
        merged: dict[str, Any] = {}
        for line in self.stdout.splitlines():
            if line.startswith("REPORT "):
                merged.update(json.loads(line[len("REPORT "):]))
        return merged


def agent_env(server: str, token: str, llm: str, spool_dir: Path | str | None = None,
              **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLIGHTDECK_", "AGENT_"))}
    env.update(TEST_SERVER=server, TEST_TOKEN=token, TEST_LLM=llm, PYTHONUNBUFFERED="1")
    env["FLIGHTDECK_SPOOL"] = "off" if spool_dir is None else "on"
    if spool_dir is not None:
        env["FLIGHTDECK_SPOOL_DIR"] = str(spool_dir)
    env.update(extra)
    return env


def agent_source(body: str) -> str:
    return PRELUDE + textwrap.dedent(body)


def run_agent(body: str, server: str, token: str, llm: str, timeout: float = 90,
              spool_dir: Path | str | None = None, **extra_env: str) -> AgentResult:
    done = subprocess.run([sys.executable, "-c", agent_source(body)],
                          env=agent_env(server, token, llm, spool_dir, **extra_env),
                          capture_output=True, text=True, timeout=timeout)
    return AgentResult(done.returncode, done.stdout, done.stderr)


def start_agent(body: str, server: str, token: str, llm: str,
                spool_dir: Path | str | None = None, **extra_env: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", agent_source(body)],
                            env=agent_env(server, token, llm, spool_dir, **extra_env),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
