"""A one-time signal that a flight has ended, awaitable from any event loop on any thread.

anyio's events belong to the loop that made them. A `MosaicAuth` may serve several loops at
once (one per thread), and a caller on one may wait for a fetch running on another: each
waiter gets an event of its own loop, and the flight's end is handed to that loop the way the
loop accepts calls from other threads.
"""

from __future__ import annotations

import contextlib
import threading
from typing import TYPE_CHECKING

import anyio

from .tasks import asyncio_loop, current_loop

if TYPE_CHECKING:
    from collections.abc import Callable


class Completion:
    """Set once, by whoever runs the flight; waited on by any number of callers, anywhere."""

    __slots__ = ("_done", "_lock", "_wakers")

    def __init__(self) -> None:
        self._done = False
        self._lock = threading.Lock()
        self._wakers: list[Callable[[], None]] = []

    def set(self) -> None:
        """Mark it done and wake every waiter, on its own loop."""
        with self._lock:
            self._done = True
            wakers, self._wakers = self._wakers, []
        for wake in wakers:
            wake()  # never raises: a waiter whose loop has ended has nobody left to wake

    async def wait(self) -> None:
        """Return once it is set; cancellable like any wait, which leaves nothing behind."""
        with self._lock:
            if self._done:
                return
            event = anyio.Event()
            wake = _waker(event)
            self._wakers.append(wake)
        try:
            await event.wait()
        finally:
            with self._lock:
                if wake in self._wakers:  # cancelled before it was set
                    self._wakers.remove(wake)


def _waker(event: anyio.Event) -> Callable[[], None]:
    """What sets `event` from any thread: directly on its own loop's thread, else through the
    loop's thread-safe door (a loop that has ended since has no one left to wake)."""
    loop = current_loop()
    asyncio_event_loop = asyncio_loop(loop)
    thread = threading.get_ident()

    def wake() -> None:
        if threading.get_ident() == thread:
            with contextlib.suppress(RuntimeError):  # its loop was closed, the task left behind
                event.set()
        elif asyncio_event_loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop is closed
                asyncio_event_loop.call_soon_threadsafe(event.set)
        else:
            import trio  # only a trio run gets here

            with contextlib.suppress(trio.RunFinishedError):
                loop.run_sync_soon(event.set)  # type: ignore[attr-defined]

    return wake
