"""Warm per-request cost of MosaicAuth against a static Authorization header.

Sends the same requests through `httpx.AsyncClient` over an in-memory transport, once with a
static header and once with `MosaicAuth` holding a cached token, and prints both and the
overhead. Run: `make bench` (or `.venv/bin/python benchmarks/warm_request.py`).
"""

from __future__ import annotations

import statistics
import time
from typing import TYPE_CHECKING

import anyio
import httpx

from mosaic_httpx_auth import MosaicAuth

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator

REQUESTS = 5_000
ROUNDS = 7
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


async def seconds_per_request(auth: httpx.Auth) -> float:
    transport = httpx.MockTransport(answer)
    async with httpx.AsyncClient(auth=auth, transport=transport) as client:
        await client.get("https://api.transmitsecurity.io/cis/v1/users")  # warm up
        timings = []
        for _ in range(ROUNDS):
            start = time.perf_counter()
            for _ in range(REQUESTS):
                await client.get("https://api.transmitsecurity.io/cis/v1/users")
            timings.append((time.perf_counter() - start) / REQUESTS)
    return statistics.median(timings)


async def main() -> None:
    mosaic = MosaicAuth(
        "client-id",
        "client-secret",
        http_client=httpx.AsyncClient(transport=httpx.MockTransport(answer)),
    )
    static = await seconds_per_request(StaticBearer(TOKEN))
    warm = await seconds_per_request(mosaic)
    await mosaic.aclose()
    print(f"static header : {static * 1e6:8.1f} µs/request")
    print(f"MosaicAuth    : {warm * 1e6:8.1f} µs/request")
    print(f"overhead      : {(warm / static - 1) * 100:+8.1f} %")


if __name__ == "__main__":
    anyio.run(main)
