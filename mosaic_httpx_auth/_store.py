"""The token store: one usable token per resource, fetched by one caller at a time."""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import anyio

from ._cache import CacheKey

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._cache import TokenCache
    from ._endpoint import TokenEndpoint
    from ._token import AccessToken


class _Entry(NamedTuple):
    token: AccessToken
    usable_until: float


class TokenStore:
    """Keeps one token per resource and fetches a new one when it is missing or expiring.

    A token is usable until `leeway` seconds before it expires (at most half its lifetime
    before, so a token shorter-lived than the leeway is still reused). Fetches are single
    flight per resource: concurrent callers wait for the one fetch under way for their resource,
    while callers for other resources are not held up. A cancelled fetch releases its lock, and
    the next caller fetches afresh; a failed fetch is not remembered.
    """

    def __init__(
        self,
        endpoint: TokenEndpoint,
        *,
        leeway: float,
        clock: Callable[[], float],
        cache: TokenCache | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.leeway = leeway
        self._clock = clock
        self._cache = cache
        self._entries: dict[str | None, _Entry] = {}
        self._locks: dict[str | None, anyio.Lock] = {}

    def cached(self, resource: str | None) -> AccessToken | None:
        """The usable token in memory for `resource`, or None: no I/O, no lock."""
        entry = self._entries.get(resource)
        if entry is not None and self._clock() < entry.usable_until:
            return entry.token
        return None

    async def get(self, resource: str | None) -> AccessToken:
        """A usable token for `resource`, fetched if need be; raises `TokenRequestError`."""
        token = self.cached(resource)
        if token is not None:
            return token
        lock = self._locks.get(resource)
        if lock is None:
            lock = self._locks[resource] = anyio.Lock()
        async with lock:
            # Whoever held the lock before us may have just fetched it.
            token = self.cached(resource)
            if token is not None:
                return token
            if self._cache is not None:
                token = await self._cache.get(self._key(resource))
                if token is not None and self._remember(resource, token):
                    return token
            token = await self.endpoint.request_token(resource)
            self._remember(resource, token)
            if self._cache is not None:
                await self._cache.set(self._key(resource), token)
            return token

    async def invalidate(self, resource: str | None, token: AccessToken) -> None:
        """Forget `token` (say, after the API refused it), unless a newer one replaced it."""
        entry = self._entries.get(resource)
        if entry is not None and entry.token == token:
            del self._entries[resource]
        if self._cache is not None:
            await self._cache.discard(self._key(resource), token)

    def _remember(self, resource: str | None, token: AccessToken) -> bool:
        """Keep `token` in memory; return whether it is usable now."""
        leeway = self.leeway
        if token.lifetime is not None:
            leeway = min(leeway, token.lifetime / 2)
        entry = _Entry(token, token.expires_at - leeway)
        self._entries[resource] = entry
        return self._clock() < entry.usable_until

    def _key(self, resource: str | None) -> CacheKey:
        return CacheKey(self.endpoint.token_url, self.endpoint.client_id, resource)
