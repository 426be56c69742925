"""The one-time signal a flight's waiters wait on, from any event loop or thread."""

from __future__ import annotations

import asyncio

import anyio
import pytest

from mosaic_httpx_auth._loops.completion import Completion


@pytest.mark.anyio
async def test_a_wait_given_up_leaves_nothing_behind() -> None:
    """Waits that time out, as a waiter looking now and then at another loop's flight does,
    leave no waker on the completion: a long wait costs no memory."""
    done = Completion()
    for _ in range(100):
        with anyio.move_on_after(0):
            await done.wait()
    assert done._wakers == []


@pytest.mark.anyio
async def test_every_waiter_is_woken_once_it_is_set() -> None:
    """Waiters in several tasks all return once it is set, and a wait after that returns at
    once."""
    done = Completion()
    woken: list[int] = []

    async def wait(number: int) -> None:
        await done.wait()
        woken.append(number)

    async with anyio.create_task_group() as tasks:
        for number in range(10):
            tasks.start_soon(wait, number)
        await anyio.wait_all_tasks_blocked()
        done.set()
    assert sorted(woken) == list(range(10))
    await done.wait()


def test_setting_it_after_a_waiters_loop_closed_raises_nothing() -> None:
    """A waiter left behind on a loop closed by hand (its task never cancelled) is no one to
    wake: setting the completion from that same thread raises nothing."""
    done = Completion()
    loop = asyncio.new_event_loop()
    task = loop.create_task(done.wait())
    loop.run_until_complete(asyncio.sleep(0.01))
    loop.close()
    done.set()
    assert not task.done()
