"""RedisTokenCache.from_url over TLS (``rediss://``) against a real redis-server on loopback:
the server's certificate must name the host the URL does, unless the URL says otherwise."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from mosaic_httpx_auth.cache import CacheLease, TokenCacheError
from mosaic_httpx_auth.redis import RedisTokenCache, _checking_host_names
from mosaic_httpx_auth.testing._tls import write_server_certificate

from .helpers import RISK, cache_key
from .redis_server import RedisServer
from .test_redis_cache import SLOW_MACHINE, a_token

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

pytestmark = pytest.mark.anyio


def tls_redis_server(directory: Path, host: str) -> Iterator[RedisServer]:
    """A redis-server on 127.0.0.1, over TLS only, its certificate from the test CA for `host`."""
    server = RedisServer(tls=write_server_certificate(directory, hosts=[host]))
    server.start()
    yield server
    server.kill()


@pytest.fixture(scope="module")
def right_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """Its certificate names 127.0.0.1, where it listens."""
    yield from tls_redis_server(tmp_path_factory.mktemp("right"), "127.0.0.1")


@pytest.fixture(scope="module")
def wrong_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """Its certificate, from the same trusted CA, names another host: what an attacker on the
    path with any certificate a trusted CA signed would present."""
    yield from tls_redis_server(tmp_path_factory.mktemp("wrong"), "redis.example")


def trusting_the_test_ca(server: RedisServer, options: str = "") -> str:
    """`server`'s URL, emptied, trusting the test CA that signed its certificate; `options`
    are more query parameters."""
    assert server.tls is not None
    server.command("FLUSHALL")
    return f"{server.url}?ssl_ca_certs={server.tls.client_ca_path}{options}"


async def test_a_certificate_for_another_host_is_refused(wrong_server: RedisServer) -> None:
    """A rediss:// server whose certificate a trusted CA signed for another name is refused
    before any command: the cache fails as when Redis is down, and Redis holds nothing."""
    cache = RedisTokenCache.from_url(trusting_the_test_ca(wrong_server), timeout=SLOW_MACHINE)
    try:
        for _ in range(2):  # and again, once the client was opened afresh
            with pytest.raises(TokenCacheError, match=r"SSLCertVerificationError: .*mismatch"):
                await cache.claim(cache_key(RISK), passing_over=None)
    finally:
        cache.close()
    assert wrong_server.dump() == b""


async def test_a_certificate_for_the_host_is_used(right_server: RedisServer) -> None:
    """A rediss:// server whose certificate names the URL's host stores and hands back tokens."""
    cache = RedisTokenCache.from_url(trusting_the_test_ca(right_server), timeout=SLOW_MACHINE)
    key, token = cache_key(RISK), a_token()
    try:
        lease = await cache.claim(key, passing_over=None)
        assert isinstance(lease, CacheLease)
        await cache.store(key, token, lease=lease, expires_in=60)
        assert await cache.claim(key, passing_over=None) == token
    finally:
        cache.close()


@pytest.mark.parametrize("option", ["ssl_check_hostname=false", "ssl_cert_reqs=none"])
async def test_a_url_that_turns_checks_off_is_obeyed(
    wrong_server: RedisServer, option: str
) -> None:
    """A URL that turns host name checks, or all certificate checks, off explicitly keeps its
    choice: the server with another host's certificate is used."""
    url = trusting_the_test_ca(wrong_server, f"&{option}")
    cache = RedisTokenCache.from_url(url, timeout=SLOW_MACHINE)
    try:
        assert isinstance(await cache.claim(cache_key(RISK), passing_over=None), CacheLease)
    finally:
        cache.close()


@pytest.mark.parametrize(
    ("url", "given_to_coredis"),
    [
        ("rediss://h:6380/0", "rediss://h:6380/0?ssl_check_hostname=true"),
        (
            "rediss://h/0?ssl_cert_reqs=required",
            "rediss://h/0?ssl_cert_reqs=required&ssl_check_hostname=true",
        ),
        (
            "rediss://h/0?ssl_check_hostname=",
            "rediss://h/0?ssl_check_hostname=&ssl_check_hostname=true",
        ),
        ("rediss://h/0?ssl_check_hostname=false", "rediss://h/0?ssl_check_hostname=false"),
        ("rediss://h/0?ssl_cert_reqs=none", "rediss://h/0?ssl_cert_reqs=none"),
        ("redis://h/0", "redis://h/0"),
        ("unix:///run/redis.sock", "unix:///run/redis.sock"),
    ],
)
def test_host_name_checks_are_asked_for_unless_the_url_decides(
    url: str, given_to_coredis: str
) -> None:
    """A rediss:// URL asks coredis for host name checks unless it names ssl_check_hostname
    itself (a blank value names nothing, for coredis too) or turns certificate checks off."""
    assert _checking_host_names(url) == given_to_coredis
