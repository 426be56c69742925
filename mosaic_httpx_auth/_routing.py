"""Resource routing: whether a request may carry a token, and for which resource (audience).

Asked of every request, so it is one dict access by the request's origin and, where prefixes
are on that origin, one regular expression on its path, however many there are.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import httpx

from ._exceptions import ConfigurationError, InsecureTransportError
from ._security import (
    allows_credentials,
    foreign_host,
    insecure_transport,
    origin_text,
    refuse_proxy_in_clear,
)
from ._urls import absolute_url

if TYPE_CHECKING:
    from collections.abc import Mapping
    from types import ModuleType

Origin = tuple[str, str, int | None]
"""Scheme, host (IDNA-encoded) and port (None for the scheme's default): where a request goes."""


def checked_resource(value: object, setting: str) -> str | None:
    """`value` as a resource: a non-empty string, or None (a token without a resource); else
    a `ConfigurationError` naming `setting`. An empty one would be sent as ``resource=``."""
    if value is None or (isinstance(value, str) and value):
        return value
    shown = repr(value) if isinstance(value, str) else type(value).__name__
    raise ConfigurationError(
        f"{setting} must be a resource (a non-empty string) or None, not {shown}",
        setting=setting,
    )


class ResourceRouter:
    """Picks the resource for a request URL: the longest matching URL prefix wins.

    A prefix is a URL, or a path (``/risk``) relative to the API base URL. It matches whole
    path segments: ``https://host/risk`` matches ``https://host/risk`` and
    ``https://host/risk/v1/...`` but not ``https://host/risk-other``. A URL no prefix matches
    gets the default resource.

    Tokens go to the origins of `base_url` and of the prefixes, and nowhere else: each must
    allow credentials (HTTPS, or plain HTTP to loopback).
    """

    def __init__(
        self,
        default: str | None,
        prefixes: Mapping[str, str | None] | None = None,
        *,
        base_url: str | None = None,
        http: ModuleType = httpx,
    ) -> None:
        self.default = checked_resource(default, "resource")
        self._reads_parsed_parts = _keeps_parsed_parts(http)
        routes: dict[Origin, dict[str, str | None]] = {}
        if base_url is not None:
            url = _for_tokens(absolute_url(base_url, setting="base_url", http=http), "base_url")
            routes[origin_and_path(url)[0]] = {}
        for prefix, resource in (prefixes or {}).items():
            checked_resource(resource, "resources")
            url = _for_tokens(_prefix_url(prefix, base_url, http), "resources")
            origin, path = origin_and_path(url)
            paths = routes.setdefault(origin, {})
            if paths.setdefault(path, resource) != resource:
                raise ConfigurationError(
                    f"resources: two prefixes name {origin_text(url)}{path}, for two "
                    "resources: keep one",
                    setting="resources",
                )
        self._paths = {
            origin: _PathRoutes(paths, default) if paths else None
            for origin, paths in routes.items()
        }

    def token_resource(self, url: httpx.URL) -> str | None:
        """The resource whose token a request to `url` carries; an `InsecureTransportError`
        if `url` is on none of the origins configured, which get no token."""
        if self._reads_parsed_parts:
            scheme, _, host, port, path, _, _ = url._uri_reference
            origin: Origin = (scheme, host, port)
        else:
            origin, path = origin_and_path(url)
        try:
            paths = self._paths[origin]
        except KeyError:
            raise foreign_host(url) from None
        return self.default if paths is None else paths.resource(path or "/")

    def resource_for(self, url: httpx.URL) -> str | None:
        """The resource whose token a request to `url` must carry, should it carry one."""
        try:
            return self.token_resource(url)
        except InsecureTransportError:
            return self.default


class _PathRoutes:
    """One origin's path prefixes, as one regular expression: its alternatives are the
    prefixes, longest first, so the first that matches a whole number of segments is the
    longest; the group that matched names the resource."""

    def __init__(self, paths: Mapping[str, str | None], default: str | None) -> None:
        prefixes = sorted(paths, key=len, reverse=True)
        self._pattern = re.compile(
            "|".join(
                # A prefix ending in "/" ends at a segment boundary by itself.
                f"({re.escape(prefix)})" + ("" if prefix.endswith("/") else "(?![^/])")
                for prefix in prefixes
            )
        )
        # By group number: 0 (nothing matched) gets the default.
        self._resources = (default, *(paths[prefix] for prefix in prefixes))

    def resource(self, path: str) -> str | None:
        match = self._pattern.match(path)
        return self._resources[0 if match is None else match.lastindex or 0]


def origin_and_path(url: httpx.URL) -> tuple[Origin, str]:
    """Where `url` goes, and its path as sent: percent-encoded, ``/`` when empty."""
    try:
        host = url.raw_host.decode("ascii")
    except UnicodeEncodeError:  # an IPv6 zone id, which httpx keeps as it was given
        host = url.host
    return (url.scheme, host, url.port), url.raw_path.partition(b"?")[0].decode("ascii")


# The parts of httpx's parsed URL, `URL._uri_reference`, in order.
_PARSED_URL_FIELDS = ("scheme", "userinfo", "host", "port", "path", "query", "fragment")


def _keeps_parsed_parts(http: ModuleType) -> bool:
    """Whether `http`'s URLs keep their parts, parsed, in a named tuple of the fields above:
    reading them there is several times cheaper than through the public properties, which
    encode or decode a part at each access, and routing reads them for every request."""
    parts = getattr(http.URL("https://example.com/"), "_uri_reference", None)
    return getattr(parts, "_fields", None) == _PARSED_URL_FIELDS


def _for_tokens(url: httpx.URL, setting: str) -> httpx.URL:
    """`url`, which bearer tokens may travel to; else an error naming `setting`."""
    if not allows_credentials(url):
        raise insecure_transport(url, "bearer tokens", setting=setting)
    refuse_proxy_in_clear(url, "bearer tokens", setting=setting)
    return url


def _prefix_url(prefix: str, base_url: str | None, http: ModuleType) -> httpx.URL:
    """A `resources` prefix as an absolute URL, parsed by the HTTP library whose request URLs
    it is compared with: a path (``/risk``) is taken relative to `base_url`. It is a place,
    matched on whole path segments: no query or fragment, not even an empty one."""
    if base_url is not None and isinstance(prefix, str) and prefix.startswith("/"):
        prefix = base_url.rstrip("/") + prefix
    if isinstance(prefix, str) and ("?" in prefix or "#" in prefix):
        # Not echoed: a query may hold a secret.
        raise ConfigurationError(
            "resources: a prefix is matched on whole path segments, and cannot carry a query "
            "or fragment",
            setting="resources",
        )
    return absolute_url(prefix, setting="resources", http=http)
