"""Who is reporting: user, hostname, agent name and the derived agent_id (docs/protocol.md).

Imported at interpreter start by the configuration: ``socket``, ``getpass``
and ``uuid`` are only imported when the cheap answers are not available.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

AGENT_ID_NAMESPACE = "ee22ab58-26fc-54ef-91b4-b5c0a97f9b61"
CLIENT_TYPE = "flightdeck_sensor"


def current_user(env: Mapping[str, str] | None = None) -> str:
    """Login name without touching pwd when the usual variables answer."""
    env = os.environ if env is None else env
    for name in ("USER", "LOGNAME", "USERNAME"):
        value = env.get(name)
        if value:
            return value
    try:
        import pwd  # built in: cheaper than getpass, which also loads termios

        return pwd.getpwuid(os.getuid()).pw_name
    except ImportError:  # Windows
        import getpass

        return getpass.getuser()
    except Exception:  # no passwd entry in a container
        return str(os.getuid())


def system_hostname() -> str:
    """The machine's host name (``os.uname`` is what ``socket.gethostname`` reads on POSIX)."""
    try:
        name = os.uname().nodename
    except AttributeError:  # Windows
        import socket

        name = socket.gethostname()
    return name or "unknown"


def default_agent_name(user: str, hostname: str) -> str:
    return f"{user}@{hostname}"


def agent_id(
    agent_type: str,
    user: str,
    hostname: str,
    agent_name: str,
    client_type: str = CLIENT_TYPE,
    agent_role: str | None = None,
) -> str:
    """uuid5 of the agent's identity string, as Flightdeck derives it."""
    import uuid

    ident = f"flightdeck://{agent_type}/{user}@{hostname}/{client_type}/{agent_name}"
    if agent_role:
        ident += f"/{agent_role}"
    return str(uuid.uuid5(uuid.UUID(AGENT_ID_NAMESPACE), ident))
