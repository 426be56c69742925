"""The token fetcher: caching per resource, single flight, cancellation and expiry."""

from __future__ import annotations

import threading
import traceback
from typing import Any

import anyio
import httpx
import pytest
from anyio import wait_all_tasks_blocked
from anyio.lowlevel import checkpoint

from mosaic_httpx_auth import AccessToken, MemoryTokenCache, MosaicAuth, Retry, TokenRequestError

from .helpers import (
    CLIENT_ID,
    CLIENT_SECRET,
    RISK,
    VERIFY,
    FakeClock,
    FakeMosaic,
    cached_token,
)

pytestmark = pytest.mark.anyio

# Where an API that answered 401 is: its origin and path.
PLACE = "https://api.transmitsecurity.io/cis/v1/users"


async def get_token_or_error(auth: MosaicAuth, errors: list[TokenRequestError]) -> None:
    """Get the default token, recording a `TokenRequestError` instead of raising it."""
    try:
        await auth.get_token()
    except TokenRequestError as error:
        errors.append(error)


async def test_hundreds_of_concurrent_callers_make_one_token_request(mosaic: FakeMosaic) -> None:
    """On a cold cache, 300 concurrent requests for one resource wait for a single fetch."""
    mosaic.gate = anyio.Event()
    auth = mosaic.auth(resource=RISK)
    tokens: list[AccessToken] = []

    async def call() -> None:
        tokens.append(await auth.get_token())

    async with anyio.create_task_group() as tasks:
        for _ in range(300):
            tasks.start_soon(call)
        await wait_all_tasks_blocked()
        mosaic.gate.set()
    assert mosaic.token_requests[RISK] == 1
    assert len(tokens) == 300
    assert len({token.token for token in tokens}) == 1


async def test_concurrent_requests_through_a_client_make_one_token_request(
    mosaic: FakeMosaic,
) -> None:
    """200 concurrent API calls on a cold cache all succeed on one token request."""
    mosaic.gate = anyio.Event()
    statuses: list[int] = []
    async with mosaic.api_client(mosaic.auth()) as client:

        async def call() -> None:
            statuses.append(
                (await client.get("https://api.transmitsecurity.io/cis/v1/x")).status_code
            )

        async with anyio.create_task_group() as tasks:
            for _ in range(200):
                tasks.start_soon(call)
            await wait_all_tasks_blocked()
            mosaic.gate.set()
    assert statuses == [200] * 200
    assert mosaic.token_requests[None] == 1


async def test_each_resource_has_its_own_single_flight(mosaic: FakeMosaic) -> None:
    """Concurrent callers for two resources each get their own resource's token."""
    mosaic.gate = anyio.Event()
    auth = mosaic.auth()
    got: dict[str, list[str | None]] = {RISK: [], VERIFY: []}

    async def call(resource: str) -> None:
        got[resource].append((await auth.get_token(resource)).claims["aud"])

    async with anyio.create_task_group() as tasks:
        for _ in range(50):
            tasks.start_soon(call, RISK)
            tasks.start_soon(call, VERIFY)
        await wait_all_tasks_blocked()
        mosaic.gate.set()
    assert got == {RISK: [RISK] * 50, VERIFY: [VERIFY] * 50}
    assert mosaic.token_requests == {RISK: 1, VERIFY: 1}


async def test_a_fetch_for_one_resource_does_not_delay_another(mosaic: FakeMosaic) -> None:
    """While a token fetch for one resource hangs, a cached resource's token is served at once."""
    auth = mosaic.auth()
    risk = await auth.get_token(RISK)
    mosaic.gate = anyio.Event()
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(auth.get_token, VERIFY)
        await wait_all_tasks_blocked()
        with anyio.fail_after(1):
            assert await auth.get_token(RISK) is risk
        assert mosaic.token_requests[VERIFY] == 1
        mosaic.gate.set()


async def test_a_fetch_outlives_the_caller_that_gave_up_on_it(mosaic: FakeMosaic) -> None:
    """A caller whose deadline passes mid-fetch stops waiting, but the fetch goes on and the
    next caller gets its token: slow answers are not thrown away one after another."""
    mosaic.gate = anyio.Event()
    auth = mosaic.auth()
    for _ in range(12):
        with anyio.move_on_after(0.01) as scope:
            await auth.get_token()
        assert scope.cancelled_caught
    mosaic.gate.set()
    with anyio.fail_after(1):
        token = await auth.get_token()
    assert token.claims["aud"] == "userid-api"
    assert mosaic.token_requests[None] == 1


async def test_callers_cancelled_while_waiting_leave_the_store_usable(mosaic: FakeMosaic) -> None:
    """Cancelling callers that wait for someone else's fetch neither breaks nor repeats it."""
    mosaic.gate = anyio.Event()
    auth = mosaic.auth()
    results: list[AccessToken] = []

    async def fetch() -> None:
        results.append(await auth.get_token())

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(fetch)
        await wait_all_tasks_blocked()
        async with anyio.create_task_group() as waiters:
            for _ in range(10):
                waiters.start_soon(auth.get_token)
            await wait_all_tasks_blocked()
            waiters.cancel_scope.cancel()
        mosaic.gate.set()
    assert len(results) == 1
    assert await auth.get_token() is results[0]
    assert mosaic.token_requests[None] == 1


async def test_a_failed_fetch_is_not_cached_and_waiters_try_again(mosaic: FakeMosaic) -> None:
    """When the fetch fails, its caller gets the error and the next caller fetches anew."""
    mosaic.queued_responses.append(httpx.Response(503, json={"message": "down", "error_code": 503}))
    auth = mosaic.auth(retry=Retry(max_attempts=1))
    with pytest.raises(TokenRequestError) as caught:
        await auth.get_token()
    assert (caught.value.status_code, caught.value.error_description) == (503, "down")
    assert (await auth.get_token()).claims["aud"] == "userid-api"
    assert mosaic.token_requests[None] == 2


async def test_leeway_zero_uses_the_token_to_its_last_second(
    mosaic: FakeMosaic, clock: FakeClock
) -> None:
    """With `leeway=0`, a token is reused until the moment it expires, not a default leeway."""
    auth = mosaic.auth(leeway=0, refresh_window=0)
    first = await auth.get_token()
    clock.advance(3599.5)
    assert await auth.get_token() is first
    clock.advance(0.5)
    assert await auth.get_token() is not first
    assert mosaic.token_requests[None] == 2


async def test_a_token_shorter_lived_than_the_leeway_is_still_reused(
    clock: FakeClock,
) -> None:
    """The leeway is capped at half a token's lifetime, so a 30 s token serves for 15 s."""
    mosaic = FakeMosaic(clock, lifetime=30)
    auth = mosaic.auth(leeway=60, refresh_window=0)
    first = await auth.get_token()
    clock.advance(14.9)
    assert await auth.get_token() is first
    clock.advance(0.1)
    assert await auth.get_token() is not first


async def test_a_shared_cache_serves_several_auths_with_one_token_request(
    mosaic: FakeMosaic,
) -> None:
    """Two MosaicAuth instances sharing a MemoryTokenCache make one token request between them."""
    cache = MemoryTokenCache()
    first = await mosaic.auth(cache=cache, resource=RISK).get_token()
    second = await mosaic.auth(cache=cache, resource=RISK).get_token()
    assert second is first
    assert mosaic.token_requests[RISK] == 1
    assert await cached_token(cache, RISK) is first


async def test_an_expiring_token_in_the_shared_cache_is_replaced(
    mosaic: FakeMosaic, clock: FakeClock
) -> None:
    """A token the shared cache holds but that is within the leeway is fetched anew."""
    cache = MemoryTokenCache()
    old = await mosaic.auth(cache=cache).get_token()
    clock.advance(3600 - 30)
    new = await mosaic.auth(cache=cache).get_token()
    assert new is not old
    assert await cached_token(cache, None) is new


async def test_invalidating_discards_the_token_from_the_shared_cache(mosaic: FakeMosaic) -> None:
    """A token refused by the API leaves the shared cache too, but a newer one there stays."""
    cache = MemoryTokenCache()
    auth = mosaic.auth(cache=cache)
    old = await auth.get_token()
    assert await auth._fetcher.refused(None, old, PLACE)
    assert await cached_token(cache, None) is None
    new = await auth._fetcher.token(None, refused=old)
    assert await auth._fetcher.refused(None, old, PLACE)
    assert await cached_token(cache, None) is new


async def test_single_flight_holds_across_checkpoints(mosaic: FakeMosaic) -> None:
    """A caller arriving after the fetch finished reuses its token rather than fetching."""
    auth = mosaic.auth()
    first = await auth.get_token()
    await checkpoint()
    assert await auth.get_token() is first
    assert mosaic.token_requests[None] == 1


async def test_each_waiter_on_a_failed_fetch_gets_an_exception_of_its_own(
    mosaic: FakeMosaic,
) -> None:
    """300 waiters on one failed fetch share its one token request, and each raises an
    exception object of its own, whose traceback holds only its own frames."""
    mosaic.gate = anyio.Event()
    mosaic.queued_responses.append(httpx.Response(503, json={"message": "down", "error_code": 503}))
    auth = mosaic.auth(retry=Retry(max_attempts=1))
    errors: list[TokenRequestError] = []
    async with anyio.create_task_group() as tasks:
        for _ in range(300):
            tasks.start_soon(get_token_or_error, auth, errors)
        await wait_all_tasks_blocked()
        mosaic.gate.set()
    assert len(errors) == 300
    assert len({id(error) for error in errors}) == 300
    assert max(len(traceback.extract_tb(error.__traceback__)) for error in errors) < 10
    assert {error.error_description for error in errors} == {"down"}
    assert mosaic.token_requests[None] == 1


async def test_async_with_may_end_in_another_task_than_it_began(mosaic: FakeMosaic) -> None:
    """Entering in one task and leaving in another (as fixtures do) works and closes the
    token client."""
    auth = mosaic.auth()
    entered = anyio.Event()

    async def enter() -> None:
        await auth.__aenter__()
        entered.set()

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(enter)
    await entered.wait()
    await auth.get_token()
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(auth.__aexit__, None, None, None)
    assert mosaic.token_requests[None] == 1


async def test_token_requests_through_the_authorized_client_itself_do_not_deadlock(
    mosaic: FakeMosaic,
) -> None:
    """With `http_client` the very client that carries the auth, token requests go out
    without it instead of waiting on their own fetch."""
    client = httpx.AsyncClient(transport=mosaic.transport())
    auth = mosaic.auth(http_client=client)
    client.auth = auth
    with anyio.fail_after(2):
        response = await client.get("https://api.transmitsecurity.io/cis/v1/users")
    assert response.status_code == 200
    assert "Authorization" not in mosaic.token_request_headers[0]
    assert mosaic.token_requests[None] == 1
    await client.aclose()


async def test_the_token_client_is_built_off_the_event_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Building the token client, whose SSL context takes tens of milliseconds, happens on a
    worker thread, so that it never stalls the requests on the event loop."""
    built_on: list[threading.Thread] = []
    original = httpx.AsyncClient.__init__

    def recording_init(self: httpx.AsyncClient, *args: Any, **kwargs: Any) -> None:
        built_on.append(threading.current_thread())
        original(self, *args, **kwargs)

    monkeypatch.setattr(httpx.AsyncClient, "__init__", recording_init)
    auth = MosaicAuth(
        CLIENT_ID,
        CLIENT_SECRET,
        token_url="http://127.0.0.1:9/oidc/token",
        retry=Retry(max_attempts=1),
    )
    with pytest.raises(TokenRequestError):
        await auth.get_token()
    await auth.aclose()
    assert built_on
    assert threading.main_thread() not in built_on


async def test_closing_stops_a_fetch_and_its_waiters_get_an_error(mosaic: FakeMosaic) -> None:
    """`aclose()` while a caller waits for a fetch stops the fetch and gives the caller an
    error, rather than starting another fetch behind the close."""
    mosaic.gate = anyio.Event()
    auth = mosaic.auth()
    errors: list[TokenRequestError] = []
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(get_token_or_error, auth, errors)
        await wait_all_tasks_blocked()
        await auth.aclose()
    assert len(errors) == 1
    assert "closed" in str(errors[0])
    assert mosaic.token_requests[None] == 1
