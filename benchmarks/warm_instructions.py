"""The warm request's cost in CPU instructions, counted by valgrind: a figure that does not move
with the machine's load, where `make bench`'s times move by a point from run to run.

Each contender of the warm scenario runs in a child process under callgrind twice, with
`SHORT` and then `LONG` warm requests after the same setup; the difference between the two
counts, over the difference in requests, is what one request costs. Hash randomisation and
address-space randomisation are off, so two runs count within a few hundred instructions.

Run: `.venv/bin/python -m benchmarks.warm_instructions` (Linux, with valgrind installed:
``apt-get install valgrind``); a few minutes. Not part of `make bench`.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import re
import shutil
import subprocess
import sys

import anyio

from ._contenders import Target
from ._emulator_process import Credentials
from ._warm import CONTENDERS, PATH

SHORT, LONG = 100, 400
# Requests before counting starts, on both runs: the token is fetched, caches are filled.
SETTLE = 50


def run_requests(contender: str, requests: int) -> None:
    """In the child: `SETTLE` then `requests` sequential warm requests of `contender`."""
    opener, _ = CONTENDERS[contender]
    target = Target(base_url=None, credentials=Credentials("client-id", "client-secret"))

    async def send_all() -> None:
        async with opener(target) as send:
            for _ in range(SETTLE + requests):
                await send(PATH)

    anyio.run(send_all)


def instructions(contender: str, requests: int) -> int:
    """The instructions a child making `requests` warm requests of `contender` executes."""
    command = [
        "valgrind",
        "--tool=callgrind",
        "--callgrind-out-file=/dev/null",
        sys.executable,
        "-m",
        "benchmarks.warm_instructions",
        "--child",
        contender,
        str(requests),
    ]
    if shutil.which("setarch"):
        command = ["setarch", "--addr-no-randomize", *command]
    environment = {**os.environ, "PYTHONHASHSEED": "0"}
    done = subprocess.run(  # noqa: S603 - our own interpreter, under valgrind
        command, env=environment, capture_output=True, text=True, check=False
    )
    collected = re.search(r"Collected : (\d+)", done.stderr)
    if done.returncode != 0 or collected is None:
        raise RuntimeError(f"callgrind counted nothing for {contender}:\n{done.stderr}")
    return int(collected.group(1))


def per_request(contender: str) -> float:
    """Instructions one warm request of `contender` executes."""
    return (instructions(contender, LONG) - instructions(contender, SHORT)) / (LONG - SHORT)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--child", nargs=2, metavar=("CONTENDER", "REQUESTS"), help=argparse.SUPPRESS
    )
    arguments = parser.parse_args()
    if arguments.child:
        run_requests(arguments.child[0], int(arguments.child[1]))
        return
    if shutil.which("valgrind") is None:
        sys.exit("counting instructions needs valgrind: apt-get install valgrind")
    with concurrent.futures.ThreadPoolExecutor(os.cpu_count()) as pool:
        counts = dict(zip(CONTENDERS, pool.map(per_request, CONTENDERS), strict=True))
    print(f"instructions per warm request (callgrind, {LONG} against {SHORT} requests):")
    for name, (_, baseline) in CONTENDERS.items():
        ratio = counts[name] / counts[baseline] - 1
        versus = "" if name == baseline else f"  ({ratio:+.1%} on {baseline})"
        print(f"  {name:24s} {counts[name]:9,.0f}{versus}")


if __name__ == "__main__":
    main()
