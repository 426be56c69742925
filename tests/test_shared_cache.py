"""The fetcher with a shared cache: the fleet's lease, waiting for its holder, and outages.

A `MemoryTokenCache` stands in for the fleet here, on the fake clock; a test that takes a lease
by hand plays another process. Redis itself is in test_redis_cache.py and test_fleet.py.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

import anyio
import anyio.lowlevel
import httpx
import pytest

from mosaic_httpx_auth import (
    AuthEvent,
    ConfigurationError,
    MemoryTokenCache,
    MosaicAuth,
    TokenRequestError,
)
from mosaic_httpx_auth._fetcher import CACHE_PAUSE_FIRST, FLEET_POLL_LONGEST, FLEET_WAIT_LIMIT
from mosaic_httpx_auth._telemetry import Telemetry
from mosaic_httpx_auth.cache import DEFAULT_LEASE_SECONDS, CacheLease

from .helpers import (
    CLIENT_ID,
    RISK,
    VERIFY,
    FakeClock,
    FakeMosaic,
    cache_key,
    cached_token,
    token_fetcher,
)

if TYPE_CHECKING:
    from mosaic_httpx_auth import AccessToken
    from mosaic_httpx_auth._fetcher import TokenFetcher
    from mosaic_httpx_auth.cache import CacheKey

pytestmark = pytest.mark.anyio

API = "https://api.transmitsecurity.io"


def fetcher_on(
    mosaic: FakeMosaic,
    cache: MemoryTokenCache | CountingCache,
    sleeps: list[float],
    *,
    telemetry: Telemetry | None = None,
) -> TokenFetcher:
    """A fetcher sharing `cache`, whose waits are recorded in `sleeps` and move the clock."""

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        mosaic.clock.advance(seconds)
        await anyio.lowlevel.checkpoint()

    return token_fetcher(
        mosaic.http_client(), clock=mosaic.clock, sleep=sleep, cache=cache, telemetry=telemetry
    )


async def test_a_process_that_finds_the_lease_held_waits_for_the_holders_token(
    mosaic: FakeMosaic, clock: FakeClock
) -> None:
    """While another process holds the lease, the fetch waits and takes the token it stores,
    making no token request of its own."""
    cache = MemoryTokenCache(clock=clock)
    other = await cache.claim(cache_key(RISK), passing_over=None)
    assert isinstance(other, CacheLease)
    theirs = await mosaic.auth(resource=RISK).get_token()  # the other process's fetch
    sleeps: list[float] = []
    fetcher = fetcher_on(mosaic, cache, sleeps)

    async def the_other_process_stores_its_token() -> None:
        while len(sleeps) < 3:
            await anyio.lowlevel.checkpoint()
        await cache.store(cache_key(RISK), theirs, lease=other, expires_in=3600)

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(the_other_process_stores_its_token)
        token = await fetcher.token(RISK)
    assert token == theirs
    assert mosaic.token_requests[RISK] == 1  # the other process's only
    assert sleeps[:3] == [0.025, 0.05, 0.1]  # polls back off


async def test_a_lease_whose_holder_died_lapses_and_a_waiter_fetches(
    mosaic: FakeMosaic, clock: FakeClock
) -> None:
    """A holder that never stores holds the others up no longer than the lease: then one of
    them takes the lease over and fetches."""
    cache = MemoryTokenCache(clock=clock)
    assert isinstance(await cache.claim(cache_key(RISK), passing_over=None), CacheLease)
    sleeps: list[float] = []
    await fetcher_on(mosaic, cache, sleeps).token(RISK)
    assert mosaic.token_requests[RISK] == 1
    assert DEFAULT_LEASE_SECONDS <= sum(sleeps) <= DEFAULT_LEASE_SECONDS + FLEET_POLL_LONGEST
    assert await cached_token(cache, RISK) is not None  # and stored it for the others


async def test_a_token_due_for_refresh_is_refreshed_once_for_all_sharers(
    mosaic: FakeMosaic, clock: FakeClock
) -> None:
    """Two stores refreshing the same token make one token request: the second passes over
    the token due for refresh, serves it while the lease holder fetches, and takes its new one."""
    cache = MemoryTokenCache(clock=clock)
    sleeps: list[float] = []
    first, second = fetcher_on(mosaic, cache, sleeps), fetcher_on(mosaic, cache, sleeps)
    old = await first.token(RISK)
    assert await second.token(RISK) == old
    clock.advance(3600 - 60 - 300)  # into the refresh window
    mosaic.gate = anyio.Event()
    assert await first.token(RISK) == old  # its refresh holds the lease, at the gate
    await anyio.wait_all_tasks_blocked()
    assert await second.token(RISK) == old  # its refresh waits for the holder
    while len(sleeps) < 2:
        await anyio.lowlevel.checkpoint()
    mosaic.gate.set()
    while second._states.fresh_token(RISK) is None:
        await anyio.lowlevel.checkpoint()
    assert mosaic.token_requests[RISK] == 2  # the cold fetch and one refresh
    assert await cached_token(cache, RISK) == await second.token(RISK) != old


async def test_a_failed_fetch_ends_its_lease_at_once(mosaic: FakeMosaic, clock: FakeClock) -> None:
    """A holder whose fetch fails ends its lease, so the next process tries without waiting
    for it to lapse."""
    cache = MemoryTokenCache(clock=clock)
    mosaic.queued_responses.append(httpx.Response(400, json={"error": "invalid_client"}))
    with pytest.raises(TokenRequestError):
        await fetcher_on(mosaic, cache, []).token(RISK)
    assert isinstance(await cache.claim(cache_key(RISK), passing_over=None), CacheLease)


class RemoteCache(MemoryTokenCache):
    """A memory cache whose release awaits, as a call over the network does."""

    async def release(self, key: CacheKey, lease: CacheLease) -> None:
        await anyio.lowlevel.checkpoint()
        await super().release(key, lease)


async def test_a_fetch_stopped_by_aclose_ends_its_lease(
    mosaic: FakeMosaic, clock: FakeClock
) -> None:
    """Closing a MosaicAuth while its fetch holds the lease ends the lease, though the flight
    is being cancelled: no process waits for a fetch that will never store."""
    cache = RemoteCache(clock=clock)
    mosaic.gate = anyio.Event()
    auth = mosaic.auth(cache=cache, resource=RISK)
    async with anyio.create_task_group() as tasks:

        async def caller() -> None:
            with pytest.raises(TokenRequestError, match="closed"):
                await auth.get_token()

        tasks.start_soon(caller)
        await anyio.wait_all_tasks_blocked()  # holding the lease, in its token request
        assert await cache.claim(cache_key(RISK), passing_over=None) is None
        await auth.aclose()
    assert isinstance(await cache.claim(cache_key(RISK), passing_over=None), CacheLease)


async def test_clients_with_one_id_and_different_secrets_never_share(mosaic: FakeMosaic) -> None:
    """Two clients with the same id and different secrets each get their own token from a
    shared cache."""
    cache = MemoryTokenCache()
    mine = await mosaic.auth(cache=cache).get_token()
    other = MosaicAuth(
        CLIENT_ID,
        "another-secret",
        http_client=mosaic.http_client(),
        clock=mosaic.clock,
        token_url=mosaic.auth().token_url,
        cache=cache,
    )
    assert await other.get_token() != mine
    assert mosaic.token_requests[None] == 2


async def test_sharers_derive_the_key_of_a_credential_once_per_process(
    mosaic: FakeMosaic, derivations: list[threading.Thread]
) -> None:
    """Several MosaicAuth with the same credentials, each with many concurrent first requests
    for two resources, derive their shared cache's key from the secret once between them,
    at the first request rather than when they are built."""
    cache = MemoryTokenCache()
    auths = [mosaic.auth(cache=cache) for _ in range(3)]
    assert derivations == []
    async with anyio.create_task_group() as tasks:
        for auth in auths:
            for resource in [RISK, VERIFY] * 10:
                tasks.start_soon(auth.get_token, resource)
    assert len(derivations) == 1
    assert mosaic.token_requests == {RISK: 1, VERIFY: 1}


async def test_the_key_is_derived_off_the_event_loop(
    mosaic: FakeMosaic, derivations: list[threading.Thread]
) -> None:
    """The derivation, tens of milliseconds of work, runs on a worker thread, never on the
    thread of the event loop that needs it."""
    await mosaic.auth(cache=MemoryTokenCache()).get_token(RISK)
    assert len(derivations) == 1
    assert derivations[0] is not threading.current_thread()


async def test_without_a_cache_no_key_is_derived(
    mosaic: FakeMosaic, derivations: list[threading.Thread]
) -> None:
    """A MosaicAuth that shares no cache never pays for the derivation."""
    await mosaic.auth().get_token(RISK)
    assert derivations == []


def test_something_that_is_not_a_token_cache_is_refused() -> None:
    """`cache=` takes a TokenCache: anything else is a ConfigurationError naming it."""
    with pytest.raises(ConfigurationError, match="TokenCache") as raised:
        MosaicAuth(CLIENT_ID, "secret", cache=object())  # type: ignore[arg-type]
    assert raised.value.setting == "cache"


class CountingCache(MemoryTokenCache):
    """A memory cache that counts its calls, and fails while `failing` is set."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock=clock)
        self.calls: list[str] = []
        self.failing = False

    def _call(self, name: str) -> None:
        self.calls.append(name)
        if self.failing:
            raise ConnectionError("the cache is down")

    async def claim(
        self, key: CacheKey, *, passing_over: AccessToken | None
    ) -> AccessToken | CacheLease | None:
        self._call("claim")
        return await super().claim(key, passing_over=passing_over)

    async def store(
        self, key: CacheKey, token: AccessToken, *, lease: CacheLease, expires_in: float
    ) -> None:
        self._call("store")
        await super().store(key, token, lease=lease, expires_in=expires_in)

    async def discard(self, key: CacheKey, token: AccessToken) -> None:
        self._call("discard")
        await super().discard(key, token)


async def test_an_outage_is_reported_once_and_the_cache_left_alone_for_a_pause(
    mosaic: FakeMosaic, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A failing cache costs one failed call, one warning and one event: the fetches after it
    go straight to the endpoint until the pause is over; then it is tried again, and its
    recovery reported."""
    cache = CountingCache(clock)
    cache.failing = True
    events: list[AuthEvent] = []
    fetcher = fetcher_on(mosaic, cache, [], telemetry=Telemetry(events.append))
    with caplog.at_level(logging.WARNING, logger="mosaic_httpx_auth"):
        for resource in ("r1", "r2", "r3"):
            await fetcher.token(resource)
    assert cache.calls == ["claim"]
    assert [record.getMessage() for record in caplog.records] == [
        "the shared token cache failed (the cache is down); fetching tokens directly, and "
        "trying it again in 2 s"
    ]
    clock.advance(CACHE_PAUSE_FIRST)
    await fetcher.token("r4")
    assert cache.calls == ["claim", "claim"]  # tried again; still down, and not reported again
    clock.advance(CACHE_PAUSE_FIRST)
    await fetcher.token("r4b")
    assert cache.calls == ["claim", "claim"]  # the pause doubled: left alone still
    clock.advance(CACHE_PAUSE_FIRST)
    cache.failing = False
    await fetcher.token("r5")
    outages = [event for event in events if event.name.startswith("cache")]
    assert [event.name for event in outages] == ["cache_unavailable", "cache_recovered"]
    assert outages[-1].duration == 3 * CACHE_PAUSE_FIRST
    assert mosaic.token_requests == {"r1": 1, "r2": 1, "r3": 1, "r4": 1, "r4b": 1, "r5": 1}


async def test_the_outage_pause_is_measured_on_the_monotonic_clock(
    mosaic: FakeMosaic, clock: FakeClock
) -> None:
    """A wall clock stepped back an hour during a cache outage leaves the pause at 2 s."""
    monotonic = FakeClock(0.0)
    cache = CountingCache(clock)
    cache.failing = True
    fetcher = token_fetcher(
        mosaic.http_client(), clock=clock, monotonic=monotonic, sleep=anyio.sleep, cache=cache
    )
    await fetcher.token("r1")
    clock.advance(-3600)
    monotonic.advance(CACHE_PAUSE_FIRST)
    await fetcher.token("r2")
    assert cache.calls == ["claim", "claim"]


class HangingCache(CountingCache):
    """A cache whose claims hang until `answer` is set, and then fail."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock)
        self.answer = anyio.Event()

    async def claim(
        self, key: CacheKey, *, passing_over: AccessToken | None
    ) -> AccessToken | CacheLease | None:
        self.calls.append("claim")
        await self.answer.wait()
        raise ConnectionError("the cache is down")


async def test_calls_under_way_when_the_cache_fails_count_as_one_failure(
    mosaic: FakeMosaic, clock: FakeClock
) -> None:
    """Fetches for several resources whose claims fail together pause the cache once, for
    the first pause, rather than doubling it once per call."""
    cache = HangingCache(clock)
    events: list[AuthEvent] = []
    fetcher = fetcher_on(mosaic, cache, [], telemetry=Telemetry(events.append))
    async with anyio.create_task_group() as tasks:
        for resource in ("r1", "r2", "r3", "r4"):
            tasks.start_soon(fetcher.token, resource)
        await anyio.wait_all_tasks_blocked()
        cache.answer.set()
    assert cache.calls == ["claim"] * 4
    clock.advance(CACHE_PAUSE_FIRST)
    await fetcher.token("r5")
    assert cache.calls == ["claim"] * 5  # tried again after the first pause
    assert [event.name for event in events].count("cache_unavailable") == 1


async def test_a_fetched_token_is_stored_for_the_fleet_before_it_is_used_here(
    mosaic: FakeMosaic, clock: FakeClock
) -> None:
    """The new token reaches the shared cache before any request carries it: a 401 to it must
    find it there to discard it, or the revoked token would be stored after the discard."""
    served_when_stored: list[AccessToken | None] = []

    class Watching(MemoryTokenCache):
        async def store(
            self, key: CacheKey, token: AccessToken, *, lease: CacheLease, expires_in: float
        ) -> None:
            served_when_stored.append(fetcher._states.fresh_token(RISK))
            await super().store(key, token, lease=lease, expires_in=expires_in)

    fetcher = fetcher_on(mosaic, Watching(clock=clock), [])
    await fetcher.token(RISK)
    assert served_when_stored == [None]


async def test_a_holder_renews_its_lease_while_its_token_request_lasts(mosaic: FakeMosaic) -> None:
    """A token request slower than the lease does not let the lease lapse: no other process
    starts a second request while the holder is still waiting for its answer."""
    cache = MemoryTokenCache(lease_seconds=0.5)  # real time: leases lapse in real time
    mosaic.gate = anyio.Event()
    auth = mosaic.auth(cache=cache, resource=RISK)
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(auth.get_token)
        await anyio.wait_all_tasks_blocked()  # the holder, at the gate
        try:
            await anyio.sleep(1.25)  # two and a half leases
            assert await cache.claim(cache_key(RISK), passing_over=None) is None
        finally:
            mosaic.gate.set()
    assert mosaic.token_requests[RISK] == 1


class HeldForever(MemoryTokenCache):
    """A cache whose entry another process holds and never fills."""

    async def claim(
        self, key: CacheKey, *, passing_over: AccessToken | None
    ) -> AccessToken | CacheLease | None:
        return None


async def test_a_flight_waits_a_few_leases_at_most_then_fetches_itself(
    mosaic: FakeMosaic, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A lease that is never given up, or a cache that keeps handing back a token passed
    over, holds a flight up for FLEET_WAIT_LIMIT leases; then it fetches on its own."""
    sleeps: list[float] = []
    with caplog.at_level(logging.WARNING, logger="mosaic_httpx_auth"):
        await fetcher_on(mosaic, HeldForever(clock=clock), sleeps).token(RISK)
    assert mosaic.token_requests[RISK] == 1
    assert (
        FLEET_WAIT_LIMIT * DEFAULT_LEASE_SECONDS
        <= sum(sleeps)
        < FLEET_WAIT_LIMIT * DEFAULT_LEASE_SECONDS + 1
    )
    assert "gave up waiting 30 s for another process's token" in caplog.text


async def test_stores_sharing_a_cache_share_its_outage(
    mosaic: FakeMosaic, clock: FakeClock
) -> None:
    """Several MosaicAuth instances sharing one failing cache pay for one failed call and
    report one outage between them."""
    cache = CountingCache(clock)
    cache.failing = True
    events: list[AuthEvent] = []
    for resource in ("r1", "r2", "r3"):
        await fetcher_on(mosaic, cache, [], telemetry=Telemetry(events.append)).token(resource)
    assert cache.calls == ["claim"]
    assert [event.name for event in events].count("cache_unavailable") == 1


async def test_a_token_refused_by_many_requests_is_discarded_once(
    mosaic: FakeMosaic, clock: FakeClock
) -> None:
    """Of many 401s to one token, the first drops it and discards it from the shared cache;
    the others find it already replaced and leave the cache alone."""
    cache = CountingCache(clock)
    fetcher = fetcher_on(mosaic, cache, [])
    token = await fetcher.token(RISK)
    async with anyio.create_task_group() as tasks:
        for _ in range(20):
            tasks.start_soon(fetcher.refused, RISK, token, "https://api.example/risk")
    assert cache.calls.count("discard") == 1


class FailingFor(MemoryTokenCache):
    """A cache whose claims fail for one resource: a blip while other calls go through."""

    def __init__(self, clock: FakeClock, resource: str) -> None:
        super().__init__(clock=clock)
        self.failing_resource = resource

    async def claim(
        self, key: CacheKey, *, passing_over: AccessToken | None
    ) -> AccessToken | CacheLease | None:
        if key.resource == self.failing_resource:
            raise ConnectionError("the cache is down")
        return await super().claim(key, passing_over=passing_over)


async def test_a_pause_leaves_the_lease_holders_store_alone(
    mosaic: FakeMosaic, clock: FakeClock
) -> None:
    """A failure that starts a pause while another flight holds a lease does not keep that
    flight from storing its token: the fleet, waiting on the lease, gets it."""
    cache = FailingFor(clock, "r1")
    fetcher = fetcher_on(mosaic, cache, [])
    mosaic.gate = anyio.Event()
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(fetcher.token, "r2")
        await anyio.wait_all_tasks_blocked()  # r2 holds its lease, at the gate
        tasks.start_soon(fetcher.token, "r1")
        await anyio.wait_all_tasks_blocked()  # r1 failed to claim: the pause began
        mosaic.gate.set()
    assert await cached_token(cache, "r2") is not None
