"""The loads a contender is put under, and what each measures: bursts, steady streams, stalls."""

from __future__ import annotations

import collections
import contextlib
import itertools
import statistics
from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio

from ._contenders import PATHS

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Sequence

    from ._contenders import Send

# How often the stall meter's ticker asks to be woken.
TICK = 0.001
# A request slower than this counts as slow in a stream.
SLOW = 0.1


async def _succeeds(send: Send, path: str) -> bool:
    """Whether the request was answered 200; any error counts as a failure."""
    return await _failure(send, path) is None


async def _failure(send: Send, path: str) -> str | None:
    """Why the request failed (its exception's name, or its status), or None if it was
    answered 200."""
    try:
        status = await send(path)
    except Exception as error:
        return type(error).__name__
    return None if status == 200 else f"HTTP {status}"


async def burst(send: Send, count: int, *, paths: Sequence[str] = PATHS) -> int:
    """Send `count` requests at once, spread over the APIs; return how many failed."""
    failed = 0

    async def one(path: str) -> None:
        nonlocal failed
        ok = await _succeeds(send, path)  # awaited before `failed` is read, not during
        failed += not ok

    async with anyio.create_task_group() as tasks:
        for path in itertools.islice(itertools.cycle(paths), count):
            tasks.start_soon(one, path)
    return failed


@dataclass(frozen=True, slots=True)
class Sample:
    """One request of a stream: when it was due (seconds from the stream's start), how long
    it took from then, and why it failed (None: it succeeded)."""

    due: float
    latency: float
    failure: str | None

    @property
    def ok(self) -> bool:
        return self.failure is None


@dataclass(frozen=True, slots=True)
class Stream:
    """The requests of a steady stream, in the order they were due."""

    samples: list[Sample]

    @property
    def failed(self) -> int:
        return sum(not sample.ok for sample in self.samples)

    @property
    def failures(self) -> collections.Counter[str]:
        """How many requests failed, by why: the auth's own errors apart from the client's."""
        return collections.Counter(s.failure for s in self.samples if s.failure is not None)

    @property
    def steady(self) -> float:
        """The median latency: what a request of the stream usually takes."""
        return statistics.median(sample.latency for sample in self.samples)

    @property
    def worst(self) -> float:
        return max(sample.latency for sample in self.samples)

    @property
    def slow(self) -> int:
        return sum(sample.latency > SLOW for sample in self.samples)

    @property
    def first_success(self) -> float | None:
        """When the first request to succeed was answered, from the stream's start."""
        answered = [sample.due + sample.latency for sample in self.samples if sample.ok]
        return min(answered, default=None)


async def stream(
    send: Send, *, rate: float, duration: float, paths: Sequence[str] = PATHS
) -> Stream:
    """Send `rate` requests a second for `duration` seconds, each when it is due, whether or
    not the earlier ones were answered (an open loop, as independent callers send them).

    A request's latency runs from when it was due, not from when it was sent: a loop too busy
    to send it on time makes it late, and the caller waits that long too.
    """
    samples: list[Sample] = []
    start = anyio.current_time()

    async def one(path: str, due: float) -> None:
        failure = await _failure(send, path)
        samples.append(Sample(due - start, anyio.current_time() - due, failure))

    async with anyio.create_task_group() as tasks:
        schedule = itertools.islice(itertools.cycle(paths), round(rate * duration))
        for number, path in enumerate(schedule):
            due = start + number / rate
            await anyio.sleep_until(due)
            tasks.start_soon(one, path, due)
    return Stream(sorted(samples, key=lambda sample: sample.due))


class StallMeter:
    """The longest time the event loop left a ticker waiting past when it asked to be woken:
    how long every other task of the loop, and every caller, was held up at worst."""

    def __init__(self) -> None:
        self.longest = 0.0

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(self._tick)
            yield
            tasks.cancel_scope.cancel()

    async def _tick(self) -> None:
        while True:
            before = anyio.current_time()
            await anyio.sleep(TICK)
            self.longest = max(self.longest, anyio.current_time() - before - TICK)
