"""A fleet: several processes of one service starting at once, then streaming across a
rollover. MosaicAuth shares its tokens through Redis (`RedisTokenCache`); the peers keep their
tokens in memory (httpx-auth's file cache would serve processes of one host only), so each
process of theirs makes its own token requests."""

from __future__ import annotations

import multiprocessing
import queue
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio
import anyio.to_thread

from ._contenders import ASYNC_CONTENDERS
from ._load import burst, stream
from ._scenarios import target_for

if TYPE_CHECKING:
    from collections.abc import Sequence
    from multiprocessing.process import BaseProcess
    from multiprocessing.queues import Queue
    from multiprocessing.synchronize import Barrier

    from ._contenders import Target
    from ._emulator_process import ServedEmulator
    from ._sizes import Sizes

# Seconds a process may take to start, or to answer a step.
STEP_TIMEOUT = 120


@dataclass(frozen=True, slots=True)
class Fleet:
    """Token requests of the whole fleet, and its failed requests."""

    cold_token_requests: int
    rollover_token_requests: int
    failed: int


def fleet(contender: str, emulator: ServedEmulator, redis_url: str | None, sizes: Sizes) -> Fleet:
    """`sizes.processes` processes of `contender` start at once with a burst each, then stream
    until past the rollover; MosaicAuth's share `redis_url`."""
    target = target_for(emulator, renew_margin=sizes.token_lifetime / 2, redis_url=redis_url)
    context = multiprocessing.get_context("spawn")
    step = context.Barrier(sizes.processes + 1, timeout=STEP_TIMEOUT)
    reports: Queue[int] = context.Queue()
    processes = [
        context.Process(target=_process, args=(contender, target, sizes, step, reports))
        for _ in range(sizes.processes)
    ]
    for process in processes:
        process.start()
    try:
        before = emulator.token_requests()
        step.wait()  # every process is ready: go
        failed = _collect(reports, processes)
        cold = emulator.token_requests() - before
        step.wait()  # counted: stream on
        failed += _collect(reports, processes)
        rollover = emulator.token_requests() - before - cold
    finally:
        for process in processes:
            process.join(timeout=STEP_TIMEOUT)
            if process.is_alive():
                process.kill()
    return Fleet(cold, rollover, failed)


def _collect(reports: Queue[int], processes: Sequence[BaseProcess]) -> int:
    """The sum of one report from each process; a process that died says so at once."""
    total, awaited = 0, len(processes)
    deadline = time.monotonic() + STEP_TIMEOUT
    while awaited:
        try:
            total += reports.get(timeout=0.1)
            awaited -= 1
        except queue.Empty:
            dead = [p.exitcode for p in processes if p.exitcode not in (None, 0)]
            if dead or time.monotonic() > deadline:
                raise RuntimeError(f"a fleet process failed (exit codes {dead})") from None
    return total


def _process(
    contender: str, target: Target, sizes: Sizes, step: Barrier, reports: Queue[int]
) -> None:
    anyio.run(_serve, contender, target, sizes, step, reports)


async def _serve(
    contender: str, target: Target, sizes: Sizes, step: Barrier, reports: Queue[int]
) -> None:
    """One process: waits for the others, starts cold, bursts, then streams until past the
    rollover; reports its failed requests after each."""
    await anyio.to_thread.run_sync(step.wait)
    async with ASYNC_CONTENDERS[contender](target) as send:
        reports.put(await burst(send, sizes.process_burst))
        await anyio.to_thread.run_sync(step.wait)
        requests = await stream(send, rate=sizes.process_rate, duration=sizes.stream_duration)
    reports.put(requests.failed)
