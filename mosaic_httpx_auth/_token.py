"""The access token value type."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping  # noqa: TC003 - get_type_hints(AccessToken) resolves it
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any


class _FromToken(dict[str, Any]):
    """`AccessToken`'s default claims: read from its token."""


@dataclass(frozen=True, slots=True)
class AccessToken:
    """A client access token and what the library knows about it, as `get_token` returns it.

    Immutable. Its repr shows the resource and expiry, never the token.

    Attributes:
        token: The JWT itself, as sent after ``Bearer``.
        expires_at: When it stops being accepted, in seconds since the epoch.
        resource: The resource (audience) it was requested for; None for Identity Management.
        claims: Its JWT claims (``aud``, ``exp``, ``roles``, ...), read without verifying.
        issued_at: When it was requested, by the local clock; None when unknown.
        authorization: The whole ``Authorization`` header value, ``"Bearer <token>"``.
        lifetime: Seconds from `issued_at` to `expires_at`, if `issued_at` is known.
    """

    token: str = field(repr=False)
    """The JWT, as sent in the ``Authorization: Bearer`` header."""
    expires_at: float
    """When the token stops being accepted, in seconds since the epoch."""
    resource: str | None = None
    """The resource (audience) it was requested for; None for Identity Management."""
    claims: Mapping[str, Any] = field(default_factory=_FromToken, repr=False, compare=False)
    """The JWT's claims, decoded without verifying the signature; empty for an opaque token.
    Decoded from `token` unless given."""
    issued_at: float | None = field(default=None, compare=False)
    """When it was requested, by the local clock; None when unknown."""
    authorization: str = field(init=False, repr=False, compare=False)
    """The ``Authorization`` header value, built once so each request only sets it."""

    def __post_init__(self) -> None:
        claims = self.claims
        if type(claims) is _FromToken:
            claims = unverified_claims(self.token)
        object.__setattr__(self, "claims", MappingProxyType(dict(claims)))
        object.__setattr__(self, "authorization", f"Bearer {self.token}")

    def __reduce__(self) -> tuple[type[AccessToken], tuple[Any, ...]]:
        # Pickled (or copied) as its fields: the claims' read-only view cannot be.
        fields = (self.token, self.expires_at, self.resource, dict(self.claims), self.issued_at)
        return AccessToken, fields

    @property
    def lifetime(self) -> float | None:
        """Seconds from `issued_at` to `expires_at`; None when `issued_at` is unknown."""
        return None if self.issued_at is None else self.expires_at - self.issued_at


def unverified_claims(token: str) -> dict[str, Any]:
    """The JWT's claims, or an empty dict when the token is not a JWS with a JSON payload.

    Read without verifying the signature, as a client need not verify its own tokens; and
    without a JOSE library, which only a client assertion needs.
    """
    parts = token.split(".")
    if len(parts) != 3:
        return {}
    try:
        header, claims = (json_object(base64url_decode(part)) for part in parts[:2])
    except ValueError:  # not base64url
        return {}
    return claims if header is not None and claims is not None else {}


def json_object(text: str | bytes) -> dict[str, Any] | None:
    """`text` parsed as a JSON object; None when it is not one, or nests absurdly deep."""
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def base64url_decode(text: str) -> bytes:
    """Unpadded base64url, as JWTs spell it (RFC 7515 §2)."""
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
