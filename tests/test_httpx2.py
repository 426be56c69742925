"""`mosaic_httpx_auth.httpx2.MosaicAuth` with httpx2's clients, over real sockets on
127.0.0.1: a representative part of the promises, async and sync, and token requests that go
out through httpx2."""

from __future__ import annotations

import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import anyio
import pytest

httpx2 = pytest.importorskip("httpx2", reason="httpx2 needs Python 3.11")

from mosaic_httpx_auth import ConfigurationError, Retry, TokenRequestError  # noqa: E402
from mosaic_httpx_auth.httpx2 import MosaicAuth  # noqa: E402
from mosaic_httpx_auth.testing import client_ssl_context, make_client_certificate  # noqa: E402
from mosaic_httpx_auth.testing._tls import write_server_certificate  # noqa: E402

from .helpers import RISK, FakeClock  # noqa: E402

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from mosaic_httpx_auth.testing import MosaicEmulator, RegisteredClient

pytestmark = pytest.mark.anyio

RECOMMENDATION = "/risk/v1/action/recommendation"


@pytest.fixture
def auth(client: RegisteredClient, mosaic_url: str, clock: FakeClock) -> Iterator[MosaicAuth]:
    with MosaicAuth(
        client.client_id,
        client.client_secret,
        base_url=mosaic_url,
        token_url=f"{mosaic_url}/oidc/token",
        resource=RISK,
        clock=clock,
    ) as auth:
        yield auth


async def test_an_async_burst_makes_one_token_request_through_httpx2(
    auth: MosaicAuth, mosaic_url: str, emulator: MosaicEmulator
) -> None:
    """httpx2.AsyncClient requests at once share one token, requested with httpx2."""
    statuses: list[int] = []
    async with httpx2.AsyncClient(auth=auth, base_url=mosaic_url) as http:

        async def call() -> None:
            statuses.append((await http.post(RECOMMENDATION)).status_code)

        async with anyio.create_task_group() as tasks:
            for _ in range(20):
                tasks.start_soon(call)
    assert statuses == [200] * 20
    assert emulator.token_requests == {RISK: 1}
    assert isinstance(await auth._endpoint._client(), httpx2.AsyncClient)
    await auth.aclose()


async def test_a_revoked_token_is_replaced_once(
    auth: MosaicAuth, mosaic_url: str, emulator: MosaicEmulator
) -> None:
    """A 401 to a revoked token is retried once with a new one, as with httpx."""
    async with httpx2.AsyncClient(auth=auth, base_url=mosaic_url) as http:
        assert (await http.post(RECOMMENDATION)).status_code == 200
        emulator.revoke_tokens()
        assert (await http.post(RECOMMENDATION, json={"a": 1})).status_code == 200
    assert emulator.token_requests == {RISK: 2}
    assert auth.stats().unauthorized_retries == 1
    await auth.aclose()


def test_sync_threads_on_a_cold_cache_make_one_token_request(
    auth: MosaicAuth, mosaic_url: str, emulator: MosaicEmulator
) -> None:
    """httpx2.Client in 20 threads at once, cold, shares one token request."""
    start = threading.Barrier(20)

    def call(_: object) -> int:
        with httpx2.Client(auth=auth, base_url=mosaic_url) as http:
            start.wait()
            return int(http.post(RECOMMENDATION).status_code)

    with ThreadPoolExecutor(20) as pool:
        assert list(pool.map(call, range(20))) == [200] * 20
    assert emulator.token_requests == {RISK: 1}


def test_a_streamed_body_is_not_sent_again(
    auth: MosaicAuth, mosaic_url: str, emulator: MosaicEmulator
) -> None:
    """A 401 to a request whose body was streamed returns the 401: the body cannot be sent
    twice. (The flow asks httpx2's own ByteStream, not httpx's.)"""
    with httpx2.Client(auth=auth, base_url=mosaic_url) as http:
        assert http.post(RECOMMENDATION).status_code == 200
        emulator.revoke_tokens()
        streamed = http.post(RECOMMENDATION, content=iter([b"{}"]))
        assert streamed.status_code == 401
        assert http.post(RECOMMENDATION, content=b"{}").status_code == 200


def test_a_refused_fetch_raises_token_request_error(
    client: RegisteredClient, mosaic_url: str, clock: FakeClock
) -> None:
    """A token the endpoint refuses is a TokenRequestError naming the httpx2 request."""
    auth = MosaicAuth(
        client.client_id,
        "not-the-secret",
        base_url=mosaic_url,
        token_url=f"{mosaic_url}/oidc/token",
        resource=RISK,
        clock=clock,
    )
    with auth, httpx2.Client(auth=auth, base_url=mosaic_url) as http:
        with pytest.raises(TokenRequestError) as raised:
            http.post(RECOMMENDATION)
        assert isinstance(raised.value.request, httpx2.Request)


def test_http_client_must_be_an_httpx2_client() -> None:
    """The token client of the httpx2 auth is an httpx2.AsyncClient, not an httpx one."""
    import httpx

    with pytest.raises(ConfigurationError, match=r"httpx2\.AsyncClient"):
        MosaicAuth("id", "secret", http_client=httpx.AsyncClient())


def test_an_unreachable_token_endpoint_is_retried_and_named(clock: FakeClock) -> None:
    """httpx2's own transport errors are a TokenRequestError too, retried like httpx's."""
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    with MosaicAuth("id", "secret", base_url=url, retry=Retry(backoff=0), clock=clock) as auth:
        with pytest.raises(TokenRequestError, match="the connection was refused"):
            auth.get_token_sync()
        assert auth.stats().token_requests == 3


@pytest.mark.parametrize("source", ["ssl_context", "environment"])
async def test_tls_client_auth_presents_the_certificate_through_httpx2(
    emulator: MosaicEmulator,
    clock: FakeClock,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    source: str,
) -> None:
    """tls_client_auth with ssl_context=, or from the environment's certificate files, asks
    for tokens through httpx2 clients presenting the certificate: on the auth's own thread for
    httpx2.Client, on the caller's event loop for httpx2.AsyncClient."""
    certificate = make_client_certificate(tmp_path)
    client = emulator.register_client(certificate_sha256=certificate.sha256, resources=[RISK])
    context = client_ssl_context(certificate)
    with emulator.serve(tls=True) as base_url:
        if source == "ssl_context":
            auth = MosaicAuth(
                client.client_id,
                client_auth="tls_client_auth",
                ssl_context=context,
                base_url=base_url,
                resource=RISK,
                clock=clock,
            )
        else:
            ca_path = write_server_certificate(tmp_path).client_ca_path
            monkeypatch.setenv("SSL_CERT_FILE", str(ca_path))
            monkeypatch.setenv("MOSAIC_CLIENT_CERTIFICATE_FILE", str(certificate.cert_path))
            monkeypatch.setenv("MOSAIC_CLIENT_KEY_FILE", str(certificate.key_path))
            auth = MosaicAuth.from_env(
                client_id=client.client_id, base_url=base_url, resource=RISK, clock=clock
            )

        def sync_call() -> int:
            with httpx2.Client(auth=auth, base_url=base_url, verify=context) as http:
                return int(http.post(RECOMMENDATION).status_code)

        assert await anyio.to_thread.run_sync(sync_call) == 200
        emulator.revoke_tokens()  # the async client's request needs a token of its own
        async with httpx2.AsyncClient(auth=auth, base_url=base_url, verify=context) as http:
            assert (await http.post(RECOMMENDATION)).status_code == 200
        assert isinstance(await auth._endpoint._client(), httpx2.AsyncClient)
        await auth.aclose()
        await anyio.to_thread.run_sync(auth.close)
    assert emulator.token_requests == {RISK: 2}
