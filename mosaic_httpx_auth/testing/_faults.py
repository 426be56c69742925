"""Faults the emulator can inject into token requests: errors, delays, dropped connections."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from .._exceptions import ConfigurationError

FaultBody = bytes | str | Mapping[str, Any] | None
"""A fault's response body: raw bytes or text, a JSON object, or None for Mosaic's error shape."""


class DroppedConnection(httpx.RemoteProtocolError):
    """Raised in place of a response when a fault drops the connection.

    A transport error, as a client would see from a server that hung up. Its own class so the
    served emulator can tell a deliberate drop from a bug (and keep it out of the server's log).
    """


@dataclass(frozen=True, slots=True)
class TokenRequestFault:
    """What to do to one token request instead of, or before, answering it.

    The emulator waits `delay` seconds (as its caller waits: on an event loop, or blocking a
    sync client's thread), then `answer` drops the connection if `drop_connection`, else
    answers with `status`, `body` and `headers` if `status` is set, else lets the request
    through.
    """

    status: int | None = None
    body: FaultBody = None
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0
    drop_connection: bool = False

    def __post_init__(self) -> None:
        if self.status is not None and not 200 <= self.status <= 599:
            raise ConfigurationError(
                f"status must be an HTTP status from 200 to 599, not {self.status!r}"
            )
        if not math.isfinite(self.delay) or self.delay < 0:
            raise ConfigurationError(f"delay must be zero or more seconds, not {self.delay!r}")

    def answer(self, request: httpx.Request) -> httpx.Response | None:
        """The response to send, once `delay` has passed, instead of the real one; None to
        answer the request for real.

        Raises `DroppedConnection` when the fault drops the connection.
        """
        if self.drop_connection:
            raise DroppedConnection(
                "Server disconnected without sending a response.", request=request
            )
        if self.status is None:
            return None
        # A new response each time: a fault queued `count` times answers `count` requests.
        content, content_type = _encoded(self.body, self.status)
        headers = httpx.Headers({"Content-Type": content_type})
        headers.update(self.headers)  # case-insensitively, so a given Content-Type wins
        return httpx.Response(self.status, content=content, headers=headers)


def _encoded(body: FaultBody, status: int) -> tuple[bytes, str]:
    """The body's bytes and default content type."""
    if body is None:
        body = {"message": f"Emulated failure (HTTP {status})", "error_code": status}
    if isinstance(body, bytes):
        return body, "application/octet-stream"
    if isinstance(body, str):
        return body.encode(), "text/plain; charset=utf-8"
    return json.dumps(dict(body)).encode(), "application/json"
