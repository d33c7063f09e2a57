"""Resolved sensor configuration.

Stdlib only: imported by the ``.pth`` bootstrap. ``resolve_config`` turns the
environment plus ``init()`` keyword arguments (environment wins) into one
frozen :class:`Config` and a list of warning messages; it never raises.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field

PROVIDER_NAMES: tuple[str, ...] = ("anthropic", "openai", "litellm")


@dataclass(frozen=True)
class Config:
    server: str  # normalized ingest base URL, always containing /ingest, no trailing slash
    token: str | None = field(default=None, repr=False)
    enabled: bool = True
    session_id_hint: str | None = None  # canonical lowercase UUID, or None
    agent_name: str = ""
    agent_type: str = "production"
    user: str = ""
    hostname: str = ""
    flavor: str = ""
    agent_role: str | None = None
    parent_session_id: str | None = None
    capture_prompts: bool = False
    inject_stream_usage: bool = False
    providers: frozenset[str] = frozenset(PROVIDER_NAMES)
    log_level: int | None = None  # set only when FLIGHTDECK_LOG_LEVEL was given
    shutdown_timeout: float = 2.0
    spool_enabled: bool = True
    spool_dir: str | None = None  # None: the user's cache dir
    allow_insecure: bool = False
    max_queue_events: int = 10_000
    max_queue_bytes: int = 16 * 1024 * 1024
    max_content_bytes: int = 64 * 1024


def resolve_config(
    env: Mapping[str, str] | None = None, **kwargs: object
) -> tuple[Config, list[str]]:
    """Resolve env + kwargs into a Config; return it with the warnings to log."""
    return _resolve(os.environ if env is None else env, kwargs)


def _resolve(env: Mapping[str, str], kwargs: Mapping[str, object]) -> tuple[Config, list[str]]:
    """PLACEHOLDER (issue 2 hardens it): the minimum to run the sensor."""
    from ._identity import current_hostname, current_user

    warnings: list[str] = []
    server = env.get("FLIGHTDECK_SERVER") or str(kwargs.get("server") or "")
    server = server.rstrip("/")
    if server and "/ingest" not in server:
        server += "/ingest"
    token = env.get("FLIGHTDECK_TOKEN") or kwargs.get("token")
    hint_raw = env.get("FLIGHTDECK_SESSION_ID") or kwargs.get("session_id")
    hint = canonical_uuid(str(hint_raw)) if hint_raw else None
    user, host = current_user(), current_hostname()
    agent_name = env.get("FLIGHTDECK_AGENT_NAME") or str(kwargs.get("agent_name") or f"{user}@{host}")
    capture = env.get("FLIGHTDECK_CAPTURE_PROMPTS", "").lower() in ("1", "true", "yes", "on") or (
        bool(kwargs.get("capture_prompts")))
    config = Config(
        server=server, token=str(token) if token else None, enabled=bool(server),
        session_id_hint=hint, agent_name=agent_name, user=user, hostname=host,
        flavor=env.get("AGENT_FLAVOR") or agent_name, capture_prompts=capture,
        spool_dir=env.get("FLIGHTDECK_SPOOL_DIR") or None,
        spool_enabled=env.get("FLIGHTDECK_SPOOL", "on").lower() not in ("off", "0", "false"),
    )
    return config, warnings


def canonical_uuid(value: str) -> str | None:
    """The canonical lowercase 8-4-4-4-12 form of any UUID spelling, or None."""
    try:
        return str(uuid.UUID(value.strip()))
    except (ValueError, AttributeError, TypeError):
        return None
