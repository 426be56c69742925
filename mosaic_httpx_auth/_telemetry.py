"""What MosaicAuth reports about itself: counters, log lines and events for a metrics hook."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from ._messages import for_resource

if TYPE_CHECKING:
    from collections.abc import Callable

logger = logging.getLogger("mosaic_httpx_auth")
# A library's warnings belong to the application's logging setup: without one, they would go
# to stderr through logging's last resort, doubling the error the caller is handed anyway.
logger.addHandler(logging.NullHandler())

EventName = Literal[
    "token_requested",
    "token_fetched",
    "token_request_failed",
    "token_refreshed",
    "token_refresh_failed",
    "unauthorized_retry",
    "cache_unavailable",
    "cache_recovered",
]


@dataclass(frozen=True, slots=True)
class AuthEvent:
    """Something `MosaicAuth` did, passed to its `on_event` hook: for metrics and tracing.

    Never carries a secret or a token.

    - ``token_requested``: a token request (attempt number `attempt`) was handed to the HTTP
      client; logged at DEBUG.
    - ``token_fetched``: a token request succeeded; `duration` covers every attempt,
      `request_duration` this last one alone, and `expires_in` is the new token's lifetime.
    - ``token_request_failed``: one attempt failed, `request_duration` seconds after it was sent;
      `retry_in` is the wait before the next attempt, None when the fetch gives up.
    - ``token_refreshed``: a token was replaced ahead of its expiry, while still in use.
    - ``token_refresh_failed``: refreshing a still-valid token failed; it stays in use for
      `expires_in` seconds more, and the next refresh waits `retry_in` seconds.
    - ``unauthorized_retry``: the API answered 401 and the request is retried once.
    - ``cache_unavailable``: the shared token cache failed; tokens are fetched directly, and
      the cache is tried again in `retry_in` seconds. Reported once per outage.
    - ``cache_recovered``: the shared cache answered again, after `duration` seconds.
    """

    name: EventName
    resource: str | None
    attempt: int | None = None
    duration: float | None = None
    status_code: int | None = None
    error: str | None = None
    retry_in: float | None = None
    expires_in: float | None = None
    # Last, so that positional construction of the fields before it keeps working.
    request_duration: float | None = None


@dataclass(frozen=True, slots=True)
class AuthStats:
    """Counters since a `MosaicAuth` was made, from `MosaicAuth.stats()`."""

    token_requests: int
    """Requests sent to the token endpoint, retries included (a fetch whose event loop ended
    before it sent anything sent nothing)."""
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
    cache_outages: int
    """Times the shared token cache stopped answering (each outage counts once)."""


# Each event's counter (if it has one) and log level.
_REPORTS: dict[EventName, tuple[str | None, int]] = {
    "token_requested": ("token_requests", logging.DEBUG),
    "token_fetched": (None, logging.INFO),
    "token_request_failed": ("token_errors", logging.WARNING),
    "token_refreshed": ("refreshes", logging.INFO),
    "token_refresh_failed": ("stale_served", logging.WARNING),
    "unauthorized_retry": ("unauthorized_retries", logging.INFO),
    "cache_unavailable": ("cache_outages", logging.WARNING),
    "cache_recovered": (None, logging.INFO),
}


class Telemetry:
    """Counts, logs and forwards what the request flow, fetcher and endpoint report.

    `report` makes each event a counter, a log line and a hook call. Cache hits are no event,
    as an event per request would cost every request: `cache_hits` is bumped directly, by the
    request flow for a fresh token in hand (the warm path) and by the fetcher for a token the
    states serve without a wait (stale ones among them). Every other counter changes in
    `report` alone. A few log lines belong to no event and are written where they arise
    (`logger`): an unexpected failure's traceback, a wait for another process's token given
    up, a shared cache that still fails, a Redis entry this process cannot read, an API that
    keeps refusing certificate-bound tokens.
    """

    def __init__(self, on_event: Callable[[AuthEvent], object] | None = None) -> None:
        self.on_event = on_event
        self.token_requests = 0
        self.token_errors = 0
        self.unauthorized_retries = 0
        self.cache_hits = 0
        self.refreshes = 0
        self.stale_served = 0
        self.cache_outages = 0

    def stats(self) -> AuthStats:
        return AuthStats(
            token_requests=self.token_requests,
            token_errors=self.token_errors,
            unauthorized_retries=self.unauthorized_retries,
            cache_hits=self.cache_hits,
            refreshes=self.refreshes,
            stale_served=self.stale_served,
            cache_outages=self.cache_outages,
        )

    def report(self, event: AuthEvent, detail: object = None) -> None:
        """Count `event`, log it (with `detail`: the error, or the request retried), and pass
        it to the hook; a failing hook is logged."""
        counter, level = _REPORTS[event.name]
        if counter is not None:
            setattr(self, counter, getattr(self, counter) + 1)
        if event.name == "token_request_failed" and event.retry_in is not None:
            level = logging.INFO  # not a failure yet: the next attempt may well succeed
        if logger.isEnabledFor(level):
            logger.log(level, "%s", log_line(event, detail))
        if self.on_event is None:
            return
        try:
            self.on_event(event)
        except Exception:
            # A metrics hook must never break the requests it observes.
            logger.exception("the on_event hook raised on a %s event", event.name)


def log_line(event: AuthEvent, detail: object = None) -> str:
    """The log line for `event`: what happened to which resource's token, and what comes next."""
    resource = event.resource
    if event.name == "token_requested":
        return f"token request {event.attempt} {for_resource(resource)} sent"
    if event.name == "token_fetched":
        attempts = "1 attempt" if event.attempt == 1 else f"{event.attempt} attempts"
        return (
            f"fetched a token {for_resource(resource)} in {event.duration or 0:.3f} s "
            f"({attempts}), expiring in {event.expires_in or 0:.0f} s"
        )
    if event.name == "token_request_failed":
        then = "" if event.retry_in is None else f"; retrying in {event.retry_in:.2f} s"
        return f"token request {event.attempt} {for_resource(resource)} failed ({detail}){then}"
    if event.name == "token_refreshed":
        return (
            f"refreshed the token {for_resource(resource)} ahead of expiry "
            f"({event.expires_in or 0:.0f} s were left)"
        )
    if event.name == "token_refresh_failed":
        return (
            f"could not refresh the token {for_resource(resource)}; serving the current one, "
            f"usable for {event.expires_in or 0:.0f} s more, and trying again in "
            f"{event.retry_in or 0:.0f} s ({detail})"
        )
    if event.name == "cache_unavailable":
        return (
            f"the shared token cache failed ({detail}); fetching tokens directly, and trying "
            f"it again in {event.retry_in or 0:.0f} s"
        )
    if event.name == "cache_recovered":
        return f"the shared token cache answers again, after {event.duration or 0:.0f} s"
    return f"retrying {detail} once with a new token {for_resource(resource)} after HTTP 401"
