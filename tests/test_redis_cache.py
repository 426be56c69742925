"""RedisTokenCache against a real redis-server on loopback: its scripts, names, sealing and
failures. Several processes sharing one are in test_fleet.py."""

from __future__ import annotations

import base64
import contextlib
import hmac
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from functools import partial
from typing import TYPE_CHECKING

import anyio
import anyio.abc
import anyio.to_thread
import coredis
import httpx
import pytest
import redis.asyncio
from joserfc import jwe
from joserfc.errors import JoseError
from joserfc.jwk import OctKey

from mosaic_httpx_auth import AccessToken, ConfigurationError, MosaicAuth, TokenRequestError
from mosaic_httpx_auth._redis_entries import _REGISTRY, _key_id
from mosaic_httpx_auth.cache import CacheKey, CacheLease, TokenCacheError
from mosaic_httpx_auth.redis import RedisTokenCache

from .helpers import (
    CLIENT_ID,
    CLIENT_SECRET,
    RISK,
    TOKEN_URL,
    FakeClock,
    FakeMosaic,
    cache_key,
    make_jwt,
    scrypt_of,
    threads_named,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

    from .redis_server import RedisServer

# Calls that test something else than the timeout get a long one: a CI machine under load
# can take longer than the default for a command now and then.
SLOW_MACHINE = 5.0

pytestmark = pytest.mark.anyio

API = "https://api.transmitsecurity.io"
# The name of the thread that runs the event loop of a client that from_url made.
REDIS_THREAD = "mosaic-httpx-auth redis"


def a_token(name: str = "t", *, resource: str | None = RISK) -> AccessToken:
    jwt = make_jwt(sub=CLIENT_ID, aud=resource or "userid-api", exp=2_000_000_000, name=name)
    return AccessToken(jwt, expires_at=2_000_000_000.0, resource=resource, issued_at=1.9e9)


async def stored(cache: RedisTokenCache, key: CacheKey, token: AccessToken) -> None:
    lease = await cache.claim(key, passing_over=None)
    assert isinstance(lease, CacheLease)
    await cache.store(key, token, lease=lease, expires_in=60)


def keys(server: RedisServer) -> list[str]:
    """The keys in the server, from its dump (keys, then values)."""
    return [
        line.decode()
        for line in server.dump().split(b"\n")
        if line.startswith(b"mosaic-httpx-auth:")
    ]


async def test_a_stored_token_is_read_back_whole(redis_url: str) -> None:
    """A token stored by one cache is read by another on the same Redis, with its expiry,
    issue time, resource and claims."""
    token = a_token()
    await stored(RedisTokenCache.from_url(redis_url, timeout=SLOW_MACHINE), cache_key(RISK), token)
    read = await RedisTokenCache.from_url(redis_url, timeout=SLOW_MACHINE).claim(
        cache_key(RISK), passing_over=None
    )
    assert isinstance(read, AccessToken)
    assert (read.token, read.expires_at, read.issued_at, read.resource) == (
        token.token,
        token.expires_at,
        token.issued_at,
        RISK,
    )
    assert read.claims["name"] == "t"


async def test_one_process_holds_the_lease_until_it_stores_or_releases(redis_url: str) -> None:
    """A claim while another holds the lease gets None; the lease is free again once its
    holder stored a token or released it."""
    cache, key = RedisTokenCache.from_url(redis_url, timeout=SLOW_MACHINE), cache_key(RISK)
    lease = await cache.claim(key, passing_over=None)
    assert isinstance(lease, CacheLease)
    assert await cache.claim(key, passing_over=None) is None
    await cache.release(key, lease)
    again = await cache.claim(key, passing_over=None)
    assert isinstance(again, CacheLease)
    await cache.store(key, a_token(), lease=again, expires_in=60)
    assert isinstance(await cache.claim(key, passing_over=None), AccessToken)


async def test_a_lease_lapses_by_itself(redis_url: str, redis_server: RedisServer) -> None:
    """A lease is stored with its lifetime, so a holder that dies frees it when it lapses."""
    cache = RedisTokenCache.from_url(redis_url, timeout=SLOW_MACHINE, lease_seconds=30)
    assert isinstance(await cache.claim(cache_key(RISK), passing_over=None), CacheLease)
    [lease_key] = keys(redis_server)
    assert lease_key.endswith(":lease")
    assert 29_000 < int(redis_server.command("PTTL", lease_key)[1:]) <= 30_000


async def test_a_lapsed_holder_never_ends_the_next_holders_lease(
    redis_url: str, redis_server: RedisServer
) -> None:
    """Ending a lease that lapsed and went to another process leaves the other's lease."""
    cache, key = RedisTokenCache.from_url(redis_url, timeout=SLOW_MACHINE), cache_key(RISK)
    lapsed = await cache.claim(key, passing_over=None)
    assert isinstance(lapsed, CacheLease)
    [lease_key] = keys(redis_server)
    redis_server.command("DEL", lease_key)  # it lapses
    current = await cache.claim(key, passing_over=None)
    assert isinstance(current, CacheLease)
    await cache.release(key, lapsed)
    token = a_token()
    await cache.store(key, token, lease=lapsed, expires_in=60)
    assert await cache.claim(key, passing_over=token) is None  # still held by `current`


async def test_passing_over_a_token_claims_the_lease_instead(redis_url: str) -> None:
    """A caller that cannot use the stored token (refused, or due for refresh) gets the lease,
    while any other token is handed over."""
    cache, key = RedisTokenCache.from_url(redis_url, timeout=SLOW_MACHINE), cache_key(RISK)
    token = a_token()
    await stored(cache, key, token)
    assert isinstance(await cache.claim(key, passing_over=token), CacheLease)
    assert await cache.claim(key, passing_over=a_token("other")) == token


async def test_discard_deletes_only_the_token_it_names(redis_url: str) -> None:
    """Discarding a refused token deletes it; discarding it after a newer one was stored
    leaves the newer one."""
    cache, key = RedisTokenCache.from_url(redis_url, timeout=SLOW_MACHINE), cache_key(RISK)
    old, new = a_token("old"), a_token("new")
    await stored(cache, key, old)
    await cache.discard(key, old)
    assert isinstance(await cache.claim(key, passing_over=None), CacheLease)
    await cache.store(key, new, lease=CacheLease(), expires_in=60)
    await cache.discard(key, old)
    assert await cache.claim(key, passing_over=None) == new


async def test_an_entry_expires_with_its_token(redis_url: str, redis_server: RedisServer) -> None:
    """A token is stored for as long as it has left, and a token already expired not at all."""
    cache, key = RedisTokenCache.from_url(redis_url, timeout=SLOW_MACHINE), cache_key(RISK)
    lease = await cache.claim(key, passing_over=None)
    assert isinstance(lease, CacheLease)
    await cache.store(key, a_token(), lease=lease, expires_in=1234.5)
    [token_key] = keys(redis_server)
    assert 1_233_000 < int(redis_server.command("PTTL", token_key)[1:]) <= 1_234_500
    other = cache_key(None)
    lease = await cache.claim(other, passing_over=None)
    assert isinstance(lease, CacheLease)
    await cache.store(other, a_token(resource=None), lease=lease, expires_in=0)
    assert keys(redis_server) == [token_key]  # nothing stored, and the lease ended


async def test_names_and_values_show_no_client_id_secret_or_token(
    redis_url: str, redis_server: RedisServer
) -> None:
    """The keys are a prefix and a digest sharing one hash tag per entry, and a dump of Redis
    holds no client id, secret or token in clear."""
    cache, key = RedisTokenCache.from_url(redis_url, timeout=SLOW_MACHINE), cache_key(RISK)
    token = a_token()
    await stored(cache, key, token)
    lease = await cache.claim(cache_key(None), passing_over=None)
    assert isinstance(lease, CacheLease)
    dump = redis_server.dump()
    for secret in (CLIENT_ID, CLIENT_SECRET, token.token, token.token.split(".")[1], RISK):
        assert secret.encode() not in dump
    assert isinstance(await cache.claim(key, passing_over=token), CacheLease)
    names = keys(redis_server)
    tags = {name.partition("{")[2].partition("}")[0] for name in names}
    assert len(names) == 3  # the risk token and its lease, and the other entry's lease
    assert len(tags) == 2  # one per entry, which its token and lease share
    assert all(name.startswith("mosaic-httpx-auth:{") for name in names)


async def test_two_clients_with_one_id_and_different_secrets_never_share(
    redis_url: str, redis_server: RedisServer
) -> None:
    """An entry's name is keyed with the client's credential: with the same id and different
    secrets, two clients have entries of their own (even sharing an encryption key)."""
    cache = RedisTokenCache.from_url(redis_url, timeout=SLOW_MACHINE, encryption_key=b"k" * 32)
    await stored(cache, cache_key(RISK), a_token())
    other = CacheKey(TOKEN_URL, CLIENT_ID, RISK, cache_secret=os.urandom(32))
    assert isinstance(await cache.claim(other, passing_over=None), CacheLease)
    assert len(keys(redis_server)) == 2  # a token, and the other client's lease


async def test_the_default_key_is_derived_from_the_credential(
    redis_url: str, redis_server: RedisServer
) -> None:
    """Without encryption_key, a token is sealed with a key derived from the client's
    credential: it opens with that key, and with no key derived from another credential."""
    token = a_token()
    await stored(RedisTokenCache.from_url(redis_url, timeout=SLOW_MACHINE), cache_key(RISK), token)
    sealed = redis_server.dump().split(b"\n")[-1].decode().partition(".")[2]
    credential = cache_key(RISK).cache_secret
    assert credential is not None
    derived = OctKey.import_key(hmac.digest(credential, b"token encryption", "sha256"))
    opened = jwe.decrypt_compact(sealed, derived, registry=_REGISTRY).plaintext
    assert token.token.encode() in (opened or b"")
    another = OctKey.import_key(hmac.digest(os.urandom(32), b"token encryption", "sha256"))
    with pytest.raises(JoseError):
        jwe.decrypt_compact(sealed, another, registry=_REGISTRY)


async def test_an_entry_is_named_and_sealed_with_what_scrypt_derives_from_the_secret(
    mosaic: FakeMosaic, redis_url: str, redis_server: RedisServer
) -> None:
    """A MosaicAuth's entry is named and sealed with what scrypt derives from its secret,
    salted with the token URL and client id: not with the former fast, unsalted HMAC of the
    secret, against which whoever reads Redis could try a guess in a microsecond."""
    auth = mosaic.auth(cache=RedisTokenCache.from_url(redis_url, timeout=SLOW_MACHINE))
    token = await auth.get_token(RISK)
    value = redis_server.dump().split(b"\n")[-1].decode()
    sealed = value.partition(".")[2]
    header = json.loads(base64.urlsafe_b64decode(sealed.split(".")[0] + "=="))

    def entry(material: bytes) -> str:
        message = json.dumps([TOKEN_URL, CLIENT_ID, RISK]).encode()
        return f"mosaic-httpx-auth:{{{hmac.digest(material, message, 'sha256')[:16].hex()}}}:token"

    def sealing_key(material: bytes) -> OctKey:
        return OctKey.import_key(hmac.digest(material, b"token encryption", "sha256"))

    derived = scrypt_of(CLIENT_SECRET.encode())
    assert keys(redis_server) == [entry(derived)]
    assert header["kid"] == _key_id(sealing_key(derived))
    opened = jwe.decrypt_compact(sealed, sealing_key(derived), registry=_REGISTRY).plaintext
    assert token.token.encode() in (opened or b"")
    former = hmac.digest(b"mosaic-httpx-auth shared token cache", CLIENT_SECRET.encode(), "sha256")
    assert entry(former) != entry(derived)
    assert header["kid"] != _key_id(sealing_key(former))
    with pytest.raises(JoseError):
        jwe.decrypt_compact(sealed, sealing_key(former), registry=_REGISTRY)


async def test_no_part_of_an_encryption_key_is_stored(
    redis_url: str, redis_server: RedisServer
) -> None:
    """A value names its key by an id from which the key cannot be worked back: neither the
    dump nor the JWE header it carries shows any form of the key."""
    key = os.urandom(32)
    cache = RedisTokenCache.from_url(redis_url, timeout=SLOW_MACHINE, encryption_key=key)
    await stored(cache, cache_key(RISK), a_token())
    dump = redis_server.dump()
    sealed = dump.split(b"\n")[-1].decode().partition(".")[2]
    header = base64.urlsafe_b64decode(sealed.split(".")[0] + "==")
    forms = (key, key.hex().encode(), base64.urlsafe_b64encode(key).rstrip(b"="))
    for form in forms:
        assert form[:8] not in dump
        assert form[:8] not in header


async def test_a_value_moved_to_another_entry_does_not_open(
    redis_url: str, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A sealed value names its entry: copied under another entry's name, it is replaced
    rather than served, with a warning."""
    cache = RedisTokenCache.from_url(redis_url, timeout=SLOW_MACHINE)
    await stored(cache, cache_key(RISK), a_token())
    [risk_key] = keys(redis_server)
    await stored(cache, cache_key(None), a_token(resource=None))
    [none_key] = [name for name in keys(redis_server) if name != risk_key]
    value = redis_server.dump().split(b"\n")[-1 if keys(redis_server)[-1] == risk_key else -2]
    redis_server.command("SET", none_key, value.decode())
    with caplog.at_level(logging.WARNING, logger="mosaic_httpx_auth"):
        assert isinstance(await cache.claim(cache_key(None), passing_over=None), CacheLease)
    assert "sealed for another entry" in caplog.text


async def test_a_token_sealed_with_another_key_is_replaced(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A process with another encryption key cannot read the token: it fetches its own."""
    await stored(
        RedisTokenCache.from_url(redis_url, timeout=SLOW_MACHINE, encryption_key=os.urandom(32)),
        cache_key(RISK),
        a_token(),
    )
    other = RedisTokenCache.from_url(redis_url, timeout=SLOW_MACHINE, encryption_key=os.urandom(32))
    with caplog.at_level(logging.WARNING, logger="mosaic_httpx_auth"):
        assert isinstance(await other.claim(cache_key(RISK), passing_over=None), CacheLease)
    assert "a key this process does not have" in caplog.text


async def test_keys_rotate_the_first_seals_and_every_one_opens(redis_url: str) -> None:
    """With [new, old], a token sealed with the old key is read, and new tokens are sealed
    with the new one, which a process with only the old key cannot read."""
    old, new = os.urandom(32), OctKey.import_key(os.urandom(32))
    await stored(
        RedisTokenCache.from_url(redis_url, timeout=SLOW_MACHINE, encryption_key=old),
        cache_key(RISK),
        a_token(),
    )
    rotating = RedisTokenCache.from_url(redis_url, timeout=SLOW_MACHINE, encryption_key=[new, old])
    assert isinstance(await rotating.claim(cache_key(RISK), passing_over=None), AccessToken)
    await stored(rotating, cache_key(None), a_token(resource=None))
    only_new = RedisTokenCache.from_url(redis_url, timeout=SLOW_MACHINE, encryption_key=new)
    assert isinstance(await only_new.claim(cache_key(None), passing_over=None), AccessToken)
    only_old = RedisTokenCache.from_url(redis_url, timeout=SLOW_MACHINE, encryption_key=old)
    assert isinstance(await only_old.claim(cache_key(None), passing_over=None), CacheLease)


async def test_a_client_without_a_secret_in_process_needs_an_encryption_key(
    redis_url: str,
) -> None:
    """With no credential to derive a key from (tls_client_auth), a claim fails with a
    TokenCacheError saying to give encryption_key, and leaves no lease behind; with a key
    given, it works."""
    key = CacheKey(TOKEN_URL, CLIENT_ID, RISK)
    with pytest.raises(TokenCacheError, match="encryption_key="):
        await RedisTokenCache.from_url(redis_url, timeout=SLOW_MACHINE).claim(
            key, passing_over=None
        )
    keyed = RedisTokenCache.from_url(redis_url, timeout=SLOW_MACHINE, encryption_key=os.urandom(32))
    token = a_token()
    await stored(keyed, key, token)
    assert await keyed.claim(key, passing_over=None) == token


async def test_a_busy_event_loop_does_not_make_redis_seem_down(redis_url: str) -> None:
    """The timeout measures Redis, not the caller's event loop: a claim whose loop is blocked
    for longer than the timeout still succeeds."""
    cache = RedisTokenCache.from_url(redis_url, timeout=0.2)
    outcome: list[object] = []

    async def claim() -> None:
        outcome.append(await cache.claim(cache_key(RISK), passing_over=None))

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(claim)
        await anyio.wait_all_tasks_blocked()
        time.sleep(0.5)  # noqa: ASYNC251 - the loop is busy, as in a burst of requests
    assert isinstance(outcome[0], CacheLease)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"encryption_key": b"short"}, "32 random bytes"),
        ({"encryption_key": OctKey.generate_key(128)}, "256 bits"),
        ({"encryption_key": []}, "at least one key"),
        ({"lease_seconds": 0}, "lease_seconds must be a positive"),
        ({"timeout": True}, "timeout must be a positive"),
    ],
)
def test_bad_options_are_refused(options: dict[str, object], message: str) -> None:
    """Options it cannot work with raise a ConfigurationError naming them."""
    with pytest.raises(ConfigurationError, match=message):
        RedisTokenCache.from_url("redis://127.0.0.1:1/0", **options)  # type: ignore[arg-type]


def test_a_client_it_cannot_use_is_refused() -> None:
    """A sync redis-py client, or anything but a Redis client, is refused up front."""
    import redis as redis_sync

    for client in (redis_sync.Redis(), object(), "redis://127.0.0.1"):
        with pytest.raises(ConfigurationError, match="async Redis client"):
            RedisTokenCache(client)
    with pytest.raises(ConfigurationError, match="redis://, rediss:// or unix://"):
        RedisTokenCache.from_url("http://127.0.0.1:6379")


async def test_an_applications_coredis_client_is_used_as_it_is(redis_url: str) -> None:
    """A coredis client the application entered serves the cache, on asyncio and trio."""
    async with coredis.Redis.from_url(redis_url) as client:
        cache, token = RedisTokenCache(client), a_token()
        await stored(cache, cache_key(RISK), token)
        assert await cache.claim(cache_key(RISK), passing_over=None) == token
        assert repr(cache) == "RedisTokenCache(Redis, prefix='mosaic-httpx-auth:')"


@pytest.mark.parametrize("anyio_backend", ["asyncio"])  # redis-py runs on asyncio only
async def test_an_applications_redis_py_client_is_used_as_it_is(redis_url: str) -> None:
    """redis-py's asyncio client serves the cache too, with decoded responses or not."""
    for decode_responses in (False, True):
        client = redis.asyncio.Redis.from_url(redis_url, decode_responses=decode_responses)
        async with client:
            cache = RedisTokenCache(client, prefix=f"p{decode_responses}:")
            token = a_token()
            await stored(cache, cache_key(RISK), token)
            assert await cache.claim(cache_key(RISK), passing_over=None) == token
            assert isinstance(await cache.claim(cache_key(RISK), passing_over=token), CacheLease)


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A loopback port that accepts connections and never answers: a Redis that hangs."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    accepted: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                return

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield int(listener.getsockname()[1])
    listener.close()
    for connection in accepted:
        connection.close()


async def test_a_redis_that_never_answers_is_given_up_on(silent_port: int) -> None:
    """Connecting to a Redis that accepts and never answers fails within bounds, with a
    TokenCacheError saying where, without the password in the URL."""
    cache = RedisTokenCache.from_url(f"redis://:hunter2@127.0.0.1:{silent_port}/0", timeout=0.05)
    with anyio.fail_after(5), pytest.raises(TokenCacheError) as raised:
        await cache.claim(cache_key(RISK), passing_over=None)
    assert str(raised.value).startswith(f"Redis at redis://127.0.0.1:{silent_port}/0 ")
    assert "hunter2" not in repr(cache)
    cache.close()


# Keeps the server busy for half a second: no other command is answered meanwhile.
_BUSY = (
    "local t = redis.call('TIME') repeat local n = redis.call('TIME') "
    "until (n[1] - t[1]) * 1000000 + n[2] - t[2] > 500000 return 1"
)


async def test_a_command_slower_than_the_timeout_is_given_up_on(
    own_redis_server: RedisServer,
) -> None:
    """Each command is bounded by `timeout`: a Redis busy for longer fails the call with a
    TokenCacheError saying how long it waited."""
    cache = RedisTokenCache.from_url(own_redis_server.url, timeout=0.05)
    assert isinstance(await cache.claim(cache_key(RISK), passing_over=None), CacheLease)
    busy = threading.Thread(target=own_redis_server.command, args=("EVAL", _BUSY, "0"))
    busy.start()
    await anyio.sleep(0.1)  # the script has the server
    with anyio.fail_after(5), pytest.raises(TokenCacheError) as raised:
        await cache.claim(cache_key(None), passing_over=None)
    busy.join()
    assert str(raised.value) == f"Redis at {own_redis_server.url} did not answer within 0.05 s"
    cache.close()


async def test_an_applications_client_is_given_the_timeout_too(silent_port: int) -> None:
    """Calls through an application's coredis client are bounded by `timeout` as well."""
    async with coredis.Redis(host="127.0.0.1", port=silent_port, stream_timeout=30) as client:
        cache = RedisTokenCache(client, timeout=0.05)
        with anyio.fail_after(5), pytest.raises(TokenCacheError, match=r"within 0\.05 s"):
            await cache.claim(cache_key(RISK), passing_over=None)


@pytest.mark.parametrize("anyio_backend", ["asyncio"])  # redis-py runs on asyncio only
async def test_an_applications_redis_py_client_is_given_the_timeout_too(silent_port: int) -> None:
    """Calls through an application's redis.asyncio client are bounded by `timeout` too."""
    client = redis.asyncio.Redis(host="127.0.0.1", port=silent_port, socket_timeout=30)
    async with client:
        cache = RedisTokenCache(client, timeout=0.05)
        with anyio.fail_after(5), pytest.raises(TokenCacheError, match=r"within 0\.05 s"):
            await cache.claim(cache_key(RISK), passing_over=None)


async def test_a_redis_that_is_down_fails_with_the_cause() -> None:
    """A refused connection is a TokenCacheError naming the innermost cause."""
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    cache = RedisTokenCache.from_url(f"redis://127.0.0.1:{port}/0")
    with pytest.raises(TokenCacheError, match=f"Redis at redis://127.0.0.1:{port}/0 failed: "):
        await cache.claim(cache_key(RISK), passing_over=None)


async def test_requests_go_on_when_redis_is_killed_mid_run(
    mosaic: FakeMosaic,
    clock: FakeClock,
    own_redis_server: RedisServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """With Redis killed, tokens are fetched directly: no request fails, a revocation is
    recovered, and the outage is one warning, not one per request."""
    cache = RedisTokenCache.from_url(own_redis_server.url)
    auth = mosaic.auth(cache=cache)
    async with mosaic.api_client(auth) as client:
        assert (await client.get(f"{API}/cis/v1/x")).status_code == 200
        own_redis_server.kill()
        mosaic.revoke_all()
        with caplog.at_level(logging.WARNING, logger="mosaic_httpx_auth"):
            async with anyio.create_task_group() as tasks:
                statuses: list[int] = []

                async def call() -> None:
                    statuses.append((await client.get(f"{API}/cis/v1/x")).status_code)

                for _ in range(50):
                    tasks.start_soon(call)
    assert statuses == [200] * 50
    assert mosaic.token_requests[None] == 2
    assert len(caplog.records) == 1
    assert (
        caplog.records[0]
        .getMessage()
        .startswith(f"the shared token cache failed (Redis at {own_redis_server.url} failed: ")
    )
    assert auth.stats().cache_outages == 1


def test_mosaic_auth_takes_it_as_its_cache() -> None:
    """RedisTokenCache is a TokenCache that MosaicAuth accepts."""
    MosaicAuth(CLIENT_ID, CLIENT_SECRET, cache=RedisTokenCache.from_url("redis://127.0.0.1/0"))


async def test_tls_client_auth_without_an_encryption_key_is_refused_up_front() -> None:
    """With tls_client_auth, no secret is in the process to derive a key from: MosaicAuth
    refuses a RedisTokenCache without encryption_key when it is built, not at each fetch."""
    options = {"client_auth": "tls_client_auth", "http_client": httpx.AsyncClient()}
    async with options["http_client"]:  # type: ignore[attr-defined]
        with pytest.raises(ConfigurationError, match="needs encryption_key= with tls_client_auth"):
            MosaicAuth(CLIENT_ID, cache=RedisTokenCache.from_url("redis://127.0.0.1/0"), **options)  # type: ignore[arg-type]
        keyed = RedisTokenCache.from_url("redis://127.0.0.1/0", encryption_key=os.urandom(32))
        MosaicAuth(CLIENT_ID, cache=keyed, **options)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", ["no-dot-at-all", "f00d.not-a-jwe", ""])
async def test_a_value_it_cannot_read_gives_way_to_a_new_token(
    redis_url: str, redis_server: RedisServer, value: str
) -> None:
    """Whatever another writer left in an entry (another format, corruption) is passed over:
    the claim gets the lease, rather than waiting for a token that never comes."""
    cache = RedisTokenCache.from_url(redis_url, timeout=SLOW_MACHINE)
    await stored(cache, cache_key(RISK), a_token())
    [token_key] = keys(redis_server)
    redis_server.command("SET", token_key, value)
    assert isinstance(await cache.claim(cache_key(RISK), passing_over=None), CacheLease)


async def test_a_forged_token_id_does_not_open(
    redis_url: str, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """The id before the JWE is sealed inside it too: a value whose id was changed, which
    would keep a refused token from being discarded, does not open."""
    cache = RedisTokenCache.from_url(redis_url, timeout=SLOW_MACHINE)
    await stored(cache, cache_key(RISK), a_token())
    [token_key] = keys(redis_server)
    sealed = redis_server.dump().split(b"\n")[-1].decode().partition(".")[2]
    redis_server.command("SET", token_key, f"{'0' * 32}.{sealed}")
    with caplog.at_level(logging.WARNING, logger="mosaic_httpx_auth"):
        assert isinstance(await cache.claim(cache_key(RISK), passing_over=None), CacheLease)
    assert "id does not match" in caplog.text


async def test_a_lapsed_holder_does_not_replace_the_next_holders_token(
    redis_url: str, redis_server: RedisServer
) -> None:
    """A holder whose lease lapsed, and whose successor stored a token meanwhile, stores
    nothing: the fleet stays on one token."""
    cache, key = RedisTokenCache.from_url(redis_url, timeout=SLOW_MACHINE), cache_key(RISK)
    lapsed = await cache.claim(key, passing_over=None)
    assert isinstance(lapsed, CacheLease)
    [lease_key] = keys(redis_server)
    redis_server.command("DEL", lease_key)
    successors = a_token("successor's")
    await stored(cache, key, successors)
    await cache.store(key, a_token("lapsed holder's"), lease=lapsed, expires_in=60)
    assert await cache.claim(key, passing_over=None) == successors


async def test_a_lease_is_renewed_only_by_its_holder(
    redis_url: str, redis_server: RedisServer
) -> None:
    """Renewing extends the holder's lease; a lease that went to another is left alone."""
    cache, key = (
        RedisTokenCache.from_url(redis_url, timeout=SLOW_MACHINE, lease_seconds=30),
        cache_key(RISK),
    )
    lease = await cache.claim(key, passing_over=None)
    assert isinstance(lease, CacheLease)
    [lease_key] = keys(redis_server)
    redis_server.command("PEXPIRE", lease_key, "1000")
    await cache.renew(key, lease)
    assert int(redis_server.command("PTTL", lease_key)[1:]) > 29_000
    redis_server.command("PEXPIRE", lease_key, "1000")
    await cache.renew(key, CacheLease())
    assert int(redis_server.command("PTTL", lease_key)[1:]) <= 1000


@pytest.mark.parametrize(
    "url",
    [
        "redis://:s3cret/pa55word@127.0.0.1:6379/0",
        "redis://user:s3cr#et-tail@127.0.0.1:6379/0",
        "redis://:s3cret?x@127.0.0.1:6379/0",
        "redis://:p4ss:w0rd@127.0.0.1/0",
    ],
)
def test_a_password_left_unencoded_is_never_shown(url: str) -> None:
    """A URL whose password was not percent-encoded is refused without quoting any of it, or
    shown without it."""
    try:
        shown = repr(RedisTokenCache.from_url(url))
    except ConfigurationError as error:
        shown = str(error)
    for part in ("s3cret", "pa55word", "s3cr", "et-tail", "p4ss", "w0rd"):
        assert part not in shown


def test_subclasses_of_either_library_are_accepted() -> None:
    """An application's subclass of a coredis or redis-py client (for instrumentation, or a
    test double) is recognised by the library it derives from."""

    class InstrumentedCoredis(coredis.Redis[bytes]):
        pass

    class InstrumentedRedisPy(redis.asyncio.Redis):
        pass

    for client in (InstrumentedCoredis(port=1), InstrumentedRedisPy(port=1)):
        assert isinstance(RedisTokenCache(client), RedisTokenCache)


@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_a_redis_py_client_on_trio_says_so(redis_url: str) -> None:
    """redis-py runs on asyncio only: used on trio, each call fails with a TokenCacheError
    saying what to use instead (and MosaicAuth fetches tokens directly)."""
    cache = RedisTokenCache(redis.asyncio.Redis.from_url(redis_url))
    with pytest.raises(TokenCacheError, match="asyncio only: on trio, use a coredis client"):
        await cache.claim(cache_key(RISK), passing_over=None)


async def test_a_claim_never_waits_for_the_applications_worker_threads(redis_url: str) -> None:
    """Redis calls run on a thread of their own, not anyio's worker threads: an application
    keeping those busy with blocking work does not hold up a token fetch."""
    cache = RedisTokenCache.from_url(redis_url, timeout=SLOW_MACHINE)
    release = threading.Event()
    async with anyio.create_task_group() as tasks:
        for _ in range(45):  # more than anyio's default limit of 40 worker threads
            tasks.start_soon(
                partial(anyio.to_thread.run_sync, release.wait, abandon_on_cancel=True)
            )
        await anyio.wait_all_tasks_blocked()
        try:
            with anyio.fail_after(5):
                assert isinstance(await cache.claim(cache_key(RISK), passing_over=None), CacheLease)
        finally:
            release.set()


def test_a_forked_child_uses_the_cache_its_parent_used(redis_url: str) -> None:
    """A MosaicAuth with a RedisTokenCache, used before a fork (a pre-forking server with the
    app preloaded), serves the child: its thread and connection are the child's own."""
    script = f"""
import asyncio, os, sys
from mosaic_httpx_auth import RISK_RESOURCE, VERIFY_RESOURCE
from mosaic_httpx_auth._redis_entries import _REGISTRY
from mosaic_httpx_auth.redis import RedisTokenCache
from mosaic_httpx_auth.testing import MosaicEmulator

emulator = MosaicEmulator()
client = emulator.register_client(resources=[RISK_RESOURCE, VERIFY_RESOURCE])
auth = emulator.auth(client, cache=RedisTokenCache.from_url({redis_url!r}))
asyncio.run(auth.get_token(RISK_RESOURCE))
pid = os.fork()
if pid == 0:
    asyncio.run(auth.get_token(VERIFY_RESOURCE))
    sys.stdout.write(f"child: {{sum(emulator.token_requests.values())}} token requests, "
                     f"{{auth.stats().cache_outages}} outages\\n")
    sys.stdout.flush()
    os._exit(0)
os.waitpid(pid, 0)
"""
    result = subprocess.run(  # noqa: S603 - our own interpreter, our own script
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout == "child: 2 token requests, 0 outages\n"


async def test_close_stops_its_thread_and_a_later_call_starts_it_again(redis_url: str) -> None:
    """close() closes the client from_url made and stops its thread; the cache still works
    after, on a new one."""
    before = threads_named(REDIS_THREAD)
    cache, token = RedisTokenCache.from_url(redis_url, timeout=SLOW_MACHINE), a_token()
    await stored(cache, cache_key(RISK), token)
    assert len(threads_named(REDIS_THREAD) - before) == 1
    cache.close()
    assert threads_named(REDIS_THREAD) - before == set()
    assert await cache.claim(cache_key(RISK), passing_over=None) == token
    assert len(threads_named(REDIS_THREAD) - before) == 1
    cache.close()


class FarAwayRedis:
    """A TCP proxy on 127.0.0.1 to the test's redis-server that holds each chunk `delay`
    seconds, either way: a Redis that far away. It counts the chunks it holds, so that a
    test can act while a command is on the wire, and wait until all it took is passed on."""

    def __init__(self, redis_port: int) -> None:
        self.delay = 0.0
        self.port = 0
        self._redis_port = redis_port
        self._held = 0
        self._changed = anyio.Condition()
        self.held_once = threading.Event()
        """Set when a chunk is held, for a test's event loop on another thread."""

    @property
    def url(self) -> str:
        """Its URL, for `RedisTokenCache.from_url`."""
        return f"redis://127.0.0.1:{self.port}/0"

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator[FarAwayRedis]:
        """Listen while the block lasts."""
        async with await anyio.create_tcp_listener(local_host="127.0.0.1") as listener:
            self.port = listener.extra(anyio.abc.SocketAttribute.local_port)  # noqa: S610 - anyio's, not Django's
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(listener.serve, self._forward)
                yield self
                tasks.cancel_scope.cancel()

    async def connected_then_moved(self, cache: RedisTokenCache) -> None:
        """Let `cache` connect while Redis is near, then move Redis 100 ms away."""
        await cache.release(cache_key(RISK), CacheLease())  # ends no lease: only connects
        self.delay = 0.1

    async def on_the_wire(self) -> None:
        """Return once a chunk is held on its way."""
        async with self._changed:
            while not self._held:
                await self._changed.wait()

    async def drained(self) -> None:
        """Return once every chunk taken is passed on."""
        async with self._changed:
            while self._held:
                await self._changed.wait()

    async def _forward(self, client: anyio.abc.SocketStream) -> None:
        redis = await anyio.connect_tcp("127.0.0.1", self._redis_port)
        async with client, redis, anyio.create_task_group() as pumps:
            pumps.start_soon(self._pump, client, redis, pumps.cancel_scope)
            pumps.start_soon(self._pump, redis, client, pumps.cancel_scope)

    async def _pump(
        self,
        source: anyio.abc.SocketStream,
        sink: anyio.abc.SocketStream,
        both: anyio.CancelScope,
    ) -> None:
        with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
            async for chunk in source:
                await self._count(1)
                await anyio.sleep(self.delay)
                await sink.send(chunk)
                await self._count(-1)
        both.cancel()  # one side closed: so does the other

    async def _count(self, change: int) -> None:
        async with self._changed:
            self._held += change
            self.held_once.set()
            self._changed.notify_all()


async def next_claim(redis_url: str) -> AccessToken | CacheLease | None:
    """What another process claiming the risk entry gets."""
    cache = RedisTokenCache.from_url(redis_url, timeout=SLOW_MACHINE)
    try:
        return await cache.claim(cache_key(RISK), passing_over=None)
    finally:
        cache.close()


@pytest.mark.parametrize("applications_client", [False, True], ids=["from_url", "coredis"])
async def test_a_claim_cancelled_on_the_wire_leaves_no_lease_behind(
    redis_url: str, redis_server: RedisServer, applications_client: bool
) -> None:
    """A claim cancelled while its script is on the way to a Redis 100 ms away, which then
    grants the lease, releases it: the next claimer gets the lease at once."""
    async with (
        FarAwayRedis(redis_server.port).serving() as far,
        contextlib.AsyncExitStack() as stack,
    ):
        if applications_client:
            client = coredis.Redis(host="127.0.0.1", port=far.port)
            cache = RedisTokenCache(await stack.enter_async_context(client), timeout=SLOW_MACHINE)
        else:
            cache = RedisTokenCache.from_url(far.url, timeout=SLOW_MACHINE)
            stack.callback(cache.close)
        await far.connected_then_moved(cache)
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(partial(cache.claim, cache_key(RISK), passing_over=None))
            await far.on_the_wire()
            tasks.cancel_scope.cancel()
        await far.drained()  # the claim reached Redis, which granted the lease
    assert isinstance(await next_claim(redis_url), CacheLease)


async def test_a_claim_on_the_wire_as_mosaic_auth_closes_leaves_no_lease_behind(
    redis_url: str, redis_server: RedisServer, mosaic: FakeMosaic
) -> None:
    """aclose() while a flight's claim is on the way to a Redis 100 ms away releases the
    lease Redis grants it: the next claimer gets the lease at once."""
    async with FarAwayRedis(redis_server.port).serving() as far:
        cache = RedisTokenCache.from_url(far.url, timeout=SLOW_MACHINE)
        await far.connected_then_moved(cache)
        auth = mosaic.auth(cache=cache, resource=RISK)

        async def caller() -> None:
            with pytest.raises(TokenRequestError, match="closed"):
                await auth.get_token()

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(caller)
            await far.on_the_wire()
            await auth.aclose()
        await far.drained()
        cache.close()
    assert isinstance(await next_claim(redis_url), CacheLease)
    assert mosaic.token_requests[RISK] == 0


async def test_a_claim_on_the_wire_as_its_event_loop_ends_leaves_no_lease_behind(
    redis_url: str, redis_server: RedisServer, mosaic: FakeMosaic, anyio_backend: str
) -> None:
    """An event loop that ends (a process shutting down) while a flight's claim is on the way
    to a Redis 100 ms away releases the lease Redis grants it: the next claimer gets the
    lease at once."""
    async with FarAwayRedis(redis_server.port).serving() as far:
        cache = RedisTokenCache.from_url(far.url, timeout=SLOW_MACHINE)
        await far.connected_then_moved(cache)
        far.held_once.clear()
        auth = mosaic.auth(cache=cache, resource=RISK)

        async def process() -> None:
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(auth.get_token)
                await anyio.to_thread.run_sync(far.held_once.wait)
                tasks.cancel_scope.cancel()  # its caller gives up; the flight goes on
            # and the event loop ends, with the flight's claim on the wire

        await anyio.to_thread.run_sync(partial(anyio.run, process, backend=anyio_backend))
        await far.drained()
        cache.close()
    assert isinstance(await next_claim(redis_url), CacheLease)


@pytest.mark.parametrize("lifetime", [1e16, 1e300])
async def test_a_token_that_never_expires_is_shared(
    redis_url: str, redis_server: RedisServer, lifetime: float
) -> None:
    """An opaque token whose expires_in is beyond any TTL Redis takes (a proxy's or a mock's
    "never expires") is stored for a day, and handed to the next claimer, with no lease left
    held."""
    token = AccessToken("opaque-never-expires", expires_at=time.time() + lifetime, resource=RISK)
    cache = RedisTokenCache.from_url(redis_url, timeout=SLOW_MACHINE)
    lease = await cache.claim(cache_key(RISK), passing_over=None)
    assert isinstance(lease, CacheLease)
    await cache.store(cache_key(RISK), token, lease=lease, expires_in=lifetime)
    cache.close()
    [token_key] = keys(redis_server)
    assert token_key.endswith(":token")  # and no lease
    assert 86_399_000 < int(redis_server.command("PTTL", token_key)[1:]) <= 86_400_000
    assert await next_claim(redis_url) == token
