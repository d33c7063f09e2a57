"""FLIGHTDECK_EXPORT=otlp in a fresh virtualenv with the built wheel: an
unmodified agent, configured by the environment only, has its calls arrive at
an OTLP receiver as spans; without the ``[otlp]`` extra it runs as well, and
says once what to install (the spans wait in the spool)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from fakes.fake_llm import FakeLLM
from fakes.otlp_receiver import OtlpReceiver
from fixtures.venvs import PYTHON_VERSIONS, Venv

pytestmark = pytest.mark.e2e

AGENT = r"""
import openai
client = openai.OpenAI()
for _ in range(2):
    client.chat.completions.create(model="gpt-4o-mini",
                                   messages=[{"role": "user", "content": "hello"}])
print("done")
"""


def otlp_env(fake_llm: FakeLLM, receiver: OtlpReceiver, spool: Path) -> dict[str, str]:
    return {"FLIGHTDECK_EXPORT": "otlp", "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url,
            "OTEL_SERVICE_NAME": "e2e-agent", "FLIGHTDECK_SPOOL_DIR": str(spool),
            "FLIGHTDECK_SHUTDOWN_TIMEOUT": "10",
            "OPENAI_BASE_URL": f"{fake_llm.url}/v1", "OPENAI_API_KEY": "sk-test"}


@pytest.mark.parametrize("python", PYTHON_VERSIONS)
def test_an_unmodified_agent_sends_its_calls_as_spans(
        make_venv: Any, fake_llm: FakeLLM, tmp_path: Path, python: str) -> None:
    venv: Venv = make_venv(python, extras=("openai", "opentelemetry-proto"))

    with OtlpReceiver() as receiver:
        result = venv.run(AGENT, env=otlp_env(fake_llm, receiver, tmp_path), timeout=120)

        assert result.returncode == 0, result.stderr
        assert receiver.wait_for(lambda r: len(r.spans()) == 2)
        spans = receiver.spans()
    assert [span.name for span in spans] == ["chat gpt-4o-mini"] * 2
    assert {span.resource["service.name"] for span in spans} == {"e2e-agent"}


def test_without_the_otlp_extra_the_agent_runs_and_is_told_what_to_install(
        make_venv: Any, fake_llm: FakeLLM, tmp_path: Path) -> None:
    venv: Venv = make_venv("3.12", extras=("openai",))

    with OtlpReceiver() as receiver:
        result = venv.run(AGENT, env=otlp_env(fake_llm, receiver, tmp_path), timeout=120)

        assert receiver.requests == []
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "done"
    assert result.stderr.count("flightdeck-sensor[otlp]") == 1
    assert "2 spans spooled" in result.stderr
