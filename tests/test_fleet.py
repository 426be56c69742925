"""A fleet of real processes sharing tokens through a real redis-server on loopback.

Each process (`fleet_worker`, half on asyncio and half on trio) has a `MosaicAuth` of its own
with a `RedisTokenCache`, and sends API requests to an emulator served on 127.0.0.1 by this
process, which counts the token requests. A test drives the processes in step over their
stdin and stdout: all burst at once, stream across a rollover, or die at a chosen moment.

Processes are kept between the module's tests, as starting one takes a second of imports;
each test gives each of its processes a new, cold `MosaicAuth`. Every read from a process has
a deadline, so a hung process fails its test instead of hanging the run; a process that does
not close its `MosaicAuth` in time after a test is ended then, and all the rest after the
module.
"""

from __future__ import annotations

import contextlib
import json
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import pytest

from mosaic_httpx_auth import RISK_RESOURCE, VERIFY_RESOURCE
from mosaic_httpx_auth.testing import MosaicEmulator

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping

    from joserfc.jwk import RSAKey

    from mosaic_httpx_auth.testing import RegisteredClient

    from .redis_server import RedisServer

pytestmark = pytest.mark.alone

Report = dict[str, Any]
"""What a worker answers a ``burst`` or ``stop`` with: see `fleet_worker`."""

ROOT = Path(__file__).resolve().parent.parent
ROUTES = {"/risk": RISK_RESOURCE, "/verify": VERIFY_RESOURCE}
BACKENDS = ("asyncio", "trio")
PROCESSES = 4
# Seconds a worker may take to start, or to answer a command: far more than any needs.
ANSWER_TIMEOUT = 30.0


class FleetProcess:
    """One worker process, driven a line at a time."""

    def __init__(self, backend: str, stderr: Path) -> None:
        self.backend = backend
        self.stderr = stderr
        with stderr.open("wb") as log:
            self.process = subprocess.Popen(  # noqa: S603 (our own interpreter and module)
                [sys.executable, "-m", "tests.fleet_worker", backend],
                cwd=ROOT,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
            )
        self._quitting = False
        self._lines: queue.Queue[str | None] = queue.Queue()
        # A thread reads stdout, so that every wait for a line can have a deadline.
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        stdout: IO[str] | None = self.process.stdout
        assert stdout is not None
        for line in stdout:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def send(self, line: str) -> None:
        """Send one command; to a worker that died, nothing (reading its answer says so)."""
        stdin: IO[str] | None = self.process.stdin
        assert stdin is not None
        with contextlib.suppress(OSError):
            stdin.write(line + "\n")
            stdin.flush()

    def receive(self, timeout: float = ANSWER_TIMEOUT) -> str:
        """The next line the worker writes; fails the test if none comes in time."""
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(
                f"worker {self.process.pid} did not answer within {timeout} s; "
                f"its stderr: {self.stderr.read_text()}"
            ) from None
        if line is None:
            self._lines.put(None)  # for whoever reads next
            raise AssertionError(
                f"worker {self.process.pid} exited ({self.process.wait()}); "
                f"its stderr: {self.stderr.read_text()}"
            )
        return line

    def report(self) -> Report:
        """The worker's next JSON report."""
        report: Report = json.loads(self.receive())
        return report

    def closed(self) -> bool:
        """Whether it answers ``closed`` in time, once sent ``close``; any answer a failed
        test left unread is skipped."""
        try:
            while self.receive(timeout=5) != "closed":
                pass
        except AssertionError:
            return False
        return True

    def kill(self) -> None:
        """Kill it at once (SIGKILL), as a crash would."""
        self.process.kill()
        self.process.wait()

    def quit(self) -> None:
        """Ask it to quit, if it runs, without waiting for it to."""
        if self.process.poll() is None and not self._quitting:
            self._quitting = True
            self.send("quit")

    def close(self) -> None:
        """Ask it to quit; kill it if it does not."""
        self.quit()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.kill()
        for pipe in (self.process.stdin, self.process.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):  # a line left unsent to a killed worker
                    pipe.close()
        self._reader.join(timeout=5)


class WorkerPool:
    """Worker processes kept between tests: starting one takes a second of imports.

    A test sets each one up afresh (a new, cold `MosaicAuth`) and gives it back closed; one
    that does not close in time, or was killed, is ended and replaced.
    """

    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self._idle: list[FleetProcess] = []
        self._all: list[FleetProcess] = []

    def take(self, count: int) -> list[FleetProcess]:
        """`count` workers, alternately on asyncio and trio, started if need be."""
        taken = []
        for number in range(count):
            backend = BACKENDS[number % len(BACKENDS)]
            idle = next((p for p in self._idle if p.backend == backend), None)
            if idle is None:
                stderr = self._directory / f"worker-{len(self._all)}.stderr"
                idle = FleetProcess(backend, stderr)
                self._all.append(idle)
            else:
                self._idle.remove(idle)
            taken.append(idle)
        return taken

    def give_back(self, processes: list[FleetProcess]) -> None:
        """Take `processes` back for the next test, or end those unfit for one."""
        for process in processes:
            process.send("close")
        for process in processes:
            if process.closed():
                self._idle.append(process)
            else:
                process.close()

    def close(self) -> None:
        """End every worker."""
        for process in self._all:
            process.quit()
        for process in self._all:
            process.close()


class Fleet:
    """A test's worker processes: each set up with its own `MosaicAuth`, all given back after
    the test."""

    def __init__(self, pool: WorkerPool) -> None:
        self._pool = pool
        self._processes: list[FleetProcess] = []

    def start(
        self,
        count: int,
        *,
        mosaic_url: str,
        client: RegisteredClient,
        redis_url: str,
        routes: Mapping[str, str] = ROUTES,
        lease: float | None = None,
    ) -> list[FleetProcess]:
        """`count` workers, alternately on asyncio and trio, each with a new, cold
        `MosaicAuth` for `client` on the emulator at `mosaic_url` sharing tokens through the
        Redis at `redis_url`, and requests to `routes`."""
        settings: dict[str, object] = {
            "base_url": mosaic_url,
            "redis_url": redis_url,
            "client_id": client.client_id,
            "client_secret": client.client_secret,
            "routes": dict(routes),
        }
        if lease is not None:
            settings["lease_seconds"] = lease
        processes = self._pool.take(count)
        self._processes += processes
        for process in processes:
            process.send(f"setup {json.dumps(settings)}")
        for process in processes:
            assert process.receive() == "ready"
        return processes

    def close(self) -> None:
        """Give every worker back to the pool."""
        self._pool.give_back(self._processes)


def command(workers: list[FleetProcess], line: str) -> list[Report]:
    """Send `line` to every worker at once, then collect their reports."""
    for worker in workers:
        worker.send(line)
    return [worker.report() for worker in workers]


def failures(reports: list[Report]) -> list[int]:
    """How many requests failed, per worker."""
    return [report["failed"] for report in reports]


def wait_for(condition: Callable[[], bool], *, timeout: float = ANSWER_TIMEOUT) -> None:
    """Return once `condition()` holds; fail the test if it does not in time."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the fleet did not get there in time"
        time.sleep(0.005)


def key_count(server: RedisServer, pattern: str) -> int:
    """How many keys in `server` match `pattern`."""
    answer = server.command("EVAL", "return #redis.call('KEYS', ARGV[1])", "0", pattern)
    return int(answer.lstrip(b":"))


@pytest.fixture
def emulator(mosaic_signing_key: RSAKey) -> MosaicEmulator:
    """An emulator on the real clock, which the fleet's processes share."""
    return MosaicEmulator(signing_key=mosaic_signing_key)


@pytest.fixture
def client(emulator: MosaicEmulator) -> RegisteredClient:
    """The fleet's application, allowed the risk and verify resources."""
    return emulator.register_client(resources=list(ROUTES.values()))


@pytest.fixture
def mosaic_url(emulator: MosaicEmulator) -> Iterator[str]:
    """`emulator` served on 127.0.0.1."""
    with emulator.serve() as url:
        yield url


@pytest.fixture(scope="module")
def worker_pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerPool]:
    """Worker processes for the module's tests, all ended after them."""
    pool = WorkerPool(tmp_path_factory.mktemp("fleet"))
    try:
        yield pool
    finally:
        pool.close()


@pytest.fixture
def fleet(worker_pool: WorkerPool) -> Iterator[Fleet]:
    """The test's worker processes, given back to the pool after it."""
    fleet = Fleet(worker_pool)
    try:
        yield fleet
    finally:
        fleet.close()


def test_a_cold_fleet_makes_one_token_request_per_resource(
    emulator: MosaicEmulator,
    client: RegisteredClient,
    mosaic_url: str,
    redis_url: str,
    fleet: Fleet,
) -> None:
    """Four cold processes bursting 50 requests each at once make one token request per
    resource between them, and all use that one token."""
    workers = fleet.start(PROCESSES, mosaic_url=mosaic_url, client=client, redis_url=redis_url)
    reports = command(workers, "burst 50")
    assert failures(reports) == [0] * PROCESSES
    assert emulator.token_requests == {RISK_RESOURCE: 1, VERIFY_RESOURCE: 1}
    assert all(len(tokens) == 1 for tokens in reports[0]["tokens"].values())
    assert all(report["tokens"] == reports[0]["tokens"] for report in reports)


def test_a_revocation_under_load_makes_one_token_request_per_resource(
    emulator: MosaicEmulator,
    client: RegisteredClient,
    mosaic_url: str,
    redis_url: str,
    fleet: Fleet,
) -> None:
    """When every token is revoked, the 401s of four processes bursting at once end in one new
    token request per resource, and no request fails."""
    workers = fleet.start(PROCESSES, mosaic_url=mosaic_url, client=client, redis_url=redis_url)
    assert failures(command(workers, "burst 10")) == [0] * PROCESSES
    emulator.reset_counters()
    emulator.revoke_tokens()
    reports = command(workers, "burst 50")
    assert failures(reports) == [0] * PROCESSES
    assert emulator.token_requests == {RISK_RESOURCE: 1, VERIFY_RESOURCE: 1}
    # Each process sent its warm token to each API, and heard 401.
    assert emulator.rejected_api_calls.total() >= PROCESSES * len(ROUTES)
    assert all(len(tokens) == 2 for tokens in reports[0]["tokens"].values())
    assert all(report["tokens"] == reports[0]["tokens"] for report in reports)


def test_a_streaming_fleet_makes_one_token_request_per_resource_per_rollover(
    mosaic_signing_key: RSAKey, redis_url: str, fleet: Fleet
) -> None:
    """Four processes streaming requests through two rollovers of 6-second tokens make one
    token request per resource per rollover, switch to each new token together, and fail no
    request."""
    # MosaicAuth refreshes such a token a quarter of its lifetime after it arrives (its leeway
    # and refresh window are capped to fractions of it): every 1.25 to 1.5 s, as the
    # emulator's exp claim is whole seconds.
    emulator = MosaicEmulator(token_lifetime=6, signing_key=mosaic_signing_key)
    client = emulator.register_client(resources=list(ROUTES.values()))
    rollovers = 2
    with emulator.serve() as mosaic_url:
        workers = fleet.start(PROCESSES, mosaic_url=mosaic_url, client=client, redis_url=redis_url)
        cold = command(workers, "burst 8")
        assert emulator.token_requests == {RISK_RESOURCE: 1, VERIFY_RESOURCE: 1}
        for worker in workers:
            worker.send("stream")
        assert [worker.receive() for worker in workers] == ["streaming"] * PROCESSES
        wait_for(lambda: min(emulator.token_requests.values()) > rollovers)
        # Long enough for every process to take the new token from Redis, well short of the
        # next rollover: the count below would show any extra token request.
        time.sleep(0.5)
        streamed = command(workers, "stop")
        token_requests = emulator.token_requests
    assert failures(cold) == [0] * PROCESSES
    assert failures(streamed) == [0] * PROCESSES
    assert token_requests == {RISK_RESOURCE: 1 + rollovers, VERIFY_RESOURCE: 1 + rollovers}
    assert all(len(tokens) == 1 + rollovers for tokens in streamed[0]["tokens"].values())
    assert all(report["tokens"] == streamed[0]["tokens"] for report in streamed)


def test_a_redis_outage_fails_no_request_and_warns_once_per_process(
    emulator: MosaicEmulator,
    client: RegisteredClient,
    mosaic_url: str,
    own_redis_server: RedisServer,
    fleet: Fleet,
) -> None:
    """With Redis killed, processes bursting after each of two revocations fetch their own
    tokens, fail no request, and log one warning each for the whole outage."""
    workers = fleet.start(
        PROCESSES, mosaic_url=mosaic_url, client=client, redis_url=own_redis_server.url
    )
    warm = command(workers, "burst 10")
    own_redis_server.kill()
    emulator.reset_counters()
    outage = []
    for _ in range(2):
        emulator.revoke_tokens()  # so that each process needs Redis, or else a token request
        outage += command(workers, "burst 50")
    assert failures(warm + outage) == [0] * 3 * PROCESSES
    assert [len(report["warnings"]) for report in warm] == [0] * PROCESSES
    assert [len(report["warnings"]) for report in outage] == [1] * 2 * PROCESSES
    assert all("shared token cache failed" in report["warnings"][0] for report in outage)
    assert emulator.token_requests == {
        RISK_RESOURCE: 2 * PROCESSES,
        VERIFY_RESOURCE: 2 * PROCESSES,
    }


def test_a_lease_holder_killed_mid_fetch_holds_the_fleet_up_only_until_its_lease_lapses(
    emulator: MosaicEmulator,
    client: RegisteredClient,
    mosaic_url: str,
    redis_server: RedisServer,
    redis_url: str,
    fleet: Fleet,
) -> None:
    """A process killed while its token request hangs leaves a lease that lapses: the cold
    processes waiting on it then get a token with one more token request between them."""
    lease = 1.0  # the same in every process, as a fleet's configuration would be
    holder, *others = fleet.start(
        3,
        mosaic_url=mosaic_url,
        client=client,
        redis_url=redis_url,
        routes={"/risk": RISK_RESOURCE},
        lease=lease,
    )
    # Long past the kill, so that its token never arrives; short of the emulator's shutdown.
    emulator.delay_next_token_requests(2.0)
    holder.send("burst 5")
    wait_for(lambda: emulator.token_requests[RISK_RESOURCE] == 1)  # it holds the lease
    assert key_count(redis_server, "*:lease") == 1
    holder.kill()
    reports = command(others, "burst 25")
    assert failures(reports) == [0, 0]
    assert emulator.token_requests == {RISK_RESOURCE: 2}
    assert len(reports[0]["tokens"][RISK_RESOURCE]) == 1
    assert reports[0]["tokens"] == reports[1]["tokens"]


def test_redis_holds_no_token_or_credential_in_clear(
    client: RegisteredClient,
    mosaic_url: str,
    redis_server: RedisServer,
    redis_url: str,
    fleet: Fleet,
) -> None:
    """After a cold start, everything in Redis shows no token (nor part of one), client
    secret, client ID, resource or token URL."""
    workers = fleet.start(PROCESSES, mosaic_url=mosaic_url, client=client, redis_url=redis_url)
    reports = command(workers, "burst 10")
    dump = redis_server.dump()
    assert failures(reports) == [0] * PROCESSES
    assert (key_count(redis_server, "*:token"), key_count(redis_server, "*:lease")) == (2, 0)
    tokens = {token for report in reports for used in report["tokens"].values() for token in used}
    assert len(tokens) == 2
    assert client.client_secret is not None
    secrets = {client.client_secret, client.client_id, *ROUTES.values(), "/oidc/token"}
    for token in tokens:
        _, payload, signature = token.split(".")
        secrets |= {token, payload, signature}
    assert [secret for secret in secrets if secret.encode() in dump] == []
