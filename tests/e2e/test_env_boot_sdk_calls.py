"""No code changes, and no cost when off: in a fresh virtualenv with the
sensor installed but ``FLIGHTDECK_SERVER`` unset, an agent's SDK calls load
nothing of the sensor and send nothing. (The SDKs imported before and after
an environment boot are covered per provider in ``test_openai_env_boot.py``
and ``test_anthropic_env_boot.py``.)"""

from __future__ import annotations

from typing import Any

import pytest

from fakes.fake_llm import FakeLLM
from fixtures.collector import CollectorProcess
from fixtures.venvs import Venv

pytestmark = pytest.mark.e2e

AGENT = r"""
import sys, openai
client = openai.OpenAI()
reply = client.chat.completions.create(model="gpt-4o-mini",
                                       messages=[{"role": "user", "content": "hello"}])
print(type(reply).__name__, sorted(m for m in sys.modules if m.startswith("flightdeck")))
"""


def test_with_the_environment_unset_nothing_is_loaded_and_nothing_sent(
        make_venv: Any, collector: CollectorProcess, fake_llm: FakeLLM) -> None:
    # Given the sensor installed beside the OpenAI SDK, and every variable but the server
    venv: Venv = make_venv("3.12", extras=("openai",))
    env = {"FLIGHTDECK_TOKEN": collector.token, "OPENAI_BASE_URL": f"{fake_llm.url}/v1",
           "OPENAI_API_KEY": "sk-test"}

    # When an agent makes a call
    result = venv.run(AGENT, env=env, timeout=120)

    # Then the call works, no flightdeck module was imported, and nothing arrived
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ChatCompletion []"
    assert result.stderr == ""
    assert collector.events() == []
