"""MosaicAuth.from_env: configuration from environment variables."""

from __future__ import annotations

import pytest

from mosaic_httpx_auth import ConfigurationError, MosaicAuth

from .helpers import CLIENT_ID, CLIENT_SECRET, RISK

pytestmark = pytest.mark.anyio


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in (
        "MOSAIC_CLIENT_ID",
        "MOSAIC_CLIENT_SECRET",
        "MOSAIC_TOKEN_URL",
        "MOSAIC_RESOURCE",
    ):
        monkeypatch.delenv(variable, raising=False)


async def test_from_env_reads_every_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    """Client id, secret, token URL and resource come from MOSAIC_* variables."""
    monkeypatch.setenv("MOSAIC_CLIENT_ID", CLIENT_ID)
    monkeypatch.setenv("MOSAIC_CLIENT_SECRET", CLIENT_SECRET)
    monkeypatch.setenv("MOSAIC_TOKEN_URL", "https://api.eu.transmitsecurity.io/oidc/token")
    monkeypatch.setenv("MOSAIC_RESOURCE", RISK)
    async with MosaicAuth.from_env() as auth:
        assert repr(auth) == (
            f"MosaicAuth(client_id={CLIENT_ID!r}, "
            "token_url='https://api.eu.transmitsecurity.io/oidc/token', "
            f"resource={RISK!r})"
        )


async def test_overrides_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keyword arguments to from_env take precedence over the variables."""
    monkeypatch.setenv("MOSAIC_CLIENT_ID", "from-env")
    monkeypatch.setenv("MOSAIC_CLIENT_SECRET", CLIENT_SECRET)
    monkeypatch.setenv("MOSAIC_RESOURCE", RISK)
    async with MosaicAuth.from_env(client_id=CLIENT_ID, resource=None) as auth:
        assert repr(auth).startswith(f"MosaicAuth(client_id={CLIENT_ID!r}")
        assert repr(auth).endswith("resource=None)")


@pytest.mark.parametrize(
    ("present", "named"),
    [
        ({}, "MOSAIC_CLIENT_ID and MOSAIC_CLIENT_SECRET"),
        ({"MOSAIC_CLIENT_ID": CLIENT_ID}, "MOSAIC_CLIENT_SECRET"),
        ({"MOSAIC_CLIENT_ID": CLIENT_ID, "MOSAIC_CLIENT_SECRET": ""}, "MOSAIC_CLIENT_SECRET"),
        ({"MOSAIC_CLIENT_SECRET": CLIENT_SECRET}, "MOSAIC_CLIENT_ID"),
    ],
)
def test_a_missing_variable_is_named(
    monkeypatch: pytest.MonkeyPatch, present: dict[str, str], named: str
) -> None:
    """A missing required variable raises ConfigurationError naming it, and no secret value."""
    for variable, value in present.items():
        monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError, match=named) as caught:
        MosaicAuth.from_env()
    assert CLIENT_SECRET not in str(caught.value)
