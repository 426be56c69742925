"""httpx authentication for Transmit Security Mosaic APIs.

`MosaicAuth` gets client access tokens from Mosaic's token endpoint, caches one per resource,
fetches each once however many requests need it, and retries a request refused with 401 once
with a new token::

    async with httpx.AsyncClient(auth=MosaicAuth(client_id, client_secret)) as client:
        await client.get("https://api.transmitsecurity.io/cis/v1/users")
"""

from __future__ import annotations

from ._auth import MosaicAuth
from ._exceptions import (
    ConfigurationError,
    InsecureTransportError,
    MosaicAuthError,
    TokenRequestError,
    TokenResponseError,
    UnsupportedClientError,
)
from ._keys import SigningKeyPair, generate_signing_key
from ._mosaic import RISK_RESOURCE, VERIFY_RESOURCE
from ._retry import Retry
from ._telemetry import AuthEvent, AuthStats
from ._token import AccessToken
from .cache import MemoryTokenCache

__version__ = "0.1.0"
"""This release's version: the one place it is written (the wheel's metadata reads it)."""

__all__ = [
    "RISK_RESOURCE",
    "VERIFY_RESOURCE",
    "AccessToken",
    "AuthEvent",
    "AuthStats",
    "ConfigurationError",
    "InsecureTransportError",
    "MemoryTokenCache",
    "MosaicAuth",
    "MosaicAuthError",
    "Retry",
    "SigningKeyPair",
    "TokenRequestError",
    "TokenResponseError",
    "UnsupportedClientError",
    "generate_signing_key",
]

# Tracebacks name each error where users import it from, not the private module it is written
# in (as httpx does). Errors only: a dataclass's annotations are resolved in its module.
for _name in __all__:
    if isinstance(_value := globals()[_name], type) and issubclass(_value, BaseException):
        _value.__module__ = __name__
del _name, _value
