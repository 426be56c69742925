"""The token store: one token per resource, fetched by one caller at a time, refreshed ahead."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import anyio

from ._cache import CacheKey
from ._exceptions import TokenRequestError
from ._telemetry import AuthEvent, Telemetry, logger

if TYPE_CHECKING:
    from collections.abc import Callable

    from anyio.abc import TaskGroup

    from ._cache import TokenCache
    from ._endpoint import TokenEndpoint
    from ._token import AccessToken


class _Entry:
    """A cached token and the times that matter for it, worked out once when it is cached."""

    __slots__ = ("next_refresh_at", "refresh_at", "token", "usable_until")

    def __init__(self, token: AccessToken, *, refresh_at: float, usable_until: float) -> None:
        self.token = token
        self.refresh_at = refresh_at
        """From here on the token is stale: still served, but due for a refresh."""
        self.usable_until = usable_until
        """From here on the token counts as expired and is never served."""
        self.next_refresh_at = refresh_at
        """When a refresh may next start; moved on when one starts, so one runs at a time."""


class TokenStore:
    """Keeps one token per resource, fetches it once for all callers, and refreshes it ahead.

    A token is *usable* until `leeway` seconds before it expires, and *fresh* until
    `refresh_window` seconds before that (each capped at half the remaining lifetime, so a
    short-lived token is still reused). A fresh token is served from memory. A stale one is
    served too while one caller refreshes it, in the background when a task group is set;
    if that refresh fails, the stale token keeps being served and the next refresh waits
    `refresh_retry_interval` seconds. Without a usable token, callers wait for a single fetch
    per resource, while callers for other resources are not held up. A cancelled fetch
    releases its lock, and a failed one is not remembered.
    """

    def __init__(
        self,
        endpoint: TokenEndpoint,
        *,
        leeway: float,
        refresh_window: float,
        clock: Callable[[], float],
        telemetry: Telemetry | None = None,
        cache: TokenCache | None = None,
        refresh_retry_interval: float = 5.0,
    ) -> None:
        self.endpoint = endpoint
        self.leeway = leeway
        self.refresh_window = refresh_window
        self.refresh_retry_interval = refresh_retry_interval
        self.task_group: TaskGroup | None = None
        """Where refreshes run when set, so that no request waits for one."""
        self._clock = clock
        self._telemetry = telemetry or Telemetry()
        self._cache = cache
        self._entries: dict[str | None, _Entry] = {}
        self._locks: dict[str | None, anyio.Lock] = {}

    def cached(self, resource: str | None) -> AccessToken | None:
        """The fresh token in memory for `resource`, or None: no I/O, no lock."""
        entry = self._entries.get(resource)
        if entry is not None and self._clock() < entry.refresh_at:
            self._telemetry.cache_hits += 1
            return entry.token
        return None

    async def get(self, resource: str | None) -> AccessToken:
        """A usable token for `resource`, fetched if need be; raises `TokenRequestError`."""
        token = self.cached(resource)
        if token is not None:
            return token
        entry = self._entries.get(resource)
        now = self._clock()
        if entry is None or now >= entry.usable_until:
            return await self._fetch(resource)
        # Stale but usable: served, while one caller at a time has it refreshed.
        if now >= entry.next_refresh_at and not self._lock(resource).locked():
            entry.next_refresh_at = now + self.refresh_retry_interval
            if self.task_group is None:
                await self._refresh(resource, entry)
                current = self._entries.get(resource)
                if current is None or self._clock() >= current.usable_until:
                    return await self._fetch(resource)
                return current.token
            self.task_group.start_soon(self._refresh_in_background, resource, entry)
        self._telemetry.cache_hits += 1
        return entry.token

    async def invalidate(self, resource: str | None, token: AccessToken) -> None:
        """Forget `token` (say, after the API refused it), unless a newer one replaced it."""
        entry = self._entries.get(resource)
        if entry is not None and entry.token == token:
            del self._entries[resource]
        if self._cache is not None:
            try:
                await self._cache.discard(self._key(resource), token)
            except Exception:
                logger.exception("the token cache failed to discard a token; ignoring it")

    async def _fetch(self, resource: str | None) -> AccessToken:
        """Fetch a token for all who wait: the first caller fetches, the others reuse it."""
        async with self._lock(resource):
            entry = self._entries.get(resource)
            if entry is not None and self._clock() < entry.usable_until:
                return entry.token  # whoever held the lock before us just fetched it
            token = await self._from_cache(resource, fresh=False)
            if token is None:
                token = await self.endpoint.request_token(resource)
                await self._keep(resource, token)
            return token

    async def _refresh(self, resource: str | None, entry: _Entry) -> None:
        """Replace a stale, still-usable token; if that fails, keep serving it."""
        lock = self._lock(resource)
        if lock.locked():
            return  # a fetch is under way: it replaces the token
        async with lock:
            if self._entries.get(resource) is not entry:
                return  # replaced while we waited
            if await self._from_cache(resource, fresh=True) is not None:
                return  # another process refreshed it for us
            try:
                token = await self.endpoint.request_token(resource)
            except TokenRequestError as error:
                self._telemetry.stale_served += 1
                remaining = entry.usable_until - self._clock()
                self._telemetry.emit(
                    AuthEvent(
                        "token_refresh_failed",
                        resource,
                        status_code=error.status_code,
                        error=type(error).__name__,
                        retry_in=self.refresh_retry_interval,
                    ),
                    logging.WARNING,
                    "could not refresh the token for resource %r; serving the current one, "
                    "usable for %.0f s more (%s)",
                    resource,
                    remaining,
                    error,
                )
                return
            self._telemetry.refreshes += 1
            remaining = entry.usable_until - self._clock()
            self._telemetry.emit(
                AuthEvent("token_refreshed", resource),
                logging.INFO,
                "refreshed the token for resource %r ahead of expiry (%.0f s were left)",
                resource,
                remaining,
            )
            await self._keep(resource, token)

    async def _refresh_in_background(self, resource: str | None, entry: _Entry) -> None:
        try:
            await self._refresh(resource, entry)
        except Exception:
            # A background failure must not tear down the caller's task group: the next
            # request will fetch in the foreground and see the error itself.
            logger.exception("refreshing the token for resource %r failed", resource)

    async def _from_cache(self, resource: str | None, *, fresh: bool) -> AccessToken | None:
        """A token from the shared cache, if there is one and it is usable (or fresh)."""
        if self._cache is None:
            return None
        try:
            token = await self._cache.get(self._key(resource))
        except Exception:
            # A shared cache outage must not fail requests: fetch directly instead.
            logger.exception("the token cache failed; fetching a token directly")
            return None
        if token is None:
            return None
        entry = self._entry_for(token)
        if self._clock() >= (entry.refresh_at if fresh else entry.usable_until):
            return None
        self._entries[resource] = entry
        return token

    async def _keep(self, resource: str | None, token: AccessToken) -> None:
        self._entries[resource] = self._entry_for(token)
        if self._cache is not None:
            try:
                await self._cache.set(self._key(resource), token)
            except Exception:
                logger.exception("the token cache failed to store a token; ignoring it")

    def _entry_for(self, token: AccessToken) -> _Entry:
        leeway = self.leeway
        if token.lifetime is not None:
            leeway = min(leeway, token.lifetime / 2)
        usable_until = token.expires_at - leeway
        window = self.refresh_window
        if token.issued_at is not None:
            window = min(window, (usable_until - token.issued_at) / 2)
        return _Entry(token, refresh_at=usable_until - window, usable_until=usable_until)

    def _lock(self, resource: str | None) -> anyio.Lock:
        lock = self._locks.get(resource)
        if lock is None:
            lock = self._locks[resource] = anyio.Lock()
        return lock

    def _key(self, resource: str | None) -> CacheKey:
        return CacheKey(self.endpoint.token_url, self.endpoint.client_id, resource)
