"""Certificate-bound access tokens (RFC 8705 §3): what binds a token issued over mutual TLS to
the client's certificate, and whether a connection may use such a token.

A token carries the SHA-256 thumbprint of the certificate it was issued to, in its ``cnf``
claim (``{"x5t#S256": ...}``); an API takes it only on a connection that presents that
certificate, so that a token copied on its way is of no use to whoever copied it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping


def certificate_thumbprint(certificate: bytes) -> str:
    """The ``x5t#S256`` of `certificate` (DER): its SHA-256, base64url without padding."""
    digest = hashlib.sha256(certificate).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def confirmation(certificate: bytes | None) -> dict[str, Any]:
    """The claims that bind a token to `certificate` (DER): none without one."""
    if certificate is None:
        return {}
    return {"cnf": {"x5t#S256": certificate_thumbprint(certificate)}}


def binding_holds(claims: Mapping[str, Any], certificate: bytes | None) -> bool:
    """Whether a connection that presented `certificate` (None: none) may use a token with
    `claims`: an unbound token, anywhere; a bound one, with its own certificate only."""
    confirmed = claims.get("cnf")
    if not isinstance(confirmed, dict) or "x5t#S256" not in confirmed:
        return True
    if certificate is None:
        return False
    return hmac.compare_digest(str(confirmed["x5t#S256"]), certificate_thumbprint(certificate))
