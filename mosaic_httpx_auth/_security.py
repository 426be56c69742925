"""Where a token or secret may be sent: to the Mosaic hosts configured, over HTTPS, or plain
HTTP to this machine only."""

from __future__ import annotations

import ipaddress
import urllib.request
from typing import TYPE_CHECKING

from ._exceptions import InsecureTransportError

if TYPE_CHECKING:
    import httpx


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


def refuse_proxy_in_clear(url: httpx.URL, what: str, *, setting: str) -> None:
    """Raise if a client that trusts the environment, as httpx's do by default, would send
    `what` to plain-HTTP `url` through a proxy: in clear to the proxy, which would reach its
    own loopback, not this machine's. HTTPS crosses a proxy sealed (``CONNECT``)."""
    if url.scheme != "http":
        return
    # As httpx reads them: the environment, else the system's settings (macOS, Windows).
    proxies = urllib.request.getproxies()
    variable = next((name for name in ("http", "all") if proxies.get(name)), None)
    if variable is None:
        return
    host, port = url.host.lower(), url.port
    # An IPv6 address with a port only in brackets: httpx reads ``::1:8000`` as another one.
    exempt = {
        "*",
        host,
        *([f"[{host}]", f"[{host}]:{port}"] if ":" in host else [f"{host}:{port}"]),
    }
    if any(entry.strip().lower() in exempt for entry in proxies.get("no", "").split(",")):
        return
    raise InsecureTransportError(
        f"refusing to send {what} to {origin_text(url)}: {variable.upper()}_PROXY names a "
        f"proxy and NO_PROXY does not exempt {host}, so an HTTP client that trusts the "
        f"environment (httpx's default) would send them through it in clear. Add {host} to "
        "NO_PROXY",
        setting=setting,
    )


def foreign_host(url: httpx.URL) -> InsecureTransportError:
    """The error for a request to a host that is not one of the Mosaic APIs configured."""
    if not allows_credentials(url):
        return insecure_transport(url, "a bearer token")
    return InsecureTransportError(
        f"refusing to send a Mosaic token to {origin_text(url)}: it is neither base_url's "
        "origin nor a resources prefix's. Add it to one, or send this request with auth=None"
    )


def insecure_transport(
    url: httpx.URL, what: str, *, setting: str | None = None
) -> InsecureTransportError:
    """The error for sending `what` to `url` in the clear; `setting` names the argument at fault."""
    return InsecureTransportError(
        f"refusing to send {what} to {origin_text(url)}: use https "
        "(plain http is allowed to loopback hosts only)",
        setting=setting,
    )


def origin_text(url: httpx.URL) -> str:
    """`url`'s scheme, host and port, as a message shows where a token would have gone: no user
    info, path or query, which may hold secrets."""
    host = f"[{url.host}]" if ":" in url.host else url.host
    port = "" if url.port is None else f":{url.port}"
    return f"{url.scheme}://{host}{port}"
