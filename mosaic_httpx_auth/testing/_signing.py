"""The emulator's token signer: one RSA key that signs access tokens and checks them."""

from __future__ import annotations

import copy
import secrets
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import RSAKey

from .._exceptions import ConfigurationError

_ALGORITHM = "RS256"


class TokenSigner:
    """Signs JWTs with one RSA key, and verifies the ones it signed.

    Without a `key` it generates one, which takes tens of milliseconds.
    """

    def __init__(self, *, issuer: str, key: RSAKey | None = None) -> None:
        if key is None:
            key = RSAKey.generate_key(2048, parameters={"kid": secrets.token_hex(8)})
        elif not isinstance(key, RSAKey) or not key.is_private:
            raise ConfigurationError("signing_key must be a private joserfc RSAKey")
        self.issuer = issuer
        self.key_id = key.kid or key.thumbprint()
        self._key = key
        public = dict(key.as_dict(private=False))
        self._jwks = {"keys": [{**public, "kid": self.key_id, "alg": _ALGORITHM, "use": "sig"}]}

    @property
    def jwks(self) -> dict[str, Any]:
        """The public key as a JWK Set, as served at ``/cis/oidc/jwks``: a new copy each time."""
        return copy.deepcopy(self._jwks)

    def sign(self, claims: dict[str, Any]) -> str:
        """A compact RS256 JWT carrying `claims`, with the key's ``kid`` in its header."""
        header = {"alg": _ALGORITHM, "kid": self.key_id}
        return jwt.encode(header, claims, self._key, algorithms=[_ALGORITHM])

    def verify(self, token: str, *, audience: str, now: float) -> dict[str, Any] | None:
        """The claims of `token`, or None unless this key signed it for `audience` and the
        issuer, and it has not expired at `now` (seconds since the epoch)."""
        try:
            claims = jwt.decode(token, self._key, algorithms=[_ALGORITHM]).claims
            # Whole seconds: a token expires at its integer `exp`, so flooring `now` is exact.
            jwt.JWTClaimsRegistry(
                now=int(now),
                iss={"essential": True, "value": self.issuer},
                aud={"essential": True, "value": audience},
                exp={"essential": True},
                jti={"essential": True},
                client_id={"essential": True},
            ).validate(claims)
        except (JoseError, ValueError, UnicodeError):
            return None
        # RFC 7519 §4.1.4: not accepted *on or after* exp; joserfc before 1.8 accepts it at exp.
        return claims if claims["exp"] > int(now) else None
