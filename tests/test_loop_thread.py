"""LoopThread: calls handed to its loop from other threads, and what `stop()` does to them.

Every future `submit` returns must end (a result, an exception, or cancelled), whatever the
race with `stop()`: a sync caller blocks on it with no timeout of its own.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import gc
import sys
import threading
import time
import warnings
from typing import TYPE_CHECKING, NoReturn

import pytest

from mosaic_httpx_auth._loops.thread import LoopThread

if TYPE_CHECKING:
    from collections.abc import Iterator

WAIT = 5.0  # for outcomes that come at once: only a stranded caller waits this long


@pytest.fixture
def loop_thread() -> Iterator[LoopThread]:
    """A LoopThread, stopped after the test."""
    loop_thread = LoopThread("test loop thread")
    yield loop_thread
    loop_thread.stop()


async def echo(value: int) -> int:
    """`value`, after one pass through the loop."""
    await asyncio.sleep(0)
    return value


def test_a_submitted_call_returns_its_result(loop_thread: LoopThread) -> None:
    """The future of a submitted call holds what the call returned."""
    assert loop_thread.submit(echo, 7).result(WAIT) == 7


def test_a_submitted_call_raises_its_exception(loop_thread: LoopThread) -> None:
    """The future of a submitted call that raised raises the same exception."""

    async def fail() -> NoReturn:
        raise LookupError("no such thing")

    with pytest.raises(LookupError, match="no such thing"):
        loop_thread.submit(fail).result(WAIT)


def test_a_submitted_call_runs_on_the_loop_thread_in_a_fresh_context(
    loop_thread: LoopThread,
) -> None:
    """A call runs on the loop's thread and sees none of the caller's context variables."""
    variable: contextvars.ContextVar[str] = contextvars.ContextVar("variable", default="unset")
    variable.set("the caller's")

    async def where() -> tuple[bool, str]:
        return loop_thread.is_current(), variable.get()

    assert loop_thread.submit(where).result(WAIT) == (True, "unset")


def test_cancelling_the_future_cancels_the_task(loop_thread: LoopThread) -> None:
    """Cancelling the future of a call in flight cancels its task on the loop."""
    started = threading.Event()
    cancelled = threading.Event()

    async def wait_forever() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    future = loop_thread.submit(wait_forever)
    assert started.wait(WAIT)
    assert future.cancel()
    assert cancelled.wait(WAIT)


def test_a_call_cancelled_before_it_starts_is_never_called(loop_thread: LoopThread) -> None:
    """A call whose future is cancelled before the loop reaches it is not called at all."""
    holding, release = threading.Event(), threading.Event()
    called: list[str] = []

    async def hold_the_loop() -> None:
        holding.set()
        release.wait(WAIT)  # blocks the loop's thread: the next call cannot start meanwhile

    async def record() -> None:
        called.append("called")

    held = loop_thread.submit(hold_the_loop)
    assert holding.wait(WAIT)
    queued = loop_thread.submit(record)
    assert queued.cancel()
    release.set()
    held.result(WAIT)
    assert loop_thread.submit(echo, 1).result(WAIT) == 1  # the loop has passed `queued` by now
    assert called == []


def test_stop_cancels_a_call_in_flight(loop_thread: LoopThread) -> None:
    """`stop()` ends a call that is still running with its future cancelled."""
    started = threading.Event()

    async def wait_forever() -> None:
        started.set()
        await asyncio.Event().wait()

    future = loop_thread.submit(wait_forever)
    assert started.wait(WAIT)
    loop_thread.stop()
    with pytest.raises(concurrent.futures.CancelledError):
        future.result(WAIT)


def test_a_submit_after_stop_starts_a_new_thread(loop_thread: LoopThread) -> None:
    """After `stop()`, a submitted call runs on a new thread and loop."""

    async def where() -> tuple[threading.Thread, asyncio.AbstractEventLoop]:
        return threading.current_thread(), asyncio.get_running_loop()

    first_thread, first_loop = loop_thread.submit(where).result(WAIT)
    loop_thread.stop()
    second_thread, second_loop = loop_thread.submit(where).result(WAIT)
    assert second_thread is not first_thread
    assert second_loop is not first_loop
    assert not first_thread.is_alive()
    assert first_loop.is_closed()


def test_stop_racing_submits_strands_no_caller_and_leaves_no_coroutine_unawaited() -> None:
    """With `stop()` called over and over while threads submit calls and wait for them,
    every caller gets its result or a cancellation, and no coroutine is left unawaited."""
    rounds, workers, time_limit = 1000, 4, 2.0
    loop_thread = LoopThread("test loop thread")
    unraisable: list[sys.UnraisableHookArgs] = []
    outcomes: list[str] = []
    stopping = threading.Event()

    def submit_and_wait(worker: int) -> None:
        while not stopping.is_set():
            try:
                loop_thread.submit(echo, worker).result(WAIT)
            except concurrent.futures.CancelledError:
                outcomes.append("cancelled")
            except concurrent.futures.TimeoutError:
                outcomes.append("stranded")
                return
            except Exception as error:  # any other outcome: the failure to show
                outcomes.append(repr(error))
            else:
                outcomes.append("result")

    interval, hook = sys.getswitchinterval(), sys.unraisablehook
    sys.setswitchinterval(1e-5)  # threads switch often: the race shows within the rounds
    sys.unraisablehook = unraisable.append  # the "never awaited" warning comes from __del__
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            threads = [
                threading.Thread(target=submit_and_wait, args=(worker,))
                for worker in range(workers)
            ]
            for thread in threads:
                thread.start()
            deadline = time.monotonic() + time_limit
            for _ in range(rounds):
                if time.monotonic() > deadline:
                    break
                loop_thread.loop  # noqa: B018 - started, so that every round stops a loop
                loop_thread.stop()
            stopping.set()
            for thread in threads:
                thread.join(WAIT + 1)
            loop_thread.stop()
            gc.collect()
    finally:
        sys.setswitchinterval(interval)
        sys.unraisablehook = hook
        stopping.set()
    failures = {
        "stranded or failed callers": [
            outcome for outcome in outcomes if outcome not in {"result", "cancelled"}
        ],
        "warnings": [str(warning.message) for warning in caught],
        "unraisable": [str(args.exc_value or args.err_msg) for args in unraisable],
    }
    assert failures == {"stranded or failed callers": [], "warnings": [], "unraisable": []}
    assert not any(thread.is_alive() for thread in threads)
