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

# The resets, in the order registered, each as a function that returns it: a method through a
# weak reference, which drops out of this dict when its object goes.
_resets: dict[Callable[[], Reset | None], None] = {}


def on_fork_in_child(reset: Reset) -> None:
    """Have every child forked from now on call `reset`, after the resets registered before
    it. A bound method is held weakly: it is forgotten with its object."""
    if isinstance(reset, types.MethodType):
        _resets[weakref.WeakMethod(reset, _forget)] = None
    else:
        _resets[lambda: reset] = None


def _forget(dead: weakref.WeakMethod[types.MethodType]) -> None:
    _resets.pop(dead, None)


def _reset_all() -> None:
    for held in list(_resets):
        reset = held()
        if reset is not None:
            reset()


os.register_at_fork(after_in_child=_reset_all)
