"""MosaicAuth.from_env: configuration from environment variables."""

from __future__ import annotations

import json
import os
import shlex
from typing import TYPE_CHECKING

import httpx
import pytest

from mosaic_httpx_auth import (
    ConfigurationError,
    MosaicAuth,
    Retry,
    TokenRequestError,
    generate_signing_key,
)
from mosaic_httpx_auth._cli import main
from mosaic_httpx_auth._environment import (
    CLIENT_CERTIFICATE_FILE,
    CLIENT_KEY_FILE,
    ENVIRONMENT_VARIABLES,
    PRIVATE_KEY_FILE,
)

from .helpers import CLIENT_ID, CLIENT_SECRET, RISK, FakeClock

if TYPE_CHECKING:
    from pathlib import Path

    from mosaic_httpx_auth.testing import MosaicEmulator

pytestmark = pytest.mark.anyio

KEY = generate_signing_key("ES256", key_id="env-key")

AU_TOKEN_URL = "https://api.au.transmitsecurity.io/oidc/token"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in [
        *ENVIRONMENT_VARIABLES,
        PRIVATE_KEY_FILE,
        CLIENT_CERTIFICATE_FILE,
        CLIENT_KEY_FILE,
    ]:
        monkeypatch.delenv(variable, raising=False)


def setenv(monkeypatch: pytest.MonkeyPatch, **variables: str) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(f"MOSAIC_{name}", value)


async def test_from_env_reads_the_secret_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Client id, secret, method, region and resource come from MOSAIC_* variables."""
    setenv(
        monkeypatch,
        CLIENT_ID=CLIENT_ID,
        CLIENT_SECRET=CLIENT_SECRET,
        CLIENT_AUTH="client_secret_basic",
        REGION="eu",
        RESOURCE=RISK,
    )
    async with MosaicAuth.from_env() as auth:
        assert repr(auth) == (
            f"MosaicAuth(client_id={CLIENT_ID!r}, "
            "token_url='https://api.eu.transmitsecurity.io/oidc/token', "
            f"client_auth='client_secret_basic', resource={RISK!r})"
        )


@pytest.mark.parametrize(
    ("variables", "token_url"),
    [
        ({"REGION": "sandbox"}, "https://api.sbx.transmitsecurity.io/oidc/token"),
        ({"REGION": "au", "BASE_URL": "https://api.au.transmitsecurity.io"}, AU_TOKEN_URL),
        ({"BASE_URL": "https://mosaic.test"}, "https://mosaic.test/oidc/token"),
        (
            {"BASE_URL": "https://mosaic.test", "TOKEN_URL": "https://id.test/cis/oidc/token"},
            "https://id.test/cis/oidc/token",
        ),
    ],
)
async def test_the_token_url_follows_the_region_or_the_urls(
    monkeypatch: pytest.MonkeyPatch, variables: dict[str, str], token_url: str
) -> None:
    """MOSAIC_TOKEN_URL is the token URL; else MOSAIC_BASE_URL's, else MOSAIC_REGION's."""
    setenv(monkeypatch, CLIENT_ID=CLIENT_ID, CLIENT_SECRET=CLIENT_SECRET, **variables)
    async with MosaicAuth.from_env() as auth:
        assert auth.token_url == token_url


@pytest.mark.parametrize("source", ["MOSAIC_PRIVATE_KEY", PRIVATE_KEY_FILE])
async def test_a_private_key_means_private_key_jwt(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, source: str
) -> None:
    """A key in MOSAIC_PRIVATE_KEY or a file named by MOSAIC_PRIVATE_KEY_FILE selects
    private_key_jwt, with MOSAIC_KEY_ID as the assertions' kid."""
    setenv(monkeypatch, CLIENT_ID=CLIENT_ID, KEY_ID="my-kid")
    if source == PRIVATE_KEY_FILE:
        (tmp_path / "key.pem").write_bytes(KEY.private_key_pem)
        monkeypatch.setenv(PRIVATE_KEY_FILE, str(tmp_path / "key.pem"))
    else:
        monkeypatch.setenv(source, KEY.private_key_pem.decode())
    async with MosaicAuth.from_env() as auth:
        assert "client_auth='private_key_jwt'" in repr(auth)
        assert auth._endpoint.client_auth.key_id == "my-kid"  # type: ignore[attr-defined]


async def test_overrides_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keyword arguments to from_env take precedence over the variables."""
    setenv(monkeypatch, CLIENT_ID="from-env", CLIENT_SECRET=CLIENT_SECRET, RESOURCE=RISK)
    async with MosaicAuth.from_env(client_id=CLIENT_ID, resource=None) as auth:
        assert repr(auth).startswith(f"MosaicAuth(client_id={CLIENT_ID!r}")
        assert repr(auth).endswith("resource=None)")


@pytest.mark.parametrize(
    ("variables", "named"),
    [
        ({}, "set MOSAIC_CLIENT_ID"),
        ({"CLIENT_ID": CLIENT_ID}, "set MOSAIC_CLIENT_SECRET"),
        ({"CLIENT_ID": CLIENT_ID, "CLIENT_SECRET": ""}, "set MOSAIC_CLIENT_SECRET"),
        ({"CLIENT_SECRET": CLIENT_SECRET}, "set MOSAIC_CLIENT_ID"),
        (
            {"CLIENT_ID": CLIENT_ID, "CLIENT_AUTH": "private_key_jwt"},
            "set MOSAIC_PRIVATE_KEY or MOSAIC_PRIVATE_KEY_FILE",
        ),
        (
            {"CLIENT_ID": CLIENT_ID, "CLIENT_SECRET": CLIENT_SECRET, "CLIENT_AUTH": "magic"},
            "check MOSAIC_CLIENT_AUTH: client_auth 'magic' is not one of",
        ),
        (
            {"CLIENT_ID": CLIENT_ID, "CLIENT_SECRET": CLIENT_SECRET, "REGION": "mars"},
            "check MOSAIC_REGION: region 'mars' is not one of us, eu, ca, au, sandbox",
        ),
        (
            {"CLIENT_ID": CLIENT_ID, "CLIENT_SECRET": CLIENT_SECRET, "TOKEN_URL": "http://x.io"},
            "use https",
        ),
        (
            {
                "CLIENT_ID": CLIENT_ID,
                "CLIENT_SECRET": CLIENT_SECRET,
                "REGION": "eu",
                "BASE_URL": "https://api.transmitsecurity.io",
            },
            "MOSAIC_REGION and MOSAIC_BASE_URL name two hosts: set one of them",
        ),
        (
            {
                "CLIENT_ID": CLIENT_ID,
                "CLIENT_SECRET": CLIENT_SECRET,
                "REGION": "eu",
                "TOKEN_URL": "https://id.test/oidc/token",
            },
            "MOSAIC_REGION and MOSAIC_TOKEN_URL name two hosts",
        ),
        (
            {
                "CLIENT_ID": CLIENT_ID,
                "CLIENT_SECRET": CLIENT_SECRET,
                "PRIVATE_KEY": KEY.private_key_pem.decode(),
            },
            "set MOSAIC_CLIENT_SECRET or MOSAIC_PRIVATE_KEY, not both",
        ),
        (
            {"CLIENT_ID": CLIENT_ID, "PRIVATE_KEY": "-----BEGIN PRIVATE KEY-----\nnope"},
            "check MOSAIC_PRIVATE_KEY: private_key is not a PEM",
        ),
    ],
)
def test_a_missing_or_contradictory_setting_names_its_variable(
    monkeypatch: pytest.MonkeyPatch, variables: dict[str, str], named: str
) -> None:
    """A missing or contradictory setting raises a ConfigurationError naming the variable,
    and never the secret or key."""
    setenv(monkeypatch, **variables)
    with pytest.raises(ConfigurationError, match=named) as caught:
        MosaicAuth.from_env()
    assert CLIENT_SECRET not in str(caught.value)
    assert "PRIVATE KEY" not in str(caught.value)


def test_both_key_variables_at_once_are_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """MOSAIC_PRIVATE_KEY and MOSAIC_PRIVATE_KEY_FILE together are contradictory."""
    (tmp_path / "key.pem").write_bytes(KEY.private_key_pem)
    setenv(monkeypatch, CLIENT_ID=CLIENT_ID, PRIVATE_KEY=KEY.private_key_pem.decode())
    monkeypatch.setenv(PRIVATE_KEY_FILE, str(tmp_path / "key.pem"))
    with pytest.raises(ConfigurationError, match="MOSAIC_PRIVATE_KEY or MOSAIC_PRIVATE_KEY_FILE"):
        MosaicAuth.from_env()


def test_an_unreadable_key_file_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A key file that cannot be read is reported with the variable and the path."""
    setenv(monkeypatch, CLIENT_ID=CLIENT_ID)
    monkeypatch.setenv(PRIVATE_KEY_FILE, str(tmp_path / "missing.pem"))
    with pytest.raises(ConfigurationError, match=f"{PRIVATE_KEY_FILE}: cannot read .*missing.pem"):
        MosaicAuth.from_env()


def test_an_insecure_base_url_names_mosaic_base_url(monkeypatch: pytest.MonkeyPatch) -> None:
    """A plain-HTTP MOSAIC_BASE_URL is reported as that variable, not MOSAIC_TOKEN_URL."""
    setenv(monkeypatch, CLIENT_ID=CLIENT_ID, CLIENT_SECRET=CLIENT_SECRET, BASE_URL="http://x.io")
    with pytest.raises(ConfigurationError, match=r"^check MOSAIC_BASE_URL: refusing"):
        MosaicAuth.from_env()


def test_a_secret_and_a_key_override_are_named_apart(monkeypatch: pytest.MonkeyPatch) -> None:
    """A key passed to from_env while MOSAIC_CLIENT_SECRET is set names both sources."""
    setenv(monkeypatch, CLIENT_ID=CLIENT_ID, CLIENT_SECRET=CLIENT_SECRET)
    with pytest.raises(
        ConfigurationError, match="set MOSAIC_CLIENT_SECRET or the private_key argument, not both"
    ):
        MosaicAuth.from_env(private_key=KEY.private_key_pem)


async def test_an_override_can_clear_a_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    """from_env(client_secret=None) drops MOSAIC_CLIENT_SECRET, so a key can be used instead."""
    setenv(monkeypatch, CLIENT_ID=CLIENT_ID, CLIENT_SECRET=CLIENT_SECRET)
    async with MosaicAuth.from_env(client_secret=None, private_key=KEY.private_key_pem) as auth:
        assert "client_auth='private_key_jwt'" in repr(auth)


@pytest.mark.parametrize("algorithm", ["PS256", None])
async def test_a_ps256_key_file_signs_ps256_when_the_environment_says_so(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    emulator: MosaicEmulator,
    clock: FakeClock,
    algorithm: str | None,
) -> None:
    """A PS256 key from keygen, in a PEM file, gets tokens once MOSAIC_SIGNING_ALGORITHM says
    PS256; without it the assertion is signed RS256 and refused."""
    pair = generate_signing_key("PS256")
    client = emulator.register_client(jwks=pair.public_jwks)
    (tmp_path / "key.pem").write_bytes(pair.private_key_pem)
    setenv(monkeypatch, CLIENT_ID=client.client_id, PRIVATE_KEY_FILE=str(tmp_path / "key.pem"))
    if algorithm is not None:
        setenv(monkeypatch, SIGNING_ALGORITHM=algorithm)
    http_client = httpx.AsyncClient(transport=emulator.transport())
    auth = MosaicAuth.from_env(http_client=http_client, retry=Retry(max_attempts=1), clock=clock)
    async with auth:
        if algorithm is None:
            with pytest.raises(TokenRequestError, match="invalid_client"):
                await auth.get_token()
        else:
            assert (await auth.get_token()).claims["sub"] == client.client_id
    await http_client.aclose()


async def test_the_settings_keygen_prints_get_tokens_as_they_are(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    emulator: MosaicEmulator,
    clock: FakeClock,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`keygen --algorithm PS256` prints the JWKS to register and the exact variables to set:
    set as printed, from_env gets a token with the key."""
    assert main(["keygen", str(tmp_path / "key.pem"), "--algorithm", "PS256"]) == 0
    printed = capsys.readouterr()
    client = emulator.register_client(jwks=json.loads(printed.out))
    exports = [line.split(None, 1)[1] for line in printed.err.splitlines() if "export " in line]
    for variable, _, value in (shlex.split(export)[0].partition("=") for export in exports):
        monkeypatch.setenv(variable, value)
    assert os.environ["MOSAIC_SIGNING_ALGORITHM"] == "PS256"
    monkeypatch.setenv("MOSAIC_CLIENT_ID", client.client_id)
    http_client = httpx.AsyncClient(transport=emulator.transport())
    async with MosaicAuth.from_env(http_client=http_client, clock=clock) as auth:
        assert (await auth.get_token()).claims["sub"] == client.client_id
    await http_client.aclose()
