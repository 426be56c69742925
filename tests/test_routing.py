"""ResourceRouter: the resource a request URL needs."""

from __future__ import annotations

import importlib
import sys
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mosaic_httpx_auth import ConfigurationError, InsecureTransportError, _routing
from mosaic_httpx_auth._routing import ResourceRouter, _keeps_parsed_parts

from .helpers import RISK, VERIFY

API = "https://api.transmitsecurity.io"
# The HTTP libraries whose URLs MosaicAuth routes: httpx2 needs Python 3.11.
HTTP_MODULES: list[Any] = [httpx]
if sys.version_info >= (3, 11):
    HTTP_MODULES.append(importlib.import_module("httpx2"))


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


@pytest.mark.parametrize(
    "prefix",
    [f"{API}/risk?key=sk_live_1", f"{API}/risk#sk_live_1", "/risk?sk_live_1", "/risk?", "/risk#"],
)
def test_a_prefix_with_a_query_or_fragment_is_refused_without_being_shown(prefix: str) -> None:
    """Prefixes match path segments: a query or fragment in one, even an empty one, would be
    ignored; the error does not repeat it, as a query may hold a secret."""
    with pytest.raises(ConfigurationError, match="query or fragment") as caught:
        ResourceRouter(None, {prefix: RISK}, base_url=API)
    assert "sk_live" not in str(caught.value)


def test_two_prefixes_for_one_place_and_two_resources_are_refused() -> None:
    """A path and a URL that name the same place may not route it to two resources: which
    one wins would be an accident of the mapping's order."""
    same_place = {"/risk": RISK, "https://API.TransmitSecurity.io:443/risk": VERIFY}
    with pytest.raises(ConfigurationError, match="two prefixes name") as caught:
        ResourceRouter(None, same_place, base_url=API)
    assert f"{API}/risk" in str(caught.value)
    # The same place for the same resource is no conflict.
    router = ResourceRouter(None, {"/risk": RISK, f"{API}/risk": RISK}, base_url=API)
    assert router.token_resource(httpx.URL(f"{API}/risk/v1")) == RISK


@pytest.mark.parametrize(
    ("url", "resource"),
    [
        ("https://user:secret@api.transmitsecurity.io/risk/v1", RISK),  # by path, not by text
        ("https://api.transmitsecurity.io", "root"),  # an empty path is "/" on the wire
        (f"{API}/risk.v1/x", "dotted"),
        (f"{API}/riskXv1/x", "root"),  # "." in a prefix is a dot, not any character
        (f"{API}/verify/legacyX", VERIFY),  # the longer prefix fails its boundary: the next wins
        (f"{API}/verify", "root"),  # "/verify/" matches below it only
        ("https://xn--bcher-kva.example/risk/x", RISK),  # an IDNA host, as the prefix spelt it
        ("https://BÜCHER.example/risk", RISK),
    ],
)
def test_urls_route_on_their_origin_and_encoded_path(url: str, resource: str | None) -> None:
    """Routing compares the request's origin, then its percent-encoded path, with each
    prefix's: user info, query and spelling of the host make no difference."""
    router = ResourceRouter(
        "default",
        {
            "/": "root",
            "/risk": RISK,
            "/risk.v1": "dotted",
            "/verify/": VERIFY,
            "/verify/legacy": None,
            "https://bücher.example/risk": RISK,
        },
        base_url=API,
    )
    assert router.token_resource(httpx.URL(url)) == resource


def test_a_url_on_another_origin_gets_no_token_but_has_a_resource() -> None:
    """`token_resource` refuses an origin that is not configured; `resource_for`, asked
    which resource a URL would need, answers the default."""
    router = ResourceRouter("default", {"/risk": RISK}, base_url=API)
    url = httpx.URL("https://api.transmitsecurity.io:8443/risk")
    with pytest.raises(InsecureTransportError, match="neither base_url's origin"):
        router.token_resource(url)
    assert router.resource_for(url) == "default"


segments = st.sampled_from(["risk", "risk.v1", "riskXv1", "v1", "verify", "a-b", "x%20y", "ü"])
paths = st.lists(segments, max_size=4).map(lambda parts: "/" + "/".join(parts))
prefixes = st.builds(lambda path, slash: path + slash, paths, st.sampled_from(["", "/"]))


def reference_route(routes: dict[str, str], path: str) -> str:
    """The longest prefix matching whole segments, the plain way: the rule, spelt out."""
    for prefix in sorted(routes, key=len, reverse=True):
        if path == prefix or (
            path.startswith(prefix) and (prefix.endswith("/") or path[len(prefix)] == "/")
        ):
            return routes[prefix]
    return "default"


@given(st.dictionaries(prefixes, st.text(min_size=1, max_size=3)), paths, paths)
def test_the_longest_prefix_on_a_segment_boundary_wins_whatever_the_prefixes(
    routes: dict[str, str], path: str, tail: str
) -> None:
    """However the prefixes nest, overlap or end, routing picks what the rule spelt out
    plainly does, on paths as httpx encodes them."""
    router = ResourceRouter("default", routes, base_url=API)
    encoded = {
        httpx.URL(API + prefix).raw_path.decode(): resource for prefix, resource in routes.items()
    }
    for candidate in (path, path + tail, path + "/", path + "?q=/x"):
        url = httpx.URL(API + candidate)
        expected = reference_route(encoded, url.raw_path.decode().partition("?")[0])
        assert router.token_resource(url) == expected


@pytest.mark.parametrize("http", HTTP_MODULES, ids=lambda http: http.__name__)
def test_request_urls_are_read_from_their_parsed_parts(http: Any) -> None:
    """httpx and httpx2, as installed, keep a URL's parts parsed where routing reads them
    at little cost: should a release move them, this fails (routing would still be right,
    through the public properties, but slower)."""
    assert _keeps_parsed_parts(http)

    def untouchable(_: object) -> object:
        raise AssertionError("routing read a public property of the request URL")

    # A URL whose public parts may not be read: only its parsed parts route it.
    parts_only = type(
        "PartsOnlyURL",
        (http.URL,),
        {name: property(untouchable) for name in _PUBLIC_PARTS},
    )
    router = ResourceRouter("default", {"/risk": RISK}, base_url=API, http=http)
    assert router.token_resource(parts_only(f"{API}/risk/v1?x=1")) == RISK
    assert router.token_resource(parts_only(f"{API}/cis/v1")) == "default"


# The URL properties that encode or decode a part on each access.
_PUBLIC_PARTS = ("scheme", "host", "raw_host", "port", "path", "raw_path", "query", "netloc")


hosts = st.sampled_from(
    [
        "api.transmitsecurity.io",
        "API.TransmitSecurity.IO",
        "bücher.example",
        "xn--bcher-kva.example",
        "127.0.0.1",
        "[::1]",
        "[fe80::1%25eth0]",
        "[fe80::1%25\u00e9]",  # a zone id httpx keeps as given, ASCII or not
        "localhost",
    ]
)
urls = st.builds(
    lambda scheme, userinfo, host, port, path, query, fragment: (
        f"{scheme}://{userinfo}{host}{port}{path}{query}{fragment}"
    ),
    st.sampled_from(["http", "https", "HTTPS"]),
    st.sampled_from(["", "user:secret@"]),
    hosts,
    st.sampled_from(["", ":443", ":80", ":8443"]),
    st.sampled_from(["", "/"]) | paths,
    st.sampled_from(["", "?", "?a=/b"]),
    st.sampled_from(["", "#", "#/x"]),
)


@pytest.mark.parametrize("http", HTTP_MODULES, ids=lambda http: http.__name__)
@given(url=urls)
def test_parsed_parts_and_public_properties_route_alike(http: Any, url: str) -> None:
    """Whether read from the parsed parts or through the public properties (as on an httpx
    that keeps them otherwise), every URL gets the same resource, or the same refusal."""
    routes = {
        "https://bücher.example/risk": RISK,
        "http://127.0.0.1/verify": VERIFY,
        "http://localhost:8443/": "local",
        "http://[::1]/risk.v1": "ipv6",
        "https://[fe80::1%25\u00e9]/": "zone",
    }
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_routing, "_PARSED_URL_FIELDS", ())
        public = ResourceRouter("default", routes, base_url=API, http=http)
    parsed = ResourceRouter("default", routes, base_url=API, http=http)
    assert _outcome(parsed, http.URL(url)) == _outcome(public, http.URL(url))


def _outcome(router: ResourceRouter, url: Any) -> object:
    try:
        return router.token_resource(url)
    except InsecureTransportError:
        return InsecureTransportError
