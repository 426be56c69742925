"""Resource routing: which resource (audience) a request's token must be for."""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx

from ._exceptions import ConfigurationError

if TYPE_CHECKING:
    from collections.abc import Mapping


class ResourceRouter:
    """Picks the resource for a request URL: the longest matching URL prefix wins.

    A prefix matches whole path segments: ``https://host/risk`` matches ``https://host/risk``
    and ``https://host/risk/v1/...`` but not ``https://host/risk-other``. A URL no prefix
    matches gets the default resource.
    """

    def __init__(
        self, default: str | None, prefixes: Mapping[str, str | None] | None = None
    ) -> None:
        self.default = default
        routes = [
            (_normalized_prefix(prefix), resource) for prefix, resource in (prefixes or {}).items()
        ]
        self._routes = sorted(routes, key=lambda route: len(route[0]), reverse=True)

    def resource_for(self, url: httpx.URL) -> str | None:
        """The resource whose token a request to `url` must carry."""
        if not self._routes:
            return self.default
        target = str(url)
        for prefix, resource in self._routes:
            if target.startswith(prefix) and (
                len(target) == len(prefix) or prefix[-1] == "/" or target[len(prefix)] in "/?#"
            ):
                return resource
        return self.default


def _normalized_prefix(prefix: str) -> str:
    """The prefix spelt as httpx spells request URLs, so that the two compare as text."""
    try:
        url = httpx.URL(prefix)
    except (httpx.InvalidURL, TypeError) as exc:
        raise ConfigurationError(f"resources: {prefix!r} is not a URL") from exc
    if url.scheme not in ("http", "https") or not url.host:
        raise ConfigurationError(f"resources: {prefix!r} is not an absolute http(s) URL prefix")
    return str(url)
