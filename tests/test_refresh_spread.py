"""Instances that start together refresh at moments of their own: each draws where in the
first third of its refresh window it refreshes, so that a deployment without a shared cache
does not stampede the token endpoint every hour. Leeway and expiry do not move."""

from __future__ import annotations

import random
import subprocess
import sys

import anyio
import pytest

from mosaic_httpx_auth import MosaicAuth, _settings

from .helpers import CLIENT_ID, CLIENT_SECRET, RISK, FakeClock, FakeMosaic

# FakeMosaic's tokens live an hour; with the default 60 s leeway a token is usable until
# 3540 s, and its 300 s refresh window starts at 3240 s.
WINDOW_STARTS = 3240.0


def test_each_instance_draws_its_moment_in_the_first_third_of_the_window(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """200 instances, as a deployment would start them, draw 200 different spreads, all in
    the window's first third and covering most of it."""
    monkeypatch.setattr(_settings, "_spread", random.random)
    spreads = [MosaicAuth(CLIENT_ID, CLIENT_SECRET)._states.refresh_spread for _ in range(200)]
    assert all(0 <= spread < 1 / 3 for spread in spreads)
    assert len(set(spreads)) == 200
    assert max(spreads) - min(spreads) > 0.25


@pytest.mark.anyio
async def test_a_token_is_refreshed_at_the_instances_moment_and_used_until_its_leeway(
    monkeypatch: pytest.MonkeyPatch, clock: FakeClock, mosaic: FakeMosaic
) -> None:
    """An instance that drew a quarter of the window (75 s) refreshes 75 s into it, not at
    its start; the token it holds is served until its leeway, as before."""
    monkeypatch.setattr(_settings, "_spread", lambda: 0.75)  # a third of it: 0.25
    auth = mosaic.auth(resource=RISK)
    first = await auth.get_token()
    clock.advance(WINDOW_STARTS + 74.9)
    assert await auth.get_token() is first
    await anyio.wait_all_tasks_blocked()  # a refresh started would have run by now
    assert mosaic.token_requests[RISK] == 1
    clock.advance(0.2)
    assert await auth.get_token() is first  # stale now: served while it is refreshed
    await anyio.wait_all_tasks_blocked()
    assert await auth.get_token() is not first
    assert mosaic.token_requests[RISK] == 2

    second = await auth.get_token()
    # Served until its leeway (60 s) before its expiry, whatever the instance drew.
    assert auth._states.expires_in(RISK) == pytest.approx(second.expires_at - 60 - clock())


def test_a_forked_child_draws_a_moment_of_its_own() -> None:
    """Workers forked from a parent that made its MosaicAuth first (``gunicorn --preload``)
    each draw their own refresh moment, for the token they inherited too."""
    script = """
import os
from mosaic_httpx_auth import AccessToken, MosaicAuth
auth = MosaicAuth("client-id", "client-secret")
states = auth._states
token = AccessToken("t", 1_800_003_600.0, None, issued_at=1_800_000_000.0)
from mosaic_httpx_auth._token_states import _Record
states._records[None] = _Record(entry=states._entry_for(token))  # as if fetched
moments = set()
for _ in range(8):
    reader, writer = os.pipe()
    if os.fork() == 0:
        entry = states._records[None].entry
        os.write(writer, repr((states.refresh_spread, entry.refresh_at)).encode())
        os._exit(0)
    os.close(writer)
    os.wait()
    moments.add(os.read(reader, 200))
raise SystemExit(0 if len(moments) == 8 else 1)
"""
    subprocess.run([sys.executable, "-c", script], timeout=60, check=True)  # noqa: S603
