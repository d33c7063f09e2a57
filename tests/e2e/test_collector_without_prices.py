"""A plain ``pip install flightdeck-sensor`` (without the ``[collector]`` extra, so
without the price database): the collector still stores everything, says once how to
get costs, and shows every cost as unknown ("?"), never as $0."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from fixtures.collector import CollectorProcess
from fixtures.collector_events import valid_event
from fixtures.venvs import Venv

pytestmark = pytest.mark.e2e

BATCH = "/ingest/v1/events/batch"


def test_without_the_price_database_every_cost_is_unknown_and_collect_says_how(
        make_venv: Any, tmp_path: Path) -> None:
    # Given the wheel alone in a fresh virtualenv: no genai-prices
    venv: Venv = make_venv("3.12")
    assert venv.run("import importlib.util as u; print(u.find_spec('genai_prices'))"
                    ).stdout.strip() == "None"
    collector = CollectorProcess(tmp_path, python=venv.python).start()
    try:
        # When a session with a call of a well-known model arrives
        session = str(uuid.uuid4())
        call = valid_event(session_id=session, model="gpt-4o-mini", provider="openai")
        status, answer = collector.post(BATCH, {"events": [
            valid_event("session_start", session_id=session), call]})
        assert status == 200 and answer["accepted"] == 2, answer
        sessions = collector.cli("sessions", "--json")
        events = collector.cli("events", session, "--json")
    finally:
        collector.stop()

    # Then collect printed the one-line hint, and every cost is unknown, not zero
    hints = [line for line in collector.output().splitlines()
             if "flightdeck-sensor[collector]" in line]
    assert len(hints) == 1
    [row] = json.loads(sessions.stdout)
    assert (row["cost_usd"], row["cost"], row["calls_unpriced"]) == (None, "?", 1)
    [stored_call] = [e for e in json.loads(events.stdout) if e["id"] == call["id"]]
    assert stored_call["cost_usd"] is None


def test_the_sensor_never_imports_the_price_database() -> None:
    # The collector alone prices; no module of the sensor outside it names the database
    import flightdeck_sensor

    package = Path(flightdeck_sensor.__file__).parent
    naming = [path.relative_to(package).as_posix() for path in package.rglob("*.py")
              if "genai_prices" in path.read_text() and path.parent.name != "collector"]
    assert naming == []
