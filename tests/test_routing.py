"""ResourceRouter: the resource a request URL needs."""

from __future__ import annotations

import httpx
import pytest

from mosaic_httpx_auth import ConfigurationError
from mosaic_httpx_auth._routing import ResourceRouter

from .helpers import RISK, VERIFY

API = "https://api.transmitsecurity.io"


@pytest.mark.parametrize(
    ("url", "resource"),
    [
        (f"{API}/risk", RISK),
        (f"{API}/risk/v1/recommendation?x=1", RISK),
        (f"{API}/risk?x=1", RISK),
        (f"{API}/risk-other/v1", "default"),
        (f"{API}/verify/api/v1/sessions", VERIFY),
        (f"{API}/verify/legacy/v1", None),
        ("https://API.TransmitSecurity.io/risk/v1", RISK),
        ("https://api.eu.transmitsecurity.io/risk/v1", "default"),
        (f"{API}/cis/v1/users", "default"),
    ],
)
def test_longest_matching_prefix_on_segment_boundaries_wins(url: str, resource: str | None) -> None:
    """The longest prefix matching whole path segments picks the resource, else the default."""
    router = ResourceRouter(
        "default",
        {f"{API}/risk": RISK, f"{API}/verify/": VERIFY, f"{API}/verify/legacy": None},
    )
    assert router.resource_for(httpx.URL(url)) == resource


def test_a_host_prefix_covers_every_path_on_it() -> None:
    """A prefix that is just scheme and host matches every request to that host."""
    router = ResourceRouter(None, {"https://api.eu.transmitsecurity.io": RISK})
    assert router.resource_for(httpx.URL("https://api.eu.transmitsecurity.io/x")) == RISK
    assert router.resource_for(httpx.URL(f"{API}/x")) is None


@pytest.mark.parametrize("prefix", ["/risk", "risk.identity.security", "mailto:x@y", "https://"])
def test_a_prefix_that_is_not_an_absolute_url_is_refused(prefix: str) -> None:
    """A routing prefix must be an absolute http(s) URL."""
    with pytest.raises(ConfigurationError, match="resources"):
        ResourceRouter(None, {prefix: RISK})
