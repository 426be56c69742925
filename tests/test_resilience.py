"""Failure behaviour: retries, refresh ahead of expiry, stale-if-error, and a cache outage.

Driven by the emulator's fault controls: 503 bursts, 429 with Retry-After, slow answers,
dropped connections and garbage bodies.
"""

from __future__ import annotations

import logging
import sys
from datetime import datetime, timezone
from email.utils import format_datetime
from typing import TYPE_CHECKING, Any

import anyio
import httpx
import pytest

from mosaic_httpx_auth import AccessToken, AuthEvent, TokenRequestError, TokenResponseError
from mosaic_httpx_auth._retry import MAX_BACKOFF, Retry, retry_after_seconds
from mosaic_httpx_auth.testing import MosaicEmulator

from .helpers import RISK, START, FakeClock, FakeMosaic, token_fetcher

if TYPE_CHECKING:
    from joserfc.jwk import RSAKey

    from mosaic_httpx_auth._fetcher import TokenFetcher
    from mosaic_httpx_auth.cache import CacheKey, CacheLease
    from mosaic_httpx_auth.testing import RegisteredClient

if sys.version_info < (3, 11):
    from exceptiongroup import BaseExceptionGroup

pytestmark = pytest.mark.anyio

API = "https://api.transmitsecurity.io"


class Sleeps:
    """Stands in for anyio.sleep: records each wait and returns at once."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def fetcher_for(
    emulator: MosaicEmulator,
    client: RegisteredClient,
    sleeps: Sleeps,
    clock: FakeClock,
    **policy: Any,
) -> TokenFetcher:
    """A token fetcher asking `emulator` with the retry `policy`, sleeping through `sleeps`."""
    return token_fetcher(
        httpx.AsyncClient(transport=emulator.transport()),
        clock=clock,
        sleep=sleeps,
        client_id=client.client_id,
        client_secret=client.client_secret,
        **policy,
    )


# Retries


async def test_a_503_burst_is_retried_with_jittered_exponential_backoff(
    emulator: MosaicEmulator, client: RegisteredClient, clock: FakeClock
) -> None:
    """Two 503s then success: the fetch succeeds on attempt 3 after two bounded waits."""
    emulator.fail_next_token_requests(status=503, count=2)
    sleeps = Sleeps()
    token = await fetcher_for(emulator, client, sleeps, clock).token(RISK)
    assert token.claims["aud"] == RISK
    assert emulator.token_requests == {RISK: 3}
    assert len(sleeps.waits) == 2
    assert 0 <= sleeps.waits[0] <= 0.5
    assert 0 <= sleeps.waits[1] <= 1.0


@pytest.mark.parametrize(
    "fault",
    [
        {"drop_connection": True},
        {"status": 500},
        {"status": 502, "body": "<html>bad gateway</html>"},
        {"status": 429},
    ],
)
async def test_transient_failures_are_retried(
    emulator: MosaicEmulator, client: RegisteredClient, clock: FakeClock, fault: dict[str, Any]
) -> None:
    """A dropped connection, 5xx and 429 are each retried, and the retry gets the token."""
    emulator.fail_next_token_requests(**fault)
    token = await fetcher_for(emulator, client, Sleeps(), clock).token(None)
    assert token.claims["aud"] == "userid-api"
    assert emulator.token_requests == {None: 2}


async def test_a_slow_answer_times_out_and_is_retried(
    emulator: MosaicEmulator, client: RegisteredClient, clock: FakeClock
) -> None:
    """An attempt slower than `timeout` is abandoned and the next attempt gets the token."""
    emulator.delay_next_token_requests(30)
    fetcher = fetcher_for(emulator, client, Sleeps(), clock, attempt_timeout=0.05)
    with anyio.fail_after(5):
        token = await fetcher.token(None)
    assert token.claims["aud"] == "userid-api"
    assert emulator.token_requests == {None: 2}


async def test_a_fetch_is_bounded_by_its_attempts(
    emulator: MosaicEmulator, client: RegisteredClient, clock: FakeClock
) -> None:
    """Slow answers on every attempt fail the fetch after max_attempts timeouts, not later."""
    emulator.delay_next_token_requests(30, count=3)
    fetcher = fetcher_for(emulator, client, Sleeps(), clock, attempt_timeout=0.05)
    with anyio.fail_after(5), pytest.raises(TokenRequestError, match="did not answer within"):
        await fetcher.token(None)
    assert emulator.token_requests == {None: 3}


@pytest.mark.parametrize("status", [400, 401, 403, 404])
async def test_other_client_errors_are_not_retried(
    emulator: MosaicEmulator, client: RegisteredClient, clock: FakeClock, status: int
) -> None:
    """A 4xx other than 429 fails at once: asking again would get the same answer."""
    emulator.fail_next_token_requests(status=status)
    sleeps = Sleeps()
    with pytest.raises(TokenRequestError) as caught:
        await fetcher_for(emulator, client, sleeps, clock).token(None)
    assert caught.value.status_code == status
    assert (emulator.token_requests, sleeps.waits) == ({None: 1}, [])


async def test_a_garbage_success_body_is_not_retried(
    emulator: MosaicEmulator, client: RegisteredClient, clock: FakeClock
) -> None:
    """A 200 whose body is no token response raises TokenResponseError without retrying."""
    emulator.fail_next_token_requests(status=200, body=b"\x00garbage")
    with pytest.raises(TokenResponseError, match="not a JSON object"):
        await fetcher_for(emulator, client, Sleeps(), clock).token(None)
    assert emulator.token_requests == {None: 1}


async def test_retries_stop_after_max_attempts(
    emulator: MosaicEmulator, client: RegisteredClient, clock: FakeClock
) -> None:
    """A fetch makes max_attempts attempts at most and then raises the last error, saying
    how many attempts it made."""
    emulator.fail_next_token_requests(status=503, count=10)
    with pytest.raises(TokenRequestError) as caught:
        await fetcher_for(emulator, client, Sleeps(), clock, max_attempts=4).token(None)
    assert caught.value.status_code == 503
    assert "(the last of 4 attempts" in str(caught.value)
    assert emulator.token_requests == {None: 4}


async def test_max_attempts_one_disables_retries(
    emulator: MosaicEmulator, client: RegisteredClient, clock: FakeClock
) -> None:
    """With max_attempts=1 a 503 fails the fetch at once."""
    emulator.fail_next_token_requests(status=503)
    with pytest.raises(TokenRequestError):
        await fetcher_for(emulator, client, Sleeps(), clock, max_attempts=1).token(None)
    assert emulator.token_requests == {None: 1}


@pytest.mark.parametrize(
    ("header", "expected_wait"),
    [
        ("7", 7.0),
        (format_datetime(datetime.fromtimestamp(START + 12, timezone.utc), usegmt=True), 12.0),
    ],
)
async def test_retry_after_is_honoured(
    emulator: MosaicEmulator,
    client: RegisteredClient,
    clock: FakeClock,
    header: str,
    expected_wait: float,
) -> None:
    """A 429 with Retry-After (seconds or an HTTP date) waits exactly that long before retrying."""
    emulator.fail_next_token_requests(status=429, headers={"Retry-After": header})
    sleeps = Sleeps()
    await fetcher_for(emulator, client, sleeps, clock).token(None)
    assert sleeps.waits == [expected_wait]


async def test_a_retry_after_beyond_the_limit_fails_at_once(
    emulator: MosaicEmulator, client: RegisteredClient, clock: FakeClock
) -> None:
    """Asked to wait longer than max_retry_after, the fetch fails now, saying how long."""
    emulator.fail_next_token_requests(status=429, headers={"Retry-After": "120"})
    sleeps = Sleeps()
    with pytest.raises(TokenRequestError, match="longer than max_retry_after") as caught:
        await fetcher_for(emulator, client, sleeps, clock).token(None)
    assert (caught.value.status_code, caught.value.retry_after) == (429, 120.0)
    assert (emulator.token_requests, sleeps.waits) == ({None: 1}, [])


def test_backoff_doubles_up_to_a_ceiling_with_full_jitter() -> None:
    """The wait after attempt n is drawn from [0, backoff * 2^(n-1)], capped at MAX_BACKOFF."""
    policy = Retry(backoff=0.5)
    assert [policy.delay(n, jitter=lambda: 1.0) for n in (1, 2, 3, 4, 5, 6)] == [
        0.5,
        1.0,
        2.0,
        4.0,
        MAX_BACKOFF,
        MAX_BACKOFF,
    ]
    assert policy.delay(3, jitter=lambda: 0.25) == 0.5
    assert Retry(backoff=0).delay(3) == 0


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (None, None),
        ("0", 0.0),
        (" 30 ", 30.0),
        ("Thu, 01 Jan 1970 00:00:00 GMT", 0.0),  # in the past: no wait
        (format_datetime(datetime.fromtimestamp(START + 90, timezone.utc), usegmt=True), 90.0),
        ("soon", None),
        ("-5", None),
        ("1.5", None),
        ("²", None),
    ],
)
def test_retry_after_header_values(value: str | None, seconds: float | None) -> None:
    """Retry-After is read as whole seconds or an HTTP date; anything else is ignored."""
    assert retry_after_seconds(value, now=START) == seconds


# Refresh ahead of expiry


async def test_a_stale_token_is_served_while_a_refresh_runs(
    emulator: MosaicEmulator, client: RegisteredClient, clock: FakeClock
) -> None:
    """Inside the refresh window every caller gets the old token at once, while one refresh
    runs in a task of its own."""
    async with emulator.auth(client, clock=clock) as auth:
        old = await auth.get_token()
        clock.advance(3600 - 60 - 299)  # 299 s before the leeway: stale, still usable
        emulator.delay_next_token_requests(30)
        with anyio.fail_after(5):  # a guard only: a waiting caller would take 30 s
            assert [await auth.get_token() for _ in range(20)] == [old] * 20
        await anyio.wait_all_tasks_blocked()  # the refresh is under way, held by the delay
        assert emulator.token_requests == {None: 2}


async def test_a_refresh_replaces_the_token_once_it_arrives(
    emulator: MosaicEmulator, client: RegisteredClient, clock: FakeClock
) -> None:
    """The refreshed token is served fresh once the refresh has finished."""
    events: list[AuthEvent] = []
    auth = emulator.auth(client, clock=clock, on_event=events.append)
    old = await auth.get_token()
    clock.advance(3600 - 60 - 100)
    assert await auth.get_token() is old
    await anyio.wait_all_tasks_blocked()  # lets the refresh finish
    new = await auth.get_token()
    assert new.expires_at > old.expires_at
    assert auth._states.fresh_token(None) is new
    assert auth.stats().refreshes == 1
    assert [event.name for event in events if event.name != "token_requested"] == [
        "token_fetched",
        "token_fetched",
        "token_refreshed",
    ]


async def test_the_refresh_window_is_capped_at_half_the_remaining_lifetime(
    clock: FakeClock, mosaic_signing_key: RSAKey
) -> None:
    """A 600 s token with 60 s leeway is refreshed after 270 s, not 300 s before its end."""
    emulator = MosaicEmulator(clock=clock, signing_key=mosaic_signing_key, token_lifetime=600)
    auth = emulator.auth(emulator.register_client(), clock=clock)
    first = await auth.get_token()
    clock.advance(269.9)
    assert await auth.get_token() is first
    assert emulator.token_requests == {None: 1}
    clock.advance(0.1)
    assert await auth.get_token() is first  # stale: served while it is refreshed
    await anyio.wait_all_tasks_blocked()
    assert await auth.get_token() is not first
    assert emulator.token_requests == {None: 2}


async def test_refresh_window_zero_refreshes_only_at_the_leeway(
    emulator: MosaicEmulator, client: RegisteredClient, clock: FakeClock
) -> None:
    """With refresh_window=0, a token is used until `leeway` before its expiry."""
    auth = emulator.auth(client, clock=clock, refresh_window=0)
    first = await auth.get_token()
    clock.advance(3600 - 61)
    assert await auth.get_token() is first
    assert emulator.token_requests == {None: 1}


# Stale-if-error


async def test_a_failed_refresh_keeps_serving_the_valid_token(
    emulator: MosaicEmulator,
    client: RegisteredClient,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """When a refresh fails, the still-valid token is served, a warning logged, and the
    token endpoint is not asked again for a few seconds."""
    auth = emulator.auth(client, clock=clock, retry=Retry(max_attempts=1))
    old = await auth.get_token()
    clock.advance(3600 - 60 - 100)
    emulator.fail_next_token_requests(status=503, count=5)
    assert await auth.get_token() is old
    await anyio.wait_all_tasks_blocked()
    assert any(
        record.levelno == logging.WARNING and "serving the current one" in record.message
        for record in caplog.records
    )
    for _ in range(10):
        clock.advance(0.4)
        assert await auth.get_token() is old
    assert emulator.token_requests == {None: 2}  # the first fetch and one refresh
    clock.advance(1)  # 5 s after the failed refresh
    assert await auth.get_token() is old
    await anyio.wait_all_tasks_blocked()
    assert emulator.token_requests == {None: 3}
    stats = auth.stats()
    assert (stats.stale_served, stats.refreshes) == (2, 0)


async def test_an_expired_token_is_not_served_when_the_endpoint_fails(
    emulator: MosaicEmulator, client: RegisteredClient, clock: FakeClock
) -> None:
    """Stale-if-error ends with usability: past the leeway, the fetch error reaches the caller."""
    auth = emulator.auth(client, clock=clock, retry=Retry(max_attempts=1))
    await auth.get_token()
    clock.advance(3600 - 59)
    emulator.fail_next_token_requests(status=503)
    with pytest.raises(TokenRequestError):
        await auth.get_token()


# Shared cache outage


class BrokenCache:
    """A shared cache that is down."""

    lease_seconds = 10.0

    async def claim(
        self, key: CacheKey, *, passing_over: AccessToken | None
    ) -> AccessToken | CacheLease | None:
        raise ConnectionError("cache down")

    async def store(
        self, key: CacheKey, token: AccessToken, *, lease: CacheLease, expires_in: float
    ) -> None:
        raise ConnectionError("cache down")

    async def renew(self, key: CacheKey, lease: CacheLease) -> None:
        raise ConnectionError("cache down")

    async def release(self, key: CacheKey, lease: CacheLease) -> None:
        raise ConnectionError("cache down")

    async def discard(self, key: CacheKey, token: AccessToken) -> None:
        raise ConnectionError("cache down")


async def test_a_shared_cache_outage_falls_back_to_fetching(
    emulator: MosaicEmulator, client: RegisteredClient, clock: FakeClock
) -> None:
    """With the shared cache failing, requests still get tokens and the 401 retry works."""
    auth = emulator.auth(client, clock=clock, cache=BrokenCache())
    async with httpx.AsyncClient(auth=auth, transport=emulator.transport()) as http:
        assert (await http.get(f"{API}/cis/v1/users")).status_code == 200
        emulator.revoke_tokens()
        assert (await http.get(f"{API}/cis/v1/users")).status_code == 200
    assert emulator.token_requests == {None: 2}


# async with


async def test_an_error_inside_async_with_propagates_as_itself(
    emulator: MosaicEmulator, client: RegisteredClient
) -> None:
    """An exception raised in the `async with auth` block comes out unwrapped."""
    with pytest.raises(KeyError):
        async with emulator.auth(client):
            raise KeyError("mine")


# Observability


async def test_stats_and_events_describe_what_happened(
    emulator: MosaicEmulator, client: RegisteredClient, clock: FakeClock
) -> None:
    """stats() counts requests, errors, 401 retries and cache hits; on_event sees each event."""
    events: list[AuthEvent] = []
    emulator.fail_next_token_requests(status=503)
    auth = emulator.auth(client, clock=clock, retry=Retry(backoff=0), on_event=events.append)
    async with httpx.AsyncClient(auth=auth, transport=emulator.transport()) as http:
        for _ in range(3):
            await http.get(f"{API}/cis/v1/users")
        emulator.revoke_tokens()
        await http.get(f"{API}/cis/v1/users")
    stats = auth.stats()
    assert (stats.token_requests, stats.token_errors, stats.unauthorized_retries) == (3, 1, 1)
    assert stats.cache_hits == 3  # requests 2, 3 and 4's first try
    assert [event.name for event in events] == [
        "token_requested",
        "token_request_failed",
        "token_requested",
        "token_fetched",
        "unauthorized_retry",
        "token_requested",
        "token_fetched",
    ]
    failed, fetched = events[1], events[3]
    assert (failed.status_code, failed.attempt, failed.retry_in) == (503, 1, 0.0)
    assert (fetched.attempt, fetched.resource) == (2, None)


async def test_a_failing_event_hook_does_not_break_requests(
    emulator: MosaicEmulator, client: RegisteredClient, caplog: pytest.LogCaptureFixture
) -> None:
    """An on_event hook that raises is logged and the request still succeeds."""

    def hook(event: AuthEvent) -> None:
        raise RuntimeError("metrics backend down")

    auth = emulator.auth(client, on_event=hook)
    async with httpx.AsyncClient(auth=auth, transport=emulator.transport()) as http:
        assert (await http.get(f"{API}/cis/v1/users")).status_code == 200
    assert "on_event hook raised" in caplog.text


async def test_nothing_secret_reaches_logs_reprs_or_errors(
    emulator: MosaicEmulator,
    client: RegisteredClient,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Across fetches, retries, refreshes, failures and 401s, DEBUG logs, reprs, events and
    errors never contain the client secret or any token."""
    caplog.set_level(logging.DEBUG)
    events: list[AuthEvent] = []
    tokens: list[str] = []
    auth = emulator.auth(client, clock=clock, retry=Retry(backoff=0), on_event=events.append)
    errors: list[BaseException] = []
    async with httpx.AsyncClient(auth=auth, transport=emulator.transport()) as http:
        emulator.fail_next_token_requests(status=503)
        emulator.fail_next_token_requests(drop_connection=True)
        await http.get(f"{API}/cis/v1/users")
        tokens.append((await auth.get_token()).token)
        emulator.revoke_tokens()
        await http.get(f"{API}/cis/v1/users")
        tokens.append((await auth.get_token()).token)
        clock.advance(3600 - 60 - 100)
        emulator.fail_next_token_requests(status=500, count=3)
        await http.get(f"{API}/cis/v1/users")
        await anyio.wait_all_tasks_blocked()  # the refresh fails, its token still served
        clock.advance(200)
        emulator.fail_next_token_requests(
            status=400, body={"error": "invalid_request", "error_description": client.client_secret}
        )
        with pytest.raises(TokenRequestError) as caught:
            await http.get(f"{API}/cis/v1/users")
        errors.append(caught.value)
    texts = [caplog.text, repr(auth), repr(auth.stats()), *map(repr, events)]
    texts += [text for error in errors for text in (str(error), repr(error))]
    assert len(events) >= 6
    for text in texts:
        assert client.client_secret not in text
        for token in tokens:
            assert token not in text


async def test_a_refresh_nobody_waits_for_is_one_attempt(
    emulator: MosaicEmulator, client: RegisteredClient, clock: FakeClock
) -> None:
    """A refresh makes one attempt, without retries or waits, and the still-valid token goes
    on being served when it fails."""
    auth = emulator.auth(client, clock=clock, retry=Retry(max_attempts=3))
    old = await auth.get_token()
    clock.advance(3600 - 60 - 100)
    emulator.fail_next_token_requests(status=503, headers={"Retry-After": "1"}, count=3)
    with anyio.fail_after(0.5):  # a guard only: a retry would wait 1 s
        assert await auth.get_token() is old
        await anyio.wait_all_tasks_blocked()
        assert await auth.get_token() is old
    assert emulator.token_requests == {None: 2}


async def test_stale_if_error_honours_retry_after(
    emulator: MosaicEmulator, client: RegisteredClient, clock: FakeClock
) -> None:
    """A refresh refused with Retry-After is not tried again before that time."""
    auth = emulator.auth(client, clock=clock)
    old = await auth.get_token()
    clock.advance(3600 - 60 - 250)
    emulator.fail_next_token_requests(status=429, headers={"Retry-After": "60"})
    assert await auth.get_token() is old
    await anyio.wait_all_tasks_blocked()
    clock.advance(59)
    assert await auth.get_token() is old
    await anyio.wait_all_tasks_blocked()
    assert emulator.token_requests == {None: 2}
    clock.advance(1)
    assert await auth.get_token() is old
    await anyio.wait_all_tasks_blocked()
    assert await auth.get_token() is not old
    assert emulator.token_requests == {None: 3}


async def test_the_pause_after_a_failed_refresh_counts_from_its_end(
    mosaic: FakeMosaic, clock: FakeClock
) -> None:
    """A refresh that takes 10 s to fail is next tried 5 s after it failed, not after it began."""
    auth = mosaic.auth()
    old = await auth.get_token()
    clock.advance(3600 - 60 - 100)
    mosaic.latency = 10
    mosaic.queued_responses += [httpx.Response(503), httpx.Response(503)]
    assert await auth.get_token() is old
    await anyio.wait_all_tasks_blocked()  # the refresh takes 10 s and fails
    clock.advance(4.9)
    assert await auth.get_token() is old
    await anyio.wait_all_tasks_blocked()
    assert mosaic.token_requests[None] == 2
    clock.advance(0.1)
    assert await auth.get_token() is old
    await anyio.wait_all_tasks_blocked()
    assert mosaic.token_requests[None] == 3


async def test_a_background_refresh_that_breaks_does_not_break_the_block(
    emulator: MosaicEmulator,
    client: RegisteredClient,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An unexpected error in a background refresh is logged; the `async with` block goes on."""
    async with emulator.auth(client, clock=clock) as auth:
        old = await auth.get_token()
        clock.advance(3600 - 60 - 100)

        async def broken(resource: str | None) -> AccessToken:
            raise RuntimeError("bug")

        monkeypatch.setattr(auth._endpoint, "request_token", broken)
        assert await auth.get_token() is old
        await anyio.wait_all_tasks_blocked()
        assert await auth.get_token() is old
    assert "fetching a token without a resource failed" in caplog.text


async def test_an_exception_group_from_the_block_comes_out_as_itself(
    emulator: MosaicEmulator, client: RegisteredClient
) -> None:
    """An ExceptionGroup raised inside `async with auth` is not wrapped in another group."""
    group = BaseExceptionGroup("mine", [ValueError("a")])
    with pytest.raises(BaseExceptionGroup) as caught:
        async with emulator.auth(client):
            raise group
    assert caught.value is group


async def test_a_long_retry_after_holds_every_token_request_back(
    emulator: MosaicEmulator, client: RegisteredClient, clock: FakeClock
) -> None:
    """Told 429 Retry-After: 120, 50 API calls fail at once, saying how long is left, and send
    no token request until the 120 s have passed."""
    emulator.fail_next_token_requests(status=429, headers={"Retry-After": "120"})
    auth = emulator.auth(client, clock=clock)
    async with httpx.AsyncClient(auth=auth, transport=emulator.transport()) as http:
        errors: list[TokenRequestError] = []
        for _ in range(50):
            with pytest.raises(TokenRequestError) as caught:
                await http.get(f"{API}/cis/v1/users")
            errors.append(caught.value)
            clock.advance(1)
        assert emulator.token_requests == {None: 1}
        assert errors[0].retry_after == 120
        assert errors[-1].retry_after == pytest.approx(71)
        assert {error.status_code for error in errors} == {429}
        assert "for 71 s more, as it asked" in str(errors[-1])
        clock.advance(71)
        assert (await http.get(f"{API}/cis/v1/users")).status_code == 200
    assert emulator.token_requests == {None: 2}
