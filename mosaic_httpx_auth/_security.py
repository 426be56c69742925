"""Where a token or secret may be sent: to the Mosaic hosts configured, over HTTPS, or plain
HTTP to this machine only."""

from __future__ import annotations

import ipaddress

import httpx

from ._exceptions import InsecureTransportError


def is_loopback(host: str) -> bool:
    """Whether `host` names this machine: ``localhost``, 127.0.0.0/8 or ``::1``."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def allows_credentials(url: httpx.URL) -> bool:
    """Whether credentials may travel to `url`: HTTPS anywhere, plain HTTP to loopback only."""
    return url.scheme == "https" or (url.scheme == "http" and is_loopback(url.host))


Origin = tuple[str, str, int | None]
"""Scheme, host and port (None for the scheme's default): where a request goes."""


def origin(url: httpx.URL) -> Origin:
    return (url.scheme, url.host, url.port)


def api_origins(base_url: str, prefixes: list[str]) -> frozenset[Origin]:
    """The origins that may receive bearer tokens: the API base URL's and those of the
    resource routes. Each must allow credentials."""
    urls = [("base_url", httpx.URL(base_url))]
    urls += [("resources", httpx.URL(prefix)) for prefix in prefixes]
    for setting, url in urls:
        if not allows_credentials(url):
            raise insecure_transport(url, "bearer tokens", setting=setting)
    return frozenset(origin(url) for _, url in urls)


def foreign_host(url: httpx.URL) -> InsecureTransportError:
    """The error for a request to a host that is not one of the Mosaic APIs configured."""
    if not allows_credentials(url):
        return insecure_transport(url, "a bearer token")
    return InsecureTransportError(
        f"refusing to send a Mosaic token to {url.scheme}://{url.host}: it is neither base_url "
        "nor a resources prefix. Add it to one, or send this request with auth=None"
    )


def insecure_transport(
    url: httpx.URL, what: str, *, setting: str | None = None
) -> InsecureTransportError:
    """The error for sending `what` to `url` in the clear; `setting` names the argument at fault."""
    return InsecureTransportError(
        f"refusing to send {what} to {url.scheme}://{url.host}: use https "
        "(plain http is allowed to loopback hosts only)",
        setting=setting,
    )
