"""`invalidate` and `invalidate_sync`: a token refused outside httpx is dropped, here and in
the shared cache, unless a newer one already replaced it."""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio
import pytest

from mosaic_httpx_auth import MemoryTokenCache, UnsupportedClientError
from mosaic_httpx_auth.cache import CacheLease

from .helpers import RISK, FakeClock, FakeMosaic, cache_key, cached_token
from .test_sync import served_auth

if TYPE_CHECKING:
    from mosaic_httpx_auth import AccessToken
    from mosaic_httpx_auth.testing import MosaicEmulator, RegisteredClient


@pytest.mark.anyio
async def test_an_invalidated_token_is_replaced_at_the_next_request(mosaic: FakeMosaic) -> None:
    """The token in use, invalidated, is dropped: the next caller fetches another."""
    auth = mosaic.auth(resource=RISK)
    first = await auth.get_token()
    assert await auth.invalidate(first) is True
    second = await auth.get_token()
    assert second != first
    assert mosaic.token_requests[RISK] == 2


@pytest.mark.anyio
async def test_a_newer_token_stays(mosaic: FakeMosaic) -> None:
    """Invalidating a token that a newer one already replaced changes nothing: compare, then
    invalidate."""
    auth = mosaic.auth(resource=RISK)
    first = await auth.get_token()
    await auth.invalidate(first)
    second = await auth.get_token()
    assert await auth.invalidate(first) is False
    assert await auth.get_token() == second
    assert mosaic.token_requests[RISK] == 2


@pytest.mark.anyio
async def test_an_invalidated_token_leaves_the_shared_cache_and_never_comes_back(
    mosaic: FakeMosaic,
) -> None:
    """Invalidated, a token is discarded from the shared cache too, so that other instances
    fetch a new one; a newer token stored there since stays; and the instance that refused
    it does not take it back from a cache that still offers it."""
    cache = MemoryTokenCache()
    first_auth = mosaic.auth(resource=RISK, cache=cache)
    first = await first_auth.get_token()
    assert await cached_token(cache, RISK) == first
    assert await first_auth.invalidate(first) is True
    assert await cached_token(cache, RISK) is None

    second = await mosaic.auth(resource=RISK, cache=cache).get_token()
    assert second != first
    assert await mosaic.auth(resource=RISK, cache=cache).invalidate(first) is False
    assert await cached_token(cache, RISK) == second  # the newer one stayed
    assert mosaic.token_requests[RISK] == 2

    # A cache that hands back the invalidated token (say, a replica behind) is not believed.
    stale = MemoryTokenCache()
    refusing = mosaic.auth(resource=RISK, cache=stale)
    old = await refusing.get_token()
    await refusing.invalidate(old)
    await _put_back(stale, old)
    assert await refusing.get_token() != old
    assert mosaic.token_requests[RISK] == 4


async def _put_back(cache: MemoryTokenCache, token: AccessToken) -> None:
    """Store `token` in `cache` again, as a lagging replica would offer it."""
    lease = await cache.claim(cache_key(RISK), passing_over=None)
    assert isinstance(lease, CacheLease)
    await cache.store(cache_key(RISK), token, lease=lease, expires_in=3600)


def test_invalidate_sync_drops_the_token_of_a_sync_client(
    emulator: MosaicEmulator, client: RegisteredClient, mosaic_url: str
) -> None:
    """`invalidate_sync` does for sync code what `invalidate` does, over the auth's own
    event loop thread."""
    with served_auth(mosaic_url, client.client_id, client.client_secret, resource=RISK) as auth:
        first = auth.get_token_sync(timeout=5)
        assert auth.invalidate_sync(first) is True
        second = auth.get_token_sync(timeout=5)
        assert second != first
        assert auth.invalidate_sync(first) is False
        assert auth.get_token_sync(timeout=5) == second
    assert emulator.token_requests[RISK] == 2


@pytest.mark.anyio
async def test_invalidating_every_token_costs_a_token_request_a_minute(
    mosaic: FakeMosaic, clock: FakeClock
) -> None:
    """Code that invalidates whatever token it gets (a WebSocket API refusing them all, a
    client certificate it does not present) costs one token request a minute, as 401s do:
    the token fetched after an invalidation is kept if invalidated within the minute."""
    auth = mosaic.auth(resource=RISK)
    for _ in range(100):
        await auth.invalidate(await auth.get_token())
        clock.advance(0.1)
    assert mosaic.token_requests[RISK] == 2
    clock.advance(60)
    assert await auth.invalidate(await auth.get_token()) is True
    assert await auth.get_token() is not None
    assert mosaic.token_requests[RISK] == 3


def test_invalidate_sync_without_a_cache_needs_no_thread_of_the_auths(mosaic: FakeMosaic) -> None:
    """Without a shared cache, `invalidate_sync` is all in memory: it works on an auth given
    an http_client, and starts no event loop thread."""
    auth = mosaic.auth(resource=RISK)  # with FakeMosaic's http_client: async only otherwise
    first = anyio.run(auth.get_token)
    assert auth.invalidate_sync(first) is True
    assert anyio.run(auth.get_token) != first
    assert auth._sync._loop_thread is None


@pytest.mark.anyio
async def test_invalidate_sync_with_a_cache_on_an_event_loop_says_to_await(
    mosaic: FakeMosaic,
) -> None:
    """With a shared cache, `invalidate_sync` on an event loop's thread would block it: an
    UnsupportedClientError that names `invalidate`, with the token still dropped here."""
    auth = mosaic.auth(resource=RISK, cache=MemoryTokenCache())
    token = await auth.get_token()
    with pytest.raises(UnsupportedClientError, match="invalidate"):
        auth.invalidate_sync(token)


@pytest.mark.anyio
async def test_a_token_revoked_after_a_refresh_is_dropped_at_once(clock: FakeClock) -> None:
    """Only the token fetched for an invalidation is kept when invalidated again within the
    minute: one a refresh brought meanwhile (here 26 s later, 100 s tokens) is dropped, as a
    revocation should be."""
    mosaic = FakeMosaic(clock, lifetime=100)
    auth = mosaic.auth(resource=RISK)
    await auth.invalidate(await auth.get_token())  # the first: dropped
    replacement = await auth.get_token()
    clock.advance(26)  # past its refresh moment (25 s): a refresh replaces it
    assert await auth.get_token() is replacement
    await anyio.wait_all_tasks_blocked()
    refreshed = await auth.get_token()
    assert refreshed != replacement
    assert await auth.invalidate(refreshed) is True
    assert await auth.get_token() not in (replacement, refreshed)


@pytest.mark.anyio
async def test_a_kept_token_stays_in_the_shared_cache_too(mosaic: FakeMosaic) -> None:
    """The token an invalidation keeps (the one fetched for the last) is not discarded from
    the shared cache either: other instances do not fetch for it."""
    cache = MemoryTokenCache()
    auth = mosaic.auth(resource=RISK, cache=cache)
    await auth.invalidate(await auth.get_token())
    replacement = await auth.get_token()
    assert await auth.invalidate(replacement) is False
    assert await cached_token(cache, RISK) == replacement
    assert await mosaic.auth(resource=RISK, cache=cache).get_token() == replacement
    assert mosaic.token_requests[RISK] == 2


@pytest.mark.anyio
async def test_invalidate_sync_refused_on_an_event_loop_changes_nothing(
    mosaic: FakeMosaic,
) -> None:
    """Refused on an event loop's thread, `invalidate_sync` has dropped nothing: the
    `invalidate` the error points to then does the whole job."""
    auth = mosaic.auth(resource=RISK, cache=MemoryTokenCache())
    token = await auth.get_token()
    with pytest.raises(UnsupportedClientError):
        auth.invalidate_sync(token)
    assert await auth.invalidate(token) is True
