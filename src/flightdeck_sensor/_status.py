"""What ``flightdeck_sensor.get_status()`` returns: the sensor's status dict,
readable by attribute as well (``status.state``, ``status["state"]``).

The published sensor returned an object with attributes; this sensor returned
a dict. A dict subclass serves both kinds of code: every key stays, and the
published attributes read their key (``None`` when the sensor is off).
"""

from __future__ import annotations

from typing import Any


class Status(dict[str, Any]):
    """The status dict; attribute access for the published sensor's names."""

    @property
    def enabled(self) -> bool:
        return bool(self.get("enabled"))

    @property
    def session_id(self) -> str | None:
        return self.get("session_id")

    @property
    def flavor(self) -> str | None:
        return self.get("flavor")

    @property
    def agent_type(self) -> str | None:
        return self.get("agent_type")

    @property
    def state(self) -> str | None:
        """``active``, ``stopped`` (a shutdown directive), ``blocked`` (a budget)
        or ``closed``; ``None`` when there is no sensor."""
        return self.get("state")

    @property
    def tokens_used(self) -> int | None:
        return self.get("tokens_used_session")

    @property
    def token_limit(self) -> int | None:
        return self.get("token_limit")

    @property
    def pct_used(self) -> float | None:
        return self.get("pct_used")


def sensor_off() -> Status:
    """The status before ``init()``, or with the sensor off."""
    return Status(enabled=False)
