"""The contenders, set up as each one's documentation shows for client credentials.

- **static header**: tokens minted beforehand and sent as a plain header. The baseline: what a
  request costs with no token management at all, and the least a stall can be.
- **MosaicAuth**: one `MosaicAuth` routing each API path to its resource.
- **httpx-auth**: one `OAuth2ClientCredentials` per resource, passed per request. Its auth
  flow is sync, so with `httpx.AsyncClient` its token requests run on the event loop.
- **Authlib**: one `AsyncOAuth2Client` per resource, as a client holds one token. It has no
  first fetch of its own: the application calls `fetch_token()` before the first request,
  which `open` does for it. Authlib 1.9 runs on httpx2.

Each opener yields a `Send`: it sends one GET to an API path and returns the status code. All
renew tokens `Target.renew_margin` seconds before they expire, so that the rollover scenario's
short-lived tokens are renewed at one moment by all: the peers in line, MosaicAuth in the
background.
"""

from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeAlias

import anyio
import httpx
import httpx2
import httpx_auth
from authlib.integrations.httpx_client import AsyncOAuth2Client, OAuth2Client

from mosaic_httpx_auth import RISK_RESOURCE, VERIFY_RESOURCE, MosaicAuth
from mosaic_httpx_auth.httpx2 import MosaicAuth as MosaicAuthHttpx2

if TYPE_CHECKING:
    from collections.abc import (
        AsyncGenerator,
        AsyncIterator,
        Callable,
        Coroutine,
        Generator,
        Iterator,
        Mapping,
    )
    from types import ModuleType

    from ._emulator_process import Credentials

STATIC = "static header"
OURS = "MosaicAuth"
HTTPX_AUTH = "httpx-auth"
AUTHLIB = "Authlib"
STATIC_HTTPX2 = f"{STATIC} (httpx2)"
OURS_HTTPX2 = f"{OURS} (httpx2)"

# API paths by the resource their tokens are for (None: Identity Management, no resource).
ROUTES: dict[str, str | None] = {"/risk": RISK_RESOURCE, "/verify": VERIFY_RESOURCE, "/cis": None}
PATHS = ("/risk/v1/action/recommendation", "/verify/api/v1/sessions", "/cis/v1/users")
# Waiting for one of the pool's 100 connections counts: a burst of 1,000 queues for them.
TIMEOUT = 60.0
# What the in-memory transport answers: a token to a token request, 200 to anything else.
MOCK_TOKEN = "header.payload.signature"

Send: TypeAlias = "Callable[[str], Coroutine[Any, Any, int]]"
SyncSend: TypeAlias = "Callable[[str], int]"


@dataclass(frozen=True, slots=True)
class Target:
    """Where a contender's requests go, and what it authenticates with.

    `base_url` None sends every request, token requests included, to an in-memory transport.
    """

    base_url: str | None
    credentials: Credentials
    routes: Mapping[str, str | None] = field(default_factory=lambda: ROUTES)
    renew_margin: float = 30.0
    static_tokens: Mapping[str | None, str] = field(default_factory=dict)
    redis_url: str | None = None

    @property
    def url(self) -> str:
        return self.base_url or "https://api.transmitsecurity.io"

    @property
    def token_url(self) -> str:
        return f"{self.url}/oidc/token"

    def transport(self, http: ModuleType = httpx) -> dict[str, Any]:
        """The client options that reach the target through `http`'s clients."""
        if self.base_url is not None:
            return {}

        def answer(request: Any) -> Any:
            if request.url.path == "/oidc/token":
                token = {"access_token": MOCK_TOKEN, "token_type": "Bearer", "expires_in": 3600}
                return http.Response(200, json=token)
            return http.Response(200)

        return {"transport": http.MockTransport(answer)}


def resource_of(path: str) -> str | None:
    """The resource whose token a request to `path` carries."""
    return ROUTES["/" + path.split("/")[1]]


def _static_bearer(target: Target, http: ModuleType = httpx) -> Any:
    """An auth setting a header fixed in advance: a token minted for the path's resource, or
    the in-memory transport's. It costs a request what a header set on the client does (within
    the measure's noise): the least any auth can cost."""
    fixed = f"Bearer {MOCK_TOKEN}"
    minted = {resource: f"Bearer {token}" for resource, token in target.static_tokens.items()}

    class StaticBearer(http.Auth):  # type: ignore[misc,name-defined]
        def sync_auth_flow(self, request: Any) -> Generator[Any, Any, None]:
            request.headers["Authorization"] = (
                minted[resource_of(request.url.path)] if minted else fixed
            )
            yield request

        async def async_auth_flow(self, request: Any) -> AsyncGenerator[Any, Any]:
            request.headers["Authorization"] = (
                minted[resource_of(request.url.path)] if minted else fixed
            )
            yield request

    return StaticBearer()


# Async contenders


@contextlib.asynccontextmanager
async def static_header(target: Target, http: ModuleType = httpx) -> AsyncIterator[Send]:
    """A client sending headers fixed in advance: the baseline."""
    async with http.AsyncClient(
        auth=_static_bearer(target, http),
        base_url=target.url,
        timeout=TIMEOUT,
        **target.transport(http),
    ) as client:

        async def send(path: str) -> int:
            return int((await client.get(path)).status_code)

        yield send


def _mosaic_options(target: Target) -> dict[str, Any]:
    return {
        "client_id": target.credentials.client_id,
        "client_secret": target.credentials.client_secret,
        "base_url": target.url,
        "token_url": target.token_url,
        "resources": target.routes,
        # Refreshed in the background from `renew_margin` before expiry, as the peers renew
        # in line; used until half that before expiry, should the refresh be late.
        "leeway": target.renew_margin / 2,
        "refresh_window": target.renew_margin / 2,
    }


@contextlib.asynccontextmanager
async def mosaic_auth(
    target: Target, auth_class: type[MosaicAuth] = MosaicAuth
) -> AsyncIterator[Send]:
    """A client with a `MosaicAuth`, sharing tokens through Redis when `target` names one."""
    http = auth_class._http
    async with contextlib.AsyncExitStack() as stack:
        cache = None
        if target.redis_url is not None:
            from mosaic_httpx_auth.redis import RedisTokenCache

            cache = RedisTokenCache.from_url(target.redis_url)
            stack.callback(cache.close)
        http_client = None
        if target.base_url is None:
            http_client = await stack.enter_async_context(
                http.AsyncClient(**target.transport(http))
            )
        auth = auth_class(**_mosaic_options(target), http_client=http_client, cache=cache)
        await stack.enter_async_context(auth)
        client = await stack.enter_async_context(
            http.AsyncClient(
                auth=auth, base_url=target.url, timeout=TIMEOUT, **target.transport(http)
            )
        )

        async def send(path: str) -> int:
            return int((await client.get(path)).status_code)

        yield send


@contextlib.asynccontextmanager
async def static_header_httpx2(target: Target) -> AsyncIterator[Send]:
    """The static header on httpx2: Authlib's baseline."""
    async with static_header(target, httpx2) as send:
        yield send


@contextlib.asynccontextmanager
async def mosaic_auth_httpx2(target: Target) -> AsyncIterator[Send]:
    """`mosaic_httpx_auth.httpx2.MosaicAuth` on an `httpx2.AsyncClient`."""
    async with mosaic_auth(target, MosaicAuthHttpx2) as send:
        yield send


def _httpx_auths(target: Target) -> dict[str | None, httpx_auth.OAuth2ClientCredentials]:
    # Its token cache is one per process, keyed by the credentials and parameters.
    httpx_auth.OAuth2.token_cache.clear()
    token_client = None if target.base_url else httpx.Client(**target.transport())
    return {
        resource: httpx_auth.OAuth2ClientCredentials(
            target.token_url,
            target.credentials.client_id,
            target.credentials.client_secret,
            early_expiry=target.renew_margin,
            client=token_client,
            **({} if resource is None else {"resource": resource}),
        )
        for resource in target.routes.values()
    }


@contextlib.asynccontextmanager
async def httpx_auth_credentials(target: Target) -> AsyncIterator[Send]:
    """A client sending each request with the `OAuth2ClientCredentials` of its resource."""
    auths = _httpx_auths(target)
    async with httpx.AsyncClient(
        base_url=target.url, timeout=TIMEOUT, **target.transport()
    ) as client:

        async def send(path: str) -> int:
            response = await client.get(path, auth=auths[resource_of(path)])
            return response.status_code

        yield send


def _authlib_options(target: Target) -> dict[str, Any]:
    return {
        "client_id": target.credentials.client_id,
        "client_secret": target.credentials.client_secret,
        "token_endpoint": target.token_url,
        "grant_type": "client_credentials",
        "leeway": int(target.renew_margin),
        "base_url": target.url,
        "timeout": TIMEOUT,
        **target.transport(httpx2),
    }


def _authlib_fetch_options(resource: str | None) -> dict[str, str]:
    return {} if resource is None else {"resource": resource}


@contextlib.asynccontextmanager
async def authlib_client(target: Target) -> AsyncIterator[Send]:
    """An `AsyncOAuth2Client` per resource, each with its token fetched before the first request."""
    async with contextlib.AsyncExitStack() as stack:
        clients = {
            resource: await stack.enter_async_context(AsyncOAuth2Client(**_authlib_options(target)))
            for resource in target.routes.values()
        }
        async with anyio.create_task_group() as tasks:
            for resource, client in clients.items():
                tasks.start_soon(
                    functools.partial(client.fetch_token, **_authlib_fetch_options(resource))
                )

        async def send(path: str) -> int:
            response = await clients[resource_of(path)].get(path)
            return int(response.status_code)

        yield send


AsyncOpener: TypeAlias = "Callable[[Target], contextlib.AbstractAsyncContextManager[Send]]"
ASYNC_CONTENDERS: dict[str, AsyncOpener] = {
    STATIC: static_header,
    OURS: mosaic_auth,
    HTTPX_AUTH: httpx_auth_credentials,
    AUTHLIB: authlib_client,
}
# Authlib's HTTP library, with the baseline and the MosaicAuth that compare with it.
HTTPX2_CONTENDERS: dict[str, AsyncOpener] = {
    STATIC_HTTPX2: static_header_httpx2,
    OURS_HTTPX2: mosaic_auth_httpx2,
    AUTHLIB: authlib_client,
}


# Sync contenders: the same setups on `httpx.Client` (Authlib's `OAuth2Client`).


@contextlib.contextmanager
def sync_static_header(target: Target) -> Iterator[SyncSend]:
    """As `static_header`, on `httpx.Client`."""
    with httpx.Client(auth=_static_bearer(target), base_url=target.url, timeout=TIMEOUT) as client:
        yield lambda path: client.get(path).status_code


@contextlib.contextmanager
def sync_mosaic_auth(target: Target) -> Iterator[SyncSend]:
    """As `mosaic_auth`, on `httpx.Client`."""
    with (
        MosaicAuth(**_mosaic_options(target)) as auth,
        httpx.Client(auth=auth, base_url=target.url, timeout=TIMEOUT) as client,
    ):
        yield lambda path: client.get(path).status_code


@contextlib.contextmanager
def sync_httpx_auth(target: Target) -> Iterator[SyncSend]:
    """As `httpx_auth_credentials`, on `httpx.Client`."""
    auths = _httpx_auths(target)
    with httpx.Client(base_url=target.url, timeout=TIMEOUT) as client:
        yield lambda path: client.get(path, auth=auths[resource_of(path)]).status_code


@contextlib.contextmanager
def sync_authlib(target: Target) -> Iterator[SyncSend]:
    """As `authlib_client`, with Authlib's sync `OAuth2Client`."""
    with contextlib.ExitStack() as stack:
        clients = {
            resource: stack.enter_context(OAuth2Client(**_authlib_options(target)))
            for resource in target.routes.values()
        }
        for resource, client in clients.items():
            client.fetch_token(**_authlib_fetch_options(resource))
        yield lambda path: int(clients[resource_of(path)].get(path).status_code)


SyncOpener: TypeAlias = "Callable[[Target], contextlib.AbstractContextManager[SyncSend]]"
SYNC_CONTENDERS: dict[str, SyncOpener] = {
    STATIC: sync_static_header,
    OURS: sync_mosaic_auth,
    HTTPX_AUTH: sync_httpx_auth,
    AUTHLIB: sync_authlib,
}
