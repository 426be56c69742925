"""`MosaicAuth`'s settings: each argument checked in one place, and the parts of a
`MosaicAuth` that take more than one argument to build."""

from __future__ import annotations

import inspect
import random
import ssl
import time
from typing import TYPE_CHECKING

from ._checks import seconds
from ._client_auth import client_authentication
from ._endpoint import TokenEndpoint
from ._exceptions import ConfigurationError
from ._fork import on_fork_in_child
from ._loops.tasks import loop_alive
from ._retry import Retry
from ._security import refuse_proxy_in_clear
from ._token_states import TokenStates
from ._urls import mosaic_urls
from .cache import TokenCache

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import ModuleType

    import httpx

    from ._client_auth import ClientAuthentication, ClientAuthMethod, PrivateKey


# Where in the refresh window an instance refreshes: a module attribute, so that a test can
# make the moment exact.
_spread = random.random


def check_arguments(
    http: ModuleType,
    client_id: object,
    retry: object,
    http_client: object,
    ssl_context: object,
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
    if ssl_context is not None and not isinstance(ssl_context, ssl.SSLContext):
        raise ConfigurationError("ssl_context must be an ssl.SSLContext", setting="ssl_context")
    if ssl_context is not None and http_client is not None:
        raise ConfigurationError(
            "give ssl_context or http_client, not both: an http_client makes the token "
            "requests with TLS settings of its own (give it verify=ssl_context)",
            setting="ssl_context",
        )
    if cache is not None:
        _check_cache(cache)


def _check_cache(cache: object) -> None:
    """Refuse a cache that does not follow `TokenCache`: a mistake here would otherwise
    show up as one shared cache outage after another."""
    if not isinstance(cache, TokenCache):
        raise ConfigurationError(
            "cache must be a mosaic_httpx_auth.cache.TokenCache (claim, renew, store, release, "
            "discard and lease_seconds), such as "
            "MemoryTokenCache or mosaic_httpx_auth.redis.RedisTokenCache",
            setting="cache",
        )
    for method in ("claim", "renew", "store", "release", "discard"):
        if not inspect.iscoroutinefunction(getattr(cache, method)):
            raise ConfigurationError(
                f"cache.{method} must be a coroutine function (async def)", setting="cache"
            )
    seconds("cache.lease_seconds", cache.lease_seconds, positive=True)


def endpoints(
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


def token_endpoint(
    http: ModuleType,
    token_url: str,
    client_id: str,
    *,
    client_secret: str | None,
    client_auth: ClientAuthMethod | None,
    private_key: PrivateKey | None,
    key_id: str | None,
    signing_algorithm: str | None,
    http_client: httpx.AsyncClient | None,
    ssl_context: ssl.SSLContext | None,
    transport: httpx.AsyncBaseTransport | None,
    retry: Retry,
    clock: Callable[[], float],
) -> TokenEndpoint:
    """The client of the token endpoint, authenticating as the arguments say."""
    authentication = client_authentication(
        client_id,
        method=client_auth,
        client_secret=client_secret,
        private_key=private_key,
        key_id=key_id,
        signing_algorithm=signing_algorithm,
        has_http_client=http_client is not None,
        clock=clock,
        ssl_context=ssl_context,
    )
    return TokenEndpoint(
        token_url=token_url,
        client_auth=authentication,
        http_client=http_client,
        clock=clock,
        retry=retry,
        http=http,
        ssl_context=ssl_context,
        transport=transport,
    )


def usable_cache(
    cache: TokenCache | None, authentication: ClientAuthentication
) -> TokenCache | None:
    """`cache`, unless it seals tokens with a key derived from the client's credential and
    that credential is not in this process: then a `ConfigurationError`."""
    if getattr(cache, "needs_cache_secret", False) and not authentication.credential_in_process:
        raise ConfigurationError(
            f"{type(cache).__name__} needs encryption_key= with {authentication.method}: "
            "the client certificate's key is not in this process to derive one from "
            "(it is when from_env reads it from MOSAIC_CLIENT_KEY_FILE)",
            setting="cache",
        )
    return cache


def token_states(
    leeway: float, refresh_window: float, retry: Retry, clock: Callable[[], float]
) -> TokenStates:
    """The rules each resource's token lives by, on `clock` and, for holds, pauses and
    deadlines, on a monotonic clock that a wall clock set back or forward cannot stretch (a
    test's clock may offer one of its own); reset in a forked child."""
    states = TokenStates(
        leeway=seconds("leeway", leeway),
        refresh_window=seconds("refresh_window", refresh_window),
        retry=retry,
        clock=clock,
        monotonic=getattr(clock, "monotonic", time.monotonic),
        owner_alive=loop_alive,
        # Somewhere in the window's first third, drawn once per instance (and forked child).
        refresh_spread=lambda: _spread() / 3,
    )
    # The parent's flights stayed behind with its event loops and threads.
    on_fork_in_child(states.after_fork)
    return states
