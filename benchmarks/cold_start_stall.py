"""The longest event-loop stall while the first token is fetched, against a static header.

The emulator is served on 127.0.0.1 with a 0.5 s token endpoint. 20 requests start at once on
a cold `MosaicAuth` (which opens its own token client) while a ticker measures how late the
loop wakes it: the target is at most 10 ms over a static header doing the same 20 requests.

Run: `.venv/bin/python benchmarks/cold_start_stall.py` (part of `make bench`).
"""

from __future__ import annotations

import statistics
import time
from typing import TYPE_CHECKING

import anyio
import httpx

from mosaic_httpx_auth import MosaicAuth
from mosaic_httpx_auth.testing import MosaicEmulator

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator

CONCURRENT = 20
ROUNDS = 5
TICK = 0.001


class StaticBearer(httpx.Auth):
    """The baseline: a fixed header, what a hand-managed token costs."""

    def __init__(self, header: str) -> None:
        self.header = header

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        request.headers["Authorization"] = self.header
        yield request


async def longest_stall(auth: httpx.Auth, base_url: str) -> float:
    """Seconds of the longest gap the loop left a 1 ms ticker waiting, over one cold burst."""
    worst = 0.0
    done = anyio.Event()

    async def ticker() -> None:
        nonlocal worst
        while not done.is_set():
            before = time.perf_counter()
            await anyio.sleep(TICK)
            worst = max(worst, time.perf_counter() - before - TICK)

    async with (
        httpx.AsyncClient(auth=auth, base_url=base_url) as client,
        anyio.create_task_group() as tasks,
    ):
        tasks.start_soon(ticker)
        async with anyio.create_task_group() as burst:
            for _ in range(CONCURRENT):
                burst.start_soon(client.get, "/cis/v1/users")
        done.set()
    return worst


async def main() -> None:
    emulator = MosaicEmulator()
    client = emulator.register_client()
    with emulator.serve() as base_url:
        header = f"Bearer {emulator.issue_token(client.client_id)}"
        static: list[float] = []
        mosaic: list[float] = []
        for _ in range(ROUNDS):
            emulator.delay_next_token_requests(0.5)
            static.append(await longest_stall(StaticBearer(header), base_url))
            auth = MosaicAuth(client.client_id, client.client_secret, base_url=base_url)
            async with auth:
                mosaic.append(await longest_stall(auth, base_url))
            emulator.revoke_tokens()
    print(
        f"longest event-loop stall over a cold burst of {CONCURRENT} requests, median of {ROUNDS}"
    )
    print(f"  static header: {statistics.median(static) * 1000:6.1f} ms")
    print(
        f"  MosaicAuth:    {statistics.median(mosaic) * 1000:6.1f} ms (target: at most 10 ms more)"
    )


if __name__ == "__main__":
    anyio.run(main)
