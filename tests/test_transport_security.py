"""HTTPS only: no secret or token over plain HTTP, except to this machine."""

from __future__ import annotations

import socket
import urllib.request
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from mosaic_httpx_auth import (
    ConfigurationError,
    InsecureTransportError,
    MosaicAuth,
    Retry,
    TokenRequestError,
)
from mosaic_httpx_auth._security import is_loopback

from .helpers import CLIENT_ID, CLIENT_SECRET, RISK, TOKEN_URL, FakeClock, FakeMosaic

if TYPE_CHECKING:
    from mosaic_httpx_auth.testing import MosaicEmulator

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
    async with mosaic.api_client(mosaic.auth(base_url="http://127.0.0.1:8000")) as client:
        response = await client.get("http://127.0.0.1:8000/cis/v1/users")
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("url", "origin"),
    [
        ("https://third-party.example/webhook", "https://third-party.example"),
        # Another region than configured.
        ("https://api.eu.transmitsecurity.io/cis/v1/users", "https://api.eu.transmitsecurity.io"),
        # Another port: the message shows the origin, port included, and no path or query.
        ("https://api.transmitsecurity.io:8443/x?k=v", "https://api.transmitsecurity.io:8443"),
        ("https://[2001:db8::1]:8443/cis/v1/users", "https://[2001:db8::1]:8443"),
    ],
)
async def test_no_token_goes_to_a_host_that_is_not_a_configured_mosaic_api(
    url: str, origin: str
) -> None:
    """A shared client's request to another origin is refused before a token is fetched."""
    mosaic = FakeMosaic(FakeClock())
    async with mosaic.api_client(mosaic.auth()) as client:
        with pytest.raises(InsecureTransportError, match="neither base_url's origin") as caught:
            await client.get(url)
        assert f"to {origin}: " in str(caught.value)
        # Sent without auth, it goes through untouched.
        response = await client.get(url, auth=None)
    assert "Authorization" not in response.request.headers
    assert mosaic.token_requests == {}


async def test_resources_prefixes_add_their_hosts() -> None:
    """A host named in `resources` receives tokens as well as base_url does."""
    mosaic = FakeMosaic(FakeClock())
    auth = mosaic.auth(resources={"https://api.eu.transmitsecurity.io/risk": RISK})
    async with mosaic.api_client(auth) as client:
        eu = await client.get("https://api.eu.transmitsecurity.io/risk/v1/x")
        us = await client.get("https://api.transmitsecurity.io/cis/v1/users")
    assert (eu.json()["aud"], us.json()["aud"]) == (RISK, "userid-api")


async def test_an_eu_token_url_alone_lets_tokens_go_to_eu_apis() -> None:
    """With only an EU token_url, EU API requests get their token rather than an
    InsecureTransportError for a host outside the US default."""
    mosaic = FakeMosaic(FakeClock())
    auth = mosaic.auth(token_url="https://api.eu.transmitsecurity.io/oidc/token")
    async with mosaic.api_client(auth) as client:
        response = await client.get("https://api.eu.transmitsecurity.io/cis/v1/users")
    assert (auth.base_url, response.status_code) == ("https://api.eu.transmitsecurity.io", 200)


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


@pytest.mark.parametrize(
    "options",
    [
        {"token_url": "http://127.0.0.1@evil.example/token"},
        {"token_url": "https://user:password@api.transmitsecurity.io/oidc/token"},
        {"base_url": "https://user:password@api.transmitsecurity.io"},
        {"token_url": "ftp://user:password@api.transmitsecurity.io/oidc/token"},
    ],
)
def test_urls_carrying_credentials_are_refused(options: dict[str, Any]) -> None:
    """A URL with a user name or password is refused, so it never shows in a repr or log,
    and `user@host` tricks cannot pass for loopback."""
    with pytest.raises(ConfigurationError, match="user name or password") as caught:
        MosaicAuth(CLIENT_ID, CLIENT_SECRET, **options)
    assert "password" not in str(caught.value).replace("user name or password", "")


@pytest.mark.parametrize(
    ("options", "setting"),
    [
        ({"base_url": "http://api.example.com"}, "base_url"),
        (
            {"token_url": "https://id.example.com/token", "base_url": "http://api.example.com"},
            "base_url",
        ),
        ({"resources": {"http://api.example.com/risk": RISK}}, "resources"),
    ],
)
def test_api_hosts_must_be_https_too(options: dict[str, object], setting: str) -> None:
    """Plain-HTTP API hosts (base_url, resources prefixes) are refused: tokens would go there."""
    with pytest.raises(InsecureTransportError) as caught:
        MosaicAuth(CLIENT_ID, CLIENT_SECRET, **options)  # type: ignore[arg-type]
    assert caught.value.setting == setting


async def test_a_token_request_never_follows_a_redirect() -> None:
    """Through an application's client that follows redirects, a token endpoint answering 307
    to another host gets a TokenRequestError, and that host is sent nothing: the credentials
    go to the token URL only."""
    elsewhere: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "elsewhere.example":
            elsewhere.append(request)
            return httpx.Response(200, json={"access_token": "stolen", "expires_in": 60})
        return httpx.Response(307, headers={"Location": "http://elsewhere.example/token"})

    client = httpx.AsyncClient(transport=httpx.MockTransport(handler), follow_redirects=True)
    auth = MosaicAuth(CLIENT_ID, CLIENT_SECRET, token_url=TOKEN_URL, http_client=client)
    async with client:
        with pytest.raises(TokenRequestError, match="HTTP 307"):
            await auth.get_token()
    assert elsewhere == []


def test_a_token_endpoint_on_this_machine_is_never_reached_through_a_proxy(
    monkeypatch: pytest.MonkeyPatch, mosaic_emulator: MosaicEmulator
) -> None:
    """With HTTP_PROXY set and no NO_PROXY, a token endpoint on 127.0.0.1 is asked directly:
    the proxy, which would see the secret in clear, is not even connected to."""
    client = mosaic_emulator.register_client()
    with socket.socket() as proxy, mosaic_emulator.serve() as url:
        proxy.bind(("127.0.0.1", 0))
        proxy.listen()
        proxy.setblocking(False)
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.getsockname()[1]}")
        for name in ("NO_PROXY", "no_proxy", "http_proxy", "ALL_PROXY", "all_proxy"):
            monkeypatch.delenv(name, raising=False)
        # The API on HTTPS, which crosses a proxy sealed: only the token endpoint is local.
        with MosaicAuth(
            client.client_id,
            client.client_secret,
            token_url=f"{url}/oidc/token",
            base_url="https://api.transmitsecurity.io",
            retry=Retry(max_attempts=1, attempt_timeout=1),
        ) as auth:
            assert auth.get_token_sync(timeout=2).token
        with pytest.raises(BlockingIOError):
            proxy.accept()


@pytest.fixture
def proxy_in_environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """HTTP_PROXY names a proxy (never connected to), and nothing else about proxies is set."""
    for name in ("NO_PROXY", "no_proxy", "http_proxy", "ALL_PROXY", "all_proxy", "HTTPS_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    return monkeypatch


@pytest.mark.parametrize(
    ("settings", "setting"),
    [
        ({"base_url": "http://127.0.0.1:8000"}, "base_url"),
        ({"base_url": "http://[::1]:8000"}, "base_url"),
        ({"resources": {"http://localhost:8000/risk": RISK}}, "resources"),
        ({"token_url": "http://127.0.0.1:8000/oidc/token", "http_client": "own"}, "token_url"),
    ],
)
def test_a_plain_http_url_an_environment_proxy_would_carry_is_refused(
    proxy_in_environment: pytest.MonkeyPatch, settings: dict[str, Any], setting: str
) -> None:
    """A loopback URL over plain HTTP that the environment's proxy would carry (httpx trusts
    the environment by default) is refused: the token or secret would cross it in clear."""
    if settings.get("http_client") == "own":
        settings = {**settings, "http_client": httpx.AsyncClient()}
    with pytest.raises(InsecureTransportError, match="HTTP_PROXY names a proxy") as caught:
        MosaicAuth(CLIENT_ID, CLIENT_SECRET, **settings)
    assert caught.value.setting == setting
    assert "NO_PROXY" in str(caught.value)


def test_an_ipv6_exemption_httpx_reads_as_another_address_is_not_one(
    proxy_in_environment: pytest.MonkeyPatch,
) -> None:
    """``NO_PROXY=::1:8000`` is, to httpx, the address 0:0:0:0:0:0:1:8000, not [::1] port 8000:
    the request would go through the proxy, so the URL is refused."""
    proxy_in_environment.setenv("NO_PROXY", "::1:8000")
    with pytest.raises(InsecureTransportError, match="HTTP_PROXY names a proxy"):
        MosaicAuth(CLIENT_ID, CLIENT_SECRET, base_url="http://[::1]:8000")


def test_an_http_client_that_ignores_the_environment_is_not_refused(
    proxy_in_environment: pytest.MonkeyPatch,
) -> None:
    """An `http_client` built with ``trust_env=False`` takes no proxy from the environment:
    its plain-HTTP loopback token URL is accepted."""
    auth = MosaicAuth(
        CLIENT_ID,
        CLIENT_SECRET,
        token_url="http://127.0.0.1:8000/oidc/token",
        base_url="https://api.transmitsecurity.io",
        http_client=httpx.AsyncClient(trust_env=False),
    )
    assert auth.token_url == "http://127.0.0.1:8000/oidc/token"


def test_a_system_proxy_counts_as_the_environments(monkeypatch: pytest.MonkeyPatch) -> None:
    """A proxy from the system's settings (macOS, Windows), which httpx reads as it reads the
    environment, is one too."""
    monkeypatch.setattr(urllib.request, "getproxies", lambda: {"http": "http://127.0.0.1:9"})
    with pytest.raises(InsecureTransportError, match="HTTP_PROXY names a proxy"):
        MosaicAuth(CLIENT_ID, CLIENT_SECRET, base_url="http://127.0.0.1:8000")


@pytest.mark.parametrize(
    ("no_proxy", "settings"),
    [
        ("127.0.0.1", {"base_url": "http://127.0.0.1:8000"}),
        ("localhost,127.0.0.1:8000", {"base_url": "http://127.0.0.1:8000"}),
        ("[::1]", {"base_url": "http://[::1]:8000"}),
        ("*", {"base_url": "http://localhost:8000"}),
        # HTTPS crosses a proxy sealed; the library's own token client goes direct.
        ("", {"base_url": "https://api.transmitsecurity.io"}),
        (
            "",
            {
                "token_url": "http://127.0.0.1:8000/oidc/token",
                "base_url": "https://api.transmitsecurity.io",
            },
        ),
    ],
)
def test_a_url_the_proxy_would_not_see_in_clear_is_accepted(
    proxy_in_environment: pytest.MonkeyPatch, no_proxy: str, settings: dict[str, Any]
) -> None:
    """NO_PROXY exempting the host, HTTPS, or the library's own token client: accepted."""
    proxy_in_environment.setenv("NO_PROXY", no_proxy)
    assert "MosaicAuth" in repr(MosaicAuth(CLIENT_ID, CLIENT_SECRET, **settings))
