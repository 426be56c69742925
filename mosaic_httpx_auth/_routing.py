"""Resource routing: which resource (audience) a request's token must be for."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._urls import absolute_url

if TYPE_CHECKING:
    from collections.abc import Mapping

    import httpx


class ResourceRouter:
    """Picks the resource for a request URL: the longest matching URL prefix wins.

    A prefix is a URL, or a path (``/risk``) relative to the API base URL. It matches whole
    path segments: ``https://host/risk`` matches ``https://host/risk`` and
    ``https://host/risk/v1/...`` but not ``https://host/risk-other``. A URL no prefix matches
    gets the default resource.
    """

    def __init__(
        self,
        default: str | None,
        prefixes: Mapping[str, str | None] | None = None,
        *,
        base_url: str | None = None,
    ) -> None:
        self.default = default
        routes = [
            (_normalized_prefix(prefix, base_url), resource)
            for prefix, resource in (prefixes or {}).items()
        ]
        self._routes = sorted(routes, key=lambda route: len(route[0]), reverse=True)

    @property
    def prefixes(self) -> list[str]:
        """The URL prefixes routed, normalised."""
        return [prefix for prefix, _ in self._routes]

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


def _normalized_prefix(prefix: str, base_url: str | None) -> str:
    """The prefix spelt as httpx spells request URLs, so that the two compare as text.

    A path (``/risk``) is taken relative to `base_url`.
    """
    if base_url is not None and isinstance(prefix, str) and prefix.startswith("/"):
        prefix = base_url.rstrip("/") + prefix
    return str(absolute_url(prefix, setting="resources"))
