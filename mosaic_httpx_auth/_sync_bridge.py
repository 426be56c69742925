"""How sync callers (`httpx.Client`, `get_token_sync`) share the async token fetcher.

The fetcher and its single flight run on an event loop; a sync caller has none. So its work runs
on an event loop thread of the auth's own (`LoopThread`), started at the first sync call that
needs a token it does not have, while the calling thread blocks until that work is done. A
token already usable is served on the caller's thread, without a hop.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import sys
import threading
import weakref
from typing import TYPE_CHECKING, TypeVar

from ._exceptions import UnsupportedClientError
from ._fetcher import stopped_by_close
from ._fork import on_fork_in_child

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    import httpx

    from ._fetcher import TokenFetcher
    from ._loops.thread import LoopThread
    from ._token import AccessToken
    from ._token_states import TokenStates

    # The auth's way to the fetcher's token: (resource, request, deadline, refused) -> token.
    TokenSource = Callable[..., Awaitable[AccessToken]]

_T = TypeVar("_T")


class SyncBridge:
    """Runs the token fetcher's work for sync callers on an event loop thread of its own, which
    `close()` stops (a later call starts another)."""

    def __init__(
        self, states: TokenStates, fetcher: TokenFetcher, *, own_token_client: bool
    ) -> None:
        self._states = states
        self._fetcher = fetcher
        self._own_token_client = own_token_client
        self._loop_thread: LoopThread | None = None
        self._loop_thread_lock = threading.Lock()
        on_fork_in_child(self._after_fork)

    def require_own_token_client(self) -> None:
        """Sync requests fetch tokens on the auth's own event loop thread, with a client of
        its own: a caller's `http_client` belongs to the caller's event loop."""
        if not self._own_token_client:
            raise UnsupportedClientError(
                "a MosaicAuth given an http_client serves httpx.AsyncClient only: its token "
                "requests belong to that client's event loop. For httpx.Client, leave "
                "http_client out and MosaicAuth makes its token requests itself"
            )

    def token(
        self,
        source: TokenSource,
        resource: str | None,
        request: httpx.Request | None = None,
        deadline: float | None = None,
        refused: AccessToken | None = None,
    ) -> AccessToken:
        """A usable token other than `refused`: one still usable is served at once, as the
        async path does, its refresh started if due; else this thread waits for
        ``source(resource, request, deadline, refused)``, until `deadline`."""
        token, refresh_due = self._states.served_token(resource)
        if token is None or token == refused:
            return self.run(source, resource, request, deadline, refused)
        if refresh_due:
            # Started on the auth's thread, not waited for: the first there starts it.
            self._started_loop_thread().submit(source, resource)
        return token

    def run(self, func: Callable[..., Awaitable[_T]], resource: str | None, *args: object) -> _T:
        """``await func(resource, *args)`` on the auth's own event loop thread, blocking this
        thread until it is done."""
        self.refuse_event_loop_thread()
        future = self._started_loop_thread().submit(func, resource, *args)
        try:
            return future.result()
        except concurrent.futures.CancelledError as error:
            raise stopped_by_close(resource) from error
        except BaseException:
            # Interrupted (Ctrl+C, a signal handler's exception): stop waiting there too, so
            # that nobody keeps a fetch going for this caller.
            future.cancel()
            raise

    @staticmethod
    def refuse_event_loop_thread() -> None:
        """Refuse to wait on an event loop's thread: that would stop the loop, and with it
        any fetch it runs that the wait is for (a deadlock, not a slow request)."""
        if _running_event_loop():
            raise UnsupportedClientError(
                "a sync request that needs a token (or get_token_sync, invalidate_sync with a "
                "shared cache) was made on an event loop's thread: use httpx.AsyncClient there "
                "(or get_token, invalidate), or make it in a worker thread"
            )

    def close(self) -> None:
        """Stop the event loop thread, its fetches and its token client, if sync calls
        started them."""
        loop_thread = self._loop_thread
        if loop_thread is not None:
            if not loop_thread.is_current():  # from its own thread (a hook), stop it only
                with contextlib.suppress(concurrent.futures.CancelledError):
                    loop_thread.submit(self._fetcher.aclose).result()
            loop_thread.stop()

    def _started_loop_thread(self) -> LoopThread:
        """The event loop thread, made at the first call that needs it."""
        if self._loop_thread is None:
            # Checked here, once: a bridge that may not make a thread never has one.
            self.require_own_token_client()
            from ._loops.thread import LoopThread  # asyncio, which async-only users need not load

            with self._loop_thread_lock:
                if self._loop_thread is None:
                    self._loop_thread = LoopThread("mosaic-httpx-auth tokens")
                    # A bridge dropped without close(), with its auth, takes its thread along.
                    weakref.finalize(self, self._loop_thread.stop)
        return self._loop_thread

    def _after_fork(self) -> None:
        """In a forked child: the lock may have been held by a thread that did not come
        along (the loop thread forgets itself)."""
        self._loop_thread_lock = threading.Lock()


def _running_event_loop() -> bool:
    """Whether this thread is running an event loop (asyncio's, or trio's)."""
    asyncio = sys.modules.get("asyncio")
    if asyncio is not None:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            return True
    trio = sys.modules.get("trio")
    return trio is not None and bool(trio.lowlevel.in_trio_run())
