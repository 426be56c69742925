"""What MosaicAuth reports about itself: counters, log lines and events for a metrics hook."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from collections.abc import Callable

logger = logging.getLogger("mosaic_httpx_auth")

EventName = Literal[
    "token_fetched",
    "token_request_failed",
    "token_refreshed",
    "token_refresh_failed",
    "unauthorized_retry",
]


@dataclass(frozen=True, slots=True)
class AuthEvent:
    """Something `MosaicAuth` did, passed to its `on_event` hook: for metrics and tracing.

    Never carries a secret or a token.

    - ``token_fetched``: a token request succeeded; `duration` covers every attempt.
    - ``token_request_failed``: one attempt failed; `retry_in` is the wait before the next
      attempt, None when the fetch gives up.
    - ``token_refreshed``: a token was replaced ahead of its expiry, while still in use.
    - ``token_refresh_failed``: refreshing a still-valid token failed, which stays in use.
    - ``unauthorized_retry``: the API answered 401 and the request is retried once.
    """

    name: EventName
    resource: str | None
    attempt: int | None = None
    duration: float | None = None
    status_code: int | None = None
    error: str | None = None
    retry_in: float | None = None


@dataclass(frozen=True, slots=True)
class AuthStats:
    """Counters since a `MosaicAuth` was made, from `MosaicAuth.stats()`."""

    token_requests: int
    """Requests sent to the token endpoint, retries included."""
    token_errors: int
    """Token requests that failed: refused, unreachable, timed out or unusable."""
    unauthorized_retries: int
    """API requests retried with a new token after a 401."""
    cache_hits: int
    """Requests that got a cached token without waiting."""
    refreshes: int
    """Tokens replaced ahead of their expiry while still in use."""
    stale_served: int
    """Refreshes that failed while the current token was still valid and kept being served."""


class Telemetry:
    """Counts, logs and forwards what the request flow, store and endpoint report."""

    def __init__(self, on_event: Callable[[AuthEvent], object] | None = None) -> None:
        self.on_event = on_event
        self.token_requests = 0
        self.token_errors = 0
        self.unauthorized_retries = 0
        self.cache_hits = 0
        self.refreshes = 0
        self.stale_served = 0

    def stats(self) -> AuthStats:
        return AuthStats(
            token_requests=self.token_requests,
            token_errors=self.token_errors,
            unauthorized_retries=self.unauthorized_retries,
            cache_hits=self.cache_hits,
            refreshes=self.refreshes,
            stale_served=self.stale_served,
        )

    def emit(self, event: AuthEvent, level: int, message: str, *arguments: object) -> None:
        """Log `message` at `level` and pass `event` to the hook; a failing hook is logged."""
        logger.log(level, message, *arguments)
        if self.on_event is None:
            return
        try:
            self.on_event(event)
        except Exception:
            # A metrics hook must never break the requests it observes.
            logger.exception("the on_event hook raised on a %s event", event.name)
