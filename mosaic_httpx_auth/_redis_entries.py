"""How `RedisTokenCache` names a token's entry in Redis and seals its value.

A name is a prefix and a digest of the token URL, client id and resource, keyed with the
client's cache secret (`CacheKey.cache_secret`: what scrypt derives from the client's
credential, salted with the token URL and client id; `derive_cache_secret`): it shows none of
them, two clients with the same id and different credentials never share an entry, and
whoever reads Redis pays a derivation for each guess at the credential, which serves one
deployment only. (A client authenticated by a TLS certificate has no credential in the
process: its names are unkeyed digests.) Its two keys (the token and the lease) share a Redis
Cluster hash tag, so that one script can use both.

A value is ``<token id>.<JWE>``. The token id (a truncated SHA-256 of the token) lets a
script compare and delete the entry holding one token without reading it; the JWE repeats it,
so that it cannot be changed. The JWE (``dir``, ``A256GCM``) is encrypted with a key derived
from the cache secret, or one the application gives, and names the entry in its protected
header, so a value copied to another entry, or sealed with another key, does not open.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from joserfc import jwe
from joserfc.errors import JoseError
from joserfc.jwk import OctKey
from joserfc.registry import HeaderParameter

from ._exceptions import ConfigurationError, TokenCacheError
from ._token import AccessToken, base64url_decode, unverified_claims

if TYPE_CHECKING:
    from collections.abc import Sequence

    from .cache import CacheKey

EncryptionKey = bytes | OctKey
"""32 random bytes, or a joserfc `OctKey` of 256 bits."""

_KEY_BYTES = 32
_REGISTRY = jwe.JWERegistry(
    header_registry={
        "ent": HeaderParameter("The cache entry the value belongs to", "str", True),
        "tid": HeaderParameter("The id of the token, as the value's prefix gives it", "str", True),
    },
    algorithms=["dir", "A256GCM"],
)


@dataclass(frozen=True, slots=True)
class EntryNames:
    """The keys of one entry in Redis."""

    token: str
    lease: str
    digest: str


class SealedEntries:
    """Names entries and seals their tokens, with the application's keys or the cache secret's.

    `encryption_key`: one key, or several: the first seals and every one opens (a key is
    rotated by adding it last, then putting it first, then dropping the old one). None: each
    client's key is derived from its cache secret.
    """

    def __init__(
        self, *, prefix: str, encryption_key: EncryptionKey | Sequence[EncryptionKey] | None
    ) -> None:
        self.prefix = prefix
        self._keys: list[OctKey] | None = None
        if isinstance(encryption_key, (bytes, OctKey)):
            self._keys = [_oct_key(encryption_key)]
        elif encryption_key is not None:
            self._keys = [_oct_key(key) for key in encryption_key]
            if not self._keys:
                raise ConfigurationError(
                    "encryption_key must name at least one key", setting="encryption_key"
                )

    def names(self, key: CacheKey) -> EntryNames:
        """The keys under which `key`'s token and lease are kept."""
        message = json.dumps([key.token_url, key.client_id, key.resource]).encode()
        digest = hmac.digest(key.cache_secret or b"", message, "sha256")[:16].hex()
        tag = f"{self.prefix}{{{digest}}}"
        return EntryNames(token=f"{tag}:token", lease=f"{tag}:lease", digest=digest)

    def seal(self, key: CacheKey, token: AccessToken) -> str:
        """`token` as the value stored under `key`'s name."""
        sealing_key = self.keys_for(key)[0]
        payload = {
            "access_token": token.token,
            "expires_at": token.expires_at,
            "issued_at": token.issued_at,
        }
        identity = token_id(token)
        header = {
            "alg": "dir",
            "enc": "A256GCM",
            "kid": _key_id(sealing_key),
            "ent": self.names(key).digest,
            "tid": identity,
        }
        sealed = jwe.encrypt_compact(
            header, json.dumps(payload).encode(), sealing_key, registry=_REGISTRY
        )
        return f"{identity}.{sealed}"

    def open(self, key: CacheKey, value: str) -> AccessToken:
        """The token in `value`, read from `key`'s name; `TokenCacheError` if it does not
        open (another key sealed it, or it belongs to another entry)."""
        identity, _, sealed = value.partition(".")
        try:
            header = json.loads(base64url_decode(sealed.split(".", 1)[0]))
            kid = header["kid"] if isinstance(header, dict) else None
            opening_key = next(k for k in self.keys_for(key) if _key_id(k) == kid)
            plaintext = jwe.decrypt_compact(sealed, opening_key, registry=_REGISTRY)
        except StopIteration:
            raise TokenCacheError(
                "a cached token is sealed with a key this process does not have: give every "
                "process the same encryption_key (during a rotation, the old one after the new)"
            ) from None
        except (ValueError, KeyError, JoseError):
            raise TokenCacheError("a cached token is not a value this library sealed") from None
        if plaintext.protected.get("ent") != self.names(key).digest:
            raise TokenCacheError("a cached token was sealed for another entry")
        token = _token_from(plaintext.plaintext or b"", key.resource)
        # The id outside the JWE is what a 401's compare-and-delete matches: a forged one
        # would keep a refused token in place.
        if not identity == plaintext.protected.get("tid") == token_id(token):
            raise TokenCacheError("a cached token's id does not match the token")
        return token

    def keys_for(self, key: CacheKey) -> list[OctKey]:
        """The keys that seal (the first) and open `key`'s tokens; `TokenCacheError` if there
        are none: a TLS client certificate leaves no secret to derive one from."""
        if self._keys is not None:
            return self._keys
        if key.cache_secret is None:
            raise TokenCacheError(
                "RedisTokenCache needs encryption_key= for a client authenticated by a TLS "
                "certificate: no secret in this process to derive one from"
            )
        return [OctKey.import_key(hmac.digest(key.cache_secret, b"token encryption", "sha256"))]


def token_id(token: AccessToken) -> str:
    """A short digest that tells one token from another, and reveals nothing of it."""
    return hashlib.sha256(token.token.encode()).hexdigest()[:32]


def _token_from(plaintext: bytes, resource: str | None) -> AccessToken:
    fields: Any = json.loads(plaintext)
    access_token = fields.get("access_token") if isinstance(fields, dict) else None
    expires_at = fields.get("expires_at") if isinstance(fields, dict) else None
    issued_at = fields.get("issued_at") if isinstance(fields, dict) else None
    if (
        not isinstance(access_token, str)
        or not isinstance(expires_at, float)
        or not math.isfinite(expires_at)
        or not (issued_at is None or isinstance(issued_at, float))
    ):
        raise TokenCacheError("a cached token lacks its token or expiry")
    return AccessToken(
        token=access_token,
        expires_at=expires_at,
        resource=resource,
        claims=unverified_claims(access_token),
        issued_at=issued_at,
    )


def _oct_key(key: EncryptionKey) -> OctKey:
    if isinstance(key, OctKey):
        if len(key.raw_value) != _KEY_BYTES:
            raise ConfigurationError(
                "an encryption_key OctKey must be 256 bits, for A256GCM", setting="encryption_key"
            )
        return key
    if isinstance(key, bytes) and len(key) == _KEY_BYTES:
        return OctKey.import_key(key)
    raise ConfigurationError(
        "encryption_key must be 32 random bytes (os.urandom(32)) or a joserfc OctKey, or a "
        "list of them",
        setting="encryption_key",
    )


def _key_id(key: OctKey) -> str:
    """Names a key in a JWE header without revealing anything of it."""
    return hmac.digest(key.raw_value, b"key id", "sha256")[:8].hex()
