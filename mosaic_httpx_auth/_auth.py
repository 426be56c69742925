"""`MosaicAuth`: the `httpx.Auth` that puts a Mosaic client access token on every request."""

from __future__ import annotations

import logging
import math
import os
import time
from typing import TYPE_CHECKING

import httpx

from ._endpoint import TokenEndpoint
from ._environment import settings_from_env
from ._exceptions import ConfigurationError, UnsupportedClientError
from ._routing import ResourceRouter
from ._services import DEFAULT_TOKEN_URL
from ._store import TokenStore

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, Callable, Generator, Mapping
    from types import TracebackType
    from typing import Any

    from ._cache import TokenCache
    from ._token import AccessToken

logger = logging.getLogger("mosaic_httpx_auth")


class MosaicAuth(httpx.Auth):
    """Authorizes `httpx.AsyncClient` requests to Mosaic APIs with client access tokens.

    Tokens are fetched with the client credentials grant, one per resource (audience), cached
    until `leeway` seconds before they expire, and fetched once however many requests need one
    at the same time. A request answered 401 is retried once with a new token.

    Args:
        client_id: The application's client ID.
        client_secret: The application's client secret.
        token_url: The token endpoint; Mosaic's US host by default.
        resource: The resource every request's token is for, unless `resources` says
            otherwise; None requests tokens without a resource (Identity Management APIs).
        resources: Maps API URL prefixes to the resource their requests need; the longest
            matching prefix wins.
        leeway: Seconds before its expiry at which a token counts as expired (at most half
            its lifetime); 0 uses a token up to its last second.
        http_client: The client for token requests. Its owner closes it; without one,
            `MosaicAuth` opens its own and closes it in `aclose()`.
        cache: A `TokenCache` to share tokens with other `MosaicAuth` instances.
        clock: Returns the current time in seconds since the epoch; for tests.
    """

    requires_request_body = False
    requires_response_body = False

    def __init__(
        self,
        client_id: str,
        client_secret: str,
        *,
        token_url: str = DEFAULT_TOKEN_URL,
        resource: str | None = None,
        resources: Mapping[str, str | None] | None = None,
        leeway: float = 60.0,
        http_client: httpx.AsyncClient | None = None,
        cache: TokenCache | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not isinstance(client_id, str) or not client_id:
            raise ConfigurationError("client_id must be a non-empty string")
        if not isinstance(client_secret, str) or not client_secret:
            raise ConfigurationError("client_secret must be a non-empty string")
        if isinstance(leeway, bool) or not isinstance(leeway, (int, float)):
            raise ConfigurationError(f"leeway must be a number of seconds, not {leeway!r}")
        if not math.isfinite(leeway) or leeway < 0:
            raise ConfigurationError(f"leeway must be zero or more seconds, not {leeway!r}")
        if http_client is not None and not isinstance(http_client, httpx.AsyncClient):
            raise ConfigurationError("http_client must be an httpx.AsyncClient")
        _check_token_url(token_url)
        self._router = ResourceRouter(resource, resources)
        self._store = TokenStore(
            TokenEndpoint(
                token_url=token_url,
                client_id=client_id,
                client_secret=client_secret,
                http_client=http_client,
                clock=clock,
            ),
            leeway=float(leeway),
            clock=clock,
            cache=cache,
        )

    @classmethod
    def from_env(cls, **overrides: Any) -> MosaicAuth:
        """A `MosaicAuth` configured from environment variables; `overrides` take precedence.

        Reads ``MOSAIC_CLIENT_ID`` and ``MOSAIC_CLIENT_SECRET`` (required), ``MOSAIC_TOKEN_URL``
        and ``MOSAIC_RESOURCE``. Raises `ConfigurationError` naming a missing variable.
        """
        return cls(**settings_from_env(os.environ, overrides))

    def __repr__(self) -> str:
        endpoint = self._store.endpoint
        return (
            f"MosaicAuth(client_id={endpoint.client_id!r}, token_url={endpoint.token_url!r}, "
            f"resource={self._router.default!r})"
        )

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        """Set the bearer token, send, and on a 401 retry once with a new token."""
        resource = self._router.resource_for(request.url)
        store = self._store
        token = store.cached(resource) or await store.get(resource)
        request.headers["Authorization"] = token.authorization
        # Asked before sending: a transport may read a streamed body into memory as it sends it.
        replayable = _is_replayable(request)
        response = yield request

        if response.status_code != 401 or not replayable:
            return
        # The token may have been revoked: drop it unless a newer one already replaced it.
        await store.invalidate(resource, token)
        token = await store.get(resource)
        request.headers["Authorization"] = token.authorization
        logger.info(
            "retrying %s %s once with a new token for resource %r after HTTP 401",
            request.method,
            request.url.copy_with(query=None),
            resource,
        )
        yield request

    def sync_auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        """Refuse: token fetches are async, so `MosaicAuth` needs an `httpx.AsyncClient`."""
        raise UnsupportedClientError(
            "MosaicAuth works with httpx.AsyncClient only; it was used with httpx.Client"
        )

    def resource_for(self, url: httpx.URL | str) -> str | None:
        """The resource whose token a request to `url` carries."""
        return self._router.resource_for(httpx.URL(url))

    async def get_token(self, resource: str | None = None) -> AccessToken:
        """A usable token for `resource` (None: the default resource), fetched if need be."""
        return await self._store.get(self._router.default if resource is None else resource)

    async def aclose(self) -> None:
        """Close the HTTP client used for token requests, unless the caller owns it."""
        await self._store.endpoint.aclose()

    async def __aenter__(self) -> MosaicAuth:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()


def _check_token_url(token_url: str) -> None:
    try:
        url = httpx.URL(token_url)
    except (httpx.InvalidURL, TypeError) as exc:
        raise ConfigurationError(f"token_url {token_url!r} is not a URL") from exc
    if url.scheme not in ("http", "https") or not url.host:
        raise ConfigurationError(f"token_url {token_url!r} is not an absolute http(s) URL")


def _is_replayable(request: httpx.Request) -> bool:
    """Whether the body can be sent again: a streamed body is consumed by the first send."""
    try:
        request.content  # noqa: B018 - raises for a body that was streamed, not read
    except httpx.RequestNotRead:
        return False
    return True
