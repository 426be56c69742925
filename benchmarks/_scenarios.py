"""The scenarios run against the emulator served on loopback, one contender at a time.

Each contender gets a client of its own and a fresh event loop (`anyio.run`), and what it made
the token endpoint do is read off the emulator.
"""

from __future__ import annotations

import functools
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio
import anyio.to_thread

from ._contenders import PATHS, ROUTES, Target
from ._load import StallMeter, Stream, burst, stream

if sys.version_info < (3, 11):
    from exceptiongroup import ExceptionGroup

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ._contenders import AsyncOpener, Send
    from ._emulator_process import ServedEmulator
    from ._sizes import Sizes

# The failing endpoint's stream goes to one API, so that its faults all meet one token.
ONE_ROUTE = {"/risk": ROUTES["/risk"]}
ONE_ROUTE_PATHS = tuple(path for path in PATHS if path.startswith("/risk/"))


def target_for(
    emulator: ServedEmulator,
    *,
    routes: Mapping[str, str | None] = ROUTES,
    renew_margin: float = 30.0,
    redis_url: str | None = None,
) -> Target:
    """A client registered for one contender's turn, with tokens minted for the static header."""
    credentials = emulator.register_client()
    return Target(
        base_url=emulator.base_url,
        credentials=credentials,
        routes=routes,
        renew_margin=renew_margin,
        static_tokens={
            resource: emulator.issue_token(credentials.client_id, resource)
            for resource in routes.values()
        },
        redis_url=redis_url,
    )


async def _token_requests(emulator: ServedEmulator) -> int:
    return await anyio.to_thread.run_sync(emulator.token_requests)


async def _warm_up(send: Send) -> None:
    """One request per API, at once: a token for each resource."""
    async with anyio.create_task_group() as tasks:
        for path in PATHS:
            tasks.start_soon(send, path)


@dataclass(frozen=True, slots=True)
class Burst:
    """A cold burst: token requests, failed requests, the longest event-loop stall."""

    token_requests: int
    failed: int
    longest_stall: float


def cold_burst(opener: AsyncOpener, emulator: ServedEmulator, sizes: Sizes) -> Burst:
    """`sizes.burst` requests at once over the three APIs, from a contender with no token."""
    target = target_for(emulator)

    async def scenario() -> Burst:
        before = await _token_requests(emulator)
        meter = StallMeter()
        async with meter.running(), opener(target) as send:
            failed = await burst(send, sizes.burst)
        return Burst(await _token_requests(emulator) - before, failed, meter.longest)

    return anyio.run(scenario)


@dataclass(frozen=True, slots=True)
class Storm:
    """A revocation storm: token requests, and requests that still failed."""

    token_requests: int
    failed: int


def revocation_storm(opener: AsyncOpener, emulator: ServedEmulator, sizes: Sizes) -> Storm:
    """Every token revoked, then `sizes.burst` requests at once over the three APIs."""
    target = target_for(emulator)

    async def scenario() -> Storm:
        async with opener(target) as send:
            await _warm_up(send)
            await anyio.to_thread.run_sync(emulator.revoke_tokens, target.credentials.client_id)
            before = await _token_requests(emulator)
            failed = await burst(send, sizes.burst)
        return Storm(await _token_requests(emulator) - before, failed)

    return anyio.run(scenario)


@dataclass(frozen=True, slots=True)
class Rollover:
    """A rollover: token requests during the stream, and the stream."""

    token_requests: int
    stream: Stream


def rollover(opener: AsyncOpener, emulator: ServedEmulator, sizes: Sizes) -> Rollover:
    """A steady stream over the three APIs, from the first tokens past their refresh.

    The emulator's tokens live `sizes.token_lifetime`; peers renew them at half of that.
    """
    target = target_for(emulator, renew_margin=sizes.token_lifetime / 2)

    async def scenario() -> Rollover:
        async with opener(target) as send:
            await _warm_up(send)
            before = await _token_requests(emulator)
            requests = await stream(send, rate=sizes.stream_rate, duration=sizes.stream_duration)
        return Rollover(await _token_requests(emulator) - before, requests)

    return anyio.run(scenario)


@dataclass(frozen=True, slots=True)
class FailingEndpoint:
    """A failing token endpoint: token requests, and the stream."""

    token_requests: int
    stream: Stream | None
    """None when the contender could not start: `start_error` says why."""
    start_error: str | None = None


def failing_endpoint(
    opener: AsyncOpener, emulator: ServedEmulator, sizes: Sizes
) -> FailingEndpoint:
    """A steady stream to one API from a contender with no token, while the token endpoint
    answers 503, 503, then 429 with ``Retry-After``, before it gives tokens again.

    The faults are queued on `emulator` for this contender: give each one an emulator of its own.
    """
    target = target_for(emulator, routes=ONE_ROUTE)
    emulator.fail_next_token_requests(503)
    emulator.fail_next_token_requests(503)
    emulator.fail_next_token_requests(429, retry_after=sizes.retry_after)

    async def scenario() -> FailingEndpoint:
        before = await _token_requests(emulator)
        load = functools.partial(
            stream, rate=sizes.failing_rate, duration=sizes.failing_duration, paths=ONE_ROUTE_PATHS
        )
        try:
            async with opener(target) as send:
                requests = await load(send)
        except Exception as exc:
            while isinstance(exc, ExceptionGroup):  # from the task group of its first fetches
                exc = exc.exceptions[0]
            made = await _token_requests(emulator) - before
            return FailingEndpoint(made, None, f"{type(exc).__name__} at start")
        return FailingEndpoint(await _token_requests(emulator) - before, requests)

    return anyio.run(scenario)
