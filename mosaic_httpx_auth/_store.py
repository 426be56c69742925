"""The token store: one token per resource, fetched once for all callers, refreshed ahead."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, TypeVar

import anyio

from ._cache import CacheKey
from ._exceptions import TokenRequestError
from ._telemetry import AuthEvent, Telemetry, logger

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from anyio.abc import TaskGroup

    from ._cache import TokenCache
    from ._endpoint import TokenEndpoint
    from ._token import AccessToken

_T = TypeVar("_T")


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
        """When a refresh may next start; pushed back after one fails."""


class _Flight:
    """One fetch under way for a resource, and its outcome for everyone who waited on it."""

    __slots__ = ("done", "error", "token")

    def __init__(self) -> None:
        self.done = anyio.Event()  # single use: a new flight, a new event
        self.token: AccessToken | None = None
        self.error: Exception | None = None


class TokenStore:
    """Keeps one token per resource, fetches it once for all callers, and refreshes it ahead.

    A token is *usable* until `leeway` seconds before it expires, and *fresh* until
    `refresh_window` seconds before that (each capped at half the remaining lifetime, so a
    short-lived token is still reused). A fresh token is served from memory. A stale one is
    served too while a single refresh attempt replaces it, in the background when a task group
    is set, else by the caller that noticed. If that refresh fails, the stale token keeps being
    served and the next refresh waits `refresh_retry_interval` seconds, or as long as the
    endpoint's ``Retry-After`` asked.

    Without a usable token, callers share one fetch per resource (a *flight*) and its outcome,
    token or error; callers for other resources are not held up. A flight whose caller is
    cancelled leaves its waiters to start a new one; a failed flight is not remembered.
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
        self._flights: dict[str | None, _Flight] = {}

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
        if now >= entry.next_refresh_at and resource not in self._flights:
            if self.task_group is not None:
                entry.next_refresh_at = now + self.refresh_retry_interval  # one at a time
                self.task_group.start_soon(self._refresh_in_background, resource, entry)
            else:
                refreshed = await self._refresh(resource)
                if refreshed is not None:
                    return refreshed
                if self._clock() >= entry.usable_until:
                    return await self._fetch(resource)
        self._telemetry.cache_hits += 1
        return entry.token

    async def invalidate(self, resource: str | None, token: AccessToken) -> None:
        """Forget `token` (say, after the API refused it), unless a newer one replaced it."""
        entry = self._entries.get(resource)
        if entry is not None and entry.token == token:
            del self._entries[resource]
        if self._cache is not None:
            await self._shared(self._cache.discard(self._key(resource), token), None, "discard")

    async def _fetch(self, resource: str | None) -> AccessToken:
        """Join the flight under way for `resource`, or start one; share its outcome."""
        while True:
            flight = self._flights.get(resource)
            if flight is None:
                return await self._fly(resource, self._obtain(resource, fresh=False))
            await flight.done.wait()
            if flight.token is not None:
                return flight.token
            if flight.error is not None:
                raise flight.error
            # Its caller was cancelled before it ended: start a flight of our own.

    async def _refresh(self, resource: str | None) -> AccessToken | None:
        """Replace a stale, still-usable token with one attempt; None if that fails."""
        entry = self._entries[resource]
        try:
            token = await self._fly(resource, self._obtain(resource, fresh=True, max_attempts=1))
        except TokenRequestError as error:
            # Stale-if-error: keep serving the token, and give the endpoint a rest.
            wait = max(self.refresh_retry_interval, error.retry_after or 0.0)
            entry.next_refresh_at = self._clock() + wait
            self._telemetry.stale_served += 1
            self._telemetry.emit(
                AuthEvent(
                    "token_refresh_failed",
                    resource,
                    status_code=error.status_code,
                    error=type(error).__name__,
                    retry_in=wait,
                ),
                logging.WARNING,
                "could not refresh the token for resource %r; serving the current one, "
                "usable for %.0f s more, and trying again in %.0f s (%s)",
                resource,
                entry.usable_until - self._clock(),
                wait,
                error,
            )
            return None
        self._telemetry.refreshes += 1
        self._telemetry.emit(
            AuthEvent("token_refreshed", resource),
            logging.INFO,
            "refreshed the token for resource %r ahead of expiry (%.0f s were left)",
            resource,
            entry.usable_until - self._clock(),
        )
        return token

    async def _refresh_in_background(self, resource: str | None, entry: _Entry) -> None:
        if resource in self._flights or self._entries.get(resource) is not entry:
            return  # a fetch or another refresh got there first
        try:
            await self._refresh(resource)
        except Exception:
            # A background failure must not tear down the caller's task group: the next
            # request will fetch in the foreground and see the error itself.
            logger.exception("refreshing the token for resource %r failed", resource)

    async def _fly(self, resource: str | None, work: Awaitable[AccessToken]) -> AccessToken:
        """Run `work` as the flight for `resource`, for whoever joins it meanwhile."""
        flight = self._flights[resource] = _Flight()
        try:
            flight.token = await work
        except Exception as error:
            flight.error = error
            raise
        finally:
            del self._flights[resource]
            flight.done.set()
        return flight.token

    async def _obtain(
        self, resource: str | None, *, fresh: bool, max_attempts: int | None = None
    ) -> AccessToken:
        """A token from the shared cache if it has a good one, else from the endpoint."""
        token = await self._from_cache(resource, fresh=fresh)
        if token is None:
            token = await self.endpoint.request_token(resource, max_attempts=max_attempts)
            self._entries[resource] = self._entry_for(token)
            if self._cache is not None:
                await self._shared(self._cache.set(self._key(resource), token), None, "store")
        return token

    async def _from_cache(self, resource: str | None, *, fresh: bool) -> AccessToken | None:
        """A token from the shared cache, if there is one and it is usable (or fresh)."""
        if self._cache is None:
            return None
        token = await self._shared(self._cache.get(self._key(resource)), None, "read")
        if token is None:
            return None
        entry = self._entry_for(token)
        if self._clock() >= (entry.refresh_at if fresh else entry.usable_until):
            return None
        self._entries[resource] = entry
        return token

    async def _shared(self, call: Awaitable[_T], fallback: _T, action: str) -> _T:
        """Await a shared-cache call; if the cache fails, log it and go on without it.

        A shared cache outage must not fail requests: tokens are fetched directly instead.
        """
        try:
            return await call
        except Exception:
            logger.exception("the token cache failed to %s a token; going on without it", action)
            return fallback

    def _entry_for(self, token: AccessToken) -> _Entry:
        leeway = self.leeway
        if token.lifetime is not None:
            leeway = min(leeway, token.lifetime / 2)
        usable_until = token.expires_at - leeway
        window = self.refresh_window
        if token.issued_at is not None:
            window = min(window, (usable_until - token.issued_at) / 2)
        return _Entry(token, refresh_at=usable_until - window, usable_until=usable_until)

    def _key(self, resource: str | None) -> CacheKey:
        return CacheKey(self.endpoint.token_url, self.endpoint.client_id, resource)
