"""Where tokens live between fetches: the interface a shared cache implements, and one in memory.

Give a cache to `MosaicAuth` as ``cache=``: `MemoryTokenCache` shares tokens between instances
in one process, `mosaic_httpx_auth.redis.RedisTokenCache` between processes. What follows here
is for writing a cache of your own: `TokenCache` is the interface, `CacheKey` and `CacheLease`
are what it is handed, and `TokenCacheError` is what it may raise.

A shared cache is also the fleet's lock. The one flight under way for a resource in a process
asks it to `claim` the entry: it answers with the token it has, or a `CacheLease` that makes this
process the one to fetch a token for everybody, or None while another process holds the lease
(the flight asks again shortly). A lease lapses by itself, so a process that dies holding one
holds nobody up for longer than that.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from . import _checks
from ._exceptions import TokenCacheError

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._token import AccessToken

__all__ = [
    "DEFAULT_LEASE_SECONDS",
    "CacheKey",
    "CacheLease",
    "MemoryTokenCache",
    "TokenCache",
    "TokenCacheError",
]

# `TokenCacheError` is written beside the other errors; it is raised, and imported, from here.
TokenCacheError.__module__ = __name__

# How long a lease lasts unless its holder ends it: longer than a token request takes, short
# enough that the fleet waits no longer than this for a holder that died mid-fetch.
DEFAULT_LEASE_SECONDS = 10.0


@dataclass(frozen=True, slots=True)
class CacheKey:
    """What a cached token is for: one token per token URL, client, cache secret and resource."""

    token_url: str
    client_id: str
    resource: str | None
    cache_secret: bytes | None = field(default=None, repr=False)
    """The client's cache secret, not its credential: 32 bytes that scrypt derives from the
    client's secret or private key, salted with the token URL and client id, once per
    process, so that two clients with the same id and different credentials never share a
    token. None when the credential is not in this process (a TLS
    client certificate)."""


@dataclass(frozen=True, slots=True)
class CacheLease:
    """The right to fetch a key's token for everyone sharing the cache, until it lapses."""

    holder: str = field(default_factory=lambda: secrets.token_hex(16), repr=False)
    """A value only this lease's holder knows: ending the lease checks it atomically, so a
    holder whose lease lapsed never ends the next holder's."""


@runtime_checkable
class TokenCache(Protocol):
    """A cache of tokens that several `MosaicAuth` instances, or processes, share.

    Every `MosaicAuth` keeps the tokens it uses in memory; a `TokenCache` sits behind that and
    is used only when a process has no usable token or a refresh is due, never on a request's
    way out. A cache returns what it has, usable or not: the fetcher decides. A cache that
    raises is bypassed (a warning is logged once per outage), so an outage never fails
    requests: tokens are fetched directly until it answers again.

    Writing one: every method is a coroutine function, and `lease_seconds` a positive number
    (`MosaicAuth` checks both). Key entries by all four fields of the `CacheKey` (the
    `cache_secret` keeps apart clients that share an id but not a credential; hash it, never
    store it). Keep a token whole, or its `token`, `expires_at`, `resource` and `issued_at`,
    and give it back as ``AccessToken(token, expires_at, resource, issued_at=issued_at)``,
    which reads the claims from the token again: without `issued_at` its refresh window
    cannot be capped at half its life, and a short-lived token would look due at once. A
    token is a credential: encrypt it at rest where others can read the store
    (`mosaic_httpx_auth.redis.RedisTokenCache` seals each with a key derived from the
    `cache_secret`). A cache that can only work with a `cache_secret` says so with a
    ``needs_cache_secret = True`` attribute: `MosaicAuth` then refuses it for a client whose
    credential is not in the process, as a TLS client certificate's is not.
    """

    lease_seconds: float
    """How long a `CacheLease` lasts, in seconds, unless its holder renews it."""

    async def claim(
        self, key: CacheKey, *, passing_over: AccessToken | None
    ) -> AccessToken | CacheLease | None:
        """The token cached under `key`, unless it is `passing_over` (one the caller cannot
        use); failing that, a `CacheLease` to fetch one if nobody holds one; failing that, None."""
        ...

    async def renew(self, key: CacheKey, lease: CacheLease) -> None:
        """Hold `lease` for another `self.lease_seconds` from now, if it is still held: its
        holder is still fetching."""
        ...

    async def store(
        self, key: CacheKey, token: AccessToken, *, lease: CacheLease, expires_in: float
    ) -> None:
        """Cache `token` under `key` for `expires_in` seconds, and end `lease` if it is still
        held."""
        ...

    async def release(self, key: CacheKey, lease: CacheLease) -> None:
        """End `lease` without a token (the fetch failed), if it is still held."""
        ...

    async def discard(self, key: CacheKey, token: AccessToken) -> None:
        """Forget `token` if it is still the one cached under `key`; a newer one stays."""
        ...


class MemoryTokenCache:
    """A `TokenCache` in this process's memory, for sharing tokens between `MosaicAuth` instances.

    Give one instance to every `MosaicAuth` built with the same credentials (say, one per
    short-lived client) and they make one token request per resource between them. A lease
    lapses `lease_seconds` after it was taken or last renewed, by `clock`.
    """

    def __init__(
        self,
        *,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.lease_seconds = _checks.seconds("lease_seconds", lease_seconds, positive=True)
        self._clock = clock
        self._tokens: dict[CacheKey, AccessToken] = {}
        self._leases: dict[CacheKey, tuple[CacheLease, float]] = {}
        # Instances are shared by event loops on several threads.
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"MemoryTokenCache(size={len(self._tokens)})"

    async def claim(
        self, key: CacheKey, *, passing_over: AccessToken | None
    ) -> AccessToken | CacheLease | None:
        """The token cached under `key`, unless it is `passing_over` (one the caller cannot
        use); failing that, a `CacheLease` to fetch one if nobody holds one; failing that, None."""
        with self._lock:
            token = self._tokens.get(key)
            if token is not None and token != passing_over:
                return token
            now = self._clock()
            held = self._leases.get(key)
            if held is not None and now < held[1]:
                return None
            lease = CacheLease()
            self._leases[key] = (lease, now + self.lease_seconds)
            return lease

    async def renew(self, key: CacheKey, lease: CacheLease) -> None:
        """Hold `lease` for another `self.lease_seconds` from now, if it is still held."""
        with self._lock:
            held = self._leases.get(key)
            if held is not None and held[0] == lease:
                self._leases[key] = (lease, self._clock() + self.lease_seconds)

    async def store(
        self, key: CacheKey, token: AccessToken, *, lease: CacheLease, expires_in: float
    ) -> None:
        """Cache `token` under `key`, and end `lease` if it is still held."""
        with self._lock:
            self._tokens[key] = token
            self._end(key, lease)

    async def release(self, key: CacheKey, lease: CacheLease) -> None:
        """End `lease` without a token (the fetch failed), if it is still held."""
        with self._lock:
            self._end(key, lease)

    async def discard(self, key: CacheKey, token: AccessToken) -> None:
        """Forget `token` if it is still the one cached under `key`; a newer one stays."""
        with self._lock:
            if self._tokens.get(key) == token:
                del self._tokens[key]

    def _end(self, key: CacheKey, lease: CacheLease) -> None:
        held = self._leases.get(key)
        if held is not None and held[0] == lease:
            del self._leases[key]
