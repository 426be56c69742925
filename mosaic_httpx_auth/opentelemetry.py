"""OpenTelemetry metrics and spans of `MosaicAuth`'s token requests: `OpenTelemetry`.

An `on_event` hook: ``MosaicAuth(..., on_event=OpenTelemetry())`` records on the global meter
and tracer providers, or on those given. Needs the ``otel`` extra (opentelemetry-api); the
application brings the SDK and its exporters, as for any instrumented library. It records:

- ``mosaic.auth.token.requests`` (counter) and ``mosaic.auth.token.request.duration``
  (histogram, seconds): each token request sent, once, when it ends, with
  ``mosaic.auth.resource`` and ``mosaic.auth.outcome``: ``success``, ``rejected`` (a 4xx
  other than 429: not retried), ``unavailable`` (429 or 5xx), ``no_response`` (unreachable,
  or timed out) or ``invalid_response`` (an answer that is no usable token).
- ``mosaic.auth.unauthorized.retries``: API requests retried with a new token after a 401.
- ``mosaic.auth.token.refreshes``: tokens refreshed ahead of expiry, ``mosaic.auth.outcome``
  ``success`` or ``error`` (the current token kept being served).
- ``mosaic.auth.cache.outages``: times the shared token cache stopped answering, with
  ``error.type``.
- A span, ``mosaic.auth token request``, per token request, timed as the request was, with
  ``mosaic.auth.resource``, ``mosaic.auth.attempt``, ``http.response.status_code`` when a
  failed request had an answer, and status ERROR with ``error.type`` (its outcome) when it
  failed. Made as the request ends, it is a child of the span current in the fetch's task:
  on asyncio, the one current where the fetch began; on trio and for `httpx.Client`, none.
  Its kind is INTERNAL: an HTTP instrumentation of the token client makes the CLIENT span.

No stable semantic convention covers authentication yet (open-telemetry/semantic-conventions
#4022): the names are this library's own, under ``mosaic.auth``; ``http.response.status_code``
and ``error.type`` are the general conventions'. Attributes are of low cardinality, and never
hold a token, a secret or a request's URL.

``http.request.resend_count`` is not set here: opentelemetry-instrumentation-httpx makes an
API request's span inside the transport. An API request sent again after a 401 carries
``extensions["mosaic_resend_count"] = 1``, which that instrumentation's request hook can copy
to its span (the README shows how). A token request
cut short by ``aclose()`` or its event loop's end has no outcome and is not recorded
(`MosaicAuth.stats` counts it, as it was sent).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

try:
    from opentelemetry import metrics, trace
except ImportError as error:
    raise ImportError(
        "mosaic_httpx_auth.opentelemetry needs opentelemetry-api: "
        "pip install 'mosaic-httpx-auth[otel]'"
    ) from error

from . import __version__
from ._exceptions import ConfigurationError

if TYPE_CHECKING:
    from ._telemetry import AuthEvent

__all__ = ["OpenTelemetry"]

SCOPE = "mosaic_httpx_auth"
SPAN_NAME = "mosaic.auth token request"
# The HTTP conventions' buckets, in seconds: the SDK's defaults are for milliseconds, and
# would put every token request in their first bucket.
_DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10)


class OpenTelemetry:
    """An `on_event` hook that records `MosaicAuth`'s token requests, 401 retries, refreshes
    and cache outages as OpenTelemetry metrics and spans (see the module docstring).

    Args:
        meter_provider: Where the metrics go; the global meter provider by default.
        tracer_provider: Where the spans go; the global tracer provider by default.

    Each event costs a few instrument calls, and none comes on a request served from memory.
    Like any hook, it never breaks a request: `MosaicAuth` logs what a hook raises.
    """

    def __init__(
        self,
        *,
        meter_provider: metrics.MeterProvider | None = None,
        tracer_provider: trace.TracerProvider | None = None,
    ) -> None:
        if not isinstance(meter_provider, metrics.MeterProvider | None):
            raise ConfigurationError(
                "meter_provider must be an opentelemetry MeterProvider", setting="meter_provider"
            )
        if not isinstance(tracer_provider, trace.TracerProvider | None):
            raise ConfigurationError(
                "tracer_provider must be an opentelemetry TracerProvider",
                setting="tracer_provider",
            )
        meter = metrics.get_meter(SCOPE, __version__, meter_provider)
        self._tracer = trace.get_tracer(SCOPE, __version__, tracer_provider)
        self._requests = meter.create_counter(
            "mosaic.auth.token.requests", unit="{request}", description="Token requests sent."
        )
        self._durations = meter.create_histogram(
            "mosaic.auth.token.request.duration",
            unit="s",
            description="How long each token request took.",
            explicit_bucket_boundaries_advisory=_DURATION_BUCKETS,
        )
        self._unauthorized_retries = meter.create_counter(
            "mosaic.auth.unauthorized.retries",
            unit="{request}",
            description="API requests retried with a new token after HTTP 401.",
        )
        self._refreshes = meter.create_counter(
            "mosaic.auth.token.refreshes",
            unit="{refresh}",
            description="Tokens refreshed ahead of expiry, or not: served on after a failure.",
        )
        self._cache_outages = meter.create_counter(
            "mosaic.auth.cache.outages",
            unit="{outage}",
            description="Times the shared token cache stopped answering.",
        )

    def __call__(self, event: AuthEvent) -> None:
        """Record `event`; events with nothing to record (a request sent, a cache recovered)
        are passed over."""
        name = event.name
        if name in ("token_fetched", "token_request_failed"):
            self._token_request(event)
        elif name == "unauthorized_retry":
            self._unauthorized_retries.add(1, _with_resource(event.resource, {}))
        elif name in ("token_refreshed", "token_refresh_failed"):
            outcome = "success" if name == "token_refreshed" else "error"
            self._refreshes.add(1, _with_resource(event.resource, {"mosaic.auth.outcome": outcome}))
        elif name == "cache_unavailable":
            self._cache_outages.add(1, {"error.type": event.error or "_OTHER"})

    def _token_request(self, event: AuthEvent) -> None:
        """One token request's count, duration and span, from the event that ended it."""
        outcome = _outcome(event)
        duration = event.request_duration or 0.0
        attributes = _with_resource(event.resource, {"mosaic.auth.outcome": outcome})
        self._requests.add(1, attributes)
        self._durations.record(duration, attributes)
        # Made after the fact with the request's own times: no span is held open across an
        # await, nor paired across the flights that may run at once.
        end = time.time_ns()
        span_attributes = _with_resource(
            event.resource, {"mosaic.auth.attempt": event.attempt or 1}
        )
        if event.status_code is not None:
            span_attributes["http.response.status_code"] = event.status_code
        if outcome != "success":
            span_attributes["error.type"] = outcome
        span = self._tracer.start_span(
            SPAN_NAME,
            kind=trace.SpanKind.INTERNAL,
            attributes=span_attributes,
            start_time=end - round(duration * 1e9),
        )
        if outcome != "success":
            span.set_status(trace.Status(trace.StatusCode.ERROR, event.error))
        span.end(end_time=end)


def _outcome(event: AuthEvent) -> str:
    """How the token request that `event` ended went: ``success`` or the kind of failure, in
    the classes the retry policy tells apart (`_retry.is_retryable`), from what the event
    carries."""
    if event.name == "token_fetched":
        return "success"
    if event.error == "TokenResponseError":
        return "invalid_response"
    status = event.status_code
    if status is None:
        return "no_response"
    if status == 429 or status >= 500:
        return "unavailable"
    return "rejected"


def _with_resource(resource: str | None, attributes: dict[str, str | int]) -> dict[str, str | int]:
    """`attributes`, with ``mosaic.auth.resource`` when the token is for one."""
    if resource is not None:
        attributes["mosaic.auth.resource"] = resource
    return attributes
