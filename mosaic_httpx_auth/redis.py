"""A fleet of processes shares its tokens through Redis: `RedisTokenCache`.

Every process keeps its tokens in memory and serves requests from there; Redis is asked only
when a process has no usable token or a refresh is due. Then the process claims the entry: it
takes the token another process stored, or a lease that makes it the one process to request a
token for the fleet, or waits for the lease holder to store one. So N processes make one token
request per resource per token lifetime, across a cold start, a rollover and a revocation.

Each step is one Lua script on keys that share a hash tag, so it is atomic, on Redis Cluster
too. Tokens are stored encrypted (`_shared_entries`), under names that show no client id.

``from_url`` needs the ``redis`` extra, coredis: it runs on asyncio and on trio alike, as
`MosaicAuth` does. An application's own client works as well: a coredis client, or redis-py's
``redis.asyncio`` client (asyncio only).
"""

from __future__ import annotations

import logging
import sys
from functools import partial
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import anyio
import anyio.to_thread

from ._cache import DEFAULT_LEASE, CacheLease
from ._exceptions import ConfigurationError, TokenCacheError
from ._shared_entries import EncryptionKey, SealedEntries, token_id

if sys.version_info < (3, 11):
    from exceptiongroup import BaseExceptionGroup

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence

    from ._cache import CacheKey
    from ._token import AccessToken

    Evaluate = Callable[[str, list[str], list[str]], Awaitable[Any]]

__all__ = ["RedisTokenCache"]

logger = logging.getLogger("mosaic_httpx_auth")

DEFAULT_PREFIX = "mosaic-httpx-auth:"
# Redis answers in well under a millisecond; past this it is down or overloaded, and a token
# request to Mosaic is the faster way to a token.
DEFAULT_TIMEOUT = 0.25

# KEYS: token, lease. ARGV: id of a token to pass over ('' for none), lease holder, lease ms.
# The stored token unless it is the one passed over; else 1 if the lease was free and is now
# the caller's; else 0 (another process holds it).
_CLAIM = """
local value = redis.call('GET', KEYS[1])
if value and (ARGV[1] == '' or string.sub(value, 1, string.len(ARGV[1]) + 1) ~= ARGV[1] .. '.') then
  return value
end
if redis.call('SET', KEYS[2], ARGV[2], 'NX', 'PX', ARGV[3]) then
  return 1
end
return 0
"""
# KEYS: token, lease. ARGV: value, ms to keep it, lease holder.
_STORE = """
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
if redis.call('GET', KEYS[2]) == ARGV[3] then
  redis.call('DEL', KEYS[2])
end
return 1
"""
# KEYS: lease. ARGV: lease holder. Only the holder ends a lease: one that lapsed is another's.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""
# KEYS: token. ARGV: token id. A newer token stored by another process stays.
_DISCARD = """
local value = redis.call('GET', KEYS[1])
if value and string.sub(value, 1, string.len(ARGV[1]) + 1) == ARGV[1] .. '.' then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class RedisTokenCache:
    """A `TokenCache` in Redis, shared by every process of a fleet, with a lock per entry.

    Pass it to each process's `MosaicAuth` as ``cache=``. Build it with `from_url`, or from a
    client the application already has: a coredis ``Redis`` or ``RedisCluster`` (asyncio or
    trio) or a redis-py ``redis.asyncio.Redis`` (asyncio only), entered or connected as that
    library requires.

    Args:
        client: The Redis client to use.
        prefix: Put before every key this cache writes.
        encryption_key: Tokens are stored as JWE (``dir``, ``A256GCM``). By default each
            client's key is derived from its secret or private key, which every process of
            the fleet has already. Give 32 random bytes or a joserfc ``OctKey`` instead (needed
            with ``tls_client_auth``), or a list of them to rotate keys: the first seals, all
            open. Such a key is a credential: keep it as you keep the client secret.
        lease: Seconds a process may hold the right to fetch a token for the fleet. The
            others wait for its token at most this long if it dies mid-fetch.
        timeout: Seconds each Redis call may take, connecting included. Past it Redis is
            treated as down: tokens are fetched directly, and Redis is tried again later.
    """

    def __init__(
        self,
        client: Any,
        *,
        prefix: str = DEFAULT_PREFIX,
        encryption_key: EncryptionKey | Sequence[EncryptionKey] | None = None,
        lease: float = DEFAULT_LEASE,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        for name, seconds in (("lease", lease), ("timeout", timeout)):
            if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds <= 0:
                raise ConfigurationError(
                    f"{name} must be a positive number of seconds", setting=name
                )
        self._evaluate = _evaluator(client, timeout)
        self._where = (
            str(client) if isinstance(client, _ConnectingClient) else type(client).__name__
        )
        self._entries = SealedEntries(prefix=prefix, encryption_key=encryption_key)
        self._lease_ms = str(max(1, round(lease * 1000)))
        self._timeout = timeout

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        prefix: str = DEFAULT_PREFIX,
        encryption_key: EncryptionKey | Sequence[EncryptionKey] | None = None,
        lease: float = DEFAULT_LEASE,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> RedisTokenCache:
        """A cache on the Redis server at `url` (``redis://``, ``rediss://`` or ``unix://``),
        through coredis; the other arguments are as for the constructor.

        It connects per use, on whichever event loop asks: Redis is used about once per token
        lifetime, and a connection kept open would belong to one event loop.
        """
        client = _ConnectingClient(url, timeout=timeout)
        return cls(
            client, prefix=prefix, encryption_key=encryption_key, lease=lease, timeout=timeout
        )

    def __repr__(self) -> str:
        return f"RedisTokenCache({self._where}, prefix={self._entries.prefix!r})"

    async def claim(
        self, key: CacheKey, *, passing_over: AccessToken | None
    ) -> AccessToken | CacheLease | None:
        """The token stored under `key`, unless it is `passing_over`; failing that, a lease to
        fetch one if no process holds one; failing that, None."""
        self._entries.keys_for(key)  # with nothing to seal a token, take no lease
        names = self._entries.names(key)
        skip = "" if passing_over is None else token_id(passing_over)
        lease = CacheLease()
        reply = await self._run(
            _CLAIM, [names.token, names.lease], [skip, lease.holder, self._lease_ms]
        )
        if reply == 1:
            return lease
        if reply == 0:
            return None
        value = reply.decode() if isinstance(reply, bytes) else str(reply)
        try:
            return self._entries.open(key, value)
        except TokenCacheError as error:
            # Unreadable here: replace it with a token of our own, as if there were none.
            logger.warning("replacing a token in Redis this process cannot read: %s", error)
            skip = value.partition(".")[0]
            reply = await self._run(
                _CLAIM, [names.token, names.lease], [skip, lease.holder, self._lease_ms]
            )
            return lease if reply == 1 else None

    async def store(
        self, key: CacheKey, token: AccessToken, *, lease: CacheLease, expires_in: float
    ) -> None:
        """Store `token` under `key` until it expires, and end `lease` if it is still held."""
        names = self._entries.names(key)
        if expires_in <= 0:
            await self.release(key, lease)
            return
        value = self._entries.seal(key, token)
        ttl_ms = str(max(1, int(expires_in * 1000)))
        await self._run(_STORE, [names.token, names.lease], [value, ttl_ms, lease.holder])

    async def release(self, key: CacheKey, lease: CacheLease) -> None:
        """End `lease` without a token, if it is still held: another process may try."""
        await self._run(_RELEASE, [self._entries.names(key).lease], [lease.holder])

    async def discard(self, key: CacheKey, token: AccessToken) -> None:
        """Delete `token` if it is still the one stored under `key`; a newer one stays."""
        await self._run(_DISCARD, [self._entries.names(key).token], [token_id(token)])

    async def _run(self, script: str, keys: list[str], args: list[str]) -> Any:
        """Run `script` within the timeout; any failure is a `TokenCacheError` saying where."""
        try:
            return await self._evaluate(script, keys, args)
        except TimeoutError:
            raise TokenCacheError(
                f"Redis at {self._where} did not answer within {self._timeout} s"
            ) from None
        except Exception as error:
            cause = _innermost(error)
            raise TokenCacheError(
                f"Redis at {self._where} failed: {type(cause).__name__}: {cause}"
            ) from error


class _ConnectingClient:
    """Runs each script on a connection of its own, made by coredis in a worker thread.

    In the thread, the timeout measures Redis alone: on the caller's event loop it would also
    count the loop's other work, which a burst of requests makes hundreds of milliseconds
    long, and Redis would seem down exactly when the fleet needs it. Nothing outlives a call,
    so the cache serves any event loop, and a process that forks.
    """

    def __init__(self, url: str, *, timeout: float) -> None:
        try:
            import coredis
        except ImportError:
            raise ConfigurationError(
                "RedisTokenCache.from_url needs coredis: pip install 'mosaic-httpx-auth[redis]'",
                setting="cache",
            ) from None
        parts = urlsplit(url)
        if parts.scheme not in ("redis", "rediss", "unix"):
            raise ConfigurationError(
                "the Redis URL must start with redis://, rediss:// or unix://", setting="cache"
            )
        self._connect = partial(
            coredis.Redis.from_url, url, connect_timeout=timeout, stream_timeout=timeout
        )
        self._timeout = timeout
        # Where it is, without the password a URL may carry.
        port = f":{parts.port}" if parts.port else ""
        self._where = f"{parts.scheme}://{parts.hostname or ''}{port}{parts.path}"

    def __str__(self) -> str:
        return self._where

    async def eval(self, script: str, keys: list[str], args: list[str]) -> Any:
        return await anyio.to_thread.run_sync(
            self._eval_in_thread, script, keys, args, abandon_on_cancel=True
        )

    def _eval_in_thread(self, script: str, keys: list[str], args: list[str]) -> Any:
        return anyio.run(self._eval, script, keys, args)

    async def _eval(self, script: str, keys: list[str], args: list[str]) -> Any:
        with anyio.fail_after(self._timeout):
            async with self._connect() as client:
                return await client.eval(script, keys=keys, args=args)


def _evaluator(client: Any, timeout: float) -> Evaluate:
    """Runs a script on `client`, whichever of the two libraries it comes from, in `timeout`."""
    if isinstance(client, _ConnectingClient):
        return client.eval  # bounds its own calls
    library = type(client).__module__.partition(".")[0]
    evaluate: Any = getattr(client, "eval", None)
    if library == "coredis" and evaluate is not None:

        async def with_coredis(script: str, keys: list[str], args: list[str]) -> Any:
            with anyio.fail_after(timeout):
                return await evaluate(script, keys=keys, args=args)

        return with_coredis
    if type(client).__module__.startswith("redis.asyncio.") and evaluate is not None:

        async def with_redis_py(script: str, keys: list[str], args: list[str]) -> Any:
            with anyio.fail_after(timeout):
                return await evaluate(script, len(keys), *keys, *args)

        return with_redis_py
    raise ConfigurationError(
        "RedisTokenCache needs an async Redis client: coredis.Redis, coredis.RedisCluster or "
        f"redis.asyncio.Redis, not {type(client).__name__}; or use RedisTokenCache.from_url",
        setting="cache",
    )


def _innermost(error: BaseException) -> BaseException:
    """The first leaf of an exception group (coredis raises from task groups), else `error`."""
    while isinstance(error, BaseExceptionGroup) and error.exceptions:
        error = error.exceptions[0]
    return error
