"""Run a small program with the sensor in a fresh Python process.

The program is driven through ``flightdeck_sensor.init()`` and the sensor's
``record()``, so these tests exercise delivery without any LLM SDK:

    result = run_program("call(tokens=10)", server=server.url, spool_dir=tmp_path)
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

TOKEN = "tok-secret-4f1c9e"

PRELUDE = """\
import logging, os, sys
logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                    format="%(levelname)s %(name)s %(message)s")
import flightdeck_sensor
from flightdeck_sensor import _sensor
flightdeck_sensor.init(server=os.environ["TEST_SERVER"], token=os.environ["TEST_TOKEN"])
SENSOR = _sensor.current()

def call(tokens=10, model="gpt-test"):
    SENSOR.record("post_call", {"model": model, "tokens_input": tokens - 1,
                                "tokens_output": 1, "tokens_total": tokens,
                                "latency_ms": 3, "provider": "openai"})
"""


def program_env(server: str, spool_dir: Path | str, token: str = TOKEN,
                **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLIGHTDECK_", "AGENT_"))}
    env.update(TEST_SERVER=server, TEST_TOKEN=token, FLIGHTDECK_SPOOL_DIR=str(spool_dir),
               PYTHONUNBUFFERED="1")
    # Tests about something else than the exit budget get a generous one: on a
    # loaded machine, importing httpx alone can take most of the default 2 s.
    env["FLIGHTDECK_SHUTDOWN_TIMEOUT"] = "10"
    env.update(extra)
    return env


def program_source(body: str) -> str:
    return PRELUDE + textwrap.dedent(body)


def run_program(body: str, server: str, spool_dir: Path | str, timeout: float = 60,
                **extra_env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", program_source(body)],
                          env=program_env(server, spool_dir, **extra_env),
                          capture_output=True, text=True, timeout=timeout)


def start_program(body: str, server: str, spool_dir: Path | str,
                  **extra_env: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", program_source(body)],
                            env=program_env(server, spool_dir, **extra_env),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
