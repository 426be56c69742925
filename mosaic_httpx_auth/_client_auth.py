"""Client authentication: how a token request proves which application is asking.

Mosaic apps authenticate with a client secret (in the form body, or HTTP Basic), a signed JWT
assertion (``private_key_jwt``, RFC 7523), or a TLS client certificate (``tls_client_auth``,
RFC 8705). Each method adds its parameters to the token request and says which of them are
secret, so that nothing the server echoes back can leak them. A secret or private key (or a
client certificate's key that this process read) also yields the key material that names and
seals the client's entries in a shared cache (`derive_cache_secret`).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import html
import json
import secrets
import threading
import time
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, get_args
from urllib.parse import quote, quote_plus

import anyio.to_thread

from ._client_certificate import client_key_digest
from ._exceptions import ConfigurationError
from ._fork import on_fork_in_child
from ._token import json_object

# joserfc (with cryptography) is imported where a key is loaded or an assertion signed: a
# client that authenticates with a secret never pays for it.
if TYPE_CHECKING:
    import ssl
    from collections.abc import Callable, Iterator

    from joserfc.jwk import ECKey, RSAKey

    PrivateKey = RSAKey | ECKey | dict[str, Any] | str | bytes
    """A private key: a joserfc key, a JWK dict, or PEM text or bytes."""

ClientAuthMethod = Literal[
    "client_secret_post", "client_secret_basic", "private_key_jwt", "tls_client_auth"
]
CLIENT_AUTH_METHODS: tuple[str, ...] = get_args(ClientAuthMethod)
SECRET_METHODS = ("client_secret_post", "client_secret_basic")

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_LIFETIME = 60
"""Seconds an assertion is valid: long enough for clock skew, short enough to be useless later."""

# The algorithms each key type may sign with; the first is the default.
_ALGORITHMS = {"RSA": ("RS256", "PS256"), "EC": ("ES256",)}


@dataclass(frozen=True, slots=True)
class TokenRequestCredentials:
    """What a client authentication method adds to one token request."""

    form: dict[str, str] = field(repr=False)
    headers: dict[str, str] = field(default_factory=dict, repr=False)
    secrets: tuple[str, ...] = field(default=(), repr=False)
    """Values in the request that must never reach a log or an error message, in each
    encoding a server may echo them in (see `secret_forms`)."""


def secret_forms(value: str) -> tuple[str, ...]:
    """`value` and the forms a server may echo it in: form-urlencoded, percent-encoded (once
    or twice), JSON-escaped, HTML-escaped (entities by name or number), and base64 or
    base64url, alone or inside a longer encoded text (the whole form body, say)."""
    texts = (
        value,
        quote_plus(value),
        quote(value),
        quote(value, safe=""),
        quote(quote(value, safe=""), safe=""),
        json.dumps(value)[1:-1],
        json.dumps(value, ensure_ascii=False)[1:-1],
        html.escape(value),
        html.escape(value, quote=False),
        # Numeric character references, as some templates escape every sign.
        "".join(char if char.isalnum() else f"&#x{ord(char):x};" for char in value),
        "".join(char if char.isalnum() else f"&#{ord(char)};" for char in value),
    )
    # Base64 of the raw secret, or of the form body that carried it urlencoded.
    encoded = (form for text in texts[:3] for form in _base64_forms(text.encode()))
    return tuple(dict.fromkeys((*texts, *encoded)))


# A base64 run shorter than this could turn up in unrelated text: not redacted on its own.
_MIN_BASE64_RUN = 8


def _base64_forms(raw: bytes) -> list[str]:
    """`raw` in base64 and base64url, padded or not; and, for `raw` inside a longer text that
    was encoded whole, the characters that `raw` alone decides at each of the three places it
    can fall in a 3-byte group (those at its edges mix in its neighbours' bits)."""
    alone = base64.b64encode(raw).decode()
    forms = [alone, alone.rstrip("=")]
    for offset in range(3):
        encoded = base64.b64encode(bytes(offset) + raw).decode()
        inner = encoded[-(-offset * 4 // 3) : (offset + len(raw)) // 3 * 4]
        if len(inner) >= _MIN_BASE64_RUN:
            forms.append(inner)
    return [*forms, *(form.translate(_URLSAFE) for form in forms)]


_URLSAFE = str.maketrans("+/", "-_")


# scrypt's cost (RFC 7914): n * r * 128 bytes, 16 MiB, and tens of milliseconds of a core per
# derivation (within OpenSSL's default memory limit). A process pays it once per credential;
# whoever reads a shared cache pays it for every guess at a secret, and again per deployment.
SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
_CACHE_SECRET_LABEL = "mosaic-httpx-auth shared token cache"

# The secrets derived in this process, by a digest of credential and salt (so that the memo
# holds no copy of a credential); the lock makes concurrent first uses wait for one derivation.
_DERIVED: dict[bytes, bytes] = {}
_DERIVING = threading.Lock()


def cache_secret_salt(token_url: str, client_id: str) -> bytes:
    """The salt of a client's cache secret: the same in every process of a fleet, another for
    another client or token endpoint, so that no table of guesses serves two deployments."""
    return json.dumps([_CACHE_SECRET_LABEL, token_url, client_id]).encode()


def derive_cache_secret(credential: bytes, salt: bytes) -> bytes:
    """32 bytes that stand for `credential` in a shared cache, from which it cannot be worked
    back but at scrypt's cost per guess: two clients with the same id and different secrets
    never share an entry. The first call per credential and salt takes tens of milliseconds
    (later ones are memoized): never make it on an event loop's thread."""
    memo_key = _memo_key(credential, salt)
    with _DERIVING:
        secret = _DERIVED.get(memo_key)
        if secret is None:
            secret = hashlib.scrypt(
                credential, salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32
            )
            _DERIVED[memo_key] = secret
    return secret


def _memo_key(credential: bytes, salt: bytes) -> bytes:
    return hmac.digest(salt, credential, "sha256")


def _new_deriving_lock() -> None:
    """In a forked child: a derivation the parent ran on another thread holds the lock
    forever."""
    global _DERIVING
    _DERIVING = threading.Lock()


on_fork_in_child(_new_deriving_lock)


class ClientAuthentication:
    """Authenticates token requests by one method; `credentials()` is called per request."""

    method: ClientAuthMethod
    # The secret or private key a shared cache's keys are derived from; None when the
    # credential is not in this process (a TLS client certificate's key, in OpenSSL's hands).
    _cache_credential: bytes | None = None

    def __init__(self, client_id: str) -> None:
        self.client_id = client_id

    @property
    def credential_in_process(self) -> bool:
        """Whether a shared cache can derive this client's keys from its credential."""
        return self._cache_credential is not None

    async def cache_secret(self, token_url: str) -> bytes | None:
        """Key material derived one-way from the credential (`derive_cache_secret`), which
        names and encrypts this client's entries in a shared cache; None when the credential
        is not in this process. The first in the process is derived on a worker thread."""
        credential = self._cache_credential
        if credential is None:
            return None
        salt = cache_secret_salt(token_url, self.client_id)
        derived = _DERIVED.get(_memo_key(credential, salt))
        if derived is None:
            derived = await anyio.to_thread.run_sync(derive_cache_secret, credential, salt)
        return derived

    def credentials(self, token_url: str) -> TokenRequestCredentials:
        """The form parameters and headers that authenticate one request to `token_url`."""
        raise NotImplementedError


class ClientSecretPost(ClientAuthentication):
    """The client secret in the form body: what every Mosaic example does."""

    method = "client_secret_post"

    def __init__(self, client_id: str, client_secret: str) -> None:
        super().__init__(client_id)
        self._client_secret = client_secret
        self._cache_credential = client_secret.encode()

    def credentials(self, token_url: str) -> TokenRequestCredentials:
        return TokenRequestCredentials(
            form={"client_id": self.client_id, "client_secret": self._client_secret},
            secrets=secret_forms(self._client_secret),
        )


class ClientSecretBasic(ClientAuthentication):
    """The client secret in an HTTP Basic header; id and secret form-urlencoded first."""

    method = "client_secret_basic"

    def __init__(self, client_id: str, client_secret: str) -> None:
        super().__init__(client_id)
        self._cache_credential = client_secret.encode()
        # RFC 6749 §2.3.1: each is form-urlencoded before they are joined and encoded.
        pair = f"{quote_plus(client_id)}:{quote_plus(client_secret)}"
        credential = base64.b64encode(pair.encode()).decode("ascii")
        self._authorization = "Basic " + credential
        # The base64 credential alone, as a server may echo it without its scheme.
        self._secrets = secret_forms(client_secret) + secret_forms(credential)

    def credentials(self, token_url: str) -> TokenRequestCredentials:
        return TokenRequestCredentials(
            form={},
            headers={"Authorization": self._authorization},
            secrets=self._secrets,
        )


class PrivateKeyJWT(ClientAuthentication):
    """A JWT assertion signed with the app's private key, fresh for every request."""

    method = "private_key_jwt"

    def __init__(
        self,
        client_id: str,
        private_key: PrivateKey,
        *,
        key_id: str | None = None,
        algorithm: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(client_id)
        self._key = load_private_key(private_key)
        self._cache_credential = self._key.as_bytes(private=True)
        allowed = _ALGORITHMS[self._key.key_type]
        # A JWK may say which algorithm it is for; otherwise its type's default.
        declared = self._key.get("alg")
        if algorithm is None:
            algorithm = (
                declared if isinstance(declared, str) and declared in allowed else allowed[0]
            )
        elif isinstance(declared, str) and declared != algorithm:
            raise ConfigurationError(
                f"signing_algorithm {algorithm!r} contradicts the key's own alg {declared!r}: "
                "give one, or make them agree",
                setting="signing_algorithm",
            )
        elif algorithm not in allowed:
            raise ConfigurationError(
                f"signing_algorithm {algorithm!r} does not suit a {self._key.key_type} key: "
                f"use one of {', '.join(allowed)}",
                setting="signing_algorithm",
            )
        self.algorithm = algorithm
        self.key_id = key_id or self._key.kid or self._key.thumbprint()
        self._clock = clock
        # Sign once now, so that a key joserfc cannot use fails here rather than per request.
        self.assertion("https://example.invalid/oidc/token")

    def assertion(self, audience: str) -> str:
        """A signed client assertion for the token endpoint `audience`."""
        from joserfc import errors, jwt

        now = int(self._clock())
        claims = {
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": audience,
            "iat": now,
            "exp": now + ASSERTION_LIFETIME,
            "jti": secrets.token_urlsafe(16),
        }
        header = {"alg": self.algorithm, "kid": self.key_id, "typ": "JWT"}
        try:
            return jwt.encode(header, claims, self._key, algorithms=[self.algorithm])
        except (errors.JoseError, ValueError, TypeError) as exc:
            raise ConfigurationError(
                f"private_key cannot sign {self.algorithm} assertions: {type(exc).__name__}",
                setting="private_key",
            ) from None

    def credentials(self, token_url: str) -> TokenRequestCredentials:
        assertion = self.assertion(token_url)
        return TokenRequestCredentials(
            form={
                "client_id": self.client_id,
                "client_assertion_type": JWT_BEARER,
                "client_assertion": assertion,
            },
            secrets=secret_forms(assertion),
        )


class TLSClientAuth(ClientAuthentication):
    """Only the client id in the form: the TLS client certificate authenticates the app.

    Its private key is in this process only when the library read it from a file
    (`_client_certificate`): then a shared cache derives from the key's digest.
    """

    method = "tls_client_auth"

    def __init__(self, client_id: str, *, key_digest: bytes | None = None) -> None:
        super().__init__(client_id)
        self._cache_credential = key_digest

    def credentials(self, token_url: str) -> TokenRequestCredentials:
        return TokenRequestCredentials(form={"client_id": self.client_id})


def client_authentication(
    client_id: str,
    *,
    method: str | None,
    client_secret: str | None,
    private_key: PrivateKey | None,
    key_id: str | None,
    signing_algorithm: str | None,
    has_http_client: bool,
    clock: Callable[[], float],
    ssl_context: ssl.SSLContext | None = None,
) -> ClientAuthentication:
    """The authentication `MosaicAuth`'s arguments ask for, or a `ConfigurationError` saying why
    they don't fit. Without a `method`, a private key means ``private_key_jwt``, else a secret.
    A TLS client certificate is presented by `ssl_context`, or by the caller's HTTP client."""
    if method is None:
        method = "private_key_jwt" if private_key is not None else "client_secret_post"
    if method not in CLIENT_AUTH_METHODS:
        raise ConfigurationError(
            f"client_auth {method!r} is not one of {', '.join(CLIENT_AUTH_METHODS)}",
            setting="client_auth",
        )
    if client_secret is not None and private_key is not None:
        raise ConfigurationError(
            "give client_secret or private_key, not both", setting="private_key"
        )
    if method in SECRET_METHODS:
        return _secret_authentication(client_id, method, client_secret, private_key)
    if client_secret is not None:
        raise ConfigurationError(
            f"client_auth {method!r} does not use client_secret", setting="client_secret"
        )
    if method == "private_key_jwt":
        if private_key is None:
            raise ConfigurationError(
                "client_auth 'private_key_jwt' needs private_key", setting="private_key"
            )
        return PrivateKeyJWT(
            client_id, private_key, key_id=key_id, algorithm=signing_algorithm, clock=clock
        )
    return _tls_authentication(client_id, private_key, ssl_context, has_http_client)


def _tls_authentication(
    client_id: str,
    private_key: PrivateKey | None,
    ssl_context: ssl.SSLContext | None,
    has_http_client: bool,
) -> ClientAuthentication:
    """``tls_client_auth``, with something that presents the client certificate."""
    if private_key is not None:
        raise ConfigurationError(
            "client_auth 'tls_client_auth' does not use private_key", setting="private_key"
        )
    if ssl_context is None and not has_http_client:
        raise ConfigurationError(
            "client_auth 'tls_client_auth' needs ssl_context=, an ssl.SSLContext that presents "
            "the client certificate (after context.load_cert_chain(cert_file, key_file)), or "
            "an http_client that does",
            setting="ssl_context",
        )
    return TLSClientAuth(client_id, key_digest=client_key_digest(ssl_context))


def _secret_authentication(
    client_id: str, method: str, client_secret: str | None, private_key: PrivateKey | None
) -> ClientAuthentication:
    """``client_secret_post`` or ``client_secret_basic``, with the secret they need."""
    if private_key is not None:
        raise ConfigurationError(
            f"client_auth {method!r} uses client_secret, not private_key",
            setting="private_key",
        )
    if not isinstance(client_secret, str) or not client_secret:
        raise ConfigurationError(
            f"client_auth {method!r} needs client_secret, a non-empty string",
            setting="client_secret",
        )
    if method == "client_secret_basic":
        return ClientSecretBasic(client_id, client_secret)
    return ClientSecretPost(client_id, client_secret)


# RFC 7518 §3.3: "A key of size 2048 bits or larger MUST be used with these algorithms."
MIN_RSA_KEY_BITS = 2048


@contextlib.contextmanager
def no_short_rsa_key_warning() -> Iterator[None]:
    """Keep joserfc from warning of a short RSA key as it imports one: the caller refuses such
    a key outright instead, saying why with `short_rsa_key_reason`."""
    from joserfc.errors import SecurityWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SecurityWarning)
        yield


def short_rsa_key_reason(key: object) -> str | None:
    """Why `key` must not sign or verify: "an RSA key of N bits: ...", when it is one under
    `MIN_RSA_KEY_BITS`, which can be factored and its signatures forged. None for other keys."""
    from joserfc.jwk import RSAKey

    if not isinstance(key, RSAKey) or key.raw_value.key_size >= MIN_RSA_KEY_BITS:
        return None
    return (
        f"an RSA key of {key.raw_value.key_size} bits: RS256 and PS256 need at least "
        f"{MIN_RSA_KEY_BITS} (RFC 7518 §3.3)"
    )


def load_private_key(private_key: PrivateKey) -> RSAKey | ECKey:
    """A private RSA or EC key from a joserfc key, a JWK dict, or PEM text or bytes."""
    from joserfc.jwk import ECKey, RSAKey

    key: Any = private_key
    with no_short_rsa_key_warning():
        if isinstance(private_key, (str, bytes)):
            text = (
                private_key.decode("utf-8", "replace")
                if isinstance(private_key, bytes)
                else private_key
            )
            key = (
                _import_jwk(_jwk_object(text))
                if text.lstrip().startswith("{")
                else _import_pem(text)
            )
        elif isinstance(private_key, dict):
            key = _import_jwk(private_key)
    if not isinstance(key, (RSAKey, ECKey)):
        raise ConfigurationError(
            "private_key must be an RSA or EC key (a joserfc key, a JWK dict, or PEM)",
            setting="private_key",
        )
    if not key.is_private:
        raise ConfigurationError(
            "private_key is a public key: it cannot sign", setting="private_key"
        )
    too_short = short_rsa_key_reason(key)
    if too_short is not None:
        raise ConfigurationError(f"private_key is {too_short}", setting="private_key")
    if isinstance(key, ECKey) and key.curve_name != "P-256":
        raise ConfigurationError(
            f"private_key is an EC key on {key.curve_name}: ES256 needs P-256",
            setting="private_key",
        )
    return key


def _jwk_object(text: str) -> dict[str, Any]:
    value = json_object(text)
    if value is None:
        raise ConfigurationError(
            "private_key is not valid JWK JSON: a JSON object", setting="private_key"
        )
    return value


def _import_jwk(jwk: dict[str, Any]) -> Any:
    from joserfc import errors
    from joserfc import jwk as jwk_module

    try:
        return jwk_module.JWKRegistry.import_key(jwk)
    except (errors.JoseError, ValueError, TypeError, KeyError) as exc:
        raise ConfigurationError(
            f"private_key is not a usable JWK: {type(exc).__name__}", setting="private_key"
        ) from None


def _import_pem(pem: str) -> RSAKey | ECKey:
    from joserfc import errors
    from joserfc.jwk import ECKey, RSAKey

    for key_type in (RSAKey, ECKey):
        try:
            return key_type.import_key(pem)
        except (errors.JoseError, ValueError, TypeError):
            continue
    raise ConfigurationError(
        "private_key is not a PEM RSA or EC key that can be read", setting="private_key"
    )
