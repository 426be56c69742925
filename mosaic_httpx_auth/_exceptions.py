"""The errors mosaic-httpx-auth raises.

Every error derives from `MosaicAuthError`, so one ``except`` clause catches them all::

    MosaicAuthError
    ├── ConfigurationError (also a ValueError)
    │   └── InsecureTransportError
    ├── UnsupportedClientError (also a TypeError)
    ├── TokenCacheError
    └── TokenRequestError (also an httpx.HTTPError)
        └── TokenResponseError

Messages name what went wrong and where, never a client secret or a token.
"""

from __future__ import annotations

import httpx


class MosaicAuthError(Exception):
    """Raised for every failure of mosaic-httpx-auth: the root of its errors."""


class ConfigurationError(MosaicAuthError, ValueError):
    """Raised when `MosaicAuth` is given settings it cannot work with.

    `setting` names the argument at fault, when there is one.
    """

    def __init__(self, message: str, *, setting: str | None = None) -> None:
        super().__init__(message)
        self.setting = setting


class InsecureTransportError(ConfigurationError):
    """Raised when a token or secret would travel over plain HTTP to a host that is not
    loopback, or a token to a host that is not one of the Mosaic APIs configured."""


class UnsupportedClientError(MosaicAuthError, TypeError):
    """Raised when a sync request needs a token where it cannot wait for one: with an
    `http_client` given (it belongs to an event loop), or on an event loop's thread."""


class TokenCacheError(MosaicAuthError):
    """Raised by a shared token cache that cannot be reached or read, or holds an entry it
    cannot open. `MosaicAuth` never passes it on to a request: it logs it and fetches tokens
    directly until the cache answers again."""


class TokenRequestError(MosaicAuthError, httpx.HTTPError):
    """Raised when the token endpoint refuses a token request or cannot be reached.

    It is an `httpx.HTTPError` too, so that code handling (or retrying, as with stamina)
    httpx's failures around its API calls handles a token endpoint outage as well. Its
    `request` is the API request that needed the token; from `MosaicAuth.get_token`, the
    token request without its body, which holds the credentials.

    `status_code` is None when no response arrived. `error` and `error_description` come from
    the response body, in either shape Mosaic answers with: the OAuth one
    (``{"error": ..., "error_description": ...}``) or its own
    (``{"message": ..., "error_code": ...}``, whose message becomes `error_description`).
    `retry_after` is the wait in seconds the endpoint asked for with ``Retry-After``, if it did;
    a fetch fails at once when that is longer than its `Retry.max_retry_after`.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        error: str | None = None,
        error_description: str | None = None,
        resource: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.error = error
        self.error_description = error_description
        self.resource = resource
        self.retry_after = retry_after


class TokenResponseError(TokenRequestError):
    """Raised when the token endpoint answers success with something that is not a usable token."""
