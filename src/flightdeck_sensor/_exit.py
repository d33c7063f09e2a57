"""PLACEHOLDER: replaced by the delivery work (issue 3): atexit + SIGTERM + multiprocessing."""

from __future__ import annotations

import atexit
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._sensor import Sensor


def install(sensor: Sensor) -> None:
    atexit.register(sensor.shutdown)
