"""A fleet of worker processes that share their tokens through Redis.

Each process has a `MosaicAuth` of its own. Alone, each would request its own tokens: N
processes, N token requests per resource, again at every rollover and after every revocation,
all at the same moment, which is how a fleet runs into the token endpoint's rate limit (429).
With a `RedisTokenCache` they make one between them. Four processes (two on asyncio, two on
trio) send a burst of concurrent requests to two APIs, each needing its own token; then every
token is revoked and they burst again.

Run `python examples/fleet.py`. It serves the Mosaic emulator on 127.0.0.1 and uses the Redis
server at REDIS_URL, or else starts a throwaway redis-server on a free 127.0.0.1 port (one
must be on PATH), which it stops on exit.
"""

from __future__ import annotations

import contextlib
import importlib.util
import multiprocessing
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from typing import TYPE_CHECKING

import anyio
import anyio.to_thread
import httpx

from mosaic_httpx_auth import RISK_RESOURCE, VERIFY_RESOURCE, MosaicAuth
from mosaic_httpx_auth.redis import RedisTokenCache
from mosaic_httpx_auth.testing import MosaicEmulator

if TYPE_CHECKING:
    from collections.abc import Iterator
    from multiprocessing.queues import Queue
    from multiprocessing.synchronize import Barrier

PROCESSES = 4
REQUESTS = 100  # per process and burst, half to each API
# Half the fleet runs on trio, when it is installed: RedisTokenCache works on both.
BACKENDS = ("asyncio", "trio") if importlib.util.find_spec("trio") else ("asyncio",)
ROUTES = {"/risk": RISK_RESOURCE, "/verify": VERIFY_RESOURCE}
APIS = [("POST", "/risk/v1/action/recommendation"), ("GET", "/verify/api/v1/sessions")]
BURSTS = 2  # on a cold start, then after every token is revoked
TIMEOUT = 60  # seconds a process may take to start, or to send a burst


def worker(
    backend: str,
    mosaic_url: str,
    credentials: tuple[str, str],
    redis_url: str,
    start: Barrier,
    reports: Queue[tuple[int, int]],
) -> None:
    """One process of the fleet: one event loop and one `MosaicAuth` for its whole life."""
    anyio.run(work, mosaic_url, credentials, redis_url, start, reports, backend=backend)


async def work(
    mosaic_url: str,
    credentials: tuple[str, str],
    redis_url: str,
    start: Barrier,
    reports: Queue[tuple[int, int]],
) -> None:
    auth = MosaicAuth(
        *credentials,
        base_url=mosaic_url,
        resources=ROUTES,
        # What makes the processes one fleet.
        cache=RedisTokenCache.from_url(redis_url),
    )
    async with auth, httpx.AsyncClient(auth=auth, base_url=mosaic_url) as client:
        for _ in range(BURSTS):
            # The whole fleet starts each burst at once, as after a deploy: a stampede.
            await anyio.to_thread.run_sync(start.wait)
            reports.put(await burst(client))


async def burst(client: httpx.AsyncClient) -> tuple[int, int]:
    """Send REQUESTS requests at once; return how many were sent, and how many failed."""
    failed = 0

    async def call(method: str, path: str) -> None:
        nonlocal failed
        try:
            response = await client.request(method, path)
            response.raise_for_status()
        except httpx.HTTPError:  # no token (a TokenRequestError), or the API said no
            failed += 1

    async with anyio.create_task_group() as tasks:
        for number in range(REQUESTS):
            tasks.start_soon(call, *APIS[number % len(APIS)])
    return REQUESTS, failed


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    """REDIS_URL; else the URL of a throwaway redis-server on 127.0.0.1, stopped on exit."""
    if url := os.environ.get("REDIS_URL"):
        yield url
        return
    executable = shutil.which("redis-server")
    if executable is None:
        sys.exit(
            "examples/fleet.py needs Redis: set REDIS_URL=redis://..., or put redis-server on "
            "PATH (apt install redis-server, brew install redis)"
        )
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    options = ["--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"]
    server = subprocess.Popen([executable, *options], stdout=subprocess.DEVNULL)  # noqa: S603
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not start on port {port}") from None
                time.sleep(0.01)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        server.terminate()
        server.wait()


def release(
    burst_name: str, emulator: MosaicEmulator, start: Barrier, reports: Queue[tuple[int, int]]
) -> str:
    """Start one burst of the whole fleet; what it made, and how many token requests it took."""
    before = emulator.token_requests
    start.wait()  # the last to arrive: every worker goes now
    started = time.perf_counter()
    results = [reports.get(timeout=TIMEOUT) for _ in range(PROCESSES)]
    elapsed = time.perf_counter() - started
    made = sum(sent for sent, _ in results)
    failed = sum(failures for _, failures in results)
    fetched = emulator.token_requests - before
    counts = {fetched[resource] for resource in ROUTES.values()}
    split = (
        f"{counts.pop()} per resource"
        if len(counts) == 1
        else ", ".join(f"{fetched[resource]} for {resource}" for resource in ROUTES.values())
    )
    return (
        f"{burst_name}: {PROCESSES} processes made {made} API requests ({failed} failed) "
        f"with {fetched.total()} token requests: {split} ({elapsed:.1f} s)"
    )


def main() -> None:
    emulator = MosaicEmulator()
    app = emulator.register_client(resources=list(ROUTES.values()))
    # Fresh interpreters, as on separate hosts: nothing is shared but Redis.
    spawn = multiprocessing.get_context("spawn")
    start = spawn.Barrier(PROCESSES + 1, timeout=TIMEOUT)  # the fleet and this process
    reports: Queue[tuple[int, int]] = spawn.Queue()
    backends = [BACKENDS[number % len(BACKENDS)] for number in range(PROCESSES)]
    with redis_server() as redis_url, emulator.serve() as mosaic_url:
        fleet = [
            spawn.Process(
                target=worker,
                args=(backend, mosaic_url, (app.client_id, app.client_secret), redis_url),
                kwargs={"start": start, "reports": reports},
                daemon=True,
            )
            for backend in backends
        ]
        # Ctrl+C is for this process, which stops the workers: they start with it ignored.
        handler = signal.signal(signal.SIGINT, signal.SIG_IGN)
        for process in fleet:
            process.start()
        signal.signal(signal.SIGINT, handler)
        try:
            mix = ", ".join(f"{backends.count(backend)} on {backend}" for backend in BACKENDS)
            print(f"{PROCESSES} processes ({mix}), one MosaicAuth each, sharing tokens via Redis")
            print(release("cold start", emulator, start, reports))
            emulator.revoke_tokens()  # every process holds them in memory: each gets 401s
            print(release("every token revoked", emulator, start, reports))
            for process in fleet:
                process.join(TIMEOUT)
        finally:
            for process in fleet:  # still running only after Ctrl+C or an error
                process.terminate()
                process.join()


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)  # the workers and redis-server are stopped by now
