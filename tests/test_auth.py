"""MosaicAuth's request flow: the bearer header, resource routing and the 401 retry."""

from __future__ import annotations

import io
import logging
from typing import TYPE_CHECKING, BinaryIO, cast

import anyio
import httpx
import pytest

from mosaic_httpx_auth import (
    AccessToken,
    ConfigurationError,
    MemoryTokenCache,
    MosaicAuth,
    Retry,
    TokenRequestError,
    UnsupportedClientError,
)

from .helpers import CLIENT_ID, CLIENT_SECRET, RISK, TOKEN_URL, VERIFY, FakeClock, FakeMosaic

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from mosaic_httpx_auth.cache import CacheKey

pytestmark = pytest.mark.anyio

API = "https://api.transmitsecurity.io"


async def test_request_carries_the_bearer_token(mosaic: FakeMosaic) -> None:
    """A request goes out with `Authorization: Bearer <token>` from the token endpoint."""
    auth = mosaic.auth(resource=RISK)
    async with mosaic.api_client(auth) as client:
        response = await client.get(f"{API}/risk/v1/recommendation")
    assert response.status_code == 200
    sent = mosaic.api_requests[0].headers["Authorization"]
    assert sent == f"Bearer {(await auth.get_token()).token}"
    assert response.json() == {"aud": RISK}


async def test_token_is_reused_across_requests(mosaic: FakeMosaic, clock: FakeClock) -> None:
    """Requests made while the token is valid share one token request."""
    async with mosaic.api_client(mosaic.auth()) as client:
        for _ in range(5):
            await client.get(f"{API}/cis/v1/users")
            clock.advance(600)
    assert mosaic.token_requests[None] == 1


async def test_token_is_replaced_when_it_comes_within_the_leeway(
    mosaic: FakeMosaic, clock: FakeClock
) -> None:
    """A token is fetched anew once fewer than `leeway` seconds of it remain."""
    async with mosaic.api_client(mosaic.auth(leeway=60, refresh_window=0)) as client:
        await client.get(f"{API}/cis/v1/users")
        clock.advance(3600 - 61)
        await client.get(f"{API}/cis/v1/users")
        assert mosaic.token_requests[None] == 1
        clock.advance(1)
        await client.get(f"{API}/cis/v1/users")
    assert mosaic.token_requests[None] == 2


async def test_resources_route_requests_by_longest_url_prefix(mosaic: FakeMosaic) -> None:
    """Each request gets the token of the resource its longest matching prefix names."""
    auth = mosaic.auth(
        resources={f"{API}/risk": RISK, f"{API}/verify": VERIFY, f"{API}/risk/v1/legacy": None}
    )
    async with mosaic.api_client(auth) as client:
        risk = await client.get(f"{API}/risk/v1/recommendation")
        verify = await client.post(f"{API}/verify/api/v1/sessions", json={})
        legacy = await client.get(f"{API}/risk/v1/legacy/x")
        other = await client.get(f"{API}/cis/v1/users")
    assert [r.json()["aud"] for r in (risk, verify, legacy, other)] == [
        RISK,
        VERIFY,
        "userid-api",
        "userid-api",
    ]
    assert mosaic.token_requests == {RISK: 1, VERIFY: 1, None: 1}
    assert auth.resource_for(f"{API}/risk/v1/legacy") is None
    assert auth.resource_for(httpx.URL(f"{API}/verify")) == VERIFY


async def test_a_401_drops_the_token_and_retries_once_with_a_new_one(mosaic: FakeMosaic) -> None:
    """A revoked token is replaced and the request sent again, transparently to the caller."""
    async with mosaic.api_client(mosaic.auth(resource=RISK)) as client:
        await client.get(f"{API}/risk/v1/a")
        mosaic.revoke_all()
        response = await client.post(f"{API}/risk/v1/b", json={"n": 1})
    assert response.status_code == 200
    assert mosaic.token_requests[RISK] == 2
    first, second = mosaic.api_authorizations[1:]
    assert first != second
    assert mosaic.api_requests[2].content == b'{"n":1}'
    assert [r.status_code for r in response.history] == [401]


async def test_a_second_401_goes_back_to_the_caller(mosaic: FakeMosaic) -> None:
    """When the new token is refused too, the caller gets that 401 and nothing loops."""
    async with mosaic.api_client(mosaic.auth()) as client:
        # The API refuses every token, even new ones.
        mosaic.valid_tokens = _RefusesEverything()
        response = await client.get(f"{API}/cis/v1/users")
    assert response.status_code == 401
    assert len(mosaic.api_requests) == 2
    assert mosaic.token_requests[None] == 2


class _StreamingTransport(httpx.AsyncBaseTransport):
    """Like a network transport: sends a streamed body chunk by chunk, keeping none of it."""

    def __init__(self, mosaic: FakeMosaic) -> None:
        self.mosaic = mosaic
        self.bodies: list[bytes] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.bodies.append(b"".join([chunk async for chunk in request.stream]))  # type: ignore[union-attr]
        self.mosaic.api_requests.append(request)
        return httpx.Response(401, json={"message": "Invalid token", "error_code": 401})


async def test_a_streamed_body_is_not_sent_twice(mosaic: FakeMosaic) -> None:
    """A 401 to a request with a streamed body comes back as is: the body cannot be replayed."""

    async def body() -> AsyncIterator[bytes]:
        yield b"chunk"

    transport = _StreamingTransport(mosaic)
    async with httpx.AsyncClient(auth=mosaic.auth(), transport=transport) as client:
        response = await client.post(f"{API}/cis/v1/users", content=body())
    assert response.status_code == 401
    assert transport.bodies == [b"chunk"]
    assert mosaic.token_requests[None] == 1


async def test_a_streamed_body_is_never_replayed_whatever_the_transport(
    mosaic: FakeMosaic,
) -> None:
    """A transport that read a streamed body into memory as it sent it (MockTransport) gets the
    same answer as a socket: no replay. The refused token is dropped all the same."""

    async def body() -> AsyncIterator[bytes]:
        yield b"chunk"

    async with mosaic.api_client(mosaic.auth()) as client:
        await client.get(f"{API}/cis/v1/users")
        mosaic.revoke_all()
        response = await client.post(f"{API}/cis/v1/users", content=body())
        assert response.status_code == 401
        assert len(mosaic.api_requests) == 2
        assert (await client.get(f"{API}/cis/v1/users")).status_code == 200
    assert mosaic.token_requests[None] == 2


class _OneShotUpload:
    """A file that can be read once and not rewound: a pipe, a socket, a request body."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def read(self, size: int = -1) -> bytes:
        data, self._data = self._data, b""
        return data

    def seekable(self) -> bool:
        return False


async def test_an_in_memory_upload_refused_with_401_is_sent_again(mosaic: FakeMosaic) -> None:
    """A multipart upload of bytes and a seekable file is replayed whole with a new token."""
    async with mosaic.api_client(mosaic.auth()) as client:
        await client.get(f"{API}/cis/v1/users")
        mosaic.revoke_all()
        response = await client.post(
            f"{API}/cis/v1/users",
            data={"k": "v"},
            files={"doc": io.BytesIO(b"abc"), "raw": ("raw.bin", b"xyz")},
        )
    assert response.status_code == 200
    assert len(mosaic.api_requests) == 3
    assert mosaic.token_requests[None] == 2


async def test_a_one_shot_upload_refused_with_401_is_not_replayed(mosaic: FakeMosaic) -> None:
    """A multipart upload of a file that cannot be rewound comes back with its 401 as is."""
    async with mosaic.api_client(mosaic.auth()) as client:
        await client.get(f"{API}/cis/v1/users")
        mosaic.revoke_all()
        upload = cast("BinaryIO", _OneShotUpload(b"abc"))
        response = await client.post(f"{API}/cis/v1/users", files={"doc": ("doc.bin", upload)})
    assert response.status_code == 401
    assert len(mosaic.api_requests) == 2


async def test_a_401_keeps_a_newer_token_fetched_meanwhile(mosaic: FakeMosaic) -> None:
    """Two requests sent with the same token both meet 401: the first one's retry fetches a
    new token, and the second one's 401 retries with it instead of discarding it."""
    auth = mosaic.auth()
    first = auth.async_auth_flow(httpx.Request("GET", f"{API}/cis/v1/a"))
    second = auth.async_auth_flow(httpx.Request("GET", f"{API}/cis/v1/b"))
    sent_first, sent_second = await first.__anext__(), await second.__anext__()
    old = sent_first.headers["Authorization"]
    assert sent_second.headers["Authorization"] == old
    retried_first = await first.asend(httpx.Response(401, request=sent_first))
    newer = retried_first.headers["Authorization"]
    assert newer != old
    retried_second = await second.asend(httpx.Response(401, request=sent_second))
    assert retried_second.headers["Authorization"] == newer
    assert mosaic.token_requests[None] == 2
    await first.aclose()
    await second.aclose()


async def test_a_401_to_a_request_that_carried_no_token_keeps_the_token(
    mosaic: FakeMosaic,
) -> None:
    """A 401 whose request is not the one that carried the token (a redirect to another host,
    which got none) drops nothing and is not retried."""
    auth = mosaic.auth()
    flow = auth.async_auth_flow(httpx.Request("GET", f"{API}/cis/v1/a"))
    sent = await flow.__anext__()
    elsewhere = httpx.Request("GET", "https://elsewhere.example/login")
    with pytest.raises(StopAsyncIteration):
        await flow.asend(httpx.Response(401, request=elsewhere))
    kept = auth._states.fresh_token(None)
    assert kept is not None
    assert sent.headers["Authorization"] == kept.authorization
    assert mosaic.token_requests[None] == 1


async def test_a_redirect_to_a_host_answering_401_does_not_hammer_the_endpoint(
    mosaic: FakeMosaic,
) -> None:
    """With follow_redirects, 20 calls redirected to a host that answers 401 share one token."""

    async def handle(request: httpx.Request) -> httpx.Response:
        if request.url.host == "elsewhere.example":
            return httpx.Response(401)
        if request.url.path == "/cis/v1/moved":
            return httpx.Response(302, headers={"Location": "https://elsewhere.example/x"})
        return await mosaic.handle(request)

    client = httpx.AsyncClient(
        auth=mosaic.auth(), transport=httpx.MockTransport(handle), follow_redirects=True
    )
    async with client:
        statuses = [(await client.get(f"{API}/cis/v1/moved")).status_code for _ in range(20)]
    assert statuses == [401] * 20
    assert mosaic.token_requests[None] == 1


async def test_an_api_that_refuses_every_token_does_not_hammer_the_endpoint(
    mosaic: FakeMosaic, clock: FakeClock
) -> None:
    """When even a brand-new token is refused, it is kept: 20 calls cost 2 token requests, and
    the next token, once this one expires, is tried there once again."""

    async def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oidc/token":
            return await mosaic.handle(request)
        return httpx.Response(401, json={"message": "Invalid token", "error_code": 401})

    client = httpx.AsyncClient(auth=mosaic.auth(), transport=httpx.MockTransport(handle))
    async with client:
        statuses = [(await client.get(f"{API}/cis/v1/x")).status_code for _ in range(20)]
        assert statuses == [401] * 20
        assert mosaic.token_requests[None] == 2
        clock.advance(3600)
        statuses = [(await client.get(f"{API}/cis/v1/x")).status_code for _ in range(20)]
    assert statuses == [401] * 20
    assert mosaic.token_requests[None] == 4


def refusing_api(mosaic: FakeMosaic, refused: str, *, missing: str = "") -> httpx.MockTransport:
    """`mosaic`, with the paths under `refused` answering 401 to every token (an API the app
    lacks a permission for) and `missing` answering 404."""

    async def handle(request: httpx.Request) -> httpx.Response:
        if missing and request.url.path == missing:
            return httpx.Response(404)
        if request.url.path.startswith(refused):
            return httpx.Response(401, json={"message": "Invalid token", "error_code": 401})
        return await mosaic.handle(request)

    return httpx.MockTransport(handle)


async def test_a_path_that_refuses_every_token_costs_two_token_requests(
    mosaic: FakeMosaic,
) -> None:
    """Fifty rounds of an API that accepts the token, one that answers 404 and a path that
    answers 401 to every token: two token requests in all, and the working API never fails."""
    transport = refusing_api(mosaic, "/risk/v1/refuses", missing="/risk/v1/missing")
    async with httpx.AsyncClient(auth=mosaic.auth(resource=RISK), transport=transport) as client:
        for _ in range(50):
            assert (await client.get(f"{API}/risk/v1/accepts")).status_code == 200
            assert (await client.get(f"{API}/risk/v1/missing")).status_code == 404
            assert (await client.get(f"{API}/risk/v1/refuses")).status_code == 401
    assert mosaic.token_requests[RISK] == 2


async def test_an_api_refusing_every_token_at_a_path_per_id_costs_two_token_requests(
    mosaic: FakeMosaic,
) -> None:
    """Fifty requests to /risk/v1/refuses/<id>, each place answering 401 to every token, cost
    two token requests: the second place's refusal of the replacement is no revocation."""
    transport = refusing_api(mosaic, "/risk/v1/refuses/")
    async with httpx.AsyncClient(auth=mosaic.auth(resource=RISK), transport=transport) as client:
        for number in range(50):
            response = await client.get(f"{API}/risk/v1/refuses/{number}")
            assert response.status_code == 401
    assert mosaic.token_requests[RISK] == 2


async def test_the_working_api_goes_on_while_a_refused_tokens_replacement_is_slow(
    mosaic: FakeMosaic,
) -> None:
    """While the token endpoint takes its time over the replacement of a token one path
    refused, requests to the API that accepts it go on with it, without waiting."""
    transport = refusing_api(mosaic, "/risk/v1/refuses")
    async with httpx.AsyncClient(auth=mosaic.auth(resource=RISK), transport=transport) as client:
        assert (await client.get(f"{API}/risk/v1/accepts")).status_code == 200
        mosaic.gate = anyio.Event()
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(client.get, f"{API}/risk/v1/refuses")
            await anyio.wait_all_tasks_blocked()  # its replacement is held at the gate
            with anyio.fail_after(5):
                statuses = [(await client.get(f"{API}/risk/v1/accepts")).status_code]
            mosaic.gate.set()
    assert statuses == [200]
    assert mosaic.token_requests[RISK] == 2


async def test_a_refusing_path_meeting_a_429_leaves_the_working_api_its_token(
    mosaic: FakeMosaic,
) -> None:
    """When the token endpoint answers the refusing path's replacement with 429 Retry-After:
    60, the API that accepts the token goes on with it, and nothing more is asked of the
    endpoint."""
    transport = refusing_api(mosaic, "/risk/v1/refuses")
    async with httpx.AsyncClient(auth=mosaic.auth(resource=RISK), transport=transport) as client:
        assert (await client.get(f"{API}/risk/v1/accepts")).status_code == 200
        mosaic.queued_responses.append(
            httpx.Response(429, headers={"Retry-After": "60"}, json={"message": "slow down"})
        )
        with pytest.raises(TokenRequestError):
            await client.get(f"{API}/risk/v1/refuses")
        for _ in range(50):
            assert (await client.get(f"{API}/risk/v1/accepts")).status_code == 200
            assert (await client.get(f"{API}/risk/v1/refuses")).status_code == 401
    assert mosaic.token_requests[RISK] == 2


async def test_a_replacement_an_api_accepted_is_dropped_when_revoked_again(
    mosaic: FakeMosaic,
) -> None:
    """The token that replaced a revoked one, once accepted, is a token like any other: revoked
    again a moment later, it is replaced at once instead of being kept for the cooldown."""
    async with mosaic.api_client(mosaic.auth()) as client:
        await client.get(f"{API}/cis/v1/x")
        mosaic.revoke_all()
        assert (await client.get(f"{API}/cis/v1/x")).status_code == 200
        mosaic.revoke_all()
        assert (await client.get(f"{API}/cis/v1/x")).status_code == 200
    assert mosaic.token_requests[None] == 3


async def test_a_replacement_first_accepted_outside_a_retry_is_dropped_when_revoked_again(
    mosaic: FakeMosaic,
) -> None:
    """A 401 to a streamed body drops the token without a retry; its replacement, first sent
    by a later request and accepted there, is then a token like any other: revoked again, it
    is replaced at once rather than taken for an API that refuses every token."""

    async def body() -> AsyncIterator[bytes]:
        yield b"{}"

    async with mosaic.api_client(mosaic.auth()) as client:
        await client.get(f"{API}/cis/v1/x")
        mosaic.revoke_all()
        assert (await client.post(f"{API}/cis/v1/x", content=body())).status_code == 401
        assert (await client.get(f"{API}/cis/v1/x")).status_code == 200  # accepted here
        mosaic.revoke_all()
        assert (await client.get(f"{API}/cis/v1/x")).status_code == 200
    assert mosaic.token_requests[None] == 3


async def test_the_401_retry_log_line_shows_no_password_from_the_url(
    mosaic: FakeMosaic, caplog: pytest.LogCaptureFixture
) -> None:
    """A request URL carrying user:password is logged without them when it is retried."""
    caplog.set_level(logging.INFO)
    async with mosaic.api_client(mosaic.auth()) as client:
        await client.get(f"{API}/cis/v1/x")
        mosaic.revoke_all()
        await client.get("https://svc:hunter2-password@api.transmitsecurity.io/cis/v1/x")
    ours = [record.message for record in caplog.records if record.name == "mosaic_httpx_auth"]
    assert any("retrying GET https://api.transmitsecurity.io/cis/v1/x" in line for line in ours)
    assert not any("hunter2" in line for line in ours)


async def test_a_401_during_a_refresh_gets_the_full_retry_policy(
    mosaic: FakeMosaic, clock: FakeClock
) -> None:
    """A request refused while a refresh is under way waits on that refresh, which then
    retries its 503 with every attempt allowed instead of failing the request."""
    auth = mosaic.auth(retry=Retry(backoff=0))
    async with mosaic.api_client(auth) as client:
        await client.get(f"{API}/cis/v1/x")
        clock.advance(3600 - 60 - 100)
        mosaic.gate = anyio.Event()
        mosaic.queued_responses.append(httpx.Response(503, json={"message": "busy"}))
        mosaic.revoke_all()
        with anyio.fail_after(5):
            async with anyio.create_task_group() as tasks:
                responses: list[httpx.Response] = []

                async def call() -> None:
                    responses.append(await client.get(f"{API}/cis/v1/x"))

                tasks.start_soon(call)
                await anyio.wait_all_tasks_blocked()
                mosaic.gate.set()
    assert [response.status_code for response in responses] == [200]
    assert mosaic.token_requests[None] == 3


class _HeldDiscardCache(MemoryTokenCache):
    """A shared cache whose discards take as long as a test says, like a slow network."""

    def __init__(self) -> None:
        super().__init__()
        self.discarding = anyio.Event()

    async def discard(self, key: CacheKey, token: AccessToken) -> None:
        await self.discarding.wait()
        await super().discard(key, token)


async def test_a_revoked_token_is_never_read_back_from_a_slow_shared_cache(
    mosaic: FakeMosaic,
) -> None:
    """While the shared cache is still discarding a refused token, a fetch that reads the
    cache turns that token down and gets a new one: the revoked token is never read back.
    (The second call sends it once from memory, as its replacement is not there yet: its own
    401 makes it wait for the new one.)"""
    cache = _HeldDiscardCache()
    async with mosaic.api_client(mosaic.auth(cache=cache)) as client:
        await client.get(f"{API}/cis/v1/x")
        revoked = mosaic.api_authorizations[-1]
        mosaic.revoke_all()
        statuses: list[int] = []

        async def call() -> None:
            statuses.append((await client.get(f"{API}/cis/v1/x")).status_code)

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(call)
            await anyio.wait_all_tasks_blocked()  # refused, and stuck discarding
            await call()
            cache.discarding.set()
    assert statuses == [200, 200]
    assert mosaic.api_authorizations.count(revoked) == 3
    assert mosaic.token_requests[None] == 2


async def test_concurrent_401s_make_one_token_request(mosaic: FakeMosaic) -> None:
    """Many requests refused at once for one revoked token share a single new token."""
    async with mosaic.api_client(mosaic.auth()) as client:
        await client.get(f"{API}/cis/v1/users")
        mosaic.revoke_all()
        statuses: list[int] = []

        async def call() -> None:
            statuses.append((await client.get(f"{API}/cis/v1/users")).status_code)

        async with anyio.create_task_group() as tasks:
            for _ in range(50):
                tasks.start_soon(call)
    assert statuses == [200] * 50
    assert mosaic.token_requests[None] == 2


async def test_a_failed_token_request_means_the_request_is_not_sent(mosaic: FakeMosaic) -> None:
    """When no token can be had, the caller gets the error and the API sees nothing."""
    mosaic.queued_responses.append(httpx.Response(401, json={"error": "invalid_client"}))
    async with mosaic.api_client(mosaic.auth()) as client:
        with pytest.raises(TokenRequestError) as caught:
            await client.get(f"{API}/cis/v1/users")
        assert caught.value.status_code == 401
        assert mosaic.api_requests == []
        # Failures are not cached: the next request tries again and gets through.
        assert (await client.get(f"{API}/cis/v1/users")).status_code == 200
    assert mosaic.token_requests[None] == 2


def test_a_sync_client_with_the_callers_token_client_gets_a_clear_error(
    mosaic: FakeMosaic,
) -> None:
    """Used with httpx.Client while given an http_client (which belongs to an event loop),
    MosaicAuth says to leave http_client out."""
    transport = httpx.MockTransport(lambda request: httpx.Response(200))
    with (
        httpx.Client(auth=mosaic.auth(), transport=transport) as client,
        pytest.raises(UnsupportedClientError, match=r"httpx\.AsyncClient only"),
    ):
        client.get(f"{API}/cis/v1/users")


async def test_get_token_defaults_to_the_default_resource(mosaic: FakeMosaic) -> None:
    """`get_token()` returns the default resource's token; naming a resource gets that one."""
    auth = mosaic.auth(resource=RISK)
    default = await auth.get_token()
    verify = await auth.get_token(VERIFY)
    assert isinstance(default, AccessToken)
    assert (default.resource, default.claims["aud"]) == (RISK, RISK)
    assert (verify.resource, verify.claims["aud"]) == (VERIFY, VERIFY)


async def test_aclose_closes_only_the_http_client_it_opened() -> None:
    """`aclose()` closes MosaicAuth's own token client but leaves one the caller passed in."""
    callers_client = httpx.AsyncClient()
    async with MosaicAuth(CLIENT_ID, CLIENT_SECRET, http_client=callers_client):
        pass
    assert not callers_client.is_closed
    await callers_client.aclose()

    auth = MosaicAuth(CLIENT_ID, CLIENT_SECRET)
    own = await auth._endpoint._client()
    await auth.aclose()
    assert own.is_closed


async def test_warm_path_neither_waits_nor_locks(mosaic: FakeMosaic) -> None:
    """With a usable token cached, the flow sets the header without suspending once."""
    auth = mosaic.auth()
    token = await auth.get_token()
    request = httpx.Request("GET", f"{API}/cis/v1/users")
    flow = auth.async_auth_flow(request)
    step = flow.__anext__()
    # Driving the coroutine by hand: it must finish on its first step, with no await
    # that suspends (a lock or any I/O would).
    with pytest.raises(StopIteration) as finished:
        step.send(None)
    assert finished.value.value is request
    assert request.headers["Authorization"] == f"Bearer {token.token}"
    await flow.aclose()


async def test_secret_and_tokens_stay_out_of_logs_and_reprs(
    mosaic: FakeMosaic, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """At DEBUG, no log line, repr or error message shows the client secret or a token."""
    caplog.set_level(logging.DEBUG)
    auth = mosaic.auth(resource=RISK)
    async with mosaic.api_client(auth) as client:
        await client.get(f"{API}/risk/v1/a")
        mosaic.revoke_all()
        await client.get(f"{API}/risk/v1/b")
        mosaic.queued_responses.append(
            httpx.Response(
                401, json={"error": "invalid_client", "error_description": CLIENT_SECRET}
            )
        )
        mosaic.revoke_all()
        with pytest.raises(TokenRequestError) as caught:
            await client.get(f"{API}/risk/v1/c")
    token = await auth.get_token()
    seen = [caplog.text, repr(auth), repr(token), str(caught.value), repr(caught.value)]
    secrets = [CLIENT_SECRET, *mosaic.valid_tokens, token.token]
    assert any("retrying" in record.message for record in caplog.records)
    for text in seen:
        for secret in secrets:
            assert secret not in text


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"leeway": -1}, "leeway"),
        ({"leeway": float("nan")}, "leeway"),
        ({"leeway": "60"}, "leeway"),
        ({"token_url": "not a url"}, "token_url"),
        ({"token_url": "ftp://host/token"}, "token_url"),
        ({"resources": {"risk": RISK}}, "resources"),
        ({"http_client": object()}, "http_client"),
        ({"retry": 3}, "retry must be a mosaic_httpx_auth.Retry"),
    ],
)
def test_bad_settings_are_refused(options: dict[str, object], message: str) -> None:
    """Settings MosaicAuth cannot work with raise a ConfigurationError naming the setting."""
    with pytest.raises(ConfigurationError, match=message):
        MosaicAuth(CLIENT_ID, CLIENT_SECRET, **options)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_attempts": 0}, "max_attempts must be an int, 1 or more, not 0"),
        ({"max_attempts": 2.0}, "max_attempts must be an int, 1 or more, not 2.0"),
        ({"max_attempts": True}, "max_attempts must be an int, 1 or more"),
        ({"backoff": -1}, "backoff must be zero or more seconds"),
        ({"backoff": 10**400}, r"backoff must be a finite number: zero or more seconds, not 1000"),
        ({"max_retry_after": float("inf")}, "max_retry_after must be a finite number"),
        ({"attempt_timeout": 0}, "attempt_timeout must be a positive number of seconds"),
        ({"attempt_timeout": "10"}, "attempt_timeout must be a positive number of seconds"),
    ],
)
def test_a_retry_policy_it_cannot_follow_is_refused_when_made(
    options: dict[str, object], message: str
) -> None:
    """`Retry` checks each number as it is made, naming the setting; the numbers it keeps
    are floats (seconds) and an int (attempts)."""
    with pytest.raises(ConfigurationError, match=message) as caught:
        Retry(**options)  # type: ignore[arg-type]
    assert caught.value.setting == next(iter(options))
    retry = Retry(max_attempts=5, backoff=1, max_retry_after=0, attempt_timeout=2)
    assert retry == Retry(max_attempts=5, backoff=1.0, max_retry_after=0.0, attempt_timeout=2.0)
    assert isinstance(retry.backoff, float)


class _Index:
    """An integer of another library (numpy's, say): it has `__index__`."""

    def __index__(self) -> int:
        return 4


def test_a_retry_takes_keywords_and_any_integer() -> None:
    """`Retry`'s fields are keywords only (their order is no API), and `max_attempts` takes
    any integer type, kept as an int."""
    with pytest.raises(TypeError):
        Retry(5)  # type: ignore[call-arg]
    attempts = Retry(max_attempts=_Index()).max_attempts  # type: ignore[arg-type]
    assert type(attempts) is int
    assert attempts == 4


def test_the_retry_policy_given_is_the_one_followed() -> None:
    """`retry=Retry(...)` sets how the fetch retries; without it, the defaults."""
    retry = Retry(max_attempts=7, backoff=0.25, max_retry_after=5, attempt_timeout=3)
    assert MosaicAuth(CLIENT_ID, CLIENT_SECRET, retry=retry)._states.retry is retry
    default = MosaicAuth(CLIENT_ID, CLIENT_SECRET)._endpoint.retry
    assert default == Retry(max_attempts=3, backoff=0.5, max_retry_after=30, attempt_timeout=10)


@pytest.mark.parametrize(("client_id", "client_secret"), [("", "x"), ("x", ""), (None, "x")])
def test_missing_credentials_are_refused(client_id: object, client_secret: object) -> None:
    """An empty or missing client id or secret is a ConfigurationError that shows no secret."""
    with pytest.raises(ConfigurationError, match="client_") as caught:
        MosaicAuth(client_id, client_secret)  # type: ignore[arg-type]
    assert "x" not in str(caught.value).replace("client_", "")


class _RefusesEverything(set[str]):
    def __contains__(self, item: object) -> bool:
        return False


async def test_a_get_token_failure_names_the_token_request_without_its_body(
    mosaic: FakeMosaic,
) -> None:
    """From `get_token()`, a TokenRequestError (an httpx.HTTPError) names the token request as
    its `request`, with no body: the body holds the secret."""
    mosaic.queued_responses.append(httpx.Response(401, json={"error": "invalid_client"}))
    with pytest.raises(httpx.HTTPError) as caught:
        await mosaic.auth().get_token()
    assert caught.value.request.url == TOKEN_URL
    assert caught.value.request.content == b""
