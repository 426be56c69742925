"""A token endpoint's bad day: requests wait out a short outage within their own timeouts,
nobody waits forever, and the counters count what was sent.

The fetcher-level tests run on a fake clock that the fetcher's sleeps move, so that minutes of
backoff pass in an instant; the ones through httpx clients use the emulator served on
127.0.0.1 in real time, with outages of about a second.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from typing import TYPE_CHECKING, Any

import anyio
import httpx
import pytest
from anyio.lowlevel import checkpoint

from mosaic_httpx_auth import MosaicAuth, Retry, TokenRequestError
from mosaic_httpx_auth import _endpoint as endpoint_module

from .helpers import RISK, FakeClock, token_fetcher

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterator

    from mosaic_httpx_auth._fetcher import TokenFetcher
    from mosaic_httpx_auth.testing import MosaicEmulator, RegisteredClient

# The outage: 503, 503, then 429 asking for a second, then tokens again.
RETRY_AFTER = {"Retry-After": "1"}
# What the threads of a test may take at most before it counts them as stuck.
STUCK = 10.0


class MovingSleep:
    """Stands in for anyio.sleep: moves the fake clock by the wait and lets others run."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock

    async def __call__(self, seconds: float) -> None:
        self.clock.advance(seconds)
        await checkpoint()


class SteppedTime:
    """Stands in for anyio.sleep: a sleeper wakes once the test has moved the clock past its
    wake-up time, so that time moves only as the test says."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self._sleepers: list[tuple[float, anyio.Event]] = []

    async def __call__(self, seconds: float) -> None:
        woken = anyio.Event()
        self._sleepers.append((self.clock() + seconds, woken))
        await woken.wait()

    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)
        due = [entry for entry in self._sleepers if entry[0] <= self.clock()]
        for entry in due:
            self._sleepers.remove(entry)
            entry[1].set()


def fetcher_for(
    emulator: MosaicEmulator,
    client: RegisteredClient,
    clock: FakeClock,
    sleep: Callable[[float], Awaitable[None]] | None = None,
    **policy: Any,
) -> TokenFetcher:
    """A token fetcher fetching from `emulator`, its waits moving `clock` (or made by `sleep`)."""
    return token_fetcher(
        httpx.AsyncClient(transport=emulator.transport()),
        clock=clock,
        sleep=sleep or MovingSleep(clock),
        client_id=client.client_id,
        client_secret=client.client_secret,
        **policy,
    )


@pytest.fixture
def no_jitter(monkeypatch: pytest.MonkeyPatch) -> None:
    """Backoff waits its whole ceiling (0.5, 1, 2, 4, 8 s), so that counts are exact."""
    monkeypatch.setattr(
        Retry, "delay", lambda self, attempt: min(8.0, self.backoff * 2 ** (attempt - 1))
    )


def queue_the_outage(emulator: MosaicEmulator) -> None:
    emulator.fail_next_token_requests(503, count=2)
    emulator.fail_next_token_requests(429, headers=RETRY_AFTER)


# The waiting rule, on a fake clock


@pytest.mark.anyio
async def test_sixty_requests_with_a_timeout_ride_through_503_503_429(
    emulator: MosaicEmulator, client: RegisteredClient, clock: FakeClock
) -> None:
    """Sixty callers arriving over 3 s, each able to wait 10 s, all get the token that comes
    after 503, 503 and a 429 with Retry-After: four token requests in all."""
    queue_the_outage(emulator)
    fetcher = fetcher_for(emulator, client, clock)
    tokens: list[object] = []

    async def caller() -> None:
        tokens.append(await fetcher.token(RISK, deadline=clock() + 10))

    async with anyio.create_task_group() as tasks:
        for _ in range(60):
            tasks.start_soon(caller)
            clock.advance(0.05)
            await checkpoint()
    assert len(tokens) == 60
    assert len(set(map(id, tokens))) == 1
    assert emulator.token_requests[RISK] == 4


@pytest.mark.anyio
@pytest.mark.usefixtures("no_jitter")
async def test_a_caller_leaves_at_its_own_deadline_with_the_last_answer(
    emulator: MosaicEmulator, client: RegisteredClient, clock: FakeClock
) -> None:
    """With the endpoint answering 503 throughout, a caller that can wait 3 s fails once the
    next attempt would come too late, saying what the endpoint last answered; the flight
    then stops, as nobody waits for it."""
    emulator.fail_next_token_requests(503, count=100)
    fetcher = fetcher_for(emulator, client, clock, backoff=0.5)
    started = clock()
    with pytest.raises(TokenRequestError) as caught:
        await fetcher.token(RISK, deadline=started + 3)
    assert clock() - started <= 3
    assert caught.value.status_code == 503
    assert "can come within the 3 s the request could wait" in str(caught.value)
    made = emulator.token_requests[RISK]
    await anyio.wait_all_tasks_blocked()
    assert emulator.token_requests[RISK] == made == 3  # at 0, 0.5 and 1.5 s; 3.5 is too late


@pytest.mark.anyio
async def test_a_refusal_waiting_cannot_heal_fails_every_waiter_at_once(
    emulator: MosaicEmulator, client: RegisteredClient, clock: FakeClock
) -> None:
    """A 401 invalid_client fails two hundred callers with deadlines at once, after one token
    request, each with an error of its own."""
    emulator.fail_next_token_requests(401, body={"error": "invalid_client"})
    fetcher = fetcher_for(emulator, client, clock)
    errors: list[TokenRequestError] = []

    async def caller() -> None:
        try:
            await fetcher.token(RISK, deadline=clock() + 10)
        except TokenRequestError as error:
            errors.append(error)

    async with anyio.create_task_group() as tasks:
        for _ in range(200):
            tasks.start_soon(caller)
    assert len(errors) == 200
    assert len(set(map(id, errors))) == 200
    assert {error.error for error in errors} == {"invalid_client"}
    assert emulator.token_requests[RISK] == 1
    assert clock() == pytest.approx(1_800_000_000.0)


@pytest.mark.anyio
@pytest.mark.usefixtures("no_jitter")
async def test_a_long_outage_costs_one_token_request_per_backoff_step(
    emulator: MosaicEmulator, client: RegisteredClient, clock: FakeClock
) -> None:
    """Three hundred callers over 30 s, each waiting a second at most, while the endpoint
    answers 503: the backoff keeps growing across flights (0.5, 1, 2, 4, 8 s), so the endpoint
    sees one request per step, not one per caller."""
    emulator.fail_next_token_requests(503, count=1000)
    time_passes = SteppedTime(clock)
    fetcher = fetcher_for(emulator, client, clock, time_passes, backoff=0.5)
    failed = 0

    async def caller() -> None:
        nonlocal failed
        try:
            await fetcher.token(RISK, deadline=clock() + 1)
        except TokenRequestError:
            failed += 1

    async with anyio.create_task_group() as tasks:
        for _ in range(300):
            tasks.start_soon(caller)
            await anyio.wait_all_tasks_blocked()
            time_passes.advance(0.1)
    assert failed == 300
    # Requests at 0, 0.5, 1.5, 3.5, 7.5, 15.5 and 23.5 s.
    assert emulator.token_requests[RISK] == 7


@pytest.mark.anyio
async def test_a_caller_without_a_timeout_keeps_the_bound_of_one_fetch(
    emulator: MosaicEmulator, client: RegisteredClient, clock: FakeClock
) -> None:
    """`get_token()` with no timeout waits for max_attempts attempts and no more, while a
    caller with time left keeps the fetch going to its token."""
    emulator.fail_next_token_requests(503, count=3)
    fetcher = fetcher_for(emulator, client, clock, max_attempts=2, backoff=0.1)
    outcomes: dict[str, object] = {}

    async def patient() -> None:
        outcomes["patient"] = await fetcher.token(RISK, deadline=clock() + 30)

    async def bounded() -> None:
        try:
            await fetcher.token(RISK)
        except TokenRequestError as error:
            outcomes["bounded"] = error

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(patient)
        tasks.start_soon(bounded)
    # The third attempt may have failed too by the time it looked: never the fourth, a success.
    assert re.search(r"the last of [23] attempts", str(outcomes["bounded"]))
    assert outcomes["patient"] is not None
    assert emulator.token_requests[RISK] == 4


# Through httpx clients, over real sockets


@pytest.fixture
def served(mosaic_emulator: MosaicEmulator) -> Iterator[tuple[MosaicEmulator, str]]:
    """The emulator on real time, served on 127.0.0.1."""
    # Requests a test leaves hanging are cut at its end, not waited for.
    with mosaic_emulator.serve(shutdown_timeout=0.5) as url:
        yield mosaic_emulator, url


def served_auth(emulator: MosaicEmulator, url: str, **options: Any) -> MosaicAuth:
    client = emulator.register_client(resources=[RISK])
    options.setdefault("retry", Retry(backoff=0.05))
    return MosaicAuth(
        client.client_id, client.client_secret, base_url=url, resource=RISK, **options
    )


@pytest.mark.anyio
async def test_async_requests_wait_out_a_short_outage_within_their_timeout(
    served: tuple[MosaicEmulator, str],
) -> None:
    """Requests through an AsyncClient with a 10 s timeout, sent as the endpoint answers 503,
    503 and 429 with Retry-After: 1, all succeed, after four token requests."""
    emulator, url = served
    queue_the_outage(emulator)
    async with (
        served_auth(emulator, url) as auth,
        httpx.AsyncClient(auth=auth, base_url=url, timeout=10) as http,
    ):
        statuses: list[int] = []

        async def send() -> None:
            statuses.append((await http.get("/risk/v1/assessments")).status_code)

        async with anyio.create_task_group() as tasks:
            for _ in range(20):
                tasks.start_soon(send)
                await anyio.sleep(0.05)
    assert statuses == [200] * 20
    assert emulator.token_requests[RISK] == 4


def test_sync_requests_wait_out_a_short_outage_within_their_timeout(
    served: tuple[MosaicEmulator, str],
) -> None:
    """Threads sending through an httpx.Client with a 10 s timeout ride the same outage out."""
    emulator, url = served
    queue_the_outage(emulator)
    statuses: list[int] = []
    with (
        served_auth(emulator, url) as auth,
        httpx.Client(auth=auth, base_url=url, timeout=10) as http,
    ):

        def send() -> None:
            statuses.append(http.get("/risk/v1/assessments").status_code)

        threads = [threading.Thread(target=send) for _ in range(8)]
        for thread in threads:
            thread.start()
            time.sleep(0.05)
        for thread in threads:
            thread.join(STUCK)
    assert statuses == [200] * 8
    assert emulator.token_requests[RISK] == 4


@pytest.mark.anyio
async def test_a_request_waits_no_longer_than_its_pool_timeout(
    served: tuple[MosaicEmulator, str],
) -> None:
    """With the endpoint down, a request whose pool timeout is 1 s fails after about that
    long with a TokenRequestError naming the endpoint's last answer (time enough for a first
    answer on a loaded machine); get_token's timeout bounds its wait alike."""
    emulator, url = served
    emulator.fail_next_token_requests(503, count=1000)
    timeout = httpx.Timeout(10, pool=1.0)
    async with (
        served_auth(emulator, url) as auth,
        httpx.AsyncClient(auth=auth, base_url=url, timeout=timeout) as http,
    ):
        with pytest.raises(TokenRequestError, match=r"within the 1 s .*HTTP 503"):
            await http.get("/risk/v1/assessments")
        with pytest.raises(TokenRequestError, match=r"within the 0\.2 s"):
            await auth.get_token(timeout=0.2)


def test_a_sync_request_waits_no_longer_than_its_pool_timeout(
    served: tuple[MosaicEmulator, str],
) -> None:
    """The same bound holds for httpx.Client and get_token_sync: no wait without an end."""
    emulator, url = served
    emulator.fail_next_token_requests(503, count=1000)
    timeout = httpx.Timeout(10, pool=0.3)
    with (
        served_auth(emulator, url) as auth,
        httpx.Client(auth=auth, base_url=url, timeout=timeout) as http,
    ):
        with pytest.raises(TokenRequestError, match=r"within the 0\.3 s"):
            http.get("/risk/v1/assessments")
        with pytest.raises(TokenRequestError, match=r"within the 0\.2 s"):
            auth.get_token_sync(timeout=0.2)


def test_callers_who_joined_a_fetch_whose_event_loop_stopped_move_on(
    served: tuple[MosaicEmulator, str],
) -> None:
    """A fetch started on an event loop whose run_until_complete returned mid-request leaves
    no caller behind: an async caller on another thread and a sync caller who joined it both
    get a token of a fetch of their own."""
    emulator, url = served
    emulator.delay_next_token_requests(30.0)  # the stopped loop's request is never answered
    auth = served_auth(emulator, url)
    loop = asyncio.new_event_loop()
    results: dict[str, object] = {}

    def async_joiner() -> None:
        results["async"] = asyncio.run(auth.get_token())

    def sync_joiner() -> None:
        results["sync"] = auth.get_token_sync()

    joiners = [
        threading.Thread(target=target, daemon=True) for target in (async_joiner, sync_joiner)
    ]

    async def start_a_fetch_and_leave() -> None:
        fetch = asyncio.ensure_future(auth.get_token())
        await until(lambda: emulator.token_requests[RISK] == 1)  # its request is on the wire
        for joiner in joiners:
            joiner.start()
        await until(lambda: waiters_of(auth) == 3)
        assert not fetch.done()

    try:
        loop.run_until_complete(start_a_fetch_and_leave())
        for joiner in joiners:
            joiner.join(STUCK)
        assert {name: type(value).__name__ for name, value in results.items()} == {
            "async": "AccessToken",
            "sync": "AccessToken",
        }
        assert emulator.token_requests[RISK] <= 3
    finally:
        left = asyncio.all_tasks(loop)  # the caller's, and its fetch, still waiting for an answer
        for task in left:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*left, return_exceptions=True))
        loop.close()
        auth.close()


async def until(condition: Callable[[], bool]) -> None:
    """Return once `condition` holds: other threads make it so, with nothing to await."""
    while not condition():  # noqa: ASYNC110
        await asyncio.sleep(0.01)


def waiters_of(auth: MosaicAuth) -> int:
    """How many callers wait for the flight under way for the risk token."""
    record = auth._states._records.get(RISK)
    flight = None if record is None else record.flight
    return 0 if flight is None else len(flight.waiters)


def test_stats_count_the_token_requests_that_were_sent(
    served: tuple[MosaicEmulator, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ten event loops that end 5 ms in, while their token client is still being built, sent
    nothing and count nothing: stats() then agrees with what the endpoint received."""
    emulator, url = served
    build = endpoint_module._own_client

    def slow_build(*arguments: Any) -> httpx.AsyncClient:
        time.sleep(0.05)  # loading the CA bundle on a busy machine
        return build(*arguments)

    monkeypatch.setattr(endpoint_module, "_own_client", slow_build)
    auth = served_auth(emulator, url)

    async def leave_early() -> None:
        with anyio.move_on_after(0.005):
            await auth.get_token()

    for _ in range(10):
        asyncio.run(leave_early())
    asyncio.run(auth.get_token())
    assert auth.stats().token_requests == emulator.token_requests[RISK] == 1


def test_a_clock_of_the_callers_own_still_ends_every_wait(
    served: tuple[MosaicEmulator, str],
) -> None:
    """A `clock` that never moves (an application's, or a test's) does not hold waits up:
    deadlines and pauses are measured on the monotonic clock."""
    emulator, url = served
    emulator.fail_next_token_requests(503, count=1000)
    frozen = time.time()
    with (
        served_auth(emulator, url, clock=lambda: frozen) as auth,
        pytest.raises(TokenRequestError, match=r"within the 0\.3 s"),
    ):
        auth.get_token_sync(timeout=0.3)
