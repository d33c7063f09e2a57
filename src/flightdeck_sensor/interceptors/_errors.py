"""Classify an SDK exception into the llm_error event's vocabulary (docs/protocol.md).

Works from the exception's class names (its MRO) and HTTP status, which the
Anthropic SDK, the OpenAI SDK and litellm all expose in the same shape.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

# Checked against every class name in the exception's MRO, most specific first.
_BY_CLASS_NAME: dict[str, str] = {
    "RateLimitError": "rate_limit",
    "ContextWindowExceededError": "context_overflow",
    "ContentPolicyViolationError": "content_filter",
    "ContentFilterFinishReasonError": "content_filter",
    "AuthenticationError": "authentication",
    "PermissionDeniedError": "permission",
    "NotFoundError": "not_found",
    "ContentTooLargeError": "request_too_large",
    "RequestTooLargeError": "request_too_large",
    "OverloadedError": "overloaded",
    "ServiceUnavailableError": "overloaded",
    "APITimeoutError": "timeout",
    "Timeout": "timeout",
    "TimeoutException": "timeout",
    "TimeoutError": "timeout",
    "BadRequestError": "invalid_request",
    "UnprocessableEntityError": "invalid_request",
    "InternalServerError": "api_error",
    "APIConnectionError": "api_error",
    # what the SDKs wrap in APIConnectionError, when one reaches us bare (a stream
    # dropped midway, with anthropic before 2.17): the same failure, the same class
    "RemoteProtocolError": "api_error",
    "NetworkError": "api_error",
    "APIError": "api_error",
}

_BY_STATUS: dict[int, str] = {
    400: "invalid_request", 401: "authentication", 403: "permission", 404: "not_found",
    408: "timeout", 413: "request_too_large", 422: "invalid_request", 429: "rate_limit",
    529: "overloaded", 503: "overloaded",
}

_RETRYABLE = {"rate_limit", "overloaded", "timeout", "api_error"}


@dataclass
class ErrorFacts:
    error_type: str = "other"
    provider: str | None = None
    http_status: int | None = None
    provider_error_code: str | None = None
    error_message: str = ""
    request_id: str | None = None
    retry_after: float | None = None
    is_retryable: bool = False
    message_text: str = ""  # str(exc): sent only with prompt capture
    attempt: int | None = None  # which attempt failed, when the SDK says (1 = first)

    def as_event_field(self, capture_prompts: bool) -> dict[str, Any]:
        return {
            "error_type": self.error_type,
            "provider": self.provider,
            "http_status": self.http_status,
            "provider_error_code": self.provider_error_code,
            "error_message": self.message_text if capture_prompts else self.error_message,
            "request_id": self.request_id,
            "retry_after": self.retry_after,
            "is_retryable": self.is_retryable,
        }


def classify(exc: BaseException, provider: str) -> ErrorFacts:
    """ErrorFacts from any SDK exception; never raises."""
    facts = ErrorFacts(provider=provider, error_message=type(exc).__name__)
    with contextlib.suppress(Exception):
        _fill(facts, exc)
    return facts


def _fill(facts: ErrorFacts, exc: BaseException) -> None:
    status = getattr(exc, "status_code", None)
    if isinstance(status, int) and not isinstance(status, bool):
        facts.http_status = status
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    facts.request_id = _first_str(getattr(exc, "request_id", None),
                                  header(headers, "x-request-id"),
                                  header(headers, "request-id"))
    facts.retry_after = retry_after(header(headers, "retry-after"))
    facts.attempt = _attempt(exc, response)
    facts.provider_error_code = error_code(getattr(exc, "body", None), getattr(exc, "code", None))
    facts.error_type = _error_type(exc, facts.http_status, facts.provider_error_code)
    facts.is_retryable = facts.error_type in _RETRYABLE or (
        facts.http_status is not None and facts.http_status >= 500)
    try:
        facts.message_text = str(exc)[:2000]
    except Exception:
        facts.message_text = facts.error_message


def _error_type(exc: BaseException, status: int | None, code: str | None) -> str:
    if code:
        lowered = code.lower()
        if "context_length" in lowered or "context_window" in lowered:
            return "context_overflow"
        if "insufficient_quota" in lowered or "quota" in lowered:
            return "quota_exceeded"
        if "content_filter" in lowered or "content_policy" in lowered:
            return "content_filter"
        if "overloaded" in lowered:
            return "overloaded"
    for cls in type(exc).__mro__:
        found = _BY_CLASS_NAME.get(cls.__name__)
        if found is not None:
            if found == "api_error" and status is not None and status in _BY_STATUS:
                return _BY_STATUS[status]
            return found
    if status is not None:
        return _BY_STATUS.get(status, "api_error" if status >= 500 else "other")
    return "other"


def header(headers: Any, name: str) -> str | None:
    try:
        value = headers.get(name) if headers is not None else None
    except Exception:
        return None
    return value if isinstance(value, str) else None


def _first_str(*values: Any) -> str | None:
    for value in values:
        if isinstance(value, str) and value:
            return value
    return None


def retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


def _attempt(exc: BaseException, response: Any) -> int | None:
    """The Stainless-generated SDKs (anthropic, openai) retry internally and stamp
    each request with ``x-stainless-retry-count``; the failed request tells
    which attempt gave up."""
    try:  # httpx's Response.request raises RuntimeError when unset
        request = getattr(response, "request", None) or getattr(exc, "request", None)
        count = header(getattr(request, "headers", None), "x-stainless-retry-count")
    except Exception:
        return None
    if count is None or not count.isdigit():
        return None
    return int(count) + 1


def error_code(body: Any, code: Any) -> str | None:
    if isinstance(code, str) and code:
        return code
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict):
            for key in ("code", "type"):
                value = error.get(key)
                if isinstance(value, str) and value:
                    return value
    return None
