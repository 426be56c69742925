"""`MosaicAuth` for httpx2, Pydantic's continuation of httpx: the same auth, on httpx2's stack.

httpx2 clients take only `httpx2.Auth` instances, and an application on httpx2 should not load
a second HTTP stack for its token requests. This `MosaicAuth` is the library's, with the same
constructor and the same rules: its flow sees httpx2 requests, and its token requests go out
through an `httpx2.AsyncClient` (its own, or the `http_client` given). Needs the ``httpx2``
extra, on Python 3.11 or later::

    async with httpx2.AsyncClient(auth=MosaicAuth(client_id, client_secret)) as client:
        await client.get("https://api.transmitsecurity.io/cis/v1/users")

`TokenRequestError` stays an `httpx.HTTPError`, not an `httpx2.HTTPError`: catch it, or
`MosaicAuthError`, by name.
"""

from __future__ import annotations

try:
    import httpx2
except ImportError as error:  # pragma: no cover - Python 3.10, or the extra not installed
    raise ImportError(
        "mosaic_httpx_auth.httpx2 needs httpx2, which needs Python 3.11 or later: "
        "pip install 'mosaic-httpx-auth[httpx2]'"
    ) from error

from . import _auth

__all__ = ["MosaicAuth"]


class MosaicAuth(_auth.MosaicAuth, httpx2.Auth):  # type: ignore[misc]
    """`mosaic_httpx_auth.MosaicAuth` for `httpx2.Client` and `httpx2.AsyncClient`; see it
    for the arguments. `http_client`, if given, is an `httpx2.AsyncClient`."""

    _http = httpx2
