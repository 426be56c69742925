"""Run every scenario side by side and print the table: `python -m benchmarks [--quick]`.

A full run takes about 6 minutes on a shared machine with two cores (6 min 11 s, measured on
one), and `make bench`, which then measures import costs, about 7 (6 min 40 s). `--quick`
(`make bench QUICK=1`, and `make test`'s smoke run) takes about a minute (65 s), at tiny sizes
whose figures mean nothing. A count that is off (more token requests than resources, a failed
request) fails either; a full run then reports the timing goals, met or not, without failing
on them. Either draws the rollover plot in .benchmarks/rollover.png, which git ignores; the
README's plot is refreshed only on purpose: `--plot benchmarks/rollover.png`
(`make bench PLOT=benchmarks/rollover.png`).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import os
import platform
import signal
import sys
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
from ._report import Results, goals, httpx2_table, plot_rollover, table, verdict
from ._scenarios import cold_burst, failing_endpoint, revocation_storm, rollover
from ._sizes import FULL, QUICK
from ._threads import sync_threads
from ._warm import warm_cost

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from ._sizes import Sizes

CHECKOUT = Path(__file__).resolve().parent.parent
# The README's plot, tracked by git: a run that rewrote it would leave every checkout dirty.
README_PLOT = CHECKOUT / "benchmarks" / "rollover.png"
# Where a run draws its plot unless told otherwise: .gitignore lists `.benchmarks/`.
SCRATCH_PLOT = CHECKOUT / ".benchmarks" / "rollover.png"
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


def shown(path: Path) -> Path:
    """`path` as a reader finds it: from the current directory if it is under it."""
    try:
        return path.resolve().relative_to(Path.cwd())
    except ValueError:
        return path


def arguments() -> argparse.ArgumentParser:
    """The command line: `--quick` and `--plot`."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--quick", action="store_true", help="tiny sizes: the smoke run, about a minute"
    )
    parser.add_argument(
        "--plot",
        type=Path,
        default=SCRATCH_PLOT,
        metavar="PATH",
        help=f"where to draw the rollover plot (default: {shown(SCRATCH_PLOT)}; the README's: "
        f"{shown(README_PLOT)})",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """Measure, print the tables and the goals, draw the plot; exit 1 if a count is off."""
    options = arguments().parse_args(argv)
    # Ended from outside (CI cancelling, `timeout`), unwind as on Ctrl+C: the emulator, Redis
    # and fleet processes this run started are stopped on the way out.
    signal.signal(signal.SIGTERM, lambda number, frame: sys.exit(128 + number))
    sizes = QUICK if options.quick else FULL
    results = measure(sizes)

    print(f"Machine: {machine()}\n")
    if options.quick:
        print("A quick run, at tiny sizes: its figures mean nothing.\n")
    print(table(results))
    print("\nOn httpx2, Authlib's HTTP library:\n")
    print(httpx2_table(results))
    plot: Path = options.plot
    if plot_rollover(results.rollover, sizes, plot):
        print(f"\nRollover plot: {shown(plot)}")
    else:
        print("\nNo plot: install the bench extra (matplotlib) for it.")
    print()
    lines, counts_hold = verdict(goals(results), quick=options.quick)
    print("\n".join(lines))
    if not counts_hold:
        sys.exit("A count was off: see above.")


if __name__ == "__main__":
    main()
