"""`MosaicAuth`: the `httpx.Auth` that puts a Mosaic client access token on every request."""

from __future__ import annotations

import concurrent.futures
import contextlib
import math
import os
import sys
import threading
import time
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import httpx

from ._cache import TokenCache
from ._client_auth import client_authentication
from ._endpoint import TokenEndpoint
from ._environment import EnvironmentSettings
from ._exceptions import ConfigurationError, TokenRequestError, UnsupportedClientError
from ._loops.tasks import loop_alive
from ._messages import for_resource
from ._retry import RetryPolicy
from ._routing import ResourceRouter
from ._security import refuse_proxy_in_clear
from ._store import TokenStore
from ._telemetry import AuthEvent, Telemetry
from ._token_states import TokenStates
from ._urls import mosaic_urls

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, Awaitable, Callable, Generator, Mapping
    from types import ModuleType, TracebackType

    from typing_extensions import Self

    from ._client_auth import ClientAuthMethod, PrivateKey
    from ._loops.thread import LoopThread
    from ._telemetry import AuthStats
    from ._token import AccessToken


_T = TypeVar("_T")


class MosaicAuth(httpx.Auth):
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
            signed with `private_key`) or ``"tls_client_auth"`` (the client certificate of
            `http_client`). By default ``private_key_jwt`` when a `private_key` is given,
            else ``client_secret_post``.
        private_key: For ``private_key_jwt``: a joserfc RSA or EC key, a JWK dict, or PEM.
        key_id: The ``kid`` of the assertions; by default the key's own, else its thumbprint.
        signing_algorithm: RS256 (default) or PS256 for RSA keys; ES256 for EC keys.
        region: ``"us"``, ``"eu"``, ``"ca"``, ``"au"`` or ``"sandbox"``; unset, `token_url`'s or us.
        base_url: The API host, overriding `region`.
        token_url: The token endpoint, overriding both; ``{base_url}/oidc/token`` by default.
        resource: The resource every request's token is for, unless `resources` says
            otherwise; None requests tokens without a resource (Identity Management APIs).
        resources: Maps API URL prefixes, or paths under `base_url` (``"/risk"``), to the
            resource their requests need; the longest matching prefix wins.
        leeway: Seconds before its expiry at which a token counts as expired (at most half
            its lifetime); 0 uses a token up to its last second.
        refresh_window: Seconds before that at which a token is refreshed while still in use
            (at most half its remaining lifetime); 0 refreshes only expired tokens.
        max_attempts: Attempts of a token fetch that a caller without a timeout waits for,
            the first included (1: no retries). A request waits for its token as long as its
            own pool timeout allows, and the fetch keeps trying connection errors, timeouts,
            5xx and 429 while a request waits for it.
        backoff: Seconds the first retry waits at most; each next one doubles it (up to
            8 s), with full jitter. A ``Retry-After`` header takes precedence.
        max_retry_after: The longest ``Retry-After`` to honour; a longer one fails the fetch
            at once.
        timeout: Seconds each token request may take.
        http_client: The client for token requests. Its owner closes it; without one,
            `MosaicAuth` opens its own and closes it in `aclose()`. It belongs to an event
            loop: a `MosaicAuth` given one serves `httpx.AsyncClient` only.
        cache: A `TokenCache` to share tokens with other `MosaicAuth` instances.
        on_event: Called with an `AuthEvent` for each token fetch, failed attempt, refresh,
            failed refresh and 401 retry: a place to feed metrics or traces.
        clock: Returns the current time in seconds since the epoch; for tests. Pauses and
            deadlines are measured on `time.monotonic`, or on the clock's own ``monotonic()``
            if it has one, so that a test can move both.
    """

    requires_request_body = False
    requires_response_body = False
    # The HTTP library: its clients make the token requests, and its requests are the ones the
    # flow sees. `mosaic_httpx_auth.httpx2.MosaicAuth` puts httpx2 here.
    _http: ModuleType = httpx

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
        max_attempts: int = 3,
        backoff: float = 0.5,
        max_retry_after: float = 30.0,
        timeout: float = 10.0,
        http_client: httpx.AsyncClient | None = None,
        cache: TokenCache | None = None,
        on_event: Callable[[AuthEvent], object] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not isinstance(client_id, str) or not client_id:
            raise ConfigurationError("client_id must be a non-empty string", setting="client_id")
        if isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or max_attempts < 1:
            raise ConfigurationError(
                f"max_attempts must be 1 or more, not {max_attempts!r}", setting="max_attempts"
            )
        if http_client is not None and not isinstance(http_client, self._http.AsyncClient):
            raise ConfigurationError(
                f"http_client must be an {self._http.__name__}.AsyncClient",
                setting="http_client",
            )
        if cache is not None and not isinstance(cache, TokenCache):
            raise ConfigurationError(
                "cache must be a TokenCache (with claim, store, release and discard), such as "
                "MemoryTokenCache or mosaic_httpx_auth.redis.RedisTokenCache",
                setting="cache",
            )
        self.base_url, token_url = mosaic_urls(region, base_url, token_url)
        if http_client is not None and http_client.trust_env:
            # The library's own token clients reach this machine directly; the application's
            # obeys the environment's proxies, unless told not to.
            refuse_proxy_in_clear(
                self._http.URL(token_url), "client credentials", setting="token_url"
            )
        # Tokens go to the Mosaic hosts configured, and nowhere else a shared client calls.
        self._router = ResourceRouter(resource, resources, base_url=self.base_url, http=self._http)
        self._telemetry = Telemetry(on_event)
        retry = RetryPolicy(
            max_attempts=max_attempts,
            backoff=_seconds("backoff", backoff),
            max_retry_after=_seconds("max_retry_after", max_retry_after),
            timeout=_seconds("timeout", timeout, positive=True),
        )
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
        authentication = self._endpoint.client_auth
        if getattr(cache, "needs_credential", False) and not authentication.credential_in_process:
            raise ConfigurationError(
                f"{type(cache).__name__} needs encryption_key= with {authentication.method}: "
                "the client certificate's key is not in this process to derive one from",
                setting="cache",
            )
        # Holds, pauses and deadlines are measured on a monotonic clock, which a wall clock
        # set back or forward cannot stretch; a test's clock may offer one of its own.
        self._monotonic: Callable[[], float] = getattr(clock, "monotonic", time.monotonic)
        self._states = TokenStates(
            leeway=_seconds("leeway", leeway),
            refresh_window=_seconds("refresh_window", refresh_window),
            retry=retry,
            clock=clock,
            monotonic=self._monotonic,
            owner_alive=loop_alive,
        )
        self._store = TokenStore(
            self._endpoint,
            self._states,
            telemetry=self._telemetry,
            clock=clock,
            monotonic=self._monotonic,
            cache=cache,
        )
        # Sync requests: the event loop thread their fetches run on, started at the first.
        self._own_http_client = http_client is None
        self._loop_thread: LoopThread | None = None
        self._loop_thread_lock = threading.Lock()
        _FORKABLE.add(self)

    @classmethod
    def from_env(cls, **overrides: Any) -> MosaicAuth:
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

    # The request flow, one set of rules for every client. The drivers, `async_auth_flow` and
    # `sync_auth_flow`, do the I/O: awaiting on the caller's event loop, or blocking the
    # caller's thread. A request with a token in hand, answered, takes plain calls only; a
    # 401, or a token on probation, is handed to `_answered`, which yields what it needs.

    def _cached_token(self, request: httpx.Request) -> tuple[str | None, AccessToken | None]:
        """The resource `request` needs a token for, and the fresh token in hand, if any."""
        resource = self._router.token_resource(request.url)
        token = self._states.fresh_token(resource)
        if token is not None:
            self._telemetry.cache_hits += 1
        return resource, token

    def _authorized(self, request: httpx.Request, token: AccessToken) -> bool:
        """Put `token` on `request`; whether its body can be sent again, should it need to be.
        Asked before sending: some transports read a streamed body into memory as they send
        it, and the answer must not depend on the transport."""
        request.headers["Authorization"] = token.authorization
        stream = request.stream
        return isinstance(stream, self._http.ByteStream) or _replayable_upload(stream)

    def _settled(self, response: httpx.Response) -> bool:
        """Whether `response` ends the flow with nothing more to do: the warm path."""
        return response.status_code != 401 and not self._states.on_probation

    def _answered(
        self,
        request: httpx.Request,
        resource: str | None,
        token: AccessToken,
        replayable: bool,
        response: httpx.Response,
    ) -> Generator[_Step, Any, None]:
        """What follows a `response` that is not `_settled`: it yields what it needs (a 401 to
        report, a token, a request to send again) and is sent the answer."""
        if response.status_code != 401:
            self._note_acceptance(response, resource, token)
            return
        if not _carried(response, token):
            return
        if not (yield _Refused(resource, token, _place(request))) or not replayable:
            return
        self._telemetry.report(
            AuthEvent("unauthorized_retry", resource, status_code=401),
            f"{request.method} {request.url.copy_with(query=None, username=None, password=None)}",
        )
        refused = token
        # Should no token come, the error names this request: not with a token on it.
        del request.headers["Authorization"]
        token = yield _TokenNeeded(resource, request, self._deadline(request), refused)
        self._authorized(request, token)
        response = yield request
        if response.status_code != 401:
            self._note_acceptance(response, resource, token)
        elif _carried(response, token):
            yield _Refused(resource, token, _place(request))  # told, not retried again

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        """Set the bearer token, send, and on a 401 to that token retry once with a new one."""
        resource, token = self._cached_token(request)
        if token is None:
            token = await self._usable_token(resource, request, self._deadline(request))
        replayable = self._authorized(request, token)
        response = yield request
        if self._settled(response):
            return
        flow = self._answered(request, resource, token, replayable, response)
        answer: Any = None
        while True:
            try:
                step = flow.send(answer)
            except StopIteration:
                return
            if isinstance(step, _TokenNeeded):
                answer = await self._usable_token(
                    step.resource, step.request, step.deadline, step.refused
                )
            elif isinstance(step, _Refused):
                answer = await self._store.refused(step.resource, step.token, step.place)
            else:
                answer = yield step

    def sync_auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        """As `async_auth_flow`, for `httpx.Client`: a thread that needs a token waits for
        the one fetch under way, which runs on the auth's own event loop thread."""
        self._require_own_token_client()
        resource, token = self._cached_token(request)
        if token is None:
            token = self._sync_token(resource, request, self._deadline(request))
        replayable = self._authorized(request, token)
        response = yield request
        if self._settled(response):
            return
        flow = self._answered(request, resource, token, replayable, response)
        answer: Any = None
        while True:
            try:
                step = flow.send(answer)
            except StopIteration:
                return
            if isinstance(step, _TokenNeeded):
                answer = self._sync_token(step.resource, step.request, step.deadline, step.refused)
            elif isinstance(step, _Refused):
                answer = self._blocking(self._store.refused, step.resource, step.token, step.place)
            else:
                answer = yield step

    def _deadline(self, request: httpx.Request) -> float | None:
        """Until when `request` may wait for a token (monotonic): its pool timeout, as a token
        is, like a connection from the pool, something it must have before it is sent."""
        timeout = request.extensions.get("timeout")
        seconds = timeout.get("pool") if isinstance(timeout, dict) else None
        return None if seconds is None else self._monotonic() + seconds

    def _deadline_after(self, timeout: float | None) -> float | None:
        """The deadline `timeout` seconds from now, for `get_token` and `get_token_sync`."""
        if timeout is None:
            return None
        return self._monotonic() + _seconds("timeout", timeout)

    async def _usable_token(
        self,
        resource: str | None,
        request: httpx.Request | None = None,
        deadline: float | None = None,
        refused: AccessToken | None = None,
    ) -> AccessToken:
        """The store's token for `resource`, by `deadline`, other than `refused`. Its failure
        names `request` as the one that needed it, as httpx's own errors do; without one, the
        token request, bodiless (its body holds the credentials)."""
        try:
            return await self._store.token(resource, deadline=deadline, refused=refused)
        except TokenRequestError as error:
            error.request = request or self._http.Request("POST", self._endpoint.token_url)
            raise

    def _sync_token(
        self,
        resource: str | None,
        request: httpx.Request | None = None,
        deadline: float | None = None,
        refused: AccessToken | None = None,
    ) -> AccessToken:
        """A usable token other than `refused` for a sync caller: one still usable is served
        at once, as the async path does, its refresh started if due; else this thread waits
        for the fetch, until `deadline`."""
        token, refresh_due = self._states.served_token(resource)
        if token is None or token == refused:
            return self._blocking(self._usable_token, resource, request, deadline, refused)
        if refresh_due:
            # Started on the auth's thread, not waited for: the first there starts it.
            self._loop_thread_for_sync().submit(self._usable_token, resource)
        return token

    def _blocking(self, func: Callable[..., Awaitable[_T]], *args: object) -> _T:
        """``await func(*args)`` on the auth's own event loop thread, blocking this thread
        until it is done: how sync clients share the async store and its single flight."""
        if _running_event_loop():
            # Blocking an event loop's thread would stop the loop, and with it any fetch it
            # runs that this call would wait for: a deadlock, not a slow request.
            raise UnsupportedClientError(
                "a sync request that needs a token was made on an event loop's thread: "
                "use httpx.AsyncClient there (or get_token), or make it in a worker thread"
            )
        future = self._loop_thread_for_sync().submit(func, *args)
        try:
            return future.result()
        except concurrent.futures.CancelledError as error:
            resource = args[0] if args and isinstance(args[0], str | None) else None
            raise TokenRequestError(
                f"the token fetch {for_resource(resource)} was stopped: the MosaicAuth was closed",
                resource=resource,
            ) from error
        except BaseException:
            # Interrupted (Ctrl+C, a signal handler's exception): stop waiting there too, so
            # that nobody keeps a fetch going for this caller.
            future.cancel()
            raise

    def _loop_thread_for_sync(self) -> LoopThread:
        """The auth's own event loop thread, made at the first sync call that needs it."""
        self._require_own_token_client()
        if self._loop_thread is None:
            from ._loops.thread import LoopThread  # asyncio, which async-only users need not load

            with self._loop_thread_lock:
                if self._loop_thread is None:
                    self._loop_thread = LoopThread("mosaic-httpx-auth tokens")
                    # An auth dropped without close() takes its thread with it.
                    weakref.finalize(self, self._loop_thread.stop)
        return self._loop_thread

    def _require_own_token_client(self) -> None:
        """Sync requests fetch tokens on the auth's own event loop thread, with a client of
        its own: a caller's `http_client` belongs to the caller's event loop."""
        if not self._own_http_client:
            raise UnsupportedClientError(
                "a MosaicAuth given an http_client serves httpx.AsyncClient only: its token "
                "requests belong to that client's event loop. For httpx.Client, leave "
                "http_client out and MosaicAuth makes its token requests itself"
            )

    def _note_acceptance(
        self, response: httpx.Response, resource: str | None, token: AccessToken
    ) -> None:
        """Tell the states an API took `token`, if `response` is a success answering a request
        carrying it: a token that answered a 401 counts as good there from then on. Any
        other answer (a 404, a 5xx) may come before the token is looked at."""
        if response.is_success and _carried(response, token):
            self._states.accepted(resource, token, _place(response.request))

    def resource_for(self, url: httpx.URL | str) -> str | None:
        """The resource whose token a request to `url` carries."""
        return self._router.resource_for(self._http.URL(url))

    async def get_token(
        self, resource: str | None = None, *, timeout: float | None = None
    ) -> AccessToken:
        """A usable token for `resource` (None: the default resource), fetched if need be.

        Waits at most `timeout` seconds while the token endpoint fails in ways that waiting
        may heal; without one, for at most `max_attempts` attempts of one fetch.
        """
        resource = self._router.default if resource is None else resource
        return await self._usable_token(resource, None, self._deadline_after(timeout))

    def get_token_sync(
        self, resource: str | None = None, *, timeout: float | None = None
    ) -> AccessToken:
        """`get_token` for sync code: blocks this thread until a token is there, or at most
        `timeout` seconds."""
        resource = self._router.default if resource is None else resource
        return self._sync_token(resource, None, self._deadline_after(timeout))

    def stats(self) -> AuthStats:
        """Counters of token requests, errors, 401 retries, cache hits and refreshes."""
        return self._telemetry.stats()

    async def aclose(self) -> None:
        """Stop this event loop's token fetches and close the HTTP client used for them,
        unless the caller owns it."""
        await self._store.aclose()

    def close(self) -> None:
        """For sync code: stop the auth's own event loop thread, its fetches and its token
        client, if sync requests started them. A later sync request starts them again."""
        loop_thread = self._loop_thread
        if loop_thread is not None:
            if not loop_thread.is_current():  # from its own thread (a hook), stop it only
                with contextlib.suppress(concurrent.futures.CancelledError):
                    loop_thread.submit(self._store.aclose).result()
            loop_thread.stop()

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


def _seconds(name: str, value: float, *, positive: bool = False) -> float:
    """`value` as seconds, or a ConfigurationError naming the setting."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigurationError(f"{name} must be a number of seconds, not {value!r}", setting=name)
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        bound = "more than zero" if positive else "zero or more"
        raise ConfigurationError(f"{name} must be {bound} seconds, not {value!r}", setting=name)
    return float(value)


@dataclass(frozen=True, slots=True)
class _TokenNeeded:
    """The flow needs a usable token for `resource` other than `refused`, for `request`, by
    `deadline`."""

    resource: str | None
    request: httpx.Request
    deadline: float | None
    refused: AccessToken


@dataclass(frozen=True, slots=True)
class _Refused:
    """An API at `place` answered 401 to `token`: the flow asks whether to retry with a new
    one."""

    resource: str | None
    token: AccessToken
    place: str


_Step = _TokenNeeded | _Refused | httpx.Request


# Every MosaicAuth, for `_after_fork`: one hook for them all, not one per instance.
_FORKABLE: weakref.WeakSet[MosaicAuth] = weakref.WeakSet()


def _after_fork() -> None:
    """In a forked child: the parent's fetches, threads and locks did not come along."""
    for auth in list(_FORKABLE):
        auth._states.after_fork()
        auth._loop_thread_lock = threading.Lock()


os.register_at_fork(after_in_child=_after_fork)


def _running_event_loop() -> bool:
    """Whether this thread is running an event loop (asyncio's, or trio's)."""
    asyncio = sys.modules.get("asyncio")
    if asyncio is not None:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            return True
    trio = sys.modules.get("trio")
    return trio is not None and bool(trio.lowlevel.in_trio_run())


def _carried(response: httpx.Response, token: AccessToken) -> bool:
    """Whether `response` answers a request that carried `token`: one from a host a redirect
    led to, which got no token, says nothing about it."""
    return bool(response.request.headers.get("Authorization") == token.authorization)


def _place(request: httpx.Request) -> str:
    """Where `request` went, for telling the APIs that refuse a token apart: its origin and
    path, without the query (which may hold anything)."""
    url = request.url
    return f"{url.scheme}://{url.netloc.decode('ascii')}{url.path}"


def _replayable_upload(stream: object) -> bool:
    """Whether `stream` is a multipart upload that can be sent again: every file in it is
    bytes, text, or a file it can seek back to the start of (which httpx does at each send)."""
    fields = getattr(stream, "fields", None)
    if type(stream).__name__ != "MultipartStream" or not isinstance(fields, list):
        return False
    for field in fields:
        upload = getattr(field, "file", None)
        if upload is None or isinstance(upload, (bytes, str)):
            continue  # a plain form field, or content in memory
        seekable = getattr(upload, "seekable", None)
        if not callable(seekable) or not seekable():
            return False
    return True
