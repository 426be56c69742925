"""Warm per-request cost of MosaicAuth against a static Authorization header.

Two measures, each taking the best of interleaved rounds so that machine noise hits both sides
alike:

- through `httpx.AsyncClient` over an in-memory transport: the whole cost of a request as a
  user pays it, where the target is MosaicAuth within 3% of the static header;
- the auth flow alone, stepped by hand: what MosaicAuth itself adds per request.

Run: `make bench` (or `.venv/bin/python benchmarks/warm_request.py`).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import anyio
import httpx

from mosaic_httpx_auth import MosaicAuth

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator

CLIENT_REQUESTS = 2_000
FLOW_STEPS = 50_000
ROUNDS = 9
URL = "https://api.transmitsecurity.io/cis/v1/users"
TOKEN = "header.payload.signature"


class StaticBearer(httpx.Auth):
    """The baseline: a fixed header, what a hand-managed token costs."""

    def __init__(self, token: str) -> None:
        self.header = f"Bearer {token}"

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        request.headers["Authorization"] = self.header
        yield request


def answer(request: httpx.Request) -> httpx.Response:
    if request.url.path == "/oidc/token":
        return httpx.Response(200, json={"access_token": TOKEN, "expires_in": 3600})
    return httpx.Response(200)


async def client_round(client: httpx.AsyncClient) -> float:
    """Seconds per request through the client."""
    start = time.perf_counter()
    for _ in range(CLIENT_REQUESTS):
        await client.get(URL)
    return (time.perf_counter() - start) / CLIENT_REQUESTS


async def flow_round(auth: httpx.Auth, request: httpx.Request) -> float:
    """Seconds per auth flow step: set the header and hand the request back."""
    start = time.perf_counter()
    for _ in range(FLOW_STEPS):
        flow = auth.async_auth_flow(request)
        await flow.__anext__()
        await flow.aclose()
    return (time.perf_counter() - start) / FLOW_STEPS


async def main() -> None:
    static = StaticBearer(TOKEN)
    mosaic = MosaicAuth(
        "client-id",
        "client-secret",
        http_client=httpx.AsyncClient(transport=httpx.MockTransport(answer)),
    )
    await mosaic.get_token()  # warm: the token is cached from here on
    transport = httpx.MockTransport(answer)
    request = httpx.Request("GET", URL)
    best = {"client static": 1.0, "client mosaic": 1.0, "flow static": 1.0, "flow mosaic": 1.0}
    async with (
        httpx.AsyncClient(auth=static, transport=transport) as static_client,
        httpx.AsyncClient(auth=mosaic, transport=transport) as mosaic_client,
    ):
        for _ in range(ROUNDS):
            best["client static"] = min(best["client static"], await client_round(static_client))
            best["client mosaic"] = min(best["client mosaic"], await client_round(mosaic_client))
            best["flow static"] = min(best["flow static"], await flow_round(static, request))
            best["flow mosaic"] = min(best["flow mosaic"], await flow_round(mosaic, request))
    await mosaic.aclose()

    client_overhead = best["client mosaic"] / best["client static"] - 1
    print("through httpx.AsyncClient (in-memory transport), best of", ROUNDS, "rounds:")
    print(f"  static header : {best['client static'] * 1e6:8.2f} µs/request")
    print(f"  MosaicAuth    : {best['client mosaic'] * 1e6:8.2f} µs/request")
    print(f"  overhead      : {client_overhead * 100:+8.2f} %   (target: within 3 %)")
    print("auth flow alone:")
    print(f"  static header : {best['flow static'] * 1e9:8.0f} ns/request")
    print(f"  MosaicAuth    : {best['flow mosaic'] * 1e9:8.0f} ns/request")


if __name__ == "__main__":
    anyio.run(main)
