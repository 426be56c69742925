"""A fleet of processes shares its tokens through Redis: `RedisTokenCache`.

Every process keeps its tokens in memory and serves requests from there; Redis is asked only
when a process has no usable token or a refresh is due. Then the process claims the entry: it
takes the token another process stored, or a lease that makes it the one process to request a
token for the fleet, or waits for the lease holder to store one. So N processes make one token
request per resource per token lifetime, across a cold start, a rollover and a revocation.

Each step is one Lua script on keys that share a hash tag, so it is atomic, on Redis Cluster
too. Tokens are stored encrypted (`_redis_entries`), under names that show no client id.

``from_url`` needs the ``redis`` extra, coredis: it runs on asyncio and on trio alike, as
`MosaicAuth` does. An application's own client works as well: a coredis client, or redis-py's
``redis.asyncio`` client (asyncio only).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import sys
from functools import partial
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit, urlunsplit

import anyio

from ._checks import seconds
from ._exceptions import ConfigurationError, TokenCacheError
from ._loops.tasks import asyncio_loop, current_loop
from ._loops.thread import LoopThread
from ._redis_entries import EncryptionKey, SealedEntries, token_id
from ._telemetry import logger
from .cache import DEFAULT_LEASE_SECONDS, CacheLease

if sys.version_info < (3, 11):
    from exceptiongroup import BaseExceptionGroup

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence

    from ._redis_entries import EntryNames
    from ._token import AccessToken
    from .cache import CacheKey

    Evaluate = Callable[[str, list[str], list[str]], Awaitable[Any]]

__all__ = ["RedisTokenCache"]

DEFAULT_PREFIX = "mosaic-httpx-auth:"
# Redis answers in well under a millisecond; past this it is down or overloaded, and a token
# request to Mosaic is the faster way to a token. Not much less: a loaded machine stalls a
# process now and then for a few hundred milliseconds, and each false outage costs a fetch.
DEFAULT_TIMEOUT = 0.5
# Opening `from_url`'s client, once per process (or again after Redis failed), may take this
# long: connecting and the first command also load code and build state, which under load,
# or a tracing coverage run, takes longer than a command ever should.
OPEN_TIMEOUT = 1.0
# An entry is kept for its token's remaining lifetime, a day at most: far beyond a Mosaic
# token's (the emulator's, like Mosaic's, last an hour), so real tokens still expire with
# their entry, while a proxy's or a mock's "never expires" (expires_in 1e16, 1e300) stays
# within the PX Redis accepts. Such a token costs the fleet a request a day, and an entry
# nobody reads again (its client's secret was rotated) leaves Redis within a day.
MAX_ENTRY_LIFETIME = 24 * 3600.0

# A value is '<token id>.<sealed token>'; a value without a dot is all id (and opens to nothing).
# KEYS: token, lease. ARGV: id of a token to pass over ('' for none), lease holder, lease ms.
# The stored value unless it holds the token passed over; else 1 if the lease was free and is
# now the caller's; else 0 (another process holds it).
_CLAIM = """
local value = redis.call('GET', KEYS[1])
if value and string.match(value, '^[^.]*') ~= ARGV[1] then
  return value
end
if redis.call('SET', KEYS[2], ARGV[2], 'NX', 'PX', ARGV[3]) then
  return 1
end
return 0
"""
# KEYS: token, lease. ARGV: value, ms to keep it, lease holder. Stored by the lease holder, or
# by a holder whose lease lapsed if nobody stored a token since: a lapsed holder's token must
# not replace the one the next holder stored, splitting the fleet between two tokens.
_STORE = """
local held = redis.call('GET', KEYS[2]) == ARGV[3]
if held or redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
end
if held then
  redis.call('DEL', KEYS[2])
end
return 1
"""
# KEYS: lease. ARGV: lease holder, lease ms. The holder, still fetching, keeps its lease.
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
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
if value and string.match(value, '^[^.]*') == ARGV[1] then
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
            client's key is derived (by scrypt, once per process) from its secret or private
            key, which every process of the fleet has already. Give 32 random bytes or a
            joserfc ``OctKey`` instead (needed with ``tls_client_auth`` unless ``from_env``
            read the key file), or a list of them to
            rotate keys: the first seals, all open. Such a key is a credential: keep it as you
            keep the client secret.
        lease_seconds: Seconds a process may hold the right to fetch a token for the fleet. The
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
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        lease_seconds = seconds("lease_seconds", lease_seconds, positive=True)
        timeout = seconds("timeout", timeout, positive=True)
        self._client = client
        self._evaluate = _evaluator(client, timeout)
        self._where = str(client) if isinstance(client, _OwnedClient) else type(client).__name__
        self._entries = SealedEntries(prefix=prefix, encryption_key=encryption_key)
        self.needs_cache_secret = encryption_key is None
        """Whether tokens are sealed with a key derived from each client's cache secret: then
        a client whose credential is not in the process (``tls_client_auth`` with an
        ``ssl_context`` of its own) cannot use it."""
        self.lease_seconds = lease_seconds
        """Seconds a lease lasts unless its holder renews it."""
        self._lease_ms = str(max(1, round(lease_seconds * 1000)))
        self._timeout = timeout

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        prefix: str = DEFAULT_PREFIX,
        encryption_key: EncryptionKey | Sequence[EncryptionKey] | None = None,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> RedisTokenCache:
        """A cache on the Redis server at `url` (``redis://``, ``rediss://`` or ``unix://``),
        through coredis; the other arguments are as for the constructor.

        Over ``rediss://``, the server's certificate must come from a CA the system trusts (or
        the one ``ssl_ca_certs=<path>`` names) and name the URL's host; coredis checks the
        name only when told, and this tells it. ``ssl_check_hostname=false`` or
        ``ssl_cert_reqs=none`` in the URL is obeyed, and lets anyone on the network path to
        Redis pose as it.

        Its client lives on an event loop of its own, on a thread of its own, so that it
        serves every event loop and thread of the process, and a forked child makes its own.
        """
        client = _OwnedClient(url, timeout=timeout)
        return cls(
            client,
            prefix=prefix,
            encryption_key=encryption_key,
            lease_seconds=lease_seconds,
            timeout=timeout,
        )

    def __repr__(self) -> str:
        return f"RedisTokenCache({self._where}, prefix={self._entries.prefix!r})"

    def close(self) -> None:
        """Close the client and stop the thread that `from_url` made (an application's own
        client is the application's to close). Make one cache per process and close it when
        the process is done with Redis: each `from_url` cache holds a connection open."""
        if isinstance(self._client, _OwnedClient):
            self._client.close()

    async def claim(
        self, key: CacheKey, *, passing_over: AccessToken | None
    ) -> AccessToken | CacheLease | None:
        """The token stored under `key`, unless it is `passing_over`; failing that, a lease to
        fetch one if no process holds one; failing that, None."""
        self._entries.keys_for(key)  # with nothing to seal a token, take no lease
        names = self._entries.names(key)
        skip = "" if passing_over is None else token_id(passing_over)
        lease = CacheLease()
        reply = await self._run_claim(names, skip, lease)
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
            reply = await self._run_claim(names, skip, lease)
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
        ttl_ms = str(max(1, int(min(expires_in, MAX_ENTRY_LIFETIME) * 1000)))
        await self._run(_STORE, [names.token, names.lease], [value, ttl_ms, lease.holder])

    async def renew(self, key: CacheKey, lease: CacheLease) -> None:
        """Hold `lease` for another `self.lease_seconds` from now, if it is still held."""
        await self._run(_RENEW, [self._entries.names(key).lease], [lease.holder, self._lease_ms])

    async def release(self, key: CacheKey, lease: CacheLease) -> None:
        """End `lease` without a token, if it is still held: another process may try."""
        await self._run(_RELEASE, [self._entries.names(key).lease], [lease.holder])

    async def discard(self, key: CacheKey, token: AccessToken) -> None:
        """Delete `token` if it is still the one stored under `key`; a newer one stays."""
        await self._run(_DISCARD, [self._entries.names(key).token], [token_id(token)])

    async def _run_claim(self, names: EntryNames, skip: str, lease: CacheLease) -> Any:
        """Run the claim script for `lease`, passing over the token whose id is `skip`.

        Redis runs a script it was sent whether or not anyone awaits its answer: if anything
        interrupts the call (its caller cancelled, its event loop ending, a timeout, a lost
        connection), Redis may have granted the lease to a holder that will never know. So
        the lease is released then, which is harmless if it was not granted: only its holder
        ends it.
        """
        try:
            return await self._run(
                _CLAIM, [names.token, names.lease], [skip, lease.holder, self._lease_ms]
            )
        except BaseException:
            # Shielded from the cancellation that interrupted the claim (its event loop
            # ending, aclose()), and awaited: no task of this loop may outlive it.
            await self._release_quietly(names, lease)
            raise

    async def _release_quietly(self, names: EntryNames, lease: CacheLease) -> None:
        """Release `lease`, bounded as any call and shielded from cancellation; a release that
        fails too leaves the lease to lapse, as a dead holder's would."""
        with anyio.move_on_after(self._timeout, shield=True), contextlib.suppress(Exception):
            await self._run(_RELEASE, [names.lease], [lease.holder])

    async def _run(self, script: str, keys: list[str], args: list[str]) -> Any:
        """Run `script` within the timeout; any failure is a `TokenCacheError` saying where."""
        try:
            return await self._evaluate(script, keys, args)
        except TokenCacheError:
            raise
        except TimeoutError:
            raise TokenCacheError(
                f"Redis at {self._where} did not answer within {self._timeout} s"
            ) from None
        except Exception as error:
            cause = _innermost(error)
            raise TokenCacheError(
                f"Redis at {self._where} failed: {type(cause).__name__}: {cause}"
            ) from error


class _OwnedClient:
    """A coredis client of the cache's own, kept open on an event loop of its own thread.

    On its own loop, the client serves callers on any event loop, asyncio or trio, and any
    thread; the timeout measures Redis alone, not a caller's loop busy with a burst of
    requests (which would make Redis seem down exactly when the fleet needs it); and no
    caller waits for a worker thread. A forked child opens a client of its own.
    """

    def __init__(self, url: str, *, timeout: float) -> None:
        try:
            import coredis
        except ImportError:
            raise ConfigurationError(
                "RedisTokenCache.from_url needs coredis: pip install 'mosaic-httpx-auth[redis]'",
                setting="cache",
            ) from None
        self._where = _where(url)
        self._new_client = partial(
            coredis.Redis.from_url,
            _checking_host_names(url),
            connect_timeout=timeout,
            stream_timeout=timeout,
        )
        self._timeout = timeout
        self._thread = LoopThread("mosaic-httpx-auth redis")
        # The client, once entered, and the loop it was entered on (a forked child's differs).
        self._opened: asyncio.Future[Any] | None = None
        self._opened_on: asyncio.AbstractEventLoop | None = None
        self._keeper: asyncio.Task[None] | None = None

    def __str__(self) -> str:
        return self._where

    async def eval(self, script: str, keys: list[str], args: list[str]) -> Any:
        return await self._thread.run(self._eval, script, keys, args)

    def close(self) -> None:
        """Close the client and stop its thread; the next call starts them again."""
        self._thread.stop()
        self._opened = None

    async def _eval(self, script: str, keys: list[str], args: list[str]) -> Any:
        try:
            with anyio.fail_after(OPEN_TIMEOUT):
                client = await self._client()
        except TimeoutError:
            raise TokenCacheError(
                f"Redis at {self._where} did not answer within {OPEN_TIMEOUT:g} s of connecting"
            ) from None
        with anyio.fail_after(self._timeout):
            return await client.eval(script, keys=keys, args=args)

    async def _client(self) -> Any:
        """The open client, on the thread's loop; opened by a task that keeps it open."""
        loop = asyncio.get_running_loop()
        if self._opened is None or self._opened_on is not loop:
            self._opened, self._opened_on = loop.create_future(), loop
            self._keeper = loop.create_task(self._keep_open(self._opened))
        return await asyncio.shield(self._opened)

    async def _keep_open(self, opened: asyncio.Future[Any]) -> None:
        """Enter a client and hold it open (coredis ties a client to the task that entered
        it); if it fails or closes, the next call opens another."""
        try:
            async with self._new_client() as client:
                await client.ping()  # the first command pays for connecting, and more
                opened.set_result(client)
                await asyncio.Event().wait()
        except Exception as error:
            if not opened.done():
                opened.set_exception(error)
        finally:
            if self._opened is opened:
                self._opened = None


def _where(url: str) -> str:
    """Where `url` points, for messages: scheme, host, port and database, never the password
    (nor any of it that a character left unencoded moved elsewhere)."""
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise ConfigurationError(
            "the Redis URL must start with redis://, rediss:// or unix://", setting="cache"
        )
    try:
        port = parts.port
    except ValueError:
        raise ConfigurationError(
            "the Redis URL cannot be read: percent-encode its password", setting="cache"
        ) from None
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"  # IPv6
    if parts.scheme == "unix":
        host, port = "", None
    path = parts.path if re.fullmatch(r"/?\d*", parts.path) or parts.scheme == "unix" else ""
    if "@" in parts.path or "@" in (parts.query + parts.fragment):
        raise ConfigurationError(
            "the Redis URL cannot be read: percent-encode its password", setting="cache"
        )
    return f"{parts.scheme}://{host}{f':{port}' if port else ''}{path}"


def _checking_host_names(url: str) -> str:
    """`url`, asking coredis to check that a ``rediss://`` server's certificate names its host.

    Unless the URL says ``ssl_check_hostname=true``, coredis checks only that a trusted CA
    signed the certificate, for whatever name: anyone on the path holding any such certificate
    could pose as Redis, and read its password and the tokens' traffic. A URL that names
    ``ssl_check_hostname`` itself, or says ``ssl_cert_reqs=none`` (which coredis cannot combine
    with host name checks), keeps its choice. The query is read as coredis reads it: a blank
    value is no value.
    """
    parts = urlsplit(url)
    options = parse_qs(parts.query)
    if (
        parts.scheme != "rediss"
        or "ssl_check_hostname" in options
        or options.get("ssl_cert_reqs", [""])[0] == "none"
    ):
        return url
    query = f"{parts.query}&" if parts.query else ""
    return urlunsplit(parts._replace(query=f"{query}ssl_check_hostname=true"))


def _evaluator(client: Any, timeout: float) -> Evaluate:
    """Runs a script on `client`, whichever of the two libraries it comes from, in `timeout`."""
    if isinstance(client, _OwnedClient):
        return client.eval  # bounds its own calls
    evaluate: Any = getattr(client, "eval", None)
    # By the library its class, or a class it derives from, belongs to: without importing it.
    modules = [cls.__module__ for cls in type(client).__mro__]
    if evaluate is not None and any(module.startswith("coredis.") for module in modules):

        async def with_coredis(script: str, keys: list[str], args: list[str]) -> Any:
            with anyio.fail_after(timeout):
                return await evaluate(script, keys=keys, args=args)

        return with_coredis
    if evaluate is not None and any(module.startswith("redis.asyncio.") for module in modules):

        async def with_redis_py(script: str, keys: list[str], args: list[str]) -> Any:
            if asyncio_loop(current_loop()) is None:
                raise TokenCacheError(
                    "a redis.asyncio client runs on asyncio only: on trio, use a coredis "
                    "client or RedisTokenCache.from_url"
                )
            with anyio.fail_after(timeout):
                return await evaluate(script, len(keys), *keys, *args)

        return with_redis_py
    raise ConfigurationError(
        "RedisTokenCache needs an async Redis client: coredis.Redis, coredis.RedisCluster or "
        f"redis.asyncio.Redis, not {type(client).__name__}; or use RedisTokenCache.from_url",
        setting="cache",
    )


def _innermost(error: BaseException) -> BaseException:
    """The first leaf of an exception group (coredis raises from task groups), and what that
    was raised from (coredis's "Unable to establish a connection" hides why: a refusal, a
    certificate for another host), down to the error that started it."""
    while True:
        if isinstance(error, BaseExceptionGroup) and error.exceptions:
            error = error.exceptions[0]
        elif error.__cause__ is not None:
            error = error.__cause__
        else:
            return error
