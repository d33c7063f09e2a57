"""HTTP to the ingest endpoint: one keep-alive ``httpx.Client``.

Imported only by the sender (its thread, or the bounded inline send at exit),
never on the user's thread at import time: httpx costs ~100 ms to import.
"""

from __future__ import annotations

import contextlib
import gzip
from dataclasses import dataclass

import httpx

from .._version import __version__

REQUEST_TIMEOUT = 5.0
GZIP_ABOVE = 1024


@dataclass(frozen=True)
class Answer:
    """A server's answer; ``status`` 0 means no answer (connection error, timeout)."""

    status: int
    body: bytes = b""
    retry_after: str | None = None
    error: str = ""


class IngestClient:
    def __init__(self, server: str, token: str | None) -> None:
        headers = {"Content-Type": "application/json",
                   "User-Agent": f"flightdeck-sensor/{__version__}"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._server = server
        # Certificates load only for https: loading them costs ~0.2 s, a tenth
        # of the exit budget of a short-lived process (redirects are not followed).
        self._client = httpx.Client(headers=headers, timeout=REQUEST_TIMEOUT,
                                    follow_redirects=False, trust_env=False,
                                    verify=server.startswith("https://"))

    def post(self, path: str, body: bytes, timeout: float = REQUEST_TIMEOUT) -> Answer:
        """POST ``body`` (gzipped above 1 KiB); never raises."""
        headers = {}
        if len(body) > GZIP_ABOVE:
            body = gzip.compress(body, compresslevel=1)  # 3x cheaper than 6, ~10% larger
            headers["Content-Encoding"] = "gzip"
        try:
            response = self._client.post(self._server + path, content=body, headers=headers,
                                         timeout=max(0.05, min(timeout, REQUEST_TIMEOUT)))
            return Answer(response.status_code, response.content,
                          response.headers.get("Retry-After"))
        except httpx.TimeoutException as exc:
            return Answer(0, error=f"timeout ({type(exc).__name__})")
        except httpx.HTTPError as exc:
            return Answer(0, error=f"{type(exc).__name__}: {_first_line(exc)}")
        except Exception as exc:  # a broken proxy or codec must not kill the sender
            return Answer(0, error=f"{type(exc).__name__}")

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._client.close()


def _first_line(exc: BaseException) -> str:
    text = str(exc).splitlines()
    return text[0][:200] if text else ""
