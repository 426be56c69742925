"""`MosaicAuth`: the `httpx.Auth` that puts a Mosaic client access token on every request."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx

from ._checks import seconds
from ._exceptions import TokenRequestError
from ._settings import ConfiguredAuth
from ._telemetry import AuthEvent
from ._unauthorized import (
    Need,
    Refused,
    TokenNeeded,
    carried,
    next_step,
    place,
    replayable_upload,
    taken_steps,
)

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, Generator
    from types import TracebackType

    from typing_extensions import Self

    from ._token import AccessToken
    from ._unauthorized import Step


class MosaicAuth(ConfiguredAuth, httpx.Auth):
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
        retry: How a token fetch tries again, and how long each attempt may take: a
            `Retry` (by default 3 attempts, 0.5 s backoff, 10 s each).
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
    # `ConfiguredAuth` takes the arguments above, checks each, and builds the parts the flow
    # uses: `_router`, `_states`, `_fetcher`, `_endpoint`, `_telemetry` and `_sync`; `from_env`,
    # `token_url`, `resource_for`, `stats` and the repr are there too.

    # The request flow, one set of rules for every client. The drivers, `async_auth_flow` and
    # `sync_auth_flow`, do the I/O: awaiting on the caller's event loop, or blocking the
    # caller's thread. A request with a token in hand, answered, takes plain calls only; a
    # 401, or a token on probation, is handed to `_answered`, which yields what it needs.
    # The sync driver hands those steps to `taken_steps`; an async generator cannot
    # `yield from` one, so the async driver takes them itself, in the same two-line loop.

    def _cached_token(self, request: httpx.Request) -> tuple[str | None, AccessToken | None]:
        """The resource `request` needs a token for, and the fresh token in hand, if any."""
        resource = self._router.token_resource(request.url)
        token = self._states.fresh_token(resource)
        if token is not None:
            self._telemetry.cache_hits += 1
        return resource, token

    def _authorize(self, request: httpx.Request, token: AccessToken) -> None:
        """Put `token` on `request`."""
        request.headers["Authorization"] = token.authorization

    def _replayable(self, request: httpx.Request) -> bool:
        """Whether `request`'s body can be sent again, should a 401 ask for it. Asked before
        anything is sent: some transports read a streamed body into memory as they send it,
        and the answer must not depend on the transport."""
        stream = request.stream
        return isinstance(stream, self._http.ByteStream) or replayable_upload(stream)

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
    ) -> Generator[Step, Any, None]:
        """What follows a `response` that is not `_settled`: it yields what it needs (a 401 to
        report, a token, a request to send again) and is sent the answer."""
        if response.status_code != 401:
            self._note_acceptance(response, resource, token)
            return
        if not carried(response, token):
            return
        if not (yield Refused(resource, token, place(request))) or not replayable:
            return
        self._telemetry.report(
            AuthEvent("unauthorized_retry", resource, status_code=401),
            f"{request.method} {request.url.copy_with(query=None, username=None, password=None)}",
        )
        refused = token
        # Should no token come, the error names this request: not with a token on it.
        del request.headers["Authorization"]
        token = yield TokenNeeded(resource, request, self._deadline(request), refused)
        self._authorize(request, token)
        response = yield request
        if response.status_code != 401:
            self._note_acceptance(response, resource, token)
        elif carried(response, token):
            yield Refused(resource, token, place(request))  # told, not retried again

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        """Set the bearer token, send, and on a 401 to that token retry once with a new one."""
        replayable = self._replayable(request)
        resource, token = self._cached_token(request)
        if token is None:
            token = await self._token_for_request(resource, request, self._deadline(request))
        self._authorize(request, token)
        response = yield request
        if self._settled(response):
            return
        flow = self._answered(request, resource, token, replayable, response)
        answer: Any = None
        while (step := next_step(flow, answer)) is not None:
            answer = await self._fulfil(step) if isinstance(step, Need) else (yield step)

    def sync_auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        """As `async_auth_flow`, for `httpx.Client`: a thread that needs a token waits for
        the one fetch under way, which runs on the auth's own event loop thread."""
        self._sync.require_own_token_client()
        replayable = self._replayable(request)
        resource, token = self._cached_token(request)
        if token is None:
            token = self._sync.token(
                self._token_for_request, resource, request, self._deadline(request)
            )
        self._authorize(request, token)
        response = yield request
        if self._settled(response):
            return
        flow = self._answered(request, resource, token, replayable, response)
        yield from taken_steps(flow, self._fulfil_sync)

    async def _fulfil(self, need: Need) -> Any:
        """What `_answered` asked for, awaited on the caller's event loop."""
        if isinstance(need, Refused):
            return await self._fetcher.refused(*need)
        return await self._token_for_request(*need)

    def _fulfil_sync(self, need: Need) -> Any:
        """What `_answered` asked for, on the auth's own event loop thread, this one waiting."""
        if isinstance(need, Refused):
            return self._sync.run(self._fetcher.refused, *need)
        return self._sync.token(self._token_for_request, *need)

    def _deadline(self, request: httpx.Request) -> float | None:
        """Until when `request` may wait for a token (monotonic): its pool timeout, as a token
        is, like a connection from the pool, something it must have before it is sent."""
        timeout = request.extensions.get("timeout")
        pool = timeout.get("pool") if isinstance(timeout, dict) else None
        return None if pool is None else self._monotonic() + pool

    def _deadline_after(self, timeout: float | None) -> float | None:
        """The deadline `timeout` seconds from now, for `get_token` and `get_token_sync`."""
        if timeout is None:
            return None
        return self._monotonic() + seconds("timeout", timeout)

    async def _token_for_request(
        self,
        resource: str | None,
        request: httpx.Request | None = None,
        deadline: float | None = None,
        refused: AccessToken | None = None,
    ) -> AccessToken:
        """The fetcher's token for `resource`, by `deadline`, other than `refused`. Its failure
        names `request` as the one that needed it, as httpx's own errors do; without one, the
        token request, bodiless (its body holds the credentials)."""
        try:
            return await self._fetcher.token(resource, deadline=deadline, refused=refused)
        except TokenRequestError as error:
            error.request = request or self._http.Request("POST", self._endpoint.token_url)
            raise

    def _note_acceptance(
        self, response: httpx.Response, resource: str | None, token: AccessToken
    ) -> None:
        """Tell the states an API took `token`, if `response` is a success answering a request
        carrying it: a token that answered a 401 counts as good there from then on. Any
        other answer (a 404, a 5xx) may come before the token is looked at."""
        if response.is_success and carried(response, token):
            self._states.accepted(resource, token, place(response.request))

    async def get_token(
        self, resource: str | None = None, *, timeout: float | None = None
    ) -> AccessToken:
        """A usable token for `resource` (None: the default resource), fetched if need be.

        Waits at most `timeout` seconds while the token endpoint fails in ways that waiting
        may heal; without one, for at most `retry.max_attempts` attempts of one fetch.
        """
        resource = self._router.default if resource is None else resource
        return await self._token_for_request(resource, None, self._deadline_after(timeout))

    def get_token_sync(
        self, resource: str | None = None, *, timeout: float | None = None
    ) -> AccessToken:
        """`get_token` for sync code: blocks this thread until a token is there, or at most
        `timeout` seconds."""
        resource = self._router.default if resource is None else resource
        return self._sync.token(
            self._token_for_request, resource, None, self._deadline_after(timeout)
        )

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
