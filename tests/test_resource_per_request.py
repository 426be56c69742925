"""A request may name its own resource, ``extensions={"mosaic_resource": ...}``, over its
URL's route; the hosts a token may go to stay the same."""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx
import pytest

from mosaic_httpx_auth import ConfigurationError, InsecureTransportError

from .helpers import RISK, VERIFY, FakeMosaic
from .test_sync import served_auth

if TYPE_CHECKING:
    from mosaic_httpx_auth.testing import MosaicEmulator

API = "https://api.transmitsecurity.io"


@pytest.mark.anyio
async def test_a_request_gets_a_token_for_the_resource_it_names(mosaic: FakeMosaic) -> None:
    """A request routed to risk that names verify carries a verify token; the next request
    without the extension is routed as before; None asks for a token without a resource."""
    auth = mosaic.auth(resources={"/risk": RISK})
    async with mosaic.api_client(auth) as client:
        named = await client.get(f"{API}/risk/v1/x", extensions={"mosaic_resource": VERIFY})
        routed = await client.get(f"{API}/risk/v1/x")
        bare = await client.get(f"{API}/risk/v1/x", extensions={"mosaic_resource": None})
    assert [named.json()["aud"], routed.json()["aud"], bare.json()["aud"]] == [
        VERIFY,
        RISK,
        "userid-api",  # FakeMosaic's audience for a token without a resource
    ]
    assert mosaic.token_requests == {VERIFY: 1, RISK: 1, None: 1}


@pytest.mark.anyio
async def test_a_named_resource_is_retried_with_its_own_token_after_a_401(
    mosaic: FakeMosaic,
) -> None:
    """A 401 to a request that named its resource is retried with a new token for that
    resource, not its URL's."""
    auth = mosaic.auth(resource=RISK)
    async with mosaic.api_client(auth) as client:
        await client.get(f"{API}/x", extensions={"mosaic_resource": VERIFY})
        mosaic.revoke_all()
        again = await client.get(f"{API}/x", extensions={"mosaic_resource": VERIFY})
    assert again.json()["aud"] == VERIFY
    assert mosaic.token_requests == {VERIFY: 2}


def test_sync_requests_name_their_resource_too(emulator: MosaicEmulator, mosaic_url: str) -> None:
    """`httpx.Client` requests read the extension as async ones do: the served emulator's
    verify API takes only a verify token, which the request names over the default."""
    client = emulator.register_client(resources=[RISK, VERIFY])
    with (
        served_auth(mosaic_url, client.client_id, client.client_secret, resource=RISK) as auth,
        httpx.Client(auth=auth, base_url=mosaic_url) as http,
    ):
        path = "/verify/api/v1/verification"
        named = http.get(path, extensions={"mosaic_resource": VERIFY})
        routed = http.get(path)
    assert (named.status_code, routed.status_code) == (200, 401)
    assert emulator.token_requests[VERIFY] == 1


@pytest.mark.anyio
async def test_the_host_allow_list_holds_whatever_a_request_names(mosaic: FakeMosaic) -> None:
    """A request to a host that gets no token gets none for naming a resource."""
    auth = mosaic.auth(resource=RISK)
    async with mosaic.api_client(auth) as client:
        with pytest.raises(InsecureTransportError):
            await client.get("https://elsewhere.example/x", extensions={"mosaic_resource": RISK})
    assert mosaic.token_requests.total() == 0


@pytest.mark.anyio
async def test_a_resource_that_is_not_a_string_is_refused(mosaic: FakeMosaic) -> None:
    """The extension's value is a resource or None; anything else is a ConfigurationError
    naming the extension, before any token request."""
    auth = mosaic.auth(resource=RISK)
    async with mosaic.api_client(auth) as client:
        with pytest.raises(
            ConfigurationError, match="mosaic_resource must be a resource"
        ) as caught:
            await client.get(f"{API}/x", extensions={"mosaic_resource": [RISK]})
        with pytest.raises(ConfigurationError, match="a non-empty string"):
            await client.get(f"{API}/x", extensions={"mosaic_resource": ""})
    assert caught.value.setting == "mosaic_resource"
    assert mosaic.token_requests.total() == 0


@pytest.mark.anyio
async def test_an_empty_resource_is_refused_wherever_it_is_given(mosaic: FakeMosaic) -> None:
    """An empty resource would be sent as ``resource=``: refused as `resource`, in
    `resources`, and by `get_token`, as by the extension."""
    with pytest.raises(ConfigurationError, match="resource must be a resource"):
        mosaic.auth(resource="")
    with pytest.raises(ConfigurationError, match="resources must be a resource"):
        mosaic.auth(resources={"/risk": ""})
    auth = mosaic.auth(resource=RISK)
    with pytest.raises(ConfigurationError, match="resource must be a resource"):
        await auth.get_token("")
    assert mosaic.token_requests.total() == 0
