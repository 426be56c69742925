"""Key pairs for ``private_key_jwt``: a private key to keep, a public JWKS to register."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ._exceptions import ConfigurationError

SIGNING_ALGORITHMS = ("RS256", "PS256", "ES256")


@dataclass(frozen=True, slots=True)
class SigningKeyPair:
    """A new key pair for ``private_key_jwt``. Its repr never shows the private key."""

    private_key_pem: bytes = field(repr=False)
    """The private key, PKCS#8 PEM: `MosaicAuth(private_key=...)` or MOSAIC_PRIVATE_KEY_FILE."""
    public_jwks: dict[str, Any]
    """The public key as a JWK Set, to register with the app in Mosaic's Admin Portal."""
    key_id: str
    """The ``kid`` the key is registered and signs under."""


def generate_signing_key(algorithm: str = "RS256", *, key_id: str | None = None) -> SigningKeyPair:
    """Generate a key pair for `algorithm`: RSA 2048 for RS256 and PS256, P-256 for ES256.

    `key_id` defaults to the public key's RFC 7638 thumbprint, which `MosaicAuth` also uses
    when it is given the key without one.
    """
    if algorithm not in SIGNING_ALGORITHMS:
        raise ConfigurationError(
            f"algorithm {algorithm!r} is not one of {', '.join(SIGNING_ALGORITHMS)}",
            setting="signing_algorithm",
        )
    from joserfc.jwk import ECKey, RSAKey  # JOSE is loaded only when a key is made

    key: RSAKey | ECKey = (
        ECKey.generate_key("P-256") if algorithm == "ES256" else RSAKey.generate_key(2048)
    )
    key_id = key_id or key.thumbprint()
    public = {**key.as_dict(private=False), "kid": key_id, "alg": algorithm, "use": "sig"}
    return SigningKeyPair(
        private_key_pem=key.as_pem(private=True), public_jwks={"keys": [public]}, key_id=key_id
    )
