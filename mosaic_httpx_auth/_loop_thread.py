"""An asyncio event loop on a daemon thread of its own, which callers on any event loop or
thread hand work to.

Work that must not depend on the caller's loop runs here: a connection kept open belongs to
one loop, and a timeout measured on a caller's loop busy with a burst of requests would also
count that loop's other work. The thread starts at first use, and again in a process forked
after it started: a child inherits no thread, only its memory.
"""

from __future__ import annotations

import asyncio
import contextvars
import os
import threading
import weakref
from typing import TYPE_CHECKING, TypeVar

from ._completion import Completion

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from concurrent.futures import Future

_T = TypeVar("_T")


class LoopThread:
    """A private event loop on a daemon thread; `run` awaits a coroutine function there."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        _FORKABLE.add(self)

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The thread's loop, started if need be."""
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=_run, args=(loop,), name=self._name, daemon=True)
                thread.start()
                self._loop, self._thread = loop, thread
            return self._loop

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the loop (its tasks are cancelled) and wait for the thread, if it started; a
        later `run` starts another."""
        with self._lock:
            loop, thread, self._loop, self._thread = self._loop, self._thread, None, None
        if loop is not None and thread is not None:
            loop.call_soon_threadsafe(loop.stop)
            if thread is not threading.current_thread():
                thread.join(timeout)

    def is_current(self) -> bool:
        """Whether the caller runs on this loop's thread."""
        return self._thread is threading.current_thread()

    def submit(self, func: Callable[..., Awaitable[_T]], *args: object) -> Future[_T]:
        """Start ``func(*args)`` on the thread's loop."""
        # In a context of its own: the caller's would tell anyio, and the libraries using
        # it there, that they run on the caller's event loop (trio, say).
        return contextvars.Context().run(
            asyncio.run_coroutine_threadsafe, _call(func, *args), self.loop
        )

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


def _run(loop: asyncio.AbstractEventLoop) -> None:
    """The thread: run `loop` until stopped, then cancel what is left and close it."""
    asyncio.set_event_loop(loop)
    loop.run_forever()
    # Calls handed over as it stopped become tasks now, and are cancelled with the rest.
    loop.run_until_complete(asyncio.sleep(0))
    tasks = asyncio.all_tasks(loop)
    for task in tasks:
        task.cancel()
    loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
    loop.close()


async def _call(func: Callable[..., Awaitable[_T]], *args: object) -> _T:
    return await func(*args)


# Every LoopThread, for `_forget_threads`: one fork hook for them all.
_FORKABLE: weakref.WeakSet[LoopThread] = weakref.WeakSet()


def _forget_threads() -> None:
    """In a forked child: the threads are gone, and their locks may have been held."""
    for loop_thread in list(_FORKABLE):
        loop_thread._lock = threading.Lock()
        loop_thread._loop = loop_thread._thread = None


os.register_at_fork(after_in_child=_forget_threads)
