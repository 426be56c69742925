"""An asyncio event loop on a daemon thread of its own, which callers on any event loop or
thread hand work to.

Work that must not depend on the caller's loop runs here: a connection kept open belongs to
one loop, and a timeout measured on a caller's loop busy with a burst of requests would also
count that loop's other work. The thread starts at first use, and again in a process forked
after it started: a child inherits no thread, only its memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import threading
from concurrent.futures import Future
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from .._fork import on_fork_in_child
from .completion import Completion

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

_T = TypeVar("_T")


class LoopThread:
    """A private event loop on a daemon thread; `run` awaits a coroutine function there."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        # The futures `submit` returned that have not ended yet, on the current loop.
        self._pending: set[Future[Any]] = set()
        on_fork_in_child(self._forget_thread)

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The thread's loop, started if need be."""
        with self._lock:
            return self._started_loop()

    def _started_loop(self) -> asyncio.AbstractEventLoop:
        """The thread's loop, started if need be; the caller holds `_lock`."""
        if self._loop is None:
            loop = asyncio.new_event_loop()
            pending: set[Future[Any]] = set()
            thread = threading.Thread(
                target=_run, args=(loop, pending), name=self._name, daemon=True
            )
            thread.start()
            self._loop, self._thread, self._pending = loop, thread, pending
        return self._loop

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the loop (its tasks are cancelled) and wait for the thread, if it started; a
        later `submit` or `run` starts another."""
        with self._lock:
            loop, thread, self._loop, self._thread = self._loop, self._thread, None, None
        if loop is not None and thread is not None:
            # Queued behind every call `submit` handed this loop (it did so holding the lock
            # taken above): the loop starts them all before it stops, then cancels its tasks.
            loop.call_soon_threadsafe(loop.stop)
            if thread is not threading.current_thread():
                thread.join(timeout)

    def is_current(self) -> bool:
        """Whether the caller runs on this loop's thread."""
        return self._thread is threading.current_thread()

    def submit(self, func: Callable[..., Awaitable[_T]], *args: object) -> Future[_T]:
        """Start ``func(*args)`` on the thread's loop; its future always ends: with the
        call's outcome, or cancelled (by its caller, or by `stop`)."""
        future: Future[_T] = Future()
        with self._lock:
            # Under the lock, so that a `stop` comes after this call reaches the loop: a loop
            # stopped in between would never start it, and its caller would wait forever.
            loop = self._started_loop()
            self._pending.add(future)
            future.add_done_callback(self._pending.discard)
            # In a context of its own: the caller's would tell anyio, and the libraries using
            # it there, that they run on the caller's event loop (trio, say).
            loop.call_soon_threadsafe(
                _start, loop, future, func, args, context=contextvars.Context()
            )
        return future

    def _forget_thread(self) -> None:
        """In a forked child: the thread is gone, and its lock may have been held."""
        self._lock = threading.Lock()
        self._loop = self._thread = None
        self._pending = set()

    async def run(self, func: Callable[..., Awaitable[_T]], *args: object) -> _T:
        """``await func(*args)`` on the thread's loop, from any other loop; cancelling the
        caller cancels it there."""
        future = self.submit(func, *args)
        done = Completion()
        future.add_done_callback(lambda _: done.set())
        try:
            await done.wait()
        finally:
            future.cancel()
        return future.result()


def _run(loop: asyncio.AbstractEventLoop, pending: set[Future[Any]]) -> None:
    """The thread: run `loop` until stopped, then cancel what is left and close it."""
    asyncio.set_event_loop(loop)
    try:
        loop.run_forever()
        tasks = asyncio.all_tasks(loop)
        for task in tasks:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
    finally:
        loop.close()
        # None are left unless the loop broke off; their callers must not wait forever.
        for future in list(pending):
            future.cancel()


def _start(
    loop: asyncio.AbstractEventLoop,
    future: Future[_T],
    func: Callable[..., Awaitable[_T]],
    args: tuple[object, ...],
) -> None:
    """On the loop: run ``func(*args)`` as a task that ends `future`, unless its caller has
    cancelled it already (then nothing is called, and no coroutine made)."""
    if future.cancelled():
        return
    task = loop.create_task(_call(func, *args))
    task.add_done_callback(partial(_end, future))
    future.add_done_callback(partial(_cancel_task, loop, task))


def _end(future: Future[_T], task: asyncio.Task[_T]) -> None:
    """Hand the outcome of `task` to `future`, unless its caller has cancelled it."""
    # `future` stays pending until here, so that `cancel()` works on it until it ends.
    if task.cancelled():
        future.cancel()
    elif future.set_running_or_notify_cancel():
        error = task.exception()
        if error is None:
            future.set_result(task.result())
        else:
            future.set_exception(error)


def _cancel_task(
    loop: asyncio.AbstractEventLoop, task: asyncio.Task[Any], future: Future[Any]
) -> None:
    """When a caller cancels `future`, cancel its task, on the loop (from any thread)."""
    if future.cancelled() and not task.done():
        # A loop closed since has finished its tasks already.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(task.cancel)


async def _call(func: Callable[..., Awaitable[_T]], *args: object) -> _T:
    """``await func(*args)``: a coroutine for a task, whatever awaitable `func` returns."""
    return await func(*args)
