"""Which API host and token endpoint the region, base_url and token_url arguments add up to."""

from __future__ import annotations

import pytest

from mosaic_httpx_auth import ConfigurationError
from mosaic_httpx_auth._urls import mosaic_urls

US = "https://api.transmitsecurity.io"
EU = "https://api.eu.transmitsecurity.io"
CA = "https://api.ca.transmitsecurity.io"
EU_TOKEN_URL = EU + "/oidc/token"


def test_nothing_given_means_the_us_host() -> None:
    """Without region, base_url or token_url, tokens and APIs are the US region's."""
    assert mosaic_urls(None, None, None) == (US, US + "/oidc/token")


def test_a_region_sets_both_urls() -> None:
    """A region alone gives its host and that host's token endpoint."""
    assert mosaic_urls("eu", None, None) == (EU, EU_TOKEN_URL)


@pytest.mark.parametrize(
    ("token_url", "base_url"),
    [
        (EU_TOKEN_URL, EU),
        (
            "https://mosaic-proxy.example:8443/tenant/oidc/token",
            "https://mosaic-proxy.example:8443",
        ),
        ("http://127.0.0.1:8765/oidc/token", "http://127.0.0.1:8765"),
        ("http://[::1]:8765/oidc/token", "http://[::1]:8765"),
    ],
)
def test_a_token_url_alone_sets_the_api_host(token_url: str, base_url: str) -> None:
    """Without region or base_url, the API host is the token URL's origin, not the US host."""
    assert mosaic_urls(None, None, token_url) == (base_url, token_url)


@pytest.mark.parametrize(
    ("region", "base_url", "token_url", "setting"),
    [
        ("ca", None, EU_TOKEN_URL, "token_url"),
        ("eu", CA, EU_TOKEN_URL, "base_url"),
        ("eu", CA, None, "base_url"),
    ],
)
def test_a_region_and_a_url_on_another_host_contradict_each_other(
    region: str, base_url: str | None, token_url: str | None, setting: str
) -> None:
    """A region's host and a URL on another host cannot both be meant: refused, naming the
    URL's setting (and the region in the message)."""
    with pytest.raises(ConfigurationError, match=f"region '{region}' and {setting} name") as caught:
        mosaic_urls(region, base_url, token_url)
    assert caught.value.setting == setting


def test_an_explicit_base_url_wins_over_the_token_urls_host() -> None:
    """Without a region, base_url is the API host whatever host token_url names."""
    assert mosaic_urls(None, CA + "/", EU_TOKEN_URL) == (CA, EU_TOKEN_URL)


def test_a_base_url_alone_sets_the_token_url() -> None:
    """Without a token_url, tokens come from base_url's /oidc/token."""
    assert mosaic_urls(None, CA, None) == (CA, CA + "/oidc/token")


@pytest.mark.parametrize("region", ["", "mars", "EU"])
def test_an_unknown_region_is_refused(region: str) -> None:
    """A region given but not one of Mosaic's is a ConfigurationError naming `region`."""
    with pytest.raises(ConfigurationError, match="is not one of") as caught:
        mosaic_urls(region, None, EU_TOKEN_URL)
    assert caught.value.setting == "region"
