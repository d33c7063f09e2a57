"""The exceptions of the published sensor's API.

The sensor raises only two of them into the program, and only after an
operator or a budget asked for it: :class:`DirectiveError` (the agent was
stopped) and :class:`BudgetExceededError` (a token budget blocks further
calls). :class:`ConfigurationError` is kept so that code written for the
published sensor (``except flightdeck_sensor.ConfigurationError``) still
imports; this sensor never raises it (docs/decisions.md, "Control plane").
"""

from __future__ import annotations


class ConfigurationError(Exception):
    """A configuration the published sensor refused. Never raised by this one."""


class DirectiveError(Exception):
    """An operator stopped this agent: the call was not sent to the provider."""

    def __init__(self, action: str, reason: str) -> None:
        self.action = action
        self.reason = reason
        super().__init__(f"Directive {action}: {reason}")

    def __reduce__(self) -> tuple[type[DirectiveError], tuple[str, str]]:
        # A pool worker's exception is pickled to its parent: rebuilt from the
        # constructor's own arguments, not from the message.
        return type(self), (self.action, self.reason)


class BudgetExceededError(Exception):
    """The session's token budget blocks further calls: the call was not sent."""

    def __init__(self, session_id: str, tokens_used: int, token_limit: int) -> None:
        self.session_id = session_id
        self.tokens_used = tokens_used
        self.token_limit = token_limit
        super().__init__(
            f"Token budget exceeded: {tokens_used}/{token_limit} (session {session_id})")

    def __reduce__(self) -> tuple[type[BudgetExceededError], tuple[str, int, int]]:
        return type(self), (self.session_id, self.tokens_used, self.token_limit)


class MCPPolicyBlocked(Exception):
    """An MCP tool call the published sensor's MCP policy blocked. This sensor
    does not instrument MCP and never raises it; kept so that code catching it
    still imports (docs/decisions.md, "Control plane: the published API")."""

    def __init__(self, *, server_url: str, server_name: str, fingerprint: str, policy_id: str,
                 decision_path: str, message: str | None = None) -> None:
        self.server_url = server_url
        self.server_name = server_name
        self.fingerprint = fingerprint
        self.policy_id = policy_id
        self.decision_path = decision_path
        super().__init__(message or f"MCP policy blocked tool call to {server_name} "
                                    f"({server_url}) via {decision_path}")


# Tracebacks and reprs name them where the program imports them from.
for _exception in (ConfigurationError, DirectiveError, BudgetExceededError, MCPPolicyBlocked):
    _exception.__module__ = "flightdeck_sensor"
