from __future__ import annotations

import hashlib
import threading
from typing import TYPE_CHECKING, Any

import pytest

from mosaic_httpx_auth import _client_auth, _settings
from mosaic_httpx_auth.testing import MosaicEmulator

from .helpers import RISK, FakeClock, FakeMosaic
from .redis_server import RedisServer

if TYPE_CHECKING:
    from collections.abc import Iterator

    from joserfc.jwk import RSAKey

    from mosaic_httpx_auth.testing import RegisteredClient


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Run every async test on asyncio and on trio."""
    return str(request.param)


@pytest.fixture(autouse=True)
def refresh_at_the_window_start(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each MosaicAuth refreshes at the start of its refresh window, so that tests can name
    the moment; `test_refresh_spread.py` draws the spread as MosaicAuth does."""
    monkeypatch.setattr(_settings, "_spread", lambda: 0.0)


@pytest.fixture
def clock() -> FakeClock:
    """A clock that moves only when the test says so."""
    return FakeClock()


@pytest.fixture
def mosaic(clock: FakeClock) -> FakeMosaic:
    """A scriptable token endpoint and API behind a MockTransport, on `clock`."""
    return FakeMosaic(clock)


@pytest.fixture
def emulator(clock: FakeClock, mosaic_signing_key: RSAKey) -> MosaicEmulator:
    """A Mosaic emulator on `clock`, signing with the session's key."""
    return MosaicEmulator(clock=clock, signing_key=mosaic_signing_key)


@pytest.fixture
def client(emulator: MosaicEmulator) -> RegisteredClient:
    """An app registered with `emulator`, allowed the risk resource."""
    return emulator.register_client(resources=[RISK])


@pytest.fixture
def mosaic_url(emulator: MosaicEmulator) -> Iterator[str]:
    """`emulator`, served on 127.0.0.1."""
    with emulator.serve() as url:
        yield url


@pytest.fixture
def derivations(monkeypatch: pytest.MonkeyPatch) -> list[threading.Thread]:
    """The thread of each scrypt derivation from here on, as if this process had derived
    no key before."""
    monkeypatch.setattr(_client_auth, "_DERIVED", {})
    threads: list[threading.Thread] = []
    scrypt = hashlib.scrypt

    def spy(*args: Any, **kwargs: Any) -> bytes:
        threads.append(threading.current_thread())
        return scrypt(*args, **kwargs)

    monkeypatch.setattr(hashlib, "scrypt", spy)
    return threads


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A real redis-server on loopback, shared by the session's Redis tests."""
    server = RedisServer()
    server.start()
    yield server
    server.kill()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The shared redis-server's URL, emptied for this test."""
    redis_server.command("FLUSHALL")
    return redis_server.url


@pytest.fixture
def own_redis_server() -> Iterator[RedisServer]:
    """A redis-server of this test's own, to kill and start again."""
    server = RedisServer()
    server.start()
    yield server
    server.kill()
