"""The public cache module: what it exports, and what `MosaicAuth` asks of a cache that an
application writes itself."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from mosaic_httpx_auth import AccessToken, ConfigurationError, MemoryTokenCache, cache

from .helpers import CLIENT_ID, RISK, FakeMosaic, make_jwt

if TYPE_CHECKING:
    from mosaic_httpx_auth.cache import CacheKey, CacheLease


def test_the_cache_module_exports_what_a_cache_needs() -> None:
    """`mosaic_httpx_auth.cache.__all__` is the interface, what it is handed, its error and
    the in-memory cache; none of the package's helpers it uses shows as a public name."""
    assert set(cache.__all__) == {
        "DEFAULT_LEASE_SECONDS",
        "CacheKey",
        "CacheLease",
        "MemoryTokenCache",
        "TokenCache",
        "TokenCacheError",
    }
    ours = {
        name
        for name, value in vars(cache).items()
        if not name.startswith("_")
        and getattr(value, "__module__", "").startswith("mosaic_httpx_auth")
    }
    assert ours == set(cache.__all__) - {"DEFAULT_LEASE_SECONDS"}


class FieldsCache(MemoryTokenCache):
    """A cache that keeps what the protocol says to keep (the token's text, expiry, resource
    and `issued_at`) and rebuilds each token from them, as one on a network store would."""

    async def claim(
        self, key: CacheKey, *, passing_over: AccessToken | None
    ) -> AccessToken | CacheLease | None:
        outcome = await super().claim(key, passing_over=passing_over)
        if not isinstance(outcome, AccessToken):
            return outcome
        return AccessToken(
            outcome.token, outcome.expires_at, outcome.resource, issued_at=outcome.issued_at
        )


@pytest.mark.anyio
async def test_a_token_rebuilt_from_the_documented_fields_serves_the_fleet(
    mosaic: FakeMosaic,
) -> None:
    """Four instances sharing a cache that rebuilds tokens from their fields make one token
    request between them, and each rebuilt token has its claims."""
    shared = FieldsCache()
    tokens = [await mosaic.auth(resource=RISK, cache=shared).get_token() for _ in range(4)]
    assert mosaic.token_requests[RISK] == 1
    assert all(token.claims["aud"] == RISK for token in tokens)


def test_an_access_token_reads_its_claims_from_its_token() -> None:
    """Built without claims, an `AccessToken` decodes them from its JWT; given, they stay."""
    jwt = make_jwt(aud=RISK, sub=CLIENT_ID)
    assert AccessToken(jwt, 1.0).claims["sub"] == CLIENT_ID
    assert AccessToken(jwt, 1.0, claims={"given": True}).claims == {"given": True}
    assert AccessToken("opaque", 1.0).claims == {}


class SyncMethods(MemoryTokenCache):
    def discard(self, key: CacheKey, token: AccessToken) -> None:  # type: ignore[override]
        """Not a coroutine function: every call would fail as a cache outage."""


class NoLease(MemoryTokenCache):
    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.lease_seconds = 0.0


@pytest.mark.parametrize(
    ("bad_cache", "message"),
    [
        (SyncMethods(), r"cache\.discard must be a coroutine function"),
        (NoLease(), r"cache\.lease_seconds must be a positive number of seconds, not 0\.0"),
        (object(), "cache must be a mosaic_httpx_auth.cache.TokenCache"),
    ],
)
def test_a_cache_that_does_not_follow_the_protocol_is_refused(
    mosaic: FakeMosaic, bad_cache: object, message: str
) -> None:
    """A cache with a sync method or no lease length is refused when the auth is made, not
    reported as one outage after another."""
    with pytest.raises(ConfigurationError, match=message) as caught:
        mosaic.auth(cache=bad_cache)
    assert caught.value.setting in {"cache", "cache.lease_seconds"}


def test_a_cache_that_needs_the_cache_secret_is_refused_without_a_credential() -> None:
    """A cache that says `needs_cache_secret` (it seals with a key derived from it) cannot
    serve a client whose credential is not in the process."""
    import httpx

    from mosaic_httpx_auth import MosaicAuth

    class Sealing(MemoryTokenCache):
        needs_cache_secret = True

    with pytest.raises(ConfigurationError, match="Sealing needs encryption_key="):
        MosaicAuth(
            CLIENT_ID,
            client_auth="tls_client_auth",
            http_client=httpx.AsyncClient(),
            cache=Sealing(),
        )


def test_an_access_token_pickles_and_copies_whole() -> None:
    """A cache of one's own may pickle a token, and code may copy one: both keep every field."""
    import copy
    import pickle

    token = AccessToken(make_jwt(aud=RISK), 1.0, RISK, issued_at=0.5)
    for again in (pickle.loads(pickle.dumps(token)), copy.deepcopy(token)):  # noqa: S301
        assert again == token
        assert (again.claims, again.issued_at) == (token.claims, 0.5)
