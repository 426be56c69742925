"""MosaicAuth over real sockets on 127.0.0.1: a token endpoint and an API in a server thread."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl

import anyio
import httpx
import pytest

from mosaic_httpx_auth import MosaicAuth

from .helpers import CLIENT_ID, CLIENT_SECRET, RISK, make_jwt

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.anyio


class _Mosaic(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.lock = threading.Lock()
        self.token_requests = 0
        self.valid_tokens: set[str] = set()

    @property
    def base_url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"


class _Handler(BaseHTTPRequestHandler):
    server: _Mosaic
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        form = dict(parse_qsl(body.decode()))
        if self.path != "/oidc/token" or form.get("client_secret") != CLIENT_SECRET:
            self._answer(401, {"error": "invalid_client"})
            return
        token = make_jwt(aud=form.get("resource", "userid-api"), exp=4_000_000_000)
        with self.server.lock:
            self.server.token_requests += 1
            self.server.valid_tokens.add(token)
        self._answer(200, {"access_token": token, "token_type": "Bearer", "expires_in": 3600})

    def do_GET(self) -> None:
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

    def log_message(self, format: str, *args: object) -> None:
        """Keep the test output quiet."""


@pytest.fixture
def server() -> Iterator[_Mosaic]:
    server = _Mosaic()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
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
