"""`mosaic_httpx_auth.opentelemetry`: the metrics and spans it records, read back through the
SDK's in-memory reader and exporter, against the emulator."""

from __future__ import annotations

import importlib
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio
import httpx
import pytest
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from opentelemetry.util._once import Once

import mosaic_httpx_auth
from mosaic_httpx_auth import AccessToken, AuthEvent, ConfigurationError, Retry
from mosaic_httpx_auth.cache import MemoryTokenCache
from mosaic_httpx_auth.opentelemetry import SPAN_NAME, OpenTelemetry

from .helpers import RISK

if TYPE_CHECKING:
    from collections.abc import Iterator

    from opentelemetry.sdk.trace import ReadableSpan

    from mosaic_httpx_auth.cache import CacheKey, CacheLease
    from mosaic_httpx_auth.testing import MosaicEmulator, RegisteredClient

    from .helpers import FakeClock, FakeMosaic

API = "https://api.transmitsecurity.io"
REQUESTS = "mosaic.auth.token.requests"
DURATIONS = "mosaic.auth.token.request.duration"
RETRIES = "mosaic.auth.unauthorized.retries"
REFRESHES = "mosaic.auth.token.refreshes"
OUTAGES = "mosaic.auth.cache.outages"
RESOURCE = "mosaic.auth.resource"
OUTCOME = "mosaic.auth.outcome"

Series = tuple[object, object]  # (resource, outcome) of a data point


@dataclass
class Recorded:
    """An `OpenTelemetry` hook and what it recorded."""

    hook: OpenTelemetry
    reader: InMemoryMetricReader
    exporter: InMemorySpanExporter

    def points(self, name: str) -> list[Any]:
        """Every data point of the metric `name`."""
        data = self.reader.get_metrics_data()
        return [
            point
            for resource_metrics in (data.resource_metrics if data else [])
            for scope_metrics in resource_metrics.scope_metrics
            for metric in scope_metrics.metrics
            if metric.name == name
            for point in metric.data.data_points
        ]

    def counts(self, name: str) -> dict[Series, int]:
        """The counter `name`'s value per (resource, outcome)."""
        return {_series(point.attributes): point.value for point in self.points(name)}

    def histogram(self, name: str) -> dict[Series, HistogramDataPoint]:
        """The histogram `name`'s point per (resource, outcome)."""
        return {_series(point.attributes): point for point in self.points(name)}

    def spans(self) -> list[ReadableSpan]:
        """The finished spans, in the order they ended."""
        return list(self.exporter.get_finished_spans())

    def attribute_values(self) -> list[object]:
        """Every attribute value and status description recorded, metrics' and spans'."""
        values: list[object] = []
        for name in (REQUESTS, DURATIONS, RETRIES, REFRESHES, OUTAGES):
            values += [value for point in self.points(name) for value in point.attributes.values()]
        for span in self.spans():
            values += [*(span.attributes or {}).values(), span.status.description]
        return values


def _series(attributes: Any) -> Series:
    return attributes.get(RESOURCE), attributes.get(OUTCOME)


def times(span: ReadableSpan) -> tuple[int, int]:
    """When `span` started and ended, in ns since the epoch."""
    assert span.start_time is not None
    assert span.end_time is not None
    return span.start_time, span.end_time


def providers() -> tuple[MeterProvider, TracerProvider, InMemoryMetricReader, InMemorySpanExporter]:
    """An SDK meter and tracer provider, each recording in memory."""
    reader, exporter = InMemoryMetricReader(), InMemorySpanExporter()
    tracer_provider = TracerProvider(shutdown_on_exit=False)
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    meter_provider = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
    return meter_provider, tracer_provider, reader, exporter


@pytest.fixture
def otel() -> Iterator[Recorded]:
    """An `OpenTelemetry` hook on providers of the test's own."""
    meter_provider, tracer_provider, reader, exporter = providers()
    hook = OpenTelemetry(meter_provider=meter_provider, tracer_provider=tracer_provider)
    yield Recorded(hook, reader, exporter)
    meter_provider.shutdown()
    tracer_provider.shutdown()


class DownCache(MemoryTokenCache):
    """A shared cache whose claims fail: an outage."""

    async def claim(
        self, key: CacheKey, *, passing_over: AccessToken | None
    ) -> AccessToken | CacheLease | None:
        raise ConnectionError("the cache is down")


# Token requests


@pytest.mark.anyio
async def test_a_token_request_is_one_count_one_duration_and_one_span(
    emulator: MosaicEmulator, client: RegisteredClient, clock: FakeClock, otel: Recorded
) -> None:
    """A fetch of one token request: one success count, one duration point (in buckets of
    seconds) and one span for its resource; the `token_requested` event before it adds
    nothing."""
    auth = emulator.auth(client, clock=clock, resource=RISK, on_event=otel.hook)
    await auth.get_token(RISK)
    assert otel.counts(REQUESTS) == {(RISK, "success"): 1}
    duration = otel.histogram(DURATIONS)[RISK, "success"]
    assert duration.count == 1
    assert list(duration.explicit_bounds[:3]) == [0.005, 0.01, 0.025]
    [span] = otel.spans()
    assert span.name == SPAN_NAME == "mosaic.auth token request"
    assert span.kind is SpanKind.INTERNAL
    assert dict(span.attributes or {}) == {RESOURCE: RISK, "mosaic.auth.attempt": 1}
    assert span.status.status_code is StatusCode.UNSET


@pytest.mark.anyio
async def test_a_503_then_a_token_is_two_requests_each_timed_on_its_own(
    mosaic_emulator: MosaicEmulator, mosaic_client: RegisteredClient, otel: Recorded
) -> None:
    """A 503 then a token, each taking 50 ms: two counts, two duration points and two spans,
    one after the other, each spanning its own request (not the fetch), the first an error."""
    mosaic_emulator.fail_next_token_requests(503, delay=0.05)
    mosaic_emulator.delay_next_token_requests(0.05)
    auth = mosaic_emulator.auth(mosaic_client, retry=Retry(backoff=0), on_event=otel.hook)
    before = time.time_ns()
    await auth.get_token(RISK)
    after = time.time_ns()
    assert otel.counts(REQUESTS) == {(RISK, "unavailable"): 1, (RISK, "success"): 1}
    durations = otel.histogram(DURATIONS)
    assert [durations[RISK, outcome].count for outcome in ("unavailable", "success")] == [1, 1]
    failed, fetched = otel.spans()
    assert before <= times(failed)[0] <= times(failed)[1] <= times(fetched)[0]
    assert times(fetched)[1] <= after
    for span, outcome in ((failed, "unavailable"), (fetched, "success")):
        start, end = times(span)
        assert end - start >= 50_000_000
        assert end - start == round(durations[RISK, outcome].sum * 1e9)
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.status.description == "TokenRequestError"
    assert dict(failed.attributes or {}) == {
        RESOURCE: RISK,
        "mosaic.auth.attempt": 1,
        "http.response.status_code": 503,
        "error.type": "unavailable",
    }
    assert fetched.status.status_code is StatusCode.UNSET
    assert (fetched.attributes or {})["mosaic.auth.attempt"] == 2


@pytest.mark.anyio
async def test_a_refused_client_is_one_rejected_request(
    emulator: MosaicEmulator, client: RegisteredClient, clock: FakeClock, otel: Recorded
) -> None:
    """A wrong client secret (401 invalid_client, not retried): one `rejected` count and an
    error span with the status code, and the secret nowhere."""
    auth = emulator.auth(
        client, clock=clock, client_secret="not-the-secret-1234", on_event=otel.hook
    )
    with pytest.raises(mosaic_httpx_auth.TokenRequestError, match="invalid_client"):
        await auth.get_token(RISK)
    assert otel.counts(REQUESTS) == {(RISK, "rejected"): 1}
    [span] = otel.spans()
    assert span.status.status_code is StatusCode.ERROR
    assert (span.attributes or {})["http.response.status_code"] == 401
    assert (span.attributes or {})["error.type"] == "rejected"
    assert not any("not-the-secret" in str(value) for value in otel.attribute_values())


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("fault", "outcome"),
    [
        pytest.param({"drop_connection": True}, "no_response", id="no_response"),
        pytest.param({"status": 200, "body": b"\x00garbage"}, "invalid_response", id="invalid"),
        pytest.param({"status": 429}, "unavailable", id="unavailable"),
        pytest.param({"status": 400, "body": {"error": "invalid_request"}}, "rejected", id="400"),
    ],
)
async def test_each_kind_of_failure_has_its_outcome(
    emulator: MosaicEmulator,
    client: RegisteredClient,
    clock: FakeClock,
    otel: Recorded,
    fault: dict[str, Any],
    outcome: str,
) -> None:
    """No answer, an answer that is no token, a 429 and another 4xx: each its own outcome."""
    emulator.fail_next_token_requests(**fault)
    auth = emulator.auth(client, clock=clock, retry=Retry(max_attempts=1), on_event=otel.hook)
    with pytest.raises(mosaic_httpx_auth.TokenRequestError):
        await auth.get_token(RISK)
    assert otel.counts(REQUESTS) == {(RISK, outcome): 1}
    assert otel.histogram(DURATIONS)[RISK, outcome].count == 1


@pytest.mark.anyio
async def test_request_duration_is_the_requests_and_duration_the_fetchs(
    mosaic: FakeMosaic, clock: FakeClock
) -> None:
    """With each token request taking 0.25 s, a 503 then a token: each event's
    `request_duration` is its request's 0.25 s, and `token_fetched`'s `duration` both's."""
    mosaic.latency = 0.25
    mosaic.queued_responses.append(httpx.Response(503, json={"message": "busy"}))
    events: list[AuthEvent] = []
    auth = mosaic.auth(retry=Retry(backoff=0), on_event=events.append)
    await auth.get_token()
    ended = [event for event in events if event.name != "token_requested"]
    assert [(event.name, event.request_duration) for event in ended] == [
        ("token_request_failed", 0.25),
        ("token_fetched", 0.25),
    ]
    assert ended[1].duration == 0.5


# 401 retries, refreshes and cache outages


@pytest.mark.anyio
async def test_a_401_retry_is_counted(
    emulator: MosaicEmulator, client: RegisteredClient, clock: FakeClock, otel: Recorded
) -> None:
    """An API request retried after a revocation's 401: one retry for its resource, and two
    successful token requests."""
    auth = emulator.auth(client, clock=clock, resource=RISK, on_event=otel.hook)
    async with httpx.AsyncClient(auth=auth, transport=emulator.transport()) as http:
        assert (await http.get(f"{API}/risk/v1/recommendation")).status_code == 200
        assert otel.counts(RETRIES) == {}
        emulator.revoke_tokens()
        assert (await http.get(f"{API}/risk/v1/recommendation")).status_code == 200
    assert otel.counts(RETRIES) == {(RISK, None): 1}
    assert otel.counts(REQUESTS) == {(RISK, "success"): 2}


@pytest.mark.anyio
async def test_a_refresh_is_counted(
    emulator: MosaicEmulator, client: RegisteredClient, clock: FakeClock, otel: Recorded
) -> None:
    """A token refreshed ahead of its expiry: one successful refresh, and its request."""
    auth = emulator.auth(client, clock=clock, on_event=otel.hook)
    await auth.get_token(RISK)
    clock.advance(3600 - 60 - 100)
    await auth.get_token(RISK)  # stale: served while the refresh runs
    await anyio.wait_all_tasks_blocked()
    assert otel.counts(REFRESHES) == {(RISK, "success"): 1}
    assert otel.counts(REQUESTS) == {(RISK, "success"): 2}


@pytest.mark.anyio
async def test_a_failed_refresh_is_counted_as_an_error(
    emulator: MosaicEmulator, client: RegisteredClient, clock: FakeClock, otel: Recorded
) -> None:
    """A refresh that fails while the token is still served: a refresh with outcome error."""
    auth = emulator.auth(client, clock=clock, retry=Retry(max_attempts=1), on_event=otel.hook)
    await auth.get_token(RISK)
    clock.advance(3600 - 60 - 100)
    emulator.fail_next_token_requests(503)
    await auth.get_token(RISK)
    await anyio.wait_all_tasks_blocked()
    assert otel.counts(REFRESHES) == {(RISK, "error"): 1}
    assert otel.counts(REQUESTS) == {(RISK, "success"): 1, (RISK, "unavailable"): 1}


@pytest.mark.anyio
async def test_a_cache_outage_is_counted_once(
    emulator: MosaicEmulator, client: RegisteredClient, clock: FakeClock, otel: Recorded
) -> None:
    """A shared cache that fails: one outage, with the error's type, however many fetches."""
    auth = emulator.auth(client, clock=clock, cache=DownCache(clock=clock), on_event=otel.hook)
    await auth.get_token(RISK)
    clock.advance(3)  # past the pause after the first failure: the cache fails again
    await auth.get_token()
    assert [(dict(point.attributes), point.value) for point in otel.points(OUTAGES)] == [
        ({"error.type": "ConnectionError"}, 1)
    ]


# What the attributes hold


@pytest.mark.anyio
async def test_no_attribute_holds_a_secret_a_token_or_a_url(
    emulator: MosaicEmulator, client: RegisteredClient, clock: FakeClock, otel: Recorded
) -> None:
    """Through a 503, a token, a 401 retry and a refused client: every attribute key is one
    of a known few, and no value holds the secret, a token or a URL beyond the resource."""
    emulator.fail_next_token_requests(503, body={"message": client.client_secret})
    auth = emulator.auth(
        client, clock=clock, resource=RISK, retry=Retry(backoff=0), on_event=otel.hook
    )
    tokens = []
    async with httpx.AsyncClient(auth=auth, transport=emulator.transport()) as http:
        tokens.append(await auth.get_token(RISK))
        emulator.revoke_tokens()
        await http.get(f"{API}/risk/v1/recommendation?user=someone")
        tokens.append(await auth.get_token(RISK))
    refused = emulator.auth(client, clock=clock, client_secret="wrong-secret", on_event=otel.hook)
    with pytest.raises(mosaic_httpx_auth.TokenRequestError):
        await refused.get_token(RISK)
    keys = {key for span in otel.spans() for key in (span.attributes or {})}
    for name in (REQUESTS, DURATIONS, RETRIES):
        keys |= {key for point in otel.points(name) for key in point.attributes}
    assert keys == {
        RESOURCE,
        OUTCOME,
        "mosaic.auth.attempt",
        "http.response.status_code",
        "error.type",
    }
    secrets = [client.client_secret, "wrong-secret", *(token.token for token in tokens)]
    for value in map(str, otel.attribute_values()):
        assert not any(secret in value for secret in secrets)
        assert "://" not in value or value == RISK


# Providers, events and imports


def test_the_global_providers_are_used_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without providers given, the hook records on the global ones, under the library's name
    and version."""
    # The globals can be set once a process: let this test set them, and put them back.
    monkeypatch.setattr(metrics._internal, "_METER_PROVIDER_SET_ONCE", Once())
    monkeypatch.setattr(metrics._internal, "_METER_PROVIDER", None)
    monkeypatch.setattr(trace, "_TRACER_PROVIDER_SET_ONCE", Once())
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", None)
    meter_provider, tracer_provider, reader, exporter = providers()
    metrics.set_meter_provider(meter_provider)
    trace.set_tracer_provider(tracer_provider)
    recorded = Recorded(OpenTelemetry(), reader, exporter)
    recorded.hook(AuthEvent("token_fetched", RISK, attempt=1, duration=0.2, request_duration=0.1))
    assert recorded.counts(REQUESTS) == {(RISK, "success"): 1}
    [span] = recorded.spans()
    assert span.instrumentation_scope is not None
    assert span.instrumentation_scope.name == "mosaic_httpx_auth"
    assert span.instrumentation_scope.version == mosaic_httpx_auth.__version__
    start, end = times(span)
    assert end - start == 100_000_000


def test_events_with_nothing_to_record_record_nothing(otel: Recorded) -> None:
    """A request sent and a cache recovered: no metric, no span."""
    otel.hook(AuthEvent("token_requested", RISK, attempt=1))
    otel.hook(AuthEvent("cache_recovered", None, duration=3.0))
    assert otel.reader.get_metrics_data() is None or not any(
        otel.points(name) for name in (REQUESTS, DURATIONS, RETRIES, REFRESHES, OUTAGES)
    )
    assert otel.spans() == []


@pytest.mark.parametrize("setting", ["meter_provider", "tracer_provider"])
def test_a_provider_of_another_kind_is_refused(setting: str) -> None:
    """A provider that is not OpenTelemetry's is refused when the hook is made, by name."""
    with pytest.raises(ConfigurationError, match=setting) as caught:
        OpenTelemetry(**{setting: object()})  # type: ignore[arg-type]
    assert caught.value.setting == setting


def test_importing_the_library_does_not_import_opentelemetry() -> None:
    """`import mosaic_httpx_auth` loads no opentelemetry: only the hook's module does."""
    code = "import sys, mosaic_httpx_auth\nprint([m for m in sys.modules if 'opentelemetry' in m])"
    finished = subprocess.run(  # noqa: S603 - our own interpreter and code
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert finished.stdout.strip() == "[]", finished.stderr


def test_without_the_extra_the_import_error_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without opentelemetry-api, importing the module names the extra to install."""
    monkeypatch.setitem(sys.modules, "opentelemetry", None)
    monkeypatch.delitem(sys.modules, "mosaic_httpx_auth.opentelemetry")
    with pytest.raises(ImportError, match=r"pip install 'mosaic-httpx-auth\[otel\]'"):
        importlib.import_module("mosaic_httpx_auth.opentelemetry")
