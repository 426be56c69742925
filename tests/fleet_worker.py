"""One process of a fleet for `test_fleet`: a `MosaicAuth` sharing tokens through Redis.

Run as ``python -m tests.fleet_worker asyncio`` (or ``trio``): the event loop it runs on for
its whole life. It answers one line on stdout per line on stdin, so that a test drives every
process of a fleet in step:

- ``setup {JSON}``: a new `MosaicAuth` (cold: no token yet) with a `RedisTokenCache`, and an
  API client using it, replacing any before; answers ``ready``. The JSON gives ``base_url``
  (the served emulator), ``redis_url``, ``client_id``, ``client_secret``, ``routes`` (API
  paths to the resources their requests need), and optionally the cache's ``lease_seconds`` and
  ``timeout``.
- ``burst N``: N concurrent API requests, spread over the routes; answers with a report.
- ``stream``: starts a steady stream of requests in the background; answers ``streaming``.
- ``stop``: ends the stream once its requests in flight are answered; answers with a report.
- ``close``: ends any stream and closes the `MosaicAuth` and its client; answers ``closed``.
- ``quit``, or the end of stdin: closes everything and exits.

A report is one JSON object: ``ok`` and ``failed`` (requests answered 200, and the others)
and ``statuses`` (status codes, or exception names, with their counts) since the last report;
``warnings`` (the messages of the WARNING records of the ``mosaic_httpx_auth`` logger) and
``tokens`` (by resource, the tokens requests were answered 200 with, in order of first use)
since ``setup``.
"""

from __future__ import annotations

import collections
import json
import logging
import sys
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread
import httpx

from mosaic_httpx_auth import MosaicAuth
from mosaic_httpx_auth.redis import RedisTokenCache

if TYPE_CHECKING:
    from anyio.abc import TaskGroup

# Requests of a stream in flight at once, and each one's pause before sending its next.
STREAM_LANES = 2
STREAM_PAUSE = 0.02


class WarningLog(logging.Handler):
    """Keeps the messages of the records of WARNING and worse it is handed."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


class Session:
    """One `MosaicAuth` and the API client using it, from ``setup`` to ``close``; tallies how
    its requests were answered."""

    def __init__(self, settings: dict[str, Any], warnings: WarningLog) -> None:
        routes: dict[str, str] = settings["routes"]
        base_url: str = settings["base_url"]
        cache_options = {k: settings[k] for k in ("lease_seconds", "timeout") if k in settings}
        self._auth = MosaicAuth(
            settings["client_id"],
            settings["client_secret"],
            base_url=base_url,
            token_url=f"{base_url}/oidc/token",
            # One route: `resource`, which every request needs; several: routed by path.
            resource=next(iter(routes.values())) if len(routes) == 1 else None,
            resources=routes if len(routes) > 1 else None,
            cache=RedisTokenCache.from_url(settings["redis_url"], **cache_options),
        )
        self._client = httpx.AsyncClient(auth=self._auth, base_url=base_url)
        self._paths = list(routes)
        self._warnings = warnings
        self._statuses: collections.Counter[str] = collections.Counter()
        self._tokens: dict[str, list[str]] = {}
        self._stop = anyio.Event()
        self._stopped: anyio.Event | None = None

    async def burst(self, count: int) -> dict[str, Any]:
        """Send `count` requests at once; report how they were answered."""
        async with anyio.create_task_group() as tasks:
            for number in range(count):
                tasks.start_soon(self._call, number)
        return self.report()

    def start_stream(self, tasks: TaskGroup) -> None:
        """Start sending requests in `tasks`, a few at a time, until `stop_stream`."""
        self._stop, self._stopped = anyio.Event(), anyio.Event()
        tasks.start_soon(self._stream, self._stop, self._stopped)

    async def stop_stream(self) -> dict[str, Any]:
        """End the stream once its requests in flight are answered; report how all were."""
        self._stop.set()
        if self._stopped is not None:
            await self._stopped.wait()
            self._stopped = None
        return self.report()

    def report(self) -> dict[str, Any]:
        """The answers since the last report, and the warnings and tokens since the start."""
        statuses, self._statuses = self._statuses, collections.Counter()
        ok = statuses["200"]
        return {
            "ok": ok,
            "failed": statuses.total() - ok,
            "statuses": dict(statuses),
            "warnings": list(self._warnings.messages),
            "tokens": self._tokens,
        }

    async def aclose(self) -> None:
        """End any stream, and close the API client and the `MosaicAuth`."""
        await self.stop_stream()
        await self._client.aclose()
        await self._auth.aclose()

    async def _stream(self, stop: anyio.Event, stopped: anyio.Event) -> None:
        async def lane(number: int) -> None:
            while not stop.is_set():
                await self._call(number)
                number += STREAM_LANES
                await anyio.sleep(STREAM_PAUSE)

        try:
            async with anyio.create_task_group() as tasks:
                for number in range(STREAM_LANES):
                    tasks.start_soon(lane, number)
        finally:
            stopped.set()

    async def _call(self, number: int) -> None:
        path = self._paths[number % len(self._paths)]
        try:
            response = await self._client.get(f"{path}/v1/fleet/{number}")
        except Exception as error:  # a failed request is counted, whatever failed
            self._statuses[type(error).__name__] += 1
            return
        self._statuses[str(response.status_code)] += 1
        if response.status_code == 200:
            resource = str(self._auth.resource_for(response.request.url))
            token = response.request.headers["Authorization"].removeprefix("Bearer ")
            used = self._tokens.setdefault(resource, [])
            if token not in used:
                used.append(token)


async def main() -> None:
    """Carry out each command read from stdin, until ``quit``."""
    warnings = WarningLog()
    logging.getLogger("mosaic_httpx_auth").addHandler(warnings)
    session: Session | None = None
    async with anyio.create_task_group() as tasks:
        while True:
            line = await anyio.to_thread.run_sync(sys.stdin.readline)
            command, _, argument = line.strip().partition(" ")
            if command in ("setup", "close", "quit", "") and session is not None:
                await session.aclose()
                session = None
            if command == "setup":
                warnings.messages.clear()
                session = Session(json.loads(argument), warnings)
                say("ready")
            elif command == "close":
                say("closed")
            elif command in ("quit", ""):
                tasks.cancel_scope.cancel()
                return
            elif session is None:
                raise RuntimeError(f"{command!r} before setup")
            elif command == "burst":
                say(json.dumps(await session.burst(int(argument))))
            elif command == "stream":
                session.start_stream(tasks)
                say("streaming")
            elif command == "stop":
                say(json.dumps(await session.stop_stream()))
            else:
                raise RuntimeError(f"unknown command {command!r}")


def say(line: str) -> None:
    """Write one line to the test."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    anyio.run(main, backend=sys.argv[1])
