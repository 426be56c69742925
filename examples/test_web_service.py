"""Testing your own service's Mosaic calls offline, with the emulator's pytest fixtures.

With mosaic-httpx-auth installed, the `mosaic_emulator` and `mosaic_client` fixtures are there
in every test suite. Point your service's MosaicAuth and API client at the emulator's transport
and test it as it would run against Mosaic.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

import httpx
import pytest

from mosaic_httpx_auth import RISK_RESOURCE

from .web_service import create_app

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from mosaic_httpx_auth.testing import MosaicEmulator, RegisteredClient

pytestmark = pytest.mark.anyio


@contextlib.asynccontextmanager
async def service_against(
    emulator: MosaicEmulator, client: RegisteredClient
) -> AsyncIterator[httpx.AsyncClient]:
    """The web service, running its lifespan, with its Mosaic calls going to `emulator`."""
    auth = emulator.auth(client, resource=RISK_RESOURCE)
    app = create_app(auth=auth, transport=emulator.transport())
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://service") as http,
    ):
        yield http


async def test_logins_are_checked_with_one_token(
    mosaic_emulator: MosaicEmulator, mosaic_client: RegisteredClient
) -> None:
    """Every login asks the risk API, and all of them share one token."""
    async with service_against(mosaic_emulator, mosaic_client) as service:
        decisions = [
            (await service.post("/logins", json={"action_token": f"t{n}"})).json()["decision"]
            for n in range(3)
        ]
    assert decisions == ["allow"] * 3
    assert mosaic_emulator.api_calls["/risk/v1/recommendation"] == 3
    assert mosaic_emulator.token_requests == {RISK_RESOURCE: 1}


async def test_logins_fail_closed_when_mosaic_refuses_tokens(
    mosaic_emulator: MosaicEmulator, mosaic_client: RegisteredClient
) -> None:
    """When no token can be had, the service denies the login instead of erroring."""
    mosaic_emulator.fail_next_token_requests(
        status=401, body={"error": "invalid_client", "error_description": "secret rotated"}
    )
    async with service_against(mosaic_emulator, mosaic_client) as service:
        response = await service.post("/logins", json={"action_token": "t"})
    assert (response.status_code, response.json()["decision"]) == (503, "deny")
