"""The request flow: what `MosaicAuth` does with each request httpx hands it.

`RequestFlow` is the `httpx.Auth` half of `MosaicAuth`: the two drivers httpx calls, and the
rules they share. `MosaicAuth` builds the parts it reads (in its constructor) and adds what an
application calls.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx

from ._exceptions import TokenRequestError
from ._telemetry import AuthEvent
from ._unauthorized import (
    RESEND_EXTENSION,
    RESOURCE_EXTENSION,
    Need,
    Refused,
    TokenNeeded,
    bearer_error,
    carried,
    next_step,
    place,
    replayable_upload,
    requested_resource,
    taken_steps,
)

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, Generator
    from types import ModuleType

    from ._endpoint import TokenEndpoint
    from ._fetcher import TokenFetcher
    from ._routing import ResourceRouter
    from ._sync_bridge import SyncBridge
    from ._telemetry import Telemetry
    from ._token import AccessToken
    from ._token_states import TokenStates
    from ._unauthorized import Step


class RequestFlow(httpx.Auth):
    """Puts a token on each request, sends it, and after a 401 to that token retries it once
    with a new one: for `httpx.AsyncClient` (`async_auth_flow`) and `httpx.Client`
    (`sync_auth_flow`) alike."""

    requires_request_body = False
    requires_response_body = False

    # The HTTP library: its clients make the token requests, and its requests are the ones the
    # flow sees. `mosaic_httpx_auth.httpx2.MosaicAuth` puts httpx2 here.
    _http: ModuleType = httpx
    # The parts `MosaicAuth.__init__` builds.
    _router: ResourceRouter  # which resource a request's token is for
    _telemetry: Telemetry
    _endpoint: TokenEndpoint  # the token requests
    _states: TokenStates  # each resource's token, and the rules it lives by
    _fetcher: TokenFetcher  # drives the states on the caller's event loop
    _sync: SyncBridge  # how sync callers reach the fetcher

    # The drivers, `async_auth_flow` and
    # `sync_auth_flow`, do the I/O: awaiting on the caller's event loop, or blocking the
    # caller's thread. A request with a token in hand, answered, takes plain calls only; a
    # 401, or a token on probation, is handed to `_answered`, which yields what it needs.
    # The sync driver hands those steps to `taken_steps`; an async generator cannot
    # `yield from` one, so the async driver takes them itself, in the same two-line loop.

    def _cached_token(self, request: httpx.Request) -> tuple[str | None, AccessToken | None]:
        """The resource `request` needs a token for, and the fresh token in hand, if any.
        Its URL's route names the resource, unless the request names one; either way, only
        the hosts configured get a token."""
        resource = self._router.token_resource(request.url)
        if RESOURCE_EXTENSION in request.extensions:
            resource = requested_resource(request.extensions[RESOURCE_EXTENSION])
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
        if not carried(response, token) or bearer_error(response) == "insufficient_scope":
            return  # a permission the app lacks: no new token would have it
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
        # For an HTTP instrumentation's request hook: this is a resend (OpenTelemetry's
        # `http.request.resend_count`), which the transport below cannot tell. Only while it
        # is sent: the caller may send the same request again, as a first transmission.
        request.extensions[RESEND_EXTENSION] = 1
        try:
            response = yield request
        finally:
            del request.extensions[RESEND_EXTENSION]
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
        return None if pool is None else self._states.monotonic() + pool

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
