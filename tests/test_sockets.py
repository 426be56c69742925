"""MosaicAuth over real sockets on 127.0.0.1: a token endpoint and an API in a server thread."""

from __future__ import annotations

import asyncio
import io
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl

import anyio
import httpx
import pytest
import trio

from mosaic_httpx_auth import AuthEvent, MosaicAuth, Retry, TokenRequestError, TokenResponseError

from .helpers import CLIENT_ID, CLIENT_SECRET, RISK, FakeClock, make_jwt

if TYPE_CHECKING:
    from collections.abc import Iterator

    from mosaic_httpx_auth.testing import MosaicEmulator

pytestmark = pytest.mark.anyio


class _Mosaic(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # tests open dozens of connections at once

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.lock = threading.Lock()
        self.token_requests = 0
        self.valid_tokens: set[str] = set()
        self.token_status = 200
        """What the token endpoint answers: 200 with a token, or this status."""
        self.huge_token_response = False
        """Answer token requests with a 512 MiB body, counting what was sent."""
        self.bytes_sent = 0
        self.api_requests = 0
        self.api_bodies: list[bytes] = []
        self.token_delay = 0.0
        """Seconds each token request takes."""
        self.failures_left = 0
        """How many token requests to answer 503 before answering with tokens again."""

    @property
    def base_url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"


class _Handler(BaseHTTPRequestHandler):
    server: _Mosaic
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.path != "/oidc/token":
            with self.server.lock:
                self.server.api_bodies.append(body)
            self.do_GET()
            return
        form = dict(parse_qsl(body.decode()))
        if form.get("client_secret") != CLIENT_SECRET:
            self._answer(401, {"error": "invalid_client"})
            return
        time.sleep(self.server.token_delay)
        if self.server.huge_token_response:
            self._answer_huge()
            return
        with self.server.lock:
            failing = self.server.failures_left > 0
            self.server.failures_left -= failing
        if failing:
            self._answer(503, {"message": "busy"})
            return
        if self.server.token_status != 200:
            self._answer(self.server.token_status, {"message": "down"})
            return
        token = make_jwt(aud=form.get("resource", "userid-api"), exp=4_000_000_000)
        with self.server.lock:
            self.server.token_requests += 1
            self.server.valid_tokens.add(token)
        self._answer(200, {"access_token": token, "token_type": "Bearer", "expires_in": 3600})

    def do_GET(self) -> None:
        with self.server.lock:
            self.server.api_requests += 1
        _, _, token = self.headers.get("Authorization", "").partition("Bearer ")
        with self.server.lock:
            valid = token in self.server.valid_tokens
        if valid:
            self._answer(200, {"path": self.path})
        else:
            self._answer(401, {"message": "Invalid token", "error_code": 401})

    def _answer(self, status: int, body: object) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _answer_huge(self) -> None:
        chunk = b" " * 65536
        size = 512 * 1024 * 1024
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(size))
        self.end_headers()
        try:
            while self.server.bytes_sent < size:
                self.wfile.write(chunk)
                self.server.bytes_sent += len(chunk)
        except OSError:
            self.close_connection = True  # the client hung up, as it should

    def log_message(self, format: str, *args: object) -> None:
        """Keep the test output quiet."""


@pytest.fixture
def server() -> Iterator[_Mosaic]:
    server = _Mosaic()
    # A short poll, so that shutdown() returns at once rather than within half a second.
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


async def test_concurrent_requests_over_loopback_share_one_token(server: _Mosaic) -> None:
    """Over real sockets, 50 concurrent calls succeed on a single token request."""
    auth = MosaicAuth(CLIENT_ID, CLIENT_SECRET, base_url=server.base_url, resource=RISK)
    statuses: list[int] = []
    async with auth, httpx.AsyncClient(auth=auth, base_url=server.base_url) as client:

        async def call(n: int) -> None:
            statuses.append((await client.get(f"/risk/v1/{n}")).status_code)

        async with anyio.create_task_group() as tasks:
            for n in range(50):
                tasks.start_soon(call, n)

        # A revoked token is recovered by the 401 retry, over the wire too.
        with server.lock:
            server.valid_tokens.clear()
        statuses.append((await client.get("/risk/v1/after-revocation")).status_code)
    assert statuses == [200] * 51
    assert server.token_requests == 2


def test_one_auth_serves_one_event_loop_after_another(server: _Mosaic) -> None:
    """One MosaicAuth, never closed, fetches tokens from asyncio.run, a second asyncio.run and
    then trio, each over connections of its own loop."""
    clock = FakeClock()
    auth = MosaicAuth(
        CLIENT_ID, CLIENT_SECRET, base_url=server.base_url, resource=RISK, clock=clock
    )

    async def call() -> int:
        async with httpx.AsyncClient(auth=auth) as client:
            return (await client.get(f"{server.base_url}/risk/v1/x")).status_code

    statuses = [asyncio.run(call())]
    with server.lock:
        server.valid_tokens.clear()  # each next loop must fetch a token of its own
    statuses.append(asyncio.run(call()))
    with server.lock:
        server.valid_tokens.clear()
    statuses.append(trio.run(call))
    assert statuses == [200, 200, 200]
    assert server.token_requests == 3


def test_stale_if_error_holds_on_a_later_event_loop(server: _Mosaic) -> None:
    """A token fetched on one event loop is still served on the next while its refresh fails
    there: the failure is a token request error, handled as such."""
    clock = FakeClock()
    refresh_failures: list[AuthEvent] = []
    refresh_failed: list[anyio.Event] = []

    def on_event(event: AuthEvent) -> None:
        if event.name == "token_refresh_failed":
            refresh_failures.append(event)
            refresh_failed[-1].set()

    auth = MosaicAuth(
        CLIENT_ID,
        CLIENT_SECRET,
        base_url=server.base_url,
        resource=RISK,
        clock=clock,
        on_event=on_event,
    )

    async def call() -> int:
        async with httpx.AsyncClient(auth=auth) as client:
            return (await client.get(f"{server.base_url}/risk/v1/x")).status_code

    async def call_and_wait_for_the_refresh() -> int:
        refresh_failed.append(anyio.Event())
        status = await call()
        with anyio.fail_after(5):
            await refresh_failed[-1].wait()
        return status

    assert asyncio.run(call()) == 200
    clock.advance(3600 - 60 - 100)
    server.token_status = 503
    assert asyncio.run(call_and_wait_for_the_refresh()) == 200
    assert [event.status_code for event in refresh_failures] == [503]
    assert auth.stats().stale_served == 1


async def test_an_in_memory_upload_refused_over_a_socket_is_sent_again(server: _Mosaic) -> None:
    """A multipart upload of bytes and a seekable file, answered 401 after a revocation, is
    sent again whole with a new token over a real socket."""
    auth = MosaicAuth(CLIENT_ID, CLIENT_SECRET, base_url=server.base_url, resource=RISK)
    async with auth, httpx.AsyncClient(auth=auth, base_url=server.base_url) as client:
        await client.get("/risk/v1/warm")
        with server.lock:
            server.valid_tokens.clear()
            server.api_requests = 0
        response = await client.post(
            "/risk/v1/upload", files={"doc": io.BytesIO(b"abc"), "note": ("note.txt", b"xyz")}
        )
    assert response.status_code == 200
    assert server.api_requests == 2
    first, again = server.api_bodies
    assert first == again
    assert b"abc" in again
    assert b"xyz" in again


async def test_a_huge_token_response_is_cut_off_early(server: _Mosaic) -> None:
    """A 512 MiB answer from the token endpoint is refused after a bounded read."""
    server.huge_token_response = True
    auth = MosaicAuth(
        CLIENT_ID,
        CLIENT_SECRET,
        base_url=server.base_url,
        resource=RISK,
        retry=Retry(max_attempts=1),
    )
    async with auth:
        with pytest.raises(TokenResponseError, match="more than 256 KiB"):
            await auth.get_token()
    assert server.bytes_sent < 64 * 1024 * 1024


def test_two_event_loops_at_once_share_one_fetch_and_its_retries(server: _Mosaic) -> None:
    """An asyncio loop and a trio loop on two threads, 50 calls each on a cold cache, share one
    flight: its first attempt's 503 is retried for both, and two token requests serve all."""
    server.token_delay = 0.2
    server.failures_left = 1
    auth = MosaicAuth(
        CLIENT_ID, CLIENT_SECRET, base_url=server.base_url, resource=RISK, retry=Retry(backoff=0)
    )
    statuses: list[int] = []
    started = threading.Barrier(2)

    async def calls() -> None:
        started.wait()
        async with (
            httpx.AsyncClient(auth=auth, base_url=server.base_url) as client,
            anyio.create_task_group() as tasks,
        ):
            for n in range(50):
                tasks.start_soon(call, client, n)

    async def call(client: httpx.AsyncClient, n: int) -> None:
        statuses.append((await client.get(f"/risk/v1/{n}")).status_code)

    threads = [
        threading.Thread(target=asyncio.run, args=(calls(),)),
        threading.Thread(target=trio.run, args=(calls,)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert statuses == [200] * 100
    assert server.token_requests == 1
    assert auth.stats().token_requests == 2


async def test_a_refused_connection_is_named_as_such() -> None:
    """A token endpoint where nothing listens gives an error saying the connection was refused,
    and an httpx.HTTPError naming the API request that needed the token."""
    with socket.socket() as placeholder:
        placeholder.bind(("127.0.0.1", 0))
        port = placeholder.getsockname()[1]  # free, and nothing will listen on it
    auth = MosaicAuth(CLIENT_ID, CLIENT_SECRET, token_url=f"http://127.0.0.1:{port}/oidc/token")
    # A request waits for its token as long as its pool timeout allows: a short one fails
    # fast, once the first attempt has had time to be refused (a loaded machine takes a while
    # to open the token client).
    timeout = httpx.Timeout(5.0, pool=2.0)
    async with auth, httpx.AsyncClient(auth=auth, timeout=timeout) as client:
        with pytest.raises(httpx.HTTPError) as caught:
            await client.get(f"http://127.0.0.1:{port}/cis/v1/users")
    assert isinstance(caught.value, TokenRequestError)
    assert "the connection was refused" in str(caught.value)
    assert caught.value.request.url.path == "/cis/v1/users"


async def test_a_certificate_that_cannot_be_verified_is_said_and_not_retried(
    mosaic_emulator: MosaicEmulator,
) -> None:
    """Against a token endpoint whose TLS certificate is not trusted, the error says so after
    one attempt: asking again would meet the same certificate."""
    client = mosaic_emulator.register_client()
    with mosaic_emulator.serve(tls=True) as base_url:
        auth = MosaicAuth(client.client_id, client.client_secret, base_url=base_url)
        async with auth:
            with pytest.raises(TokenRequestError, match="certificate could not be verified"):
                await auth.get_token()
    assert auth.stats().token_requests == 1
