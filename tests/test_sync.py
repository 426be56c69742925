"""MosaicAuth with httpx.Client: threads instead of tasks, the same promises.

The emulator is served on 127.0.0.1 (uvicorn in a thread) on the test's fake clock, and the
sync requests go to it over real sockets; their token fetches run on the auth's own event loop
thread, the one place the async fetcher's rules are driven from for every sync caller.
"""

from __future__ import annotations

import asyncio
import gc
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from mosaic_httpx_auth import (
    AccessToken,
    MemoryTokenCache,
    MosaicAuth,
    Retry,
    TokenRequestError,
    UnsupportedClientError,
)
from mosaic_httpx_auth.testing import MosaicEmulator

from .helpers import RISK, VERIFY, FakeClock, threads_named

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from mosaic_httpx_auth.testing import RegisteredClient

# Calls that test something else than the timeout get a long one: a CI machine under load
# can take longer than the default for a command now and then.
SLOW_MACHINE = 5.0
WORKERS = 50
# The name of the thread that runs a MosaicAuth's event loop for its sync callers.
LOOP_THREAD = "mosaic-httpx-auth tokens"


@pytest.fixture
def auth(client: RegisteredClient, mosaic_url: str, clock: FakeClock) -> Iterator[MosaicAuth]:
    """A MosaicAuth for the served emulator's risk API, on the fake clock; closed after."""
    with served_auth(
        mosaic_url,
        client.client_id,
        client.client_secret,
        resource=RISK,
        clock=clock,
        retry=Retry(backoff=0),
    ) as auth:
        yield auth


def served_auth(mosaic_url: str, client_id: str, client_secret: str, **options: Any) -> MosaicAuth:
    """A MosaicAuth whose token requests and API calls go to the served emulator."""
    return MosaicAuth(
        client_id,
        client_secret,
        base_url=mosaic_url,
        token_url=f"{mosaic_url}/oidc/token",
        **options,
    )


def risk_call(auth: MosaicAuth, mosaic_url: str) -> Callable[[object], int]:
    """A function that makes one risk API request with its own httpx.Client."""

    def call(_: object = None) -> int:
        with httpx.Client(auth=auth, base_url=mosaic_url) as http:
            return http.post("/risk/v1/action/recommendation").status_code

    return call


def in_threads(call: Callable[[int], int], count: int = WORKERS) -> list[int]:
    """`call` from `count` threads at once, each waiting at a barrier to start together."""
    start = threading.Barrier(count)

    def together(index: int) -> int:
        start.wait()
        return call(index)

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(together, range(count)))


def test_a_sync_client_gets_a_token_and_reuses_it(
    auth: MosaicAuth, mosaic_url: str, emulator: MosaicEmulator
) -> None:
    """httpx.Client requests carry a token; the second reuses the first's."""
    call = risk_call(auth, mosaic_url)
    assert [call(None), call(None)] == [200, 200]
    assert emulator.token_requests == {RISK: 1}
    assert auth.stats().cache_hits == 1


def test_fifty_threads_on_a_cold_cache_make_one_token_request(
    auth: MosaicAuth, mosaic_url: str, emulator: MosaicEmulator
) -> None:
    """A pool of 50 workers starting at once on a cold cache shares one token request."""
    assert in_threads(risk_call(auth, mosaic_url)) == [200] * WORKERS
    assert emulator.token_requests == {RISK: 1}


def test_sync_requests_derive_a_shared_caches_key_once_off_every_event_loop(
    client: RegisteredClient,
    mosaic_url: str,
    clock: FakeClock,
    emulator: MosaicEmulator,
    derivations: list[threading.Thread],
) -> None:
    """Fifty threads on a cold shared cache derive its key from the secret once, on a worker
    thread: neither on the auth's event loop thread nor on a caller's."""
    cache = MemoryTokenCache()
    secret = client.client_secret
    with served_auth(
        mosaic_url, client.client_id, secret, resource=RISK, clock=clock, cache=cache
    ) as auth:
        assert in_threads(risk_call(auth, mosaic_url)) == [200] * WORKERS
    assert emulator.token_requests == {RISK: 1}
    [thread] = derivations
    assert thread.name != "mosaic-httpx-auth tokens"
    assert not thread.name.startswith("ThreadPoolExecutor")


def test_a_revocation_under_threads_is_recovered_once(
    auth: MosaicAuth, mosaic_url: str, emulator: MosaicEmulator
) -> None:
    """When the token is revoked, 50 threads' 401s end in one new token, and every request
    succeeds on its retry."""
    call = risk_call(auth, mosaic_url)
    assert call(None) == 200
    emulator.revoke_tokens()
    assert in_threads(call) == [200] * WORKERS
    assert emulator.token_requests == {RISK: 2}
    assert auth.stats().unauthorized_retries >= 1


def test_a_replacement_first_accepted_outside_a_retry_is_dropped_when_revoked_again(
    auth: MosaicAuth, mosaic_url: str, emulator: MosaicEmulator
) -> None:
    """As on the async path: the token replacing one refused to a streamed body is accepted by
    the next request, and replaced at once when revoked in turn."""
    call = risk_call(auth, mosaic_url)
    assert call(None) == 200
    emulator.revoke_tokens()
    with httpx.Client(auth=auth, base_url=mosaic_url) as http:
        streamed = http.post("/risk/v1/action/recommendation", content=iter([b"{}"]))
    assert streamed.status_code == 401
    assert call(None) == 200  # accepted here
    emulator.revoke_tokens()
    assert call(None) == 200
    assert emulator.token_requests == {RISK: 3}


def test_a_failed_token_request_is_retried(
    auth: MosaicAuth, mosaic_url: str, emulator: MosaicEmulator
) -> None:
    """A 503 from the token endpoint is retried, as on the async path."""
    emulator.fail_next_token_requests(status=503)
    assert risk_call(auth, mosaic_url)(None) == 200
    assert emulator.token_requests == {RISK: 2}


def test_every_thread_gets_an_error_of_its_own(
    client: RegisteredClient, mosaic_url: str, emulator: MosaicEmulator, clock: FakeClock
) -> None:
    """A refused fetch fails every waiting thread with a TokenRequestError of its own, after
    one token request."""
    emulator.delay_next_token_requests(0.5)  # every thread joins the fetch before it fails
    with served_auth(
        mosaic_url,
        client.client_id,
        "not-the-secret",
        resource=RISK,
        clock=clock,
    ) as auth:
        errors: list[BaseException] = []

        def call(_: object) -> int:
            try:
                return risk_call(auth, mosaic_url)(None)
            except TokenRequestError as error:
                errors.append(error)
                return 0

        assert in_threads(call, 20) == [0] * 20
    assert len({id(error) for error in errors}) == 20
    assert emulator.token_requests == {RISK: 1}


def test_a_token_is_refreshed_ahead_while_threads_keep_using_it(
    auth: MosaicAuth, mosaic_url: str, emulator: MosaicEmulator, clock: FakeClock
) -> None:
    """Inside the refresh window the current token is served at once while one refresh
    replaces it in the background."""
    first = auth.get_token_sync()
    clock.advance(3600 - 60 - 300)
    assert in_threads(risk_call(auth, mosaic_url), 10) == [200] * 10
    auth.close()  # waits for the refresh under way
    assert auth.get_token_sync() != first
    assert emulator.token_requests == {RISK: 2}
    assert auth.stats().refreshes == 1


def test_a_failed_refresh_keeps_serving_the_valid_token(
    auth: MosaicAuth, mosaic_url: str, emulator: MosaicEmulator, clock: FakeClock
) -> None:
    """When a refresh fails, sync requests go on with the still-valid token."""
    first = auth.get_token_sync()
    clock.advance(3600 - 60 - 300)
    emulator.fail_next_token_requests(status=503)
    assert in_threads(risk_call(auth, mosaic_url), 10) == [200] * 10
    auth.close()
    assert auth.get_token_sync() == first
    assert auth.stats().stale_served == 1


def test_threads_and_an_event_loop_share_one_token(
    auth: MosaicAuth, mosaic_url: str, emulator: MosaicEmulator
) -> None:
    """One MosaicAuth serves httpx.Client threads and an httpx.AsyncClient event loop at the
    same time, cold, with one token request between them."""

    async def on_a_loop() -> list[int]:
        async with httpx.AsyncClient(auth=auth, base_url=mosaic_url) as http:
            responses = await asyncio.gather(
                *(http.post("/risk/v1/action/recommendation") for _ in range(20))
            )
        return [response.status_code for response in responses]

    loop_statuses: list[int] = []
    loop_thread = threading.Thread(target=lambda: loop_statuses.extend(asyncio.run(on_a_loop())))
    loop_thread.start()
    thread_statuses = in_threads(risk_call(auth, mosaic_url), 20)
    loop_thread.join()
    assert loop_statuses == thread_statuses == [200] * 20
    assert emulator.token_requests == {RISK: 1}


def test_get_token_sync_returns_the_default_resources_token(auth: MosaicAuth) -> None:
    """`get_token_sync()` blocks until there is a token, and reuses it."""
    token = auth.get_token_sync()
    assert isinstance(token, AccessToken)
    assert token.resource == RISK
    assert auth.get_token_sync(RISK) is token


def test_close_stops_the_thread_and_a_later_request_starts_it_again(
    auth: MosaicAuth, mosaic_url: str, clock: FakeClock
) -> None:
    """close() stops the auth's event loop thread; the next sync request that needs a token
    starts another."""
    before = threads_named(LOOP_THREAD)
    auth.get_token_sync()
    assert len(threads_named(LOOP_THREAD) - before) == 1
    auth.close()
    assert threads_named(LOOP_THREAD) - before == set()
    clock.advance(3600)  # the token expired: the next request fetches
    assert risk_call(auth, mosaic_url)(None) == 200
    assert len(threads_named(LOOP_THREAD) - before) == 1


def test_an_http_client_of_the_callers_serves_async_clients_only(
    client: RegisteredClient, mosaic_url: str
) -> None:
    """Given an httpx.AsyncClient for its token requests, MosaicAuth refuses sync use with an
    UnsupportedClientError that says why: that client belongs to another event loop."""
    auth = served_auth(
        mosaic_url,
        client.client_id,
        client.client_secret,
        http_client=httpx.AsyncClient(),
    )
    with pytest.raises(UnsupportedClientError, match="leave http_client out"):
        auth.get_token_sync()


def test_an_auth_used_before_a_fork_serves_the_child() -> None:
    """A MosaicAuth created and used before a fork (a pre-forking server with the app
    preloaded), while another thread is mid-call into it, serves the child, sync and async:
    no thread, lock or fetch of the parent's is waited on there."""
    emulator = MosaicEmulator()  # the real clock, as the child's MosaicAuth has
    client = emulator.register_client(resources=[RISK, VERIFY])
    script = f"""
import asyncio, os, threading
import httpx
from mosaic_httpx_auth import MosaicAuth

url = os.environ["MOSAIC_URL"]
auth = MosaicAuth(os.environ["CLIENT_ID"], os.environ["CLIENT_SECRET"], base_url=url,
                  resources={{url + "/risk": {RISK!r}, url + "/verify": {VERIFY!r}}})
auth.get_token_sync({RISK!r})
busy = threading.Thread(target=lambda: [auth.get_token_sync({RISK!r}) for _ in range(3000)])
busy.start()
# A fetch under way at the fork: the parent's, held 0.5 s by the emulator.
fetching = threading.Thread(target=auth.get_token_sync, args=({VERIFY!r},))
fetching.start()
while sum(1 for t in threading.enumerate() if t.name == "mosaic-httpx-auth tokens") == 0:
    pass
import time; time.sleep(0.2)
pid = os.fork()
if pid == 0:
    with httpx.Client(auth=auth, base_url=url) as http:
        risk = http.post("/risk/v1/action/recommendation").status_code
        verify = http.get("/verify/api/v1/sessions").status_code  # a cold fetch, in the child

    async def identity() -> int:  # a cold fetch on an event loop, in the child
        async with httpx.AsyncClient(auth=auth, base_url=url) as http:
            return (await http.get("/cis/v1/users")).status_code

    print(risk, verify, asyncio.run(identity()), flush=True)
    os._exit(0)
busy.join()
fetching.join()
_, status = os.waitpid(pid, 0)
print("child exit", os.waitstatus_to_exitcode(status), flush=True)
"""
    with emulator.serve() as url:
        emulator.delay_next_token_requests(0.5, count=2)  # the second: the fetch under way
        environment = {
            **os.environ,
            "MOSAIC_URL": url,
            "CLIENT_ID": client.client_id,
            "CLIENT_SECRET": client.client_secret,
        }
        result = subprocess.run(  # noqa: S603 - our own interpreter, our own script
            [sys.executable, "-c", script],
            capture_output=True,
            text=True,
            timeout=60,
            env=environment,
            check=False,
        )
    assert result.stdout == "200 200 200\nchild exit 0\n", result.stderr


def test_sync_clients_share_tokens_through_a_redis_cache(
    client: RegisteredClient,
    mosaic_url: str,
    emulator: MosaicEmulator,
    redis_url: str,
    clock: FakeClock,
) -> None:
    """Two MosaicAuth used from threads, sharing a RedisTokenCache, make one token request
    between them: the fleet's lock serves sync processes too."""
    from mosaic_httpx_auth.redis import RedisTokenCache

    cache = RedisTokenCache.from_url(redis_url, timeout=SLOW_MACHINE)
    auths = [
        served_auth(
            mosaic_url,
            client.client_id,
            client.client_secret,
            resource=RISK,
            cache=cache,
            clock=clock,
        )
        for _ in range(2)
    ]
    try:
        assert (
            in_threads(lambda index: risk_call(auths[index % 2], mosaic_url)(None), 10)
            == [200] * 10
        )
        assert emulator.token_requests == {RISK: 1}
    finally:
        for auth in auths:
            auth.close()
        cache.close()


@pytest.mark.anyio
async def test_a_sync_request_on_an_event_loops_thread_is_refused_not_deadlocked(
    auth: MosaicAuth,
) -> None:
    """Blocking an event loop's thread for a token could wait on a fetch that loop runs: a
    sync request needing a token there raises UnsupportedClientError at once."""
    with pytest.raises(UnsupportedClientError, match="on an event loop's thread"):
        auth.get_token_sync()


def test_a_hook_on_the_auths_own_thread_cannot_deadlock_it(
    client: RegisteredClient, mosaic_url: str, clock: FakeClock
) -> None:
    """An on_event hook runs on the auth's event loop thread for sync fetches: a sync call
    from there fails at once instead of waiting on itself, and close() from there returns."""
    seen: list[BaseException] = []

    def hook(event: object) -> None:
        try:
            hooked.get_token_sync()
        except Exception as error:
            seen.append(error)

    hooked = served_auth(
        mosaic_url,
        client.client_id,
        client.client_secret,
        resource=RISK,
        clock=clock,
        on_event=hook,
    )
    with hooked:
        hooked.get_token_sync()
    assert {type(error) for error in seen} == {UnsupportedClientError}


def test_closing_while_threads_wait_fails_them_with_a_token_request_error(
    auth: MosaicAuth, emulator: MosaicEmulator
) -> None:
    """Threads waiting for a fetch when the auth is closed get a TokenRequestError that says
    so, an error callers already handle, not a CancelledError."""
    emulator.delay_next_token_requests(1.0)
    errors: list[BaseException] = []

    def wait_for_a_token() -> None:
        try:
            auth.get_token_sync()
        except Exception as error:
            errors.append(error)

    threads = [threading.Thread(target=wait_for_a_token) for _ in range(5)]
    for thread in threads:
        thread.start()
    while auth._sync._loop_thread is None or not emulator.token_requests:
        time.sleep(0.01)
    auth.close()
    for thread in threads:
        thread.join(5)
    assert len(errors) == 5
    assert all(isinstance(error, TokenRequestError) for error in errors)
    assert all("closed" in str(error) for error in errors)


def test_an_auth_dropped_without_close_takes_its_thread_with_it(
    client: RegisteredClient, mosaic_url: str, clock: FakeClock
) -> None:
    """The event loop thread of a MosaicAuth nobody holds any more is stopped."""
    before = threads_named(LOOP_THREAD)
    auth = served_auth(
        mosaic_url,
        client.client_id,
        client.client_secret,
        resource=RISK,
        clock=clock,
    )
    auth.get_token_sync()
    (thread,) = threads_named(LOOP_THREAD) - before
    del auth
    gc.collect()
    thread.join(5)
    assert threads_named(LOOP_THREAD) - before == set()


def test_get_token_sync_fetches_the_resource_it_is_given(
    emulator: MosaicEmulator, mosaic_url: str, clock: FakeClock
) -> None:
    """`get_token_sync(resource)` returns a token for that resource, not the default's."""
    app = emulator.register_client(resources=[RISK, VERIFY])
    with served_auth(
        mosaic_url,
        app.client_id,
        app.client_secret,
        resource=RISK,
        clock=clock,
    ) as auth:
        assert auth.get_token_sync(VERIFY).claims["aud"] == VERIFY
        assert auth.get_token_sync().claims["aud"] == RISK


def test_a_usable_token_is_served_without_a_hop_while_its_refresh_fails(
    auth: MosaicAuth, emulator: MosaicEmulator, clock: FakeClock
) -> None:
    """A stale token starts one refresh; while that refresh has failed and rests, sync callers
    are served the still-usable token on their own thread, as async callers are."""
    first = auth.get_token_sync()
    clock.advance(3600 - 60 - 300)
    emulator.fail_next_token_requests(status=503)
    assert auth.get_token_sync() == first  # stale: served, and its refresh started
    loop_thread = auth._sync._loop_thread
    assert loop_thread is not None
    deadline = time.monotonic() + 5
    while auth.stats().stale_served == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    hops: list[object] = []
    submit = loop_thread.submit

    def counted(*args: Any) -> Any:
        hops.append(args)
        return submit(*args)

    loop_thread.submit = counted  # type: ignore[method-assign,assignment]
    assert {auth.get_token_sync() for _ in range(100)} == {first}
    assert hops == []
