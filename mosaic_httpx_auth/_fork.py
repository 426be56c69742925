"""What a forked child must reset: the package's one `os.register_at_fork` hook.

A child inherits the parent's memory but only the thread that forked: a lock another thread
held stays held forever, and the threads, their event loops and the fetches they ran are gone.
Whatever keeps such state registers a reset here.
"""

from __future__ import annotations

import os
import types
import weakref
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

    Reset = Callable[[], object]

# The resets, in the order registered: a bound method as a weak reference to its object and
# its function, so that it is forgotten with its object; anything else as it is. No weakref
# callback: one could run during interpreter shutdown, when this module is half torn down.
_resets: list[tuple[weakref.ref[object] | None, Callable[..., object]]] = []


def on_fork_in_child(reset: Reset) -> None:
    """Have every child forked from now on call `reset`, after the resets registered before
    it. A bound method is held weakly: it is forgotten with its object."""
    _resets[:] = [(owner, fn) for owner, fn in _resets if owner is None or owner() is not None]
    if isinstance(reset, types.MethodType):
        _resets.append((weakref.ref(reset.__self__), reset.__func__))
    else:
        _resets.append((None, reset))


def _reset_all() -> None:
    for owner, function in list(_resets):
        if owner is None:
            function()
        elif (instance := owner()) is not None:
            function(instance)


os.register_at_fork(after_in_child=_reset_all)
