"""`MosaicAuth`'s settings: its arguments, each checked in one place, and the parts built
from them.

`ConfiguredAuth` takes the arguments (or, in `from_env`, the environment's) and builds what
the request flow uses, and answers what reading them answers: the token URL, the resource for
a URL, the counters, a repr. `MosaicAuth` adds the flow, `get_token` and closing.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

import httpx

from ._checks import seconds
from ._client_auth import client_authentication
from ._endpoint import TokenEndpoint
from ._environment import EnvironmentSettings
from ._exceptions import ConfigurationError
from ._fetcher import TokenFetcher
from ._fork import on_fork_in_child
from ._loops.tasks import loop_alive
from ._retry import Retry
from ._routing import ResourceRouter
from ._security import refuse_proxy_in_clear
from ._sync_bridge import SyncBridge
from ._telemetry import Telemetry
from ._token_states import TokenStates
from ._urls import mosaic_urls
from .cache import TokenCache

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from types import ModuleType

    from typing_extensions import Self

    from ._client_auth import ClientAuthMethod, PrivateKey
    from ._telemetry import AuthEvent, AuthStats

_DEFAULT_RETRY = Retry()


class ConfiguredAuth:
    """What a `MosaicAuth` is made of, built from its arguments once each is checked (see
    `MosaicAuth` for them), and what reading them answers: the base of `MosaicAuth`, which
    adds the request flow."""

    # The HTTP library: its clients make the token requests, and its requests are the ones the
    # flow sees. `mosaic_httpx_auth.httpx2.MosaicAuth` puts httpx2 here.
    _http: ModuleType = httpx

    base_url: str
    _router: ResourceRouter  # which resource a request's token is for
    _telemetry: Telemetry
    _endpoint: TokenEndpoint  # the token requests
    _states: TokenStates  # each resource's token, and the rules it lives by
    _fetcher: TokenFetcher  # drives the states on the caller's event loop
    _sync: SyncBridge  # how sync callers reach the fetcher
    # Holds, pauses and deadlines are measured on a monotonic clock, which a wall clock set
    # back or forward cannot stretch; a test's clock may offer one of its own.
    _monotonic: Callable[[], float]

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
        cache: TokenCache | None = None,
        on_event: Callable[[AuthEvent], object] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        _check_types(self._http, client_id, retry, http_client, cache)
        self.base_url, token_url = _endpoints(self._http, region, base_url, token_url, http_client)
        # Tokens go to the Mosaic hosts configured, and nowhere else a shared client calls.
        self._router = ResourceRouter(resource, resources, base_url=self.base_url, http=self._http)
        self._telemetry = Telemetry(on_event)
        self._endpoint = TokenEndpoint(
            token_url=token_url,
            client_auth=client_authentication(
                client_id,
                method=client_auth,
                client_secret=client_secret,
                private_key=private_key,
                key_id=key_id,
                signing_algorithm=signing_algorithm,
                has_http_client=http_client is not None,
                clock=clock,
            ),
            http_client=http_client,
            clock=clock,
            retry=retry,
            http=self._http,
        )
        self._keep_tokens(leeway, refresh_window, retry, cache, clock, http_client)

    def _keep_tokens(
        self,
        leeway: float,
        refresh_window: float,
        retry: Retry,
        cache: TokenCache | None,
        clock: Callable[[], float],
        http_client: httpx.AsyncClient | None,
    ) -> None:
        """Build the token states, the fetcher that drives them, and the sync bridge."""
        authentication = self._endpoint.client_auth
        if getattr(cache, "needs_credential", False) and not authentication.credential_in_process:
            raise ConfigurationError(
                f"{type(cache).__name__} needs encryption_key= with {authentication.method}: "
                "the client certificate's key is not in this process to derive one from",
                setting="cache",
            )
        self._monotonic = getattr(clock, "monotonic", time.monotonic)
        self._states = TokenStates(
            leeway=seconds("leeway", leeway),
            refresh_window=seconds("refresh_window", refresh_window),
            retry=retry,
            clock=clock,
            monotonic=self._monotonic,
            owner_alive=loop_alive,
        )
        # The parent's flights stayed behind with its event loops and threads.
        on_fork_in_child(self._states.after_fork)
        self._fetcher = TokenFetcher(
            self._endpoint,
            self._states,
            telemetry=self._telemetry,
            clock=clock,
            monotonic=self._monotonic,
            cache=cache,
        )
        self._sync = SyncBridge(self._states, self._fetcher, own_token_client=http_client is None)

    @classmethod
    def from_env(cls, **overrides: Any) -> Self:
        """A `MosaicAuth` configured from environment variables; `overrides` take precedence.

        Reads ``MOSAIC_CLIENT_ID`` (required), ``MOSAIC_CLIENT_SECRET``,
        ``MOSAIC_PRIVATE_KEY`` (PEM or JWK JSON) or ``MOSAIC_PRIVATE_KEY_FILE``,
        ``MOSAIC_KEY_ID``, ``MOSAIC_SIGNING_ALGORITHM``, ``MOSAIC_CLIENT_AUTH``,
        ``MOSAIC_REGION``, ``MOSAIC_BASE_URL``,
        ``MOSAIC_TOKEN_URL`` and ``MOSAIC_RESOURCE``. A missing or contradictory setting raises
        a `ConfigurationError` naming the variable, never its value.
        """
        settings = EnvironmentSettings(os.environ, overrides)
        try:
            return cls(**settings.arguments)
        except ConfigurationError as error:
            raise settings.explain(error) from error

    @property
    def token_url(self) -> str:
        """The token endpoint's URL."""
        return self._endpoint.token_url

    def __repr__(self) -> str:
        endpoint = self._endpoint
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


def _check_types(
    http: ModuleType,
    client_id: object,
    retry: object,
    http_client: object,
    cache: object,
) -> None:
    """Refuse an argument of a type `MosaicAuth` cannot use, naming it."""
    if not isinstance(client_id, str) or not client_id:
        raise ConfigurationError("client_id must be a non-empty string", setting="client_id")
    if not isinstance(retry, Retry):
        raise ConfigurationError(
            "retry must be a mosaic_httpx_auth.Retry, such as Retry(max_attempts=5)",
            setting="retry",
        )
    if http_client is not None and not isinstance(http_client, http.AsyncClient):
        raise ConfigurationError(
            f"http_client must be an {http.__name__}.AsyncClient", setting="http_client"
        )
    if cache is not None and not isinstance(cache, TokenCache):
        raise ConfigurationError(
            "cache must be a mosaic_httpx_auth.cache.TokenCache (claim, renew, store, release, "
            "discard and lease_seconds), such as "
            "MemoryTokenCache or mosaic_httpx_auth.redis.RedisTokenCache",
            setting="cache",
        )


def _endpoints(
    http: ModuleType,
    region: str | None,
    base_url: str | None,
    token_url: str | None,
    http_client: httpx.AsyncClient | None,
) -> tuple[str, str]:
    """The API host and the token endpoint the arguments name."""
    base_url, token_url = mosaic_urls(region, base_url, token_url)
    if http_client is not None and http_client.trust_env:
        # The library's own token clients reach this machine directly; the application's
        # obeys the environment's proxies, unless told not to.
        refuse_proxy_in_clear(http.URL(token_url), "client credentials", setting="token_url")
    return base_url, token_url
