"""Sync clients: threads sharing one `httpx.Client` (Authlib: one `OAuth2Client` per resource),
from no token, then with tokens in hand."""

from __future__ import annotations

import concurrent.futures
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ._contenders import PATHS
from ._scenarios import target_for

if TYPE_CHECKING:
    from ._contenders import SyncOpener, SyncSend
    from ._emulator_process import ServedEmulator
    from ._sizes import Sizes


@dataclass(frozen=True, slots=True)
class Threads:
    """Sync threads: token requests and failures from cold, and warm throughput."""

    cold_token_requests: int
    cold_failed: int
    warm_rate: float
    """Requests a second, all threads together, with tokens in hand."""


def _hammer(send: SyncSend, sizes: Sizes) -> tuple[int, float]:
    """Every thread sends its requests, all starting at once; return the failures and the
    seconds from the start to the last answer."""
    start = threading.Barrier(sizes.threads)

    def one_thread(number: int) -> int:
        start.wait()
        failed = 0
        for request in range(sizes.thread_requests):
            try:
                failed += send(PATHS[(number + request) % len(PATHS)]) != 200
            except Exception:
                failed += 1
        return failed

    with concurrent.futures.ThreadPoolExecutor(sizes.threads) as pool:
        began = time.perf_counter()
        failed = sum(pool.map(one_thread, range(sizes.threads)))
        return failed, time.perf_counter() - began


def sync_threads(opener: SyncOpener, emulator: ServedEmulator, sizes: Sizes) -> Threads:
    """Threads hammering one client from no token, then with tokens in hand."""
    target = target_for(emulator)
    before = emulator.token_requests()
    with opener(target) as send:
        cold_failed, _ = _hammer(send, sizes)
        cold_token_requests = emulator.token_requests() - before
        _, seconds = _hammer(send, sizes)
    return Threads(
        cold_token_requests, cold_failed, sizes.threads * sizes.thread_requests / seconds
    )
