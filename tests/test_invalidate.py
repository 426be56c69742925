"""`invalidate` and `invalidate_sync`: a token refused outside httpx is dropped, here and in
the shared cache, unless a newer one already replaced it."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from mosaic_httpx_auth import MemoryTokenCache
from mosaic_httpx_auth.cache import CacheLease

from .helpers import RISK, FakeMosaic, cache_key, cached_token
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
