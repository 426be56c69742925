"""Work that outlives the caller who started it: a task the event loop owns, not a caller.

A token fetch must finish even when the request that started it gives up (its deadline
passes, its client disconnects): otherwise slow answers are thrown away one after another and
no caller ever gets a token. Structured concurrency has no place for such a task outside a
task group someone must enter, so it is handed to the event loop itself, as anyio does for its
own internals: an asyncio task, or a trio system task. The loop cancels it when the run ends.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, cast

from anyio.lowlevel import current_token

if TYPE_CHECKING:
    import asyncio
    from collections.abc import Awaitable, Callable

# asyncio keeps only weak references to its tasks: these keep ours running to their end.
_running: set[asyncio.Task[None]] = set()


def current_loop() -> object:
    """The running event loop (a trio token under trio): what a flight belongs to."""
    return current_token().native_token


def asyncio_loop(loop: object) -> asyncio.AbstractEventLoop | None:
    """`loop` if it is an asyncio loop, else None (a trio token).

    Asked without importing asyncio, which a trio program need not load: when it is not
    loaded, no loop is an asyncio loop.
    """
    module = sys.modules.get("asyncio")
    if module is not None and isinstance(loop, module.AbstractEventLoop):
        return cast("asyncio.AbstractEventLoop", loop)
    return None


def loop_alive(loop: object) -> bool:
    """Whether `loop` can still bring a flight to its end: an asyncio loop that is running (a
    trio run cancels its system tasks as it ends, so their flights end with it)."""
    asyncio_event_loop = asyncio_loop(loop)
    return asyncio_event_loop is None or asyncio_event_loop.is_running()


def start_detached(func: Callable[..., Awaitable[None]], *args: object) -> None:
    """Run ``func(*args)`` on the running event loop, beyond the reach of the caller's
    cancellation. `func` must not raise: it handles its own failures."""
    loop = current_loop()
    asyncio_event_loop = asyncio_loop(loop)
    if asyncio_event_loop is not None:
        task = asyncio_event_loop.create_task(_coroutine(func, *args))
        _running.add(task)
        task.add_done_callback(_running.discard)
    else:
        import trio  # only a trio run gets here

        trio.lowlevel.spawn_system_task(func, *args)


async def _coroutine(func: Callable[..., Awaitable[None]], *args: object) -> None:
    await func(*args)
