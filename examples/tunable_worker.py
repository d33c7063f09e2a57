"""examples/worker.py with a custom directive of its own: an operator sets the
worker's temperature with ``flightdeck-sensor directive run set_temperature`` or
from the web console's operator dialog (a form built from these parameters).
The decorator is the only line about the sensor; with FLIGHTDECK_* unset it
registers nothing and the worker runs as before.

    python examples/tunable_worker.py [TASKS] [PAUSE_SECONDS] [MODEL]
"""

from __future__ import annotations

import runpy
from pathlib import Path
from typing import Any

import flightdeck_sensor
from flightdeck_sensor import Parameter

SETTINGS = {"temperature": 1.0}


@flightdeck_sensor.directive(
    "set_temperature", description="Set the sampling temperature",
    parameters=[Parameter("value", "float", required=True),
                Parameter("scope", "string", options=["all", "next"], default="all")])
def set_temperature(context: Any, value: float, scope: str = "all") -> dict[str, Any]:
    SETTINGS["temperature"] = value
    return {"temperature": value, "scope": scope}


if __name__ == "__main__":
    runpy.run_path(str(Path(__file__).with_name("worker.py")), run_name="__main__")
