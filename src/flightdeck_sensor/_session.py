"""A session: one process run's identity, token counter and event stamping."""

from __future__ import annotations

import os
import sys
import threading
import time
import uuid
from typing import Any

from ._config import Config
from ._identity import CLIENT_TYPE, agent_id
from .transport._wire import COMMON_KEY, Identity

# The events whose tokens count toward the session's total (an error's partial
# usage too: the budgets' checks read the total).
_COUNTED = frozenset(("post_call", "embeddings", "llm_error"))


# --------------------------------------------------------------------------
# The events' clock: wall time that a mocked clock cannot move. time-machine
# patches time.time (and datetime, gmtime, clock_gettime(CLOCK_REALTIME)) in C,
# so even a reference taken early reads the mocked time; freezegun replaces
# time.time, time.monotonic and time.perf_counter in the time module and in
# every loaded module's globals that hold them. Neither touches the monotonic
# clock a reference outside a module's globals reaches, so an event's instant
# is a wall-clock base, read once (now and in a fork child), plus the
# monotonic clock: one call, as time.time() was.

def _real_wall_time() -> float:
    """time.time(), or the real time under it while a test library mocks it."""
    travelling = sys.modules.get("_time_machine")
    if travelling is not None:
        try:
            return float(travelling.original_time())
        except Exception:  # not travelling now (it raises), or another version
            pass
    frozen = sys.modules.get("freezegun.api")
    real_time = getattr(frozen, "real_time", None) if frozen is not None else None
    return float(real_time()) if callable(real_time) else time.time()


class _Clock:
    """Holds the monotonic clock where freezegun does not look (a class, not a
    module's globals) and the wall time it started from."""

    # The real one even if this module is imported while freezegun runs.
    monotonic = getattr(sys.modules.get("freezegun.api"), "real_monotonic", time.monotonic)
    base = 0.0

    @classmethod
    def reset(cls) -> None:
        cls.base = _real_wall_time() - cls.monotonic()


_Clock.reset()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_Clock.reset)


class Session:
    """Stamps events with what the caller's thread must capture; holds the
    common fields every event of the session carries and the token total.

    ``stamp`` is on the hot path of every intercepted call;
    ``transport._wire.complete_event`` finishes the event on the sender thread.
    """

    def __init__(self, config: Config, session_id: str | None = None,
                 parent_session_id: str | None = None) -> None:
        self.config = config
        self.id = session_id or config.session_id_hint or str(uuid.uuid4())
        self.parent_session_id = parent_session_id or config.parent_session_id
        self.custom_id = session_id is None and config.session_id_hint is not None
        self._tokens = 0
        self._lock = threading.Lock()
        self._identity = Identity(self._identity_fields())
        self._nonce = self._identity.nonce

    def _identity_fields(self) -> dict[str, Any]:
        c = self.config
        return {
            "session_id": self.id,
            "agent_id": agent_id(c.agent_type, c.user, c.hostname, c.agent_name,
                                 CLIENT_TYPE, c.agent_role if self.parent_session_id else None),
            "agent_type": c.agent_type,
            "client_type": CLIENT_TYPE,
            "agent_name": c.agent_name,
            "user": c.user,
            "hostname": c.hostname,
            "host": c.hostname,
            "flavor": self.flavor,
            "parent_session_id": self.parent_session_id,
            "agent_role": c.agent_role if self.parent_session_id else None,
        }

    @property
    def flavor(self) -> str:
        return self.config.flavor or self.config.agent_name

    @property
    def tokens_used(self) -> int:
        return self._tokens

    def build(self, event_type: str, fields: dict[str, Any]) -> dict[str, Any]:
        """A pending event made of a copy of ``fields`` (see :meth:`stamp`)."""
        return self.stamp(event_type, dict(fields))

    def stamp(self, event_type: str, fields: dict[str, Any]) -> dict[str, Any]:
        """Turn ``fields`` (taken over: the caller made it for this event) into a
        pending event: its type, instant and the session's running token
        total. This is the part of an event that must be read on the caller's
        thread; the sender adds the rest on the sender's (the
        framework too: which frameworks are imported changes at import time,
        not between a call and its shipping, milliseconds later).
        """
        fields["event_type"] = event_type
        fields["timestamp"] = _Clock.base + _Clock.monotonic()  # see _Clock
        added = fields.get("tokens_total") if event_type in _COUNTED else None
        if added:
            # acquire / release, not ``with``: entering and leaving a with block
            # costs more than the lock itself (docs/decisions.md).
            lock = self._lock
            lock.acquire()
            try:
                self._tokens += added
                fields["tokens_used_session"] = self._tokens
            finally:
                lock.release()
        else:
            fields["tokens_used_session"] = self._tokens
        fields[COMMON_KEY] = self._nonce
        return fields

    def forked(self) -> Session:
        """The child's session after fork(): a new id whose parent is ours,
        unless a session-id hint pins parent and child to the same id."""
        if self.config.session_id_hint is not None:
            child = Session(self.config)
        else:
            child = Session(self.config, str(uuid.uuid4()), parent_session_id=self.id)
        return child
