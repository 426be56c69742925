"""`MosaicAuth`: the `httpx.Auth` that puts a Mosaic client access token on every request."""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

from ._checks import seconds
from ._environment import EnvironmentSettings
from ._exceptions import ConfigurationError
from ._fetcher import TokenFetcher
from ._flow import RequestFlow
from ._retry import Retry
from ._routing import ResourceRouter, checked_resource
from ._settings import check_arguments, endpoints, token_endpoint, token_states, usable_cache
from ._sync_bridge import SyncBridge
from ._telemetry import Telemetry
from ._token_states import Refusal

if TYPE_CHECKING:
    import ssl
    from collections.abc import Callable, Mapping
    from types import TracebackType

    import httpx
    from typing_extensions import Self

    from ._client_auth import ClientAuthMethod, PrivateKey
    from ._telemetry import AuthEvent, AuthStats
    from ._token import AccessToken
    from .cache import TokenCache

_DEFAULT_RETRY = Retry()


class MosaicAuth(RequestFlow):
    """Authorizes `httpx.AsyncClient` and `httpx.Client` requests to Mosaic APIs with client
    access tokens.

    Tokens are fetched with the client credentials grant, one per resource (audience), cached
    until `leeway` seconds before they expire, refreshed ahead of that, and fetched once
    however many requests need one at the same time. A request answered 401 is retried once
    with a new token. Tokens and the secret travel over HTTPS only (plain HTTP to loopback
    hosts excepted).

    Fetches and refreshes run in tasks of the event loop's own: a request that gives up does
    not abandon the fetch it started, and no request waits for a refresh. A request waits for
    its token as long as its pool timeout allows, while the fetch tries again what waiting may
    heal; `get_token` and `get_token_sync` take a `timeout` of their own. ``async with auth:``
    (or `aclose()`) closes the token client at the end; one `MosaicAuth` may serve one event
    loop after another. Sync requests (`httpx.Client`, `get_token_sync`) share the same
    tokens and rules: their fetches run on an event loop thread of the auth's own, which
    ``with auth:`` (or `close()`) stops. One `MosaicAuth` may serve threads and event loops
    at once, and a process forked after it was used.

    Args:
        client_id: The application's client ID.
        client_secret: The application's client secret, for the secret methods.
        client_auth: How token requests authenticate: ``"client_secret_post"`` (the secret in
            the form), ``"client_secret_basic"`` (HTTP Basic), ``"private_key_jwt"`` (a JWT
            signed with `private_key`) or ``"tls_client_auth"`` (the client certificate that
            `ssl_context`, or `http_client`, presents). By default ``private_key_jwt`` when a
            `private_key` is given, else ``client_secret_post``.
        private_key: For ``private_key_jwt``: a joserfc RSA or EC key, a JWK dict, or PEM.
        key_id: The ``kid`` of the assertions; by default the key's own, else its thumbprint.
        signing_algorithm: RS256 (default) or PS256 for RSA keys; ES256 for EC keys.
        region: ``"us"``, ``"eu"``, ``"ca"``, ``"au"`` or ``"sandbox"``; unset, `token_url`'s or us.
        base_url: The API host, instead of a `region`'s (with one, it must be that host).
        token_url: The token endpoint; ``{base_url}/oidc/token`` by default (with a `region`,
            on its host).
        resource: The resource every request's token is for, unless `resources` says
            otherwise; None requests tokens without a resource (Identity Management APIs).
        resources: Maps API URL prefixes, or paths under `base_url` (``"/risk"``), to the
            resource their requests need; the longest matching prefix wins.
        leeway: Seconds before its expiry at which a token counts as expired (at most half
            its lifetime); 0 uses a token up to its last second.
        refresh_window: Seconds before that at which a token is refreshed while still in use
            (at most half its remaining lifetime); 0 refreshes only expired tokens.
        retry: How a token fetch tries again, and how long each attempt may take: a
            `Retry` (by default 3 attempts, 0.5 s backoff, 10 s each).
        http_client: The client for token requests. Its owner closes it; without one,
            `MosaicAuth` opens its own and closes it in `aclose()`. It belongs to an event
            loop: a `MosaicAuth` given one serves `httpx.AsyncClient` only.
        ssl_context: The TLS settings of the token clients `MosaicAuth` opens, for
            `httpx.AsyncClient` and `httpx.Client` alike: whom they trust, and, after
            ``ssl_context.load_cert_chain(cert_file, key_file)``, the client certificate
            they present (``tls_client_auth``). Not with `http_client`, which has its own.
        cache: A `TokenCache` to share tokens with other `MosaicAuth` instances.
        on_event: Called with an `AuthEvent` for each token fetch, failed attempt, refresh,
            failed refresh and 401 retry: a place to feed metrics or traces.
        clock: Returns the current time in seconds since the epoch; for tests. Pauses and
            deadlines are measured on `time.monotonic`, or on the clock's own ``monotonic()``
            if it has one, so that a test can move both.
    """

    # The request flow, which httpx calls, is `RequestFlow`'s (`_flow.py`); what follows is
    # what an application calls. The constructor checks each argument (`_settings.py`) and
    # builds the parts the flow reads.

    # The transport of the token clients the auth opens itself; None: httpx's, over sockets.
    # Only the emulator's auth (`testing`) sets one: its in-process transport, which every
    # event loop and thread may share. Not an argument: a real transport's connections belong
    # to one event loop.
    _token_transport: httpx.AsyncBaseTransport | None = None

    def __init__(
        self,
        client_id: str,
        client_secret: str | None = None,
        *,
        client_auth: ClientAuthMethod | None = None,
        private_key: PrivateKey | None = None,
        key_id: str | None = None,
        signing_algorithm: str | None = None,
        region: str | None = None,
        base_url: str | None = None,
        token_url: str | None = None,
        resource: str | None = None,
        resources: Mapping[str, str | None] | None = None,
        leeway: float = 60.0,
        refresh_window: float = 300.0,
        retry: Retry = _DEFAULT_RETRY,
        http_client: httpx.AsyncClient | None = None,
        ssl_context: ssl.SSLContext | None = None,
        cache: TokenCache | None = None,
        on_event: Callable[[AuthEvent], object] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        check_arguments(self._http, client_id, retry, http_client, ssl_context, cache)
        self.base_url, token_url = endpoints(self._http, region, base_url, token_url, http_client)
        self._router = ResourceRouter(resource, resources, base_url=self.base_url, http=self._http)
        self._telemetry = Telemetry(on_event)
        self._endpoint = token_endpoint(
            self._http,
            token_url,
            client_id,
            client_secret=client_secret,
            client_auth=client_auth,
            private_key=private_key,
            key_id=key_id,
            signing_algorithm=signing_algorithm,
            http_client=http_client,
            ssl_context=ssl_context,
            transport=self._token_transport,
            retry=retry,
            clock=clock,
        )
        self._states = token_states(leeway, refresh_window, retry, clock)
        self._fetcher = TokenFetcher(
            self._endpoint,
            self._states,
            telemetry=self._telemetry,
            cache=usable_cache(cache, self._endpoint.client_auth),
        )
        self._sync = SyncBridge(self._states, self._fetcher, own_token_client=http_client is None)

    @classmethod
    def from_env(cls, **overrides: Any) -> Self:
        """A `MosaicAuth` configured from environment variables; `overrides` take precedence.

        Reads ``MOSAIC_CLIENT_ID`` (required), ``MOSAIC_CLIENT_SECRET``,
        ``MOSAIC_PRIVATE_KEY`` (PEM or JWK JSON) or ``MOSAIC_PRIVATE_KEY_FILE``,
        ``MOSAIC_KEY_ID``, ``MOSAIC_SIGNING_ALGORITHM``, ``MOSAIC_CLIENT_AUTH``,
        ``MOSAIC_REGION``, ``MOSAIC_BASE_URL``,
        ``MOSAIC_TOKEN_URL`` and ``MOSAIC_RESOURCE``. ``MOSAIC_CLIENT_CERTIFICATE_FILE`` and
        ``MOSAIC_CLIENT_KEY_FILE`` (PEM) make the `ssl_context`, which trusts what httpx
        trusts (``SSL_CERT_FILE``, else certifi's bundle) and presents that certificate; with
        no secret or private key, the method is then ``tls_client_auth``. A missing or
        contradictory setting raises a `ConfigurationError` naming the variable, never its value.
        """
        settings = EnvironmentSettings(os.environ, overrides, http=cls._http)
        try:
            return cls(**settings.arguments)
        except ConfigurationError as error:
            raise settings.explain(error) from error

    @property
    def token_url(self) -> str:
        """The token endpoint's URL."""
        return self._endpoint.token_url

    def __repr__(self) -> str:
        endpoint = getattr(self, "_endpoint", None)
        if endpoint is None:  # refused while being built: an error's frames still show it
            return "MosaicAuth(<not configured>)"
        return (
            f"MosaicAuth(client_id={endpoint.client_id!r}, token_url={endpoint.token_url!r}, "
            f"client_auth={endpoint.client_auth.method!r}, resource={self._router.default!r})"
        )

    def resource_for(self, url: httpx.URL | str) -> str | None:
        """The resource whose token a request to `url` carries."""
        return self._router.resource_for(self._http.URL(url))

    def stats(self) -> AuthStats:
        """Counters of token requests, errors, 401 retries, cache hits and refreshes."""
        return self._telemetry.stats()

    async def get_token(
        self, resource: str | None = None, *, timeout: float | None = None
    ) -> AccessToken:
        """A usable token for `resource` (None: the default resource), fetched if need be.

        Waits at most `timeout` seconds while the token endpoint fails in ways that waiting
        may heal; without one, for at most `retry.max_attempts` attempts of one fetch.
        """
        resource = (
            self._router.default if resource is None else checked_resource(resource, "resource")
        )
        return await self._token_for_request(resource, None, self._deadline_after(timeout))

    def get_token_sync(
        self, resource: str | None = None, *, timeout: float | None = None
    ) -> AccessToken:
        """`get_token` for sync code: blocks this thread until a token is there, or at most
        `timeout` seconds."""
        resource = (
            self._router.default if resource is None else checked_resource(resource, "resource")
        )
        return self._sync.token(
            self._token_for_request, resource, None, self._deadline_after(timeout)
        )

    def _resource(self, resource: str | None) -> str | None:
        """The resource `get_token` is asked for: None is the default resource."""
        return self._router.default if resource is None else checked_resource(resource, "resource")

    def _deadline_after(self, timeout: float | None) -> float | None:
        """The deadline `timeout` seconds from now, for `get_token` and `get_token_sync`."""
        if timeout is None:
            return None
        return self._states.monotonic() + seconds("timeout", timeout)

    async def invalidate(self, token: AccessToken) -> bool:
        """Tell the auth that `token` was refused outside httpx: it is dropped, here and in
        the shared cache, unless a newer token already replaced it, and the next request for
        its resource gets a new one. Whether it was dropped: not if a newer token already
        replaced it, nor if it was the token fetched for an invalidation less than a minute
        ago (whatever refuses every token costs a token request a minute, as with 401s)."""
        outcome = self._states.invalidate(token)
        if outcome is not Refusal.KEPT:
            await self._fetcher.discard_shared(token.resource, token)
        return outcome is Refusal.DROPPED

    def invalidate_sync(self, token: AccessToken) -> bool:
        """`invalidate` for sync code. Without a shared cache it is all in memory, from any
        thread; with one, the discard there runs on the auth's own event loop thread."""
        if self._fetcher.shares_tokens:
            self._sync.refuse_event_loop_thread()
        outcome = self._states.invalidate(token)
        if outcome is not Refusal.KEPT and self._fetcher.shares_tokens:
            self._sync.run(self._fetcher.discard_shared, token.resource, token)
        return outcome is Refusal.DROPPED

    async def aclose(self) -> None:
        """Stop this event loop's token fetches and close the HTTP client used for them,
        unless the caller owns it."""
        await self._fetcher.aclose()

    def close(self) -> None:
        """For sync code: stop the auth's own event loop thread, its fetches and its token
        client, if sync requests started them. A later sync request starts them again."""
        self._sync.close()

    def __enter__(self) -> Self:
        """Nothing to start; the block calls `close()` on exit."""
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Stop the auth's own event loop thread, if sync requests started it."""
        self.close()

    async def __aenter__(self) -> Self:
        """Nothing to start: tokens are fetched and refreshed in tasks of the event loop's own.
        The block closes the token client on exit."""
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Close the token client, unless the caller owns it."""
        await self.aclose()
