"""Test doubles for the core tests: a clock to move by hand and a scriptable token endpoint."""

from __future__ import annotations

import hashlib
import itertools
import json
import threading
from collections import Counter
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

import httpx
from joserfc import jwt
from joserfc.jwk import OctKey

from mosaic_httpx_auth import AccessToken, MosaicAuth
from mosaic_httpx_auth._client_auth import (
    SCRYPT_N,
    SCRYPT_P,
    SCRYPT_R,
    ClientSecretPost,
    cache_secret_salt,
    derive_cache_secret,
)
from mosaic_httpx_auth._endpoint import TokenEndpoint
from mosaic_httpx_auth._fetcher import TokenFetcher
from mosaic_httpx_auth._retry import Retry
from mosaic_httpx_auth._telemetry import Telemetry
from mosaic_httpx_auth._token_states import TokenStates
from mosaic_httpx_auth.cache import CacheKey, CacheLease, TokenCache

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    import anyio

TOKEN_URL = "https://api.transmitsecurity.io/oidc/token"
CLIENT_ID = "client-id-1"
CLIENT_SECRET = "s3cr3t-value-never-shown"
RISK = "https://risk.identity.security"
VERIFY = "https://verify.identity.security"
START = 1_800_000_000.0

# The library never verifies signatures; any key makes a well-formed JWT.
_SIGNING_KEY = OctKey.import_key(b"k" * 32)
_serial = itertools.count(1)


def cache_key(resource: str | None) -> CacheKey:
    """The shared cache's key for the test client's token for `resource`."""
    salt = cache_secret_salt(TOKEN_URL, CLIENT_ID)
    credential = derive_cache_secret(CLIENT_SECRET.encode(), salt)
    return CacheKey(TOKEN_URL, CLIENT_ID, resource, cache_secret=credential)


def scrypt_of(
    credential: bytes, *, token_url: str = TOKEN_URL, client_id: str = CLIENT_ID
) -> bytes:
    """What a shared cache's keys are derived from, computed as the documentation says:
    scrypt of `credential` at the named cost, salted with a label, the token URL and the
    client id."""
    salt = json.dumps(["mosaic-httpx-auth shared token cache", token_url, client_id]).encode()
    return hashlib.scrypt(credential, salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32)


def threads_named(name: str) -> set[threading.Thread]:
    """The live threads called `name`. Tests compare these sets before and after, not counts:
    a thread an earlier test left winding down may end at any moment (the more so in a
    parallel run, where the tests meet in another order), and it is not the test's."""
    return {thread for thread in threading.enumerate() if thread.name == name}


async def cached_token(cache: TokenCache, resource: str | None) -> AccessToken | None:
    """What `cache` holds for the test client's `resource`, without taking its lease."""
    outcome = await cache.claim(cache_key(resource), passing_over=None)
    if isinstance(outcome, CacheLease):
        await cache.release(cache_key(resource), outcome)
        return None
    return outcome


class FakeClock:
    """Epoch seconds that move only when a test says so."""

    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def monotonic(self) -> float:
        """The same time, as MosaicAuth's monotonic clock: a test moves both at once."""
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def make_jwt(**claims: Any) -> str:
    """A signed JWT with `claims` and a unique jti."""
    return jwt.encode({"alg": "HS256"}, {"jti": f"jti-{next(_serial)}", **claims}, _SIGNING_KEY)


class FakeMosaic:
    """A token endpoint and an API behind one `httpx.MockTransport`.

    The endpoint issues JWTs that expire `lifetime` seconds after the clock's now and counts
    requests per resource. A test can hold token requests at a gate, queue refusals, and revoke
    tokens so that the API answers 401.
    """

    def __init__(self, clock: FakeClock, *, lifetime: float = 3600.0) -> None:
        self.clock = clock
        self.lifetime = lifetime
        self.forms: list[dict[str, str]] = []
        self.token_request_headers: list[httpx.Headers] = []
        self.token_requests: Counter[str | None] = Counter()
        self.api_requests: list[httpx.Request] = []
        self.api_authorizations: list[str] = []
        self.valid_tokens: set[str] = set()
        self.queued_responses: list[httpx.Response] = []
        self.gate: anyio.Event | None = None
        self.latency = 0.0
        """Seconds each token request takes, on the fake clock."""

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def http_client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=self.transport())

    def auth(self, **options: Any) -> MosaicAuth:
        """A `MosaicAuth` whose token requests come here, on the fake clock."""
        options.setdefault("http_client", self.http_client())
        options.setdefault("clock", self.clock)
        options.setdefault("token_url", TOKEN_URL)
        return MosaicAuth(CLIENT_ID, CLIENT_SECRET, **options)

    def api_client(self, auth: MosaicAuth) -> httpx.AsyncClient:
        return httpx.AsyncClient(auth=auth, transport=self.transport())

    def revoke_all(self) -> None:
        self.valid_tokens.clear()

    async def handle(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oidc/token":
            return await self._token(request)
        self.api_requests.append(request)
        # The flow re-sends the same Request object: record the header as it was on arrival.
        self.api_authorizations.append(request.headers.get("Authorization", ""))
        scheme, _, token = self.api_authorizations[-1].partition(" ")
        if scheme != "Bearer" or token not in self.valid_tokens:
            return httpx.Response(401, json={"message": "Invalid token", "error_code": 401})
        return httpx.Response(200, json={"aud": jwt.decode(token, _SIGNING_KEY).claims["aud"]})

    async def _token(self, request: httpx.Request) -> httpx.Response:
        form = dict(parse_qsl((await request.aread()).decode()))
        self.forms.append(form)
        self.token_request_headers.append(request.headers)
        resource = form.get("resource")
        self.token_requests[resource] += 1
        self.clock.advance(self.latency)
        if self.gate is not None:
            await self.gate.wait()
        if self.queued_responses:
            return self.queued_responses.pop(0)
        now = self.clock()
        token = make_jwt(
            sub=form["client_id"],
            aud=resource or "userid-api",
            iat=int(now),
            exp=int(now + self.lifetime),
        )
        self.valid_tokens.add(token)
        return httpx.Response(
            200, json={"access_token": token, "token_type": "Bearer", "expires_in": self.lifetime}
        )


def token_fetcher(
    http_client: httpx.AsyncClient,
    *,
    clock: FakeClock,
    sleep: Callable[[float], Awaitable[None]],
    client_id: str = CLIENT_ID,
    client_secret: str = CLIENT_SECRET,
    cache: TokenCache | None = None,
    telemetry: Telemetry | None = None,
    monotonic: FakeClock | None = None,
    **policy: Any,
) -> TokenFetcher:
    """A token fetcher asking `http_client` for tokens with the retry `policy`, waiting between
    attempts (and for a shared `cache`'s lease holder) with `sleep` instead of real time, and
    measuring pauses on `monotonic` (by default `clock`)."""
    retry = Retry(**policy)
    endpoint = TokenEndpoint(
        token_url=TOKEN_URL,
        client_auth=ClientSecretPost(client_id, client_secret),
        http_client=http_client,
        clock=clock,
        retry=retry,
    )
    monotonic = monotonic or clock
    states = TokenStates(
        leeway=60.0, refresh_window=300.0, retry=retry, clock=clock, monotonic=monotonic
    )
    return TokenFetcher(
        endpoint,
        states,
        telemetry=telemetry or Telemetry(),
        sleep=sleep,
        cache=cache,
    )
