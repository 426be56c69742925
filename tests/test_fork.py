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
    """A reset that is a bound method does not keep its object alive, and goes with it."""

    class Holder:
        def reset(self) -> None:
            """Nothing to reset."""

    holder = Holder()
    _fork.on_fork_in_child(holder.reset)
    held = next(key for key in _fork._resets if key() == holder.reset)
    del holder
    gc.collect()
    assert held() is None
    assert held not in _fork._resets
