"""MosaicAuth's request flow: the bearer header, resource routing and the 401 retry."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import anyio
import httpx
import pytest

from mosaic_httpx_auth import (
    AccessToken,
    ConfigurationError,
    MosaicAuth,
    TokenRequestError,
    UnsupportedClientError,
)

from .helpers import CLIENT_ID, CLIENT_SECRET, RISK, VERIFY, FakeClock, FakeMosaic

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

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


async def test_a_body_the_transport_kept_is_replayed(mosaic: FakeMosaic) -> None:
    """A streamed body that the transport read into memory is sent again after a 401."""

    async def body() -> AsyncIterator[bytes]:
        yield b"chunk"

    async with mosaic.api_client(mosaic.auth()) as client:
        await client.get(f"{API}/cis/v1/users")
        mosaic.revoke_all()
        response = await client.post(f"{API}/cis/v1/users", content=body())
    assert response.status_code == 200
    assert mosaic.api_requests[-1].content == b"chunk"
    assert mosaic.token_requests[None] == 2


async def test_a_401_keeps_a_newer_token_fetched_meanwhile(mosaic: FakeMosaic) -> None:
    """A 401 for an old token does not discard the newer token another request already got."""
    auth = mosaic.auth()
    old = await auth.get_token()
    mosaic.revoke_all()
    # Another request meets the 401 first and replaces the token.
    store = auth._store
    await store.invalidate(None, old)
    newer = await auth.get_token()
    # Now the stale request's 401 arrives: it must not discard `newer`.
    await store.invalidate(None, old)
    assert await auth.get_token() is newer
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


def test_sync_client_gets_a_clear_error(mosaic: FakeMosaic) -> None:
    """Used with httpx.Client, MosaicAuth says to use httpx.AsyncClient."""
    transport = httpx.MockTransport(lambda request: httpx.Response(200))
    with (
        httpx.Client(auth=mosaic.auth(), transport=transport) as client,
        pytest.raises(UnsupportedClientError, match=r"httpx\.AsyncClient"),
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
    own = auth._store.endpoint._client()
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
    mosaic: FakeMosaic, caplog: pytest.LogCaptureFixture
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
    ],
)
def test_bad_settings_are_refused(options: dict[str, object], message: str) -> None:
    """Settings MosaicAuth cannot work with raise a ConfigurationError naming the setting."""
    with pytest.raises(ConfigurationError, match=message):
        MosaicAuth(CLIENT_ID, CLIENT_SECRET, **options)  # type: ignore[arg-type]


@pytest.mark.parametrize(("client_id", "client_secret"), [("", "x"), ("x", ""), (None, "x")])
def test_missing_credentials_are_refused(client_id: object, client_secret: object) -> None:
    """An empty or missing client id or secret is a ConfigurationError that shows no secret."""
    with pytest.raises(ConfigurationError, match="client_") as caught:
        MosaicAuth(client_id, client_secret)  # type: ignore[arg-type]
    assert "x" not in str(caught.value).replace("client_", "")


class _RefusesEverything(set[str]):
    def __contains__(self, item: object) -> bool:
        return False
