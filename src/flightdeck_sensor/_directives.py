"""Custom directives: handlers an agent registers with
``@flightdeck_sensor.directive(...)``, which an operator can run from the
control plane.

Each registration has a fingerprint, a stable hash of its signature (name,
description, parameters). The control plane keeps one schema per agent and
fingerprint; a handler whose signature changed is registered anew. The hash is
the published sensor's (SHA-256 of the signature as sorted-key JSON, base64),
so the fingerprints a Flightdeck server already holds for an agent still match
after it switches sensors.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Handler = Callable[..., Any]


@dataclass
class DirectiveParameter:
    """One parameter of a custom directive, as the operator's form shows it.

    The schema is not enforced when the directive runs: the handler gets the
    parameters the operator sent and should check them itself."""

    name: str
    type: str
    description: str = ""
    options: list[str] = field(default_factory=list)
    required: bool = False
    default: Any = None

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.type, "description": self.description,
                "options": list(self.options), "required": self.required,
                "default": self.default}


Parameter = DirectiveParameter


@dataclass
class DirectiveContext:
    """What a custom directive's handler is given as its first argument."""

    session_id: str
    flavor: str
    tokens_used: int
    model: str


@dataclass(frozen=True)
class Registration:
    name: str
    description: str
    parameters: tuple[DirectiveParameter, ...]
    fingerprint: str
    handler: Handler

    def schema(self) -> dict[str, Any]:
        """The body of one directive in ``/v1/directives/register``."""
        return {"name": self.name, "description": self.description,
                "fingerprint": self.fingerprint,
                "parameters": [p.as_json() for p in self.parameters]}


def fingerprint(name: str, description: str, parameters: tuple[DirectiveParameter, ...]) -> str:
    import base64
    import hashlib
    import json

    signature = json.dumps({"name": name, "description": description,
                            "parameters": [p.as_json() for p in parameters]}, sort_keys=True)
    return base64.b64encode(hashlib.sha256(signature.encode()).digest()).decode()


_registry: dict[str, Registration] = {}
_lock = threading.Lock()
# Called with each new registration (the control plane syncs it); set by the sensor.
on_register: Callable[[Registration], None] | None = None


def directive(name: str, description: str = "",
              parameters: list[DirectiveParameter] | None = None) -> Callable[[Handler], Handler]:
    """Register the decorated function as the handler of custom directive ``name``.

    The handler is called as ``handler(context, **parameters)``, on a thread of
    the sensor's (never the program's own), bounded in time; what it returns is
    reported as the directive's result. Returns the function unchanged."""

    def register(handler: Handler) -> Handler:
        params = tuple(parameters or ())
        registration = Registration(name, description, params,
                                    fingerprint(name, description, params), handler)
        with _lock:
            _registry[name] = registration
        notify = on_register
        if notify is not None:
            # registering must never break the program's import
            with contextlib.suppress(Exception):
                notify(registration)
        return handler

    return register


def registered() -> list[Registration]:
    with _lock:
        return list(_registry.values())


def find(name: str) -> Registration | None:
    with _lock:
        return _registry.get(name)
