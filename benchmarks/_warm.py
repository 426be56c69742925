"""Warm per-request cost: a token in hand, requests through an in-memory transport.

The transport answers at once, so what is left is the client's own cost, the auth's included.
Each contender is compared with a static header on the same HTTP library: Authlib and
`mosaic_httpx_auth.httpx2.MosaicAuth` with one on httpx2.

Noise is the enemy here: on a shared virtual machine, the same loop of requests takes from
180 to 340 µs a request from one second to the next. So rounds are short and many, contenders
take turns within each round, each round is timed in CPU time of this thread (not counting
time the machine gave to others), and a contender's overhead is the median of its ratios to
its baseline's round just before: two rounds a few milliseconds apart meet the same machine.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio

from ._contenders import (
    AUTHLIB,
    HTTPX_AUTH,
    OURS,
    OURS_HTTPX2,
    STATIC,
    STATIC_HTTPX2,
    Target,
    authlib_client,
    httpx_auth_credentials,
    mosaic_auth,
    mosaic_auth_httpx2,
    static_header,
    static_header_httpx2,
)
from ._emulator_process import Credentials

if TYPE_CHECKING:
    from ._contenders import AsyncOpener, Send
    from ._sizes import Sizes

PATH = "/cis/v1/users"

# Each contender, and the static header it is compared with.
CONTENDERS: dict[str, tuple[AsyncOpener, str]] = {
    STATIC: (static_header, STATIC),
    OURS: (mosaic_auth, STATIC),
    HTTPX_AUTH: (httpx_auth_credentials, STATIC),
    STATIC_HTTPX2: (static_header_httpx2, STATIC_HTTPX2),
    OURS_HTTPX2: (mosaic_auth_httpx2, STATIC_HTTPX2),
    AUTHLIB: (authlib_client, STATIC_HTTPX2),
}


@dataclass(frozen=True, slots=True)
class Warm:
    """One contender's warm cost."""

    seconds: float
    """Per request: the median of the rounds."""
    ratio: float
    """To the static header on the same HTTP library: the median of the rounds' ratios."""


async def _round(send: Send, requests: int) -> float:
    """CPU seconds per request over `requests` sequential requests."""
    start = time.thread_time()
    for _ in range(requests):
        await send(PATH)
    return (time.thread_time() - start) / requests


def warm_cost(sizes: Sizes) -> dict[str, Warm]:
    """Each contender's warm cost per request, and its ratio to its baseline."""
    target = Target(base_url=None, credentials=Credentials("client-id", "client-secret"))

    async def measure() -> dict[str, list[float]]:
        rounds: dict[str, list[float]] = {name: [] for name in CONTENDERS}
        async with contextlib.AsyncExitStack() as stack:
            sends = {
                name: await stack.enter_async_context(opener(target))
                for name, (opener, _) in CONTENDERS.items()
            }
            for send in sends.values():
                await send(PATH)  # the token is in hand from here on
            for _ in range(sizes.warm_rounds):
                for name, send in sends.items():
                    rounds[name].append(await _round(send, sizes.warm_requests))
        return rounds

    rounds = anyio.run(measure)
    return {
        name: Warm(
            statistics.median(rounds[name]),
            statistics.median(
                ours / theirs for ours, theirs in zip(rounds[name], rounds[baseline], strict=True)
            ),
        )
        for name, (_, baseline) in CONTENDERS.items()
    }
