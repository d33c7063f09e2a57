"""Who is reporting: user, hostname, agent name and the derived agent_id (PROTOCOL.md)."""

from __future__ import annotations

import os
import socket
import uuid

AGENT_ID_NAMESPACE = uuid.UUID("ee22ab58-26fc-54ef-91b4-b5c0a97f9b61")
CLIENT_TYPE = "flightdeck_sensor"


def current_user() -> str:
    """Login name without touching pwd when the usual variables answer."""
    for name in ("USER", "LOGNAME", "USERNAME"):
        value = os.environ.get(name)
        if value:
            return value
    try:
        import getpass

        return getpass.getuser()
    except Exception:  # no passwd entry in a container
        return str(os.getuid()) if hasattr(os, "getuid") else "unknown"


def current_hostname() -> str:
    return os.environ.get("FLIGHTDECK_HOSTNAME") or socket.gethostname() or "unknown"


def agent_id(
    agent_type: str,
    user: str,
    hostname: str,
    agent_name: str,
    client_type: str = CLIENT_TYPE,
    agent_role: str | None = None,
) -> str:
    """uuid5 of the agent's identity string, as Flightdeck derives it."""
    ident = f"flightdeck://{agent_type}/{user}@{hostname}/{client_type}/{agent_name}"
    if agent_role:
        ident += f"/{agent_role}"
    return str(uuid.uuid5(AGENT_ID_NAMESPACE, ident))
