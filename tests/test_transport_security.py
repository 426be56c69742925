"""HTTPS only: no secret or token over plain HTTP, except to this machine."""

from __future__ import annotations

import httpx
import pytest

from mosaic_httpx_auth import InsecureTransportError, MosaicAuth
from mosaic_httpx_auth._security import is_loopback

from .helpers import CLIENT_ID, CLIENT_SECRET, FakeClock, FakeMosaic

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    "token_url",
    ["http://api.transmitsecurity.io/oidc/token", "http://10.0.0.8/oidc/token", "http://127.evil/"],
)
def test_a_plain_http_token_url_is_refused(token_url: str) -> None:
    """A token endpoint over plain HTTP to another machine is refused at construction."""
    with pytest.raises(InsecureTransportError, match="use https"):
        MosaicAuth(CLIENT_ID, CLIENT_SECRET, token_url=token_url)


@pytest.mark.parametrize(
    "token_url",
    [
        "http://127.0.0.1:8765/oidc/token",
        "http://127.10.0.3/oidc/token",
        "http://localhost:8765/oidc/token",
        "http://[::1]:8765/oidc/token",
    ],
)
def test_plain_http_to_loopback_is_allowed(token_url: str) -> None:
    """A token endpoint on this machine may use plain HTTP, for local emulators."""
    assert "MosaicAuth" in repr(MosaicAuth(CLIENT_ID, CLIENT_SECRET, token_url=token_url))


async def test_no_bearer_token_is_attached_to_a_plain_http_request() -> None:
    """A plain-HTTP API request to another host is refused before a token is fetched or sent."""
    mosaic = FakeMosaic(FakeClock())
    async with mosaic.api_client(mosaic.auth()) as client:
        with pytest.raises(InsecureTransportError, match="bearer token"):
            await client.get("http://api.transmitsecurity.io/cis/v1/users")
    assert (mosaic.token_requests, mosaic.api_requests) == ({}, [])


async def test_a_plain_http_request_to_loopback_gets_its_token() -> None:
    """Plain HTTP to a loopback address carries the token, as the local emulator needs."""
    mosaic = FakeMosaic(FakeClock())
    async with mosaic.api_client(mosaic.auth()) as client:
        response = await client.get("http://127.0.0.1:8000/cis/v1/users")
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("localhost", True),
        ("LOCALHOST", True),
        ("127.0.0.1", True),
        ("127.255.255.254", True),
        ("::1", True),
        ("128.0.0.1", False),
        ("localhost.example.com", False),
        ("0.0.0.0", False),  # noqa: S104 - the address is data here
        ("::", False),
    ],
)
def test_loopback_hosts(host: str, loopback: bool) -> None:
    """Loopback means localhost, 127.0.0.0/8 or ::1, and nothing else."""
    assert is_loopback(host) is loopback


def test_the_insecure_transport_error_names_no_secret() -> None:
    """The refusal names the host, not the credentials."""
    with pytest.raises(InsecureTransportError) as caught:
        MosaicAuth(CLIENT_ID, CLIENT_SECRET, token_url="http://example.com/token")
    assert CLIENT_SECRET not in str(caught.value)
    assert "example.com" in str(caught.value)


def test_httpx_url_is_what_the_check_reads() -> None:
    """The check reads httpx's parsed host, so userinfo tricks don't pass as loopback."""
    with pytest.raises(InsecureTransportError):
        MosaicAuth(CLIENT_ID, CLIENT_SECRET, token_url="http://127.0.0.1@evil.example/token")
    assert httpx.URL("http://127.0.0.1@evil.example/token").host == "evil.example"
