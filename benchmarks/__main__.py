"""Run every scenario side by side and print the table: `python -m benchmarks [--quick]`.

`make bench` runs it in full, which takes a few minutes and writes the rollover plot;
`--quick` is CI's smoke run at tiny sizes, whose figures mean nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import os
import platform
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from ._contenders import (
    ASYNC_CONTENDERS,
    HTTPX2_CONTENDERS,
    OURS,
    OURS_HTTPX2,
    STATIC,
    SYNC_CONTENDERS,
)
from ._emulator_process import ServedEmulator
from ._fleet import fleet
from ._report import Results, goals, httpx2_table, plot_rollover, table
from ._scenarios import cold_burst, failing_endpoint, revocation_storm, rollover
from ._sizes import FULL, QUICK
from ._threads import sync_threads
from ._warm import warm_cost

if TYPE_CHECKING:
    from collections.abc import Iterator

    from ._sizes import Sizes

PLOT = Path(__file__).parent / "rollover.png"
LIBRARIES = ("mosaic-httpx-auth", "httpx", "httpx2", "httpx-auth", "authlib", "coredis")


@contextlib.contextmanager
def step(name: str) -> Iterator[None]:
    """Report on stderr how long `name` took: progress through a run of minutes."""
    print(f"{name} ...", end=" ", file=sys.stderr, flush=True)
    started = time.perf_counter()
    yield
    print(f"{time.perf_counter() - started:.1f} s", file=sys.stderr)


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    """A throwaway redis-server on a free loopback port: the suite's own."""
    from tests.redis_server import RedisServer

    server = RedisServer()
    server.start()
    try:
        yield server.url
    finally:
        server.kill()


def measure(sizes: Sizes) -> Results:
    """Every scenario, each contender in turn."""
    results = Results(sizes)
    with step("warm requests"):
        results.warm = warm_cost(sizes)
    managed = {name: opener for name, opener in ASYNC_CONTENDERS.items() if name != STATIC}
    hour = {"token_lifetime": 3600.0, "token_delay": sizes.token_delay}
    short = {"token_lifetime": sizes.token_lifetime, "token_delay": sizes.token_delay}
    with ServedEmulator(**hour) as emulator:
        for name, opener in {**ASYNC_CONTENDERS, **HTTPX2_CONTENDERS}.items():
            with step(f"cold burst: {name}"):
                results.burst[name] = cold_burst(opener, emulator, sizes)
        for name, opener in managed.items():
            with step(f"revocation storm: {name}"):
                results.storm[name] = revocation_storm(opener, emulator, sizes)
        for name, sync_opener in SYNC_CONTENDERS.items():
            with step(f"sync threads: {name}"):
                results.threads[name] = sync_threads(sync_opener, emulator, sizes)
    # On httpx2 too: once the token comes, the requests that waited for it go out at once, and
    # httpx's connection pool takes far longer than httpx2's to place a thousand of them.
    failing_contenders = {**managed, OURS_HTTPX2: HTTPX2_CONTENDERS[OURS_HTTPX2]}
    for name, opener in failing_contenders.items():
        # The faults are queued for one contender: each meets them on an emulator of its own.
        with step(f"failing token endpoint: {name}"), ServedEmulator(**hour) as emulator:
            results.failing[name] = failing_endpoint(opener, emulator, sizes)
    with ServedEmulator(**short) as emulator:
        for name, opener in ASYNC_CONTENDERS.items():
            with step(f"rollover: {name}"):
                results.rollover[name] = rollover(opener, emulator, sizes)
        with redis_server() as redis_url:
            for name in managed:
                with step(f"fleet: {name}"):
                    shared = redis_url if name == OURS else None
                    results.fleet[name] = fleet(name, emulator, shared, sizes)
    return results


def machine() -> str:
    """The processor, system and library versions the figures come from."""
    processor = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                processor = line.split(":", 1)[1].strip()
                break
    versions = ", ".join(f"{name} {importlib.metadata.version(name)}" for name in LIBRARIES)
    return (
        f"{processor}, {os.cpu_count()} cores, {platform.system()} {platform.release()}; "
        f"Python {platform.python_version()}; {versions}"
    )


def main() -> None:
    """Measure, print the tables and the goals, draw the plot; exit 1 if a count is off."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run for CI")
    parser.add_argument(
        "--plot", type=Path, help=f"where to write the rollover plot (full run: {PLOT})"
    )
    options = parser.parse_args()
    # Ended from outside (CI cancelling, `timeout`), unwind as on Ctrl+C: the emulator, Redis
    # and fleet processes this run started are stopped on the way out.
    signal.signal(signal.SIGTERM, lambda number, frame: sys.exit(128 + number))
    sizes = QUICK if options.quick else FULL
    results = measure(sizes)

    print(f"Machine: {machine()}\n")
    print(table(results))
    print("\nOn httpx2, Authlib's HTTP library:\n")
    print(httpx2_table(results))
    print()
    checked = goals(results)
    for goal in checked:
        print(f"{'✓' if goal.met else '✗'} {goal.figure}")
    with tempfile.TemporaryDirectory() as scratch:
        plot = options.plot or (Path(scratch) / "rollover.png" if options.quick else PLOT)
        if plot_rollover(results.rollover, sizes, plot):
            if not options.quick or options.plot:
                print(f"\nrollover plot: {plot}")
        else:
            print("\nno plot: install the bench extra (matplotlib) for it")
    # A count that is off is a bug (of the library or of the benchmark) at any size; a timing
    # is the machine's too, and is reported without failing the run.
    if not all(goal.met for goal in checked if not goal.timed):
        sys.exit("a target that is a count was missed")


if __name__ == "__main__":
    main()
