"""The package's one fork hook: what a forked child resets, and in which order."""

from __future__ import annotations

import gc
import subprocess
import sys

from mosaic_httpx_auth import _fork


def test_a_child_runs_the_resets_in_the_order_registered() -> None:
    """A forked child calls each reset registered before the fork, first registered first,
    a function and a bound method alike; the parent calls none."""
    script = """
import os
from mosaic_httpx_auth._fork import on_fork_in_child
calls = []
class Holder:
    def reset(self):
        calls.append("method")
holder = Holder()
on_fork_in_child(lambda: calls.append("function"))
on_fork_in_child(holder.reset)
if os.fork() == 0:
    os._exit(0 if calls == ["function", "method"] else 1)
_, status = os.wait()
raise SystemExit(os.waitstatus_to_exitcode(status) or (1 if calls else 0))
"""
    subprocess.run([sys.executable, "-c", script], timeout=30, check=True)  # noqa: S603


def test_a_bound_method_is_forgotten_with_its_object() -> None:
    """A reset that is a bound method does not keep its object alive, and goes with it at
    the next registration."""

    class Holder:
        def reset(self) -> None:
            """Nothing to reset."""

    holder = Holder()
    _fork.on_fork_in_child(holder.reset)
    owner = _fork._resets[-1][0]
    assert owner is not None
    assert owner() is holder
    del holder
    gc.collect()
    assert owner() is None
    _fork.on_fork_in_child(print)
    assert all(entry[0] is not owner for entry in _fork._resets)


def test_objects_that_compare_equal_are_each_reset() -> None:
    """Two objects equal by value each register a reset of their own, and a child runs
    both; an object that is falsy is not taken for a dead one."""
    script = """
import os
from mosaic_httpx_auth._fork import on_fork_in_child
calls = []
class Same:
    def __init__(self, name):
        self.name = name
    def __eq__(self, other):
        return isinstance(other, Same)
    def __hash__(self):
        return 0
    def __bool__(self):
        return False
    def reset(self):
        calls.append(self.name)
first, second = Same("first"), Same("second")
on_fork_in_child(first.reset)
on_fork_in_child(second.reset)
on_fork_in_child(print)  # prunes dead entries: none of these is dead
if os.fork() == 0:
    os._exit(0 if calls == ["first", "second"] else 1)
_, status = os.wait()
raise SystemExit(os.waitstatus_to_exitcode(status))
"""
    subprocess.run([sys.executable, "-c", script], timeout=30, check=True)  # noqa: S603


def test_a_program_holding_an_auth_exits_without_a_word() -> None:
    """A program that keeps a MosaicAuth in a module global to its end writes nothing to
    stderr as the interpreter tears its modules down."""
    script = """
import asyncio, dataclasses, inspect
from mosaic_httpx_auth import MosaicAuth
auth = MosaicAuth("client-id", "client-secret")
"""
    done = subprocess.run(  # noqa: S603
        [sys.executable, "-c", script], timeout=30, check=True, capture_output=True, text=True
    )
    assert done.stderr == ""
