"""The Mosaic emulator as an ASGI app, served on 127.0.0.1, and its pytest plugin."""

from __future__ import annotations

import contextlib
import gc
import logging
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from types import ModuleType
from typing import TYPE_CHECKING, Any

import anyio
import httpx
import pytest

import mosaic_httpx_auth.testing
from mosaic_httpx_auth import MosaicAuth
from mosaic_httpx_auth.testing import MosaicEmulator, RegisteredClient, client_ssl_context

from .helpers import RISK, VERIFY
from .test_emulator import SIGNING_KEY, TOKEN_URL, credentials
from .test_emulator_auth_methods import (
    RSA_KEY,
    assert_invalid_client,
    assertion_form,
    make_assertion,
)

if TYPE_CHECKING:
    from collections.abc import Iterator, MutableMapping

pytest_plugins = ["pytest_mosaic_httpx_auth"]


@pytest.fixture
def emulator() -> MosaicEmulator:
    return MosaicEmulator(signing_key=SIGNING_KEY)


@pytest.fixture
def base_url(emulator: MosaicEmulator) -> Iterator[str]:
    with emulator.serve() as url:
        yield url


# The package


def test_all_is_exactly_the_public_surface() -> None:
    """`mosaic_httpx_auth.testing.__all__` lists every public name it exports, and no other."""
    public = {
        name
        for name, value in vars(mosaic_httpx_auth.testing).items()
        if not name.startswith("_") and not isinstance(value, ModuleType)
    }
    public -= {"annotations"}  # from __future__
    assert mosaic_httpx_auth.testing.__all__ == sorted(public)


def test_importing_the_emulator_does_not_import_uvicorn() -> None:
    """uvicorn, an optional extra, is imported only to serve on a port."""
    code = "import sys, mosaic_httpx_auth.testing; print('uvicorn' in sys.modules)"
    result = subprocess.run(  # noqa: S603 - our own interpreter, fixed arguments
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"


# ASGI


@pytest.mark.anyio
async def test_asgi_app_issues_tokens_and_guards_apis(
    emulator: MosaicEmulator, client: RegisteredClient
) -> None:
    """Through httpx.ASGITransport the app issues a token that its risk API accepts."""
    transport = httpx.ASGITransport(app=emulator.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        token = (await http.post("/oidc/token", data=credentials(client, RISK))).json()
        response = await http.get(
            "/risk/v1/recommendation?action_token=abc",
            headers={"Authorization": f"Bearer {token['access_token']}"},
        )
        refused = await http.get("/risk/v1/recommendation")
    assert response.status_code == 200
    assert response.json()["path"] == "/risk/v1/recommendation"
    assert response.json()["client_id"] == client.client_id
    assert refused.status_code == 401
    assert refused.json() == {"message": "Invalid token", "error_code": 401}


@pytest.mark.anyio
async def test_asgi_app_builds_discovery_urls_from_the_host_header(
    emulator: MosaicEmulator,
) -> None:
    """The app answers discovery with URLs on the host the request named."""
    transport = httpx.ASGITransport(app=emulator.app)
    async with httpx.AsyncClient(transport=transport) as http:
        response = await http.get(
            "http://emulator.test:8080/cis/oidc/.well-known/openid-configuration"
        )
    assert response.json()["token_endpoint"] == "http://emulator.test:8080/oidc/token"


@pytest.mark.anyio
async def test_asgi_app_raises_a_transport_error_for_a_dropped_connection(
    emulator: MosaicEmulator, client: RegisteredClient
) -> None:
    """Under httpx.ASGITransport a dropped-connection fault raises httpx.RemoteProtocolError."""
    emulator.fail_next_token_requests(drop_connection=True)
    transport = httpx.ASGITransport(app=emulator.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        with pytest.raises(httpx.RemoteProtocolError):
            await http.post("/oidc/token", data=credentials(client))


@pytest.mark.anyio
async def test_asgi_app_completes_the_lifespan_protocol(emulator: MosaicEmulator) -> None:
    """The app acknowledges lifespan startup and shutdown, so any ASGI server can run it."""
    incoming = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> MutableMapping[str, Any]:
        return incoming.pop(0)

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    with anyio.fail_after(5):
        await emulator.app({"type": "lifespan"}, receive, send)
    assert sent == [{"type": "lifespan.startup.complete"}, {"type": "lifespan.shutdown.complete"}]


@pytest.mark.anyio
async def test_asgi_app_refuses_websockets(emulator: MosaicEmulator) -> None:
    """The app serves HTTP only and says so for any other scope."""

    async def receive() -> MutableMapping[str, Any]:
        raise AssertionError("not reached")

    async def send(message: MutableMapping[str, Any]) -> None:
        raise AssertionError("not reached")

    with pytest.raises(ValueError, match="HTTP only"):
        await emulator.app({"type": "websocket"}, receive, send)


# Served on 127.0.0.1


@pytest.mark.anyio
async def test_served_emulator_works_with_mosaic_auth_over_a_socket(
    emulator: MosaicEmulator, client: RegisteredClient, base_url: str
) -> None:
    """MosaicAuth gets a token over a real socket and reaches the served risk API with it."""
    assert base_url.startswith("http://127.0.0.1:")
    async with httpx.AsyncClient() as token_client:
        auth = MosaicAuth(
            client.client_id,
            client.client_secret,
            base_url=base_url,
            resource=RISK,
            http_client=token_client,
        )
        async with httpx.AsyncClient(auth=auth, base_url=base_url) as http:
            first = await http.get("/risk/v1/recommendation")
            second = await http.get("/risk/v1/recommendation")
    assert (first.status_code, second.status_code) == (200, 200)
    assert emulator.token_requests == {RISK: 1}
    assert emulator.api_calls == {"/risk/v1/recommendation": 2}


@pytest.mark.anyio
async def test_served_emulator_takes_no_assertion_audience_from_the_host_header(
    emulator: MosaicEmulator, base_url: str
) -> None:
    """Whatever Host a request carries, a client assertion's aud must name one of the
    emulator's own token endpoint URLs (where it is served, or Mosaic's): one made out to the
    Host header's is refused."""
    client = emulator.register_client(jwks=RSA_KEY)
    now = int(time.time())

    async def token_request(http: httpx.AsyncClient, audience: str) -> httpx.Response:
        assertion = make_assertion(client.client_id, aud=audience, iat=now, exp=now + 60)
        form = assertion_form(assertion)
        return await http.post("/oidc/token", data=form, headers={"Host": "attacker.example"})

    async with httpx.AsyncClient(base_url=base_url) as http:
        spoofed = await token_request(http, "http://attacker.example/oidc/token")
        served = await token_request(http, f"{base_url}/cis/oidc/token")
        mosaic = await token_request(http, TOKEN_URL)
    assert_invalid_client(spoofed, saying="aud must be the token endpoint URL")
    assert (served.status_code, mosaic.status_code) == (200, 200), served.text


@pytest.mark.anyio
async def test_served_emulator_shares_state_with_the_test_thread(
    emulator: MosaicEmulator, base_url: str
) -> None:
    """Clients registered, tokens revoked and faults queued after serving starts take effect."""
    late = emulator.register_client(resources=[VERIFY])
    async with httpx.AsyncClient(base_url=base_url) as http:
        token = (await http.post("/oidc/token", data=credentials(late, VERIFY))).json()
        headers = {"Authorization": f"Bearer {token['access_token']}"}
        assert (await http.get("/verify/v1/x", headers=headers)).status_code == 200
        emulator.revoke_tokens()
        assert (await http.get("/verify/v1/x", headers=headers)).status_code == 401
        emulator.fail_next_token_requests(status=429, headers={"Retry-After": "2"})
        limited = await http.post("/oidc/token", data=credentials(late))
    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "2"
    assert limited.json()["error_code"] == 429
    assert emulator.token_requests == {VERIFY: 1, None: 1}


def test_served_emulator_revokes_tokens_over_a_socket(
    emulator: MosaicEmulator, client: RegisteredClient, base_url: str
) -> None:
    """``POST /emulator/revoke`` on the served emulator revokes every token: the API refuses
    them, and a MosaicAuth calling it gets a new one by its 401 retry."""
    with (
        MosaicAuth(
            client.client_id, client.client_secret, base_url=base_url, resource=RISK
        ) as auth,
        httpx.Client(auth=auth, base_url=base_url) as http,
    ):
        first = http.post("/risk/v1/action/recommendation")
        revoked = httpx.post(f"{base_url}/emulator/revoke")
        second = http.post("/risk/v1/action/recommendation")
    assert (revoked.status_code, revoked.json()) == (200, {"revoked": 1})
    assert (first.status_code, second.status_code) == (200, 200)
    assert [response.status_code for response in second.history] == [401]
    assert emulator.token_requests == {RISK: 2}


@pytest.mark.anyio
async def test_served_emulator_drops_the_connection_quietly(
    emulator: MosaicEmulator,
    client: RegisteredClient,
    base_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A dropped connection reaches a socket client as a transport error, logs no server error,
    and the server keeps answering."""
    emulator.fail_next_token_requests(drop_connection=True)
    with caplog.at_level(logging.WARNING):
        async with httpx.AsyncClient(base_url=base_url) as http:
            with pytest.raises(httpx.RemoteProtocolError):
                await http.post("/oidc/token", data=credentials(client))
            after = await http.post("/oidc/token", data=credentials(client))
    assert after.status_code == 200
    assert not caplog.records


@pytest.mark.anyio
async def test_served_emulator_delays_token_requests(
    emulator: MosaicEmulator, client: RegisteredClient, base_url: str
) -> None:
    """A delay fault holds back a served token answer for its delay, then answers as usual."""
    emulator.delay_next_token_requests(0.2)
    async with httpx.AsyncClient(base_url=base_url) as http:
        started = time.monotonic()
        with anyio.fail_after(10):
            response = await http.post("/oidc/token", data=credentials(client))
        elapsed = time.monotonic() - started
    assert response.status_code == 200
    assert elapsed >= 0.2


@pytest.mark.anyio
async def test_serve_stops_the_server_on_exit(
    emulator: MosaicEmulator, client: RegisteredClient
) -> None:
    """Leaving serve() stops the server thread and closes the port."""
    before = set(threading.enumerate())
    with emulator.serve() as base_url:
        (server_thread,) = set(threading.enumerate()) - before
        async with httpx.AsyncClient(base_url=base_url) as http:
            assert (await http.post("/oidc/token", data=credentials(client))).status_code == 200
    assert not server_thread.is_alive()
    async with httpx.AsyncClient(base_url=base_url) as http:
        with pytest.raises(httpx.ConnectError):
            await http.post("/oidc/token", data=credentials(client))


@pytest.mark.parametrize("tls", [False, True], ids=["http", "https"])
def test_served_connections_send_without_waiting_for_acks(
    emulator: MosaicEmulator, client: RegisteredClient, tls: bool
) -> None:
    """The served emulator's connections have Nagle's algorithm off (TCP_NODELAY), over HTTP
    and HTTPS: with it on, a response's body waits for the client's delayed ACK of its headers,
    40 ms more on every request."""
    with httpx.Client(verify=client_ssl_context()) as http, emulator.serve(tls=tls) as base_url:
        assert http.post(f"{base_url}/oidc/token", data=credentials(client)).is_success
        port = int(base_url.rsplit(":", 1)[1])
        (accepted,) = _accepted_connections(port)
        assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)


def _accepted_connections(port: int) -> list[socket.socket]:
    """The server's ends of the open connections to `port` in this process."""
    found = []
    for candidate in gc.get_objects():
        if (
            isinstance(candidate, socket.socket)
            and candidate.family == socket.AF_INET
            and candidate.fileno() != -1
        ):
            with contextlib.suppress(OSError):  # a listener has no peer
                if candidate.getsockname()[1] == port and candidate.getpeername():
                    found.append(candidate)
    return found


@pytest.mark.parametrize("tls", [False, True], ids=["http", "https"])
def test_serve_stops_promptly_with_a_keep_alive_client_connected(
    emulator: MosaicEmulator, client: RegisteredClient, tls: bool
) -> None:
    """Leaving serve() takes well under a second while a client still holds an idle keep-alive
    connection, over HTTP and HTTPS."""
    with httpx.Client(verify=client_ssl_context()) as http:
        with emulator.serve(tls=tls) as base_url:
            assert http.post(f"{base_url}/oidc/token", data=credentials(client)).is_success
            started = time.monotonic()
        stopped_in = time.monotonic() - started
    assert stopped_in < 1.0


@pytest.mark.parametrize("tls", [False, True], ids=["http", "https"])
def test_serve_answers_a_request_in_flight_then_stops_promptly(
    emulator: MosaicEmulator, client: RegisteredClient, tls: bool
) -> None:
    """Leaving serve() while a token request is in flight waits for its answer, and little
    longer, over HTTP and HTTPS."""
    emulator.delay_next_token_requests(0.3)
    with ThreadPoolExecutor(1) as pool, httpx.Client(verify=client_ssl_context()) as http:
        with emulator.serve(tls=tls) as base_url:
            answer = pool.submit(http.post, f"{base_url}/oidc/token", data=credentials(client))
            deadline = time.monotonic() + 10
            while not emulator.token_requests:  # until the request reaches the emulator
                assert time.monotonic() < deadline
                time.sleep(0.005)
            started = time.monotonic()
        stopped_in = time.monotonic() - started
        assert answer.result(timeout=10).status_code == 200
    # The answer's 0.3 s delay, and little more: not serve()'s 5 s shutdown timeout.
    assert stopped_in < 1.0


# The pytest plugin


@pytest.mark.anyio
async def test_plugin_fixtures_give_an_emulator_and_a_registered_client(
    mosaic_emulator: MosaicEmulator, mosaic_client: RegisteredClient
) -> None:
    """The plugin's fixtures give an emulator and a client that can get risk and verify tokens."""
    assert mosaic_client.resources == {RISK, VERIFY}
    async with httpx.AsyncClient(transport=mosaic_emulator.transport()) as http:
        response = await http.post(
            "https://api.transmitsecurity.io/oidc/token", data=credentials(mosaic_client, RISK)
        )
    assert response.status_code == 200
