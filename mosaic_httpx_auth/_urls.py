"""The URLs MosaicAuth is given: checked once, and those not given worked out from the others."""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx

from ._exceptions import ConfigurationError
from ._mosaic import DEFAULT_REGION, REGION_HOSTS, TOKEN_PATH
from ._security import allows_credentials, insecure_transport

if TYPE_CHECKING:
    from types import ModuleType


def absolute_url(text: str, *, setting: str, http: ModuleType = httpx) -> httpx.URL:
    """`text` as an absolute http(s) `http.URL`, or a ConfigurationError naming `setting`."""
    try:
        url: httpx.URL = http.URL(text)
    except (http.InvalidURL, TypeError):
        # Not echoed: a mistyped URL may still hold a password.
        raise ConfigurationError(f"{setting} is not a URL", setting=setting) from None
    if url.userinfo:
        # It would show in reprs, logs and errors: credentials have arguments of their own.
        raise ConfigurationError(
            f"{setting}: the URL must not carry a user name or password", setting=setting
        )
    if url.scheme not in ("http", "https") or not url.host:
        raise ConfigurationError(
            f"{setting}: {text!r} is not an absolute http(s) URL", setting=setting
        )
    return url


def off_region(region: str | None, **urls: str | None) -> tuple[str, str] | None:
    """The first of `urls` (by name) whose origin is not `region`'s host, with that origin:
    a region and a URL on another host contradict each other. None when they agree, or when
    either cannot be read (that is said elsewhere)."""
    host = REGION_HOSTS.get(region or "")
    for name, text in urls.items():
        try:
            url = httpx.URL(text) if text else None
        except (httpx.InvalidURL, TypeError):
            continue
        if host is not None and url is not None and url.host:
            origin = f"{url.scheme}://{url.netloc.decode('ascii')}"
            if origin != host:
                return name, origin
    return None


def mosaic_urls(region: str | None, base_url: str | None, token_url: str | None) -> tuple[str, str]:
    """The API base URL and token URL. The base URL is `base_url`, else `region`'s host, else
    the origin of `token_url`, else the US host; the token URL is `token_url`, else the base
    URL's ``/oidc/token``. Credentials may go to the token URL only over HTTPS (or to loopback).
    """
    if region is not None and region not in REGION_HOSTS:
        raise ConfigurationError(
            f"region {region!r} is not one of {', '.join(REGION_HOSTS)}", setting="region"
        )
    conflict = off_region(region, base_url=base_url, token_url=token_url)
    if conflict is not None:
        name, origin = conflict
        raise ConfigurationError(
            f"region {region!r} and {name} name two hosts ({REGION_HOSTS[region or '']} and "
            f"{origin}): give one of them",
            setting=name,
        )
    token = absolute_url(token_url, setting="token_url") if token_url else None
    if base_url is None:
        if region is None and token is not None:
            # A token URL in the EU means APIs in the EU: the US host would get no token.
            base_url = f"{token.scheme}://{token.netloc.decode('ascii')}"
        else:
            base_url = REGION_HOSTS[region or DEFAULT_REGION]
    base_url = str(absolute_url(base_url, setting="base_url")).rstrip("/")
    setting = "token_url" if token else "base_url"
    token = token or absolute_url(base_url + TOKEN_PATH, setting=setting)
    if not allows_credentials(token):
        raise insecure_transport(token, "client credentials", setting=setting)
    return base_url, str(token)
