"""The testing kit from sync code: the emulator's transport, its `auth()` and the pytest
fixtures with `httpx.Client`, as they serve `httpx.AsyncClient`."""

from __future__ import annotations

import threading
import time

import anyio
import httpx
import pytest

from mosaic_httpx_auth.testing import MosaicEmulator, RegisteredClient

from .helpers import RISK, VERIFY, threads_named
from .test_emulator import HOST, SIGNING_KEY, TOKEN_URL, credentials

RECOMMENDATION = f"{HOST}/risk/v1/action/recommendation"
# The name of the thread that runs a MosaicAuth's event loop for its sync callers.
LOOP_THREAD = "mosaic-httpx-auth tokens"


@pytest.fixture
def emulator() -> MosaicEmulator:
    return MosaicEmulator(signing_key=SIGNING_KEY)


@pytest.fixture
def client(emulator: MosaicEmulator) -> RegisteredClient:
    return emulator.register_client(resources=[RISK, VERIFY])


# The transport


def test_a_sync_client_reaches_the_emulator_through_its_transport(
    emulator: MosaicEmulator, client: RegisteredClient
) -> None:
    """`httpx.Client(transport=emulator.transport())` gets a token and calls an API with it,
    whatever the host."""
    with httpx.Client(transport=emulator.transport()) as http:
        token = http.post(TOKEN_URL, data=credentials(client, RISK)).json()["access_token"]
        response = http.post(RECOMMENDATION, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert response.json()["aud"] == RISK
    assert emulator.token_requests == {RISK: 1}


def test_a_sync_clients_faults_come_as_a_slow_or_silent_server_would_send_them(
    emulator: MosaicEmulator, client: RegisteredClient
) -> None:
    """Through the transport, a sync client waits out a delay on its own thread and sees a
    dropped connection as a transport error; the next request is answered as usual."""
    emulator.delay_next_token_requests(0.1)
    emulator.fail_next_token_requests(drop_connection=True)
    with httpx.Client(transport=emulator.transport()) as http:
        started = time.monotonic()
        delayed = http.post(TOKEN_URL, data=credentials(client))
        elapsed = time.monotonic() - started
        with pytest.raises(httpx.RemoteProtocolError):
            http.post(TOKEN_URL, data=credentials(client))
        after = http.post(TOKEN_URL, data=credentials(client))
    assert (delayed.status_code, after.status_code) == (200, 200)
    assert elapsed >= 0.1
    assert emulator.token_requests == {None: 3}


# auth()


def test_auth_serves_a_sync_client_in_process_and_recovers_from_revocation(
    emulator: MosaicEmulator, client: RegisteredClient
) -> None:
    """`emulator.auth()` serves `httpx.Client`: its token requests reach the emulator without a
    socket, from the auth's own thread, and a revoked token is replaced by the 401 retry."""
    with (
        emulator.auth(client, resource=RISK) as auth,
        httpx.Client(auth=auth, transport=emulator.transport()) as http,
    ):
        first = http.post(RECOMMENDATION, json={})
        emulator.revoke_tokens()
        second = http.post(RECOMMENDATION, json={})
    assert (first.status_code, second.status_code) == (200, 200)
    assert len(second.history) == 1
    assert emulator.token_requests == {RISK: 2}


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_one_auth_serves_a_sync_client_and_an_event_loop_with_one_token(
    emulator: MosaicEmulator, client: RegisteredClient, backend: str
) -> None:
    """The same `emulator.auth()` serves `httpx.Client` and `httpx.AsyncClient` (on asyncio or
    trio), sharing its token."""
    auth = emulator.auth(client, resource=RISK)

    async def call_async() -> int:
        async with httpx.AsyncClient(auth=auth, transport=emulator.transport()) as http:
            status = (await http.post(RECOMMENDATION)).status_code
        await auth.aclose()
        return status

    with auth, httpx.Client(auth=auth, transport=emulator.transport()) as http:
        sync_status = http.post(RECOMMENDATION).status_code
        async_status = anyio.run(call_async, backend=backend)
    assert (sync_status, async_status) == (200, 200)
    assert emulator.token_requests == {RISK: 1}


def test_auth_with_the_served_url_serves_a_sync_client(
    emulator: MosaicEmulator, client: RegisteredClient
) -> None:
    """`emulator.auth(client, base_url=served_url)` serves an `httpx.Client` calling the served
    emulator over a socket."""
    with (
        emulator.serve() as base_url,
        emulator.auth(client, base_url=base_url, resource=RISK) as auth,
        httpx.Client(auth=auth, base_url=base_url) as http,
    ):
        response = http.post("/risk/v1/action/recommendation")
    assert response.status_code == 200
    assert emulator.token_requests == {RISK: 1}


def test_close_stops_the_thread_a_sync_client_started(
    emulator: MosaicEmulator, client: RegisteredClient
) -> None:
    """The thread that fetched tokens for a sync client stops with `close()`."""
    before = threads_named(LOOP_THREAD)
    auth = emulator.auth(client)
    auth.get_token_sync()
    started = threads_named(LOOP_THREAD) - before
    assert len(started) == 1
    auth.close()
    (thread,) = started
    thread.join(5)
    assert not thread.is_alive()
    assert threading.current_thread() is not thread


# The pytest fixtures


def test_the_plugin_fixtures_serve_a_sync_test(
    mosaic_emulator: MosaicEmulator, mosaic_client: RegisteredClient
) -> None:
    """A plain (sync) test gets an emulator and a client from the fixtures, and a sync client
    calls the verify API with `mosaic_emulator.auth()`."""
    with (
        mosaic_emulator.auth(mosaic_client, resource=VERIFY) as auth,
        httpx.Client(auth=auth, transport=mosaic_emulator.transport()) as http,
    ):
        response = http.get(f"{HOST}/verify/api/v1/sessions")
    assert response.status_code == 200
    assert mosaic_emulator.token_requests == {VERIFY: 1}
