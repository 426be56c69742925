"""Applications registered with the emulator: who they are and how they authenticate."""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, get_args

from joserfc.errors import JoseError
from joserfc.jwk import ECKey, JWKRegistry, KeySet, RSAKey

from .._client_auth import SECRET_METHODS as CORE_SECRET_METHODS
from .._client_auth import no_short_rsa_key_warning, short_rsa_key_reason
from .._exceptions import ConfigurationError
from ._tls import certificate_sha256 as fingerprint_of
from ._tls import normalize_sha256

if TYPE_CHECKING:
    from joserfc.jwk import Key

AuthenticationMethod = Literal[
    "client_secret_post",
    "client_secret_basic",
    "private_key_jwt",
    "tls_client_auth",
    "self_signed_tls_client_auth",
]
"""How a client proves who it is to the token endpoint (the ``token_endpoint_auth_method``)."""

AUTHENTICATION_METHODS: tuple[AuthenticationMethod, ...] = get_args(AuthenticationMethod)
SECRET_METHODS = frozenset(CORE_SECRET_METHODS)
"""A client registered for either may send its secret either way, as Mosaic's clients do."""
CERTIFICATE_METHODS = frozenset({"tls_client_auth", "self_signed_tls_client_auth"})
"""Both are checked alike here: the certificate must have the registered fingerprint."""


@dataclass(frozen=True, slots=True)
class RegisteredClient:
    """An application registered with the emulator: its credentials and what it may request.

    Made by `MosaicEmulator.register_client`.
    """

    client_id: str
    resources: frozenset[str]
    """The resources it may request tokens for; a token without a resource is always allowed."""
    app_id: str
    authentication_method: AuthenticationMethod = "client_secret_post"
    """How it authenticates to the token endpoint."""
    certificate_sha256: str | None = None
    """The SHA-256 fingerprint (lowercase hex) of its TLS client certificate, for the
    ``tls_client_auth`` methods; None for the others."""
    management: bool = False
    """Whether it is a Management Application: its tokens carry the ``Admin`` role."""
    _client_secret: str | None = field(default=None, repr=False)
    _public_keys: KeySet | None = field(default=None, repr=False)

    @property
    def client_secret(self) -> str:
        """Its client secret. Raises `ConfigurationError` for a client that has none."""
        if self._client_secret is None:
            raise ConfigurationError(
                f"client {self.client_id!r} authenticates with {self.authentication_method} "
                "and has no client secret"
            )
        return self._client_secret

    @property
    def jwks(self) -> dict[str, Any] | None:
        """The public JWK Set that verifies its client assertions, for ``private_key_jwt``;
        None for the other methods. A new copy each time."""
        if self._public_keys is None:
            return None
        return dict(self._public_keys.as_dict(private=False))


def public_keys_of(client: RegisteredClient) -> KeySet:
    """The keys that verify the assertions of `client`, a ``private_key_jwt`` client."""
    if client._public_keys is None:
        raise ValueError(f"client {client.client_id!r} has no public keys")
    return client._public_keys


def new_client(
    *,
    resources: Iterable[str],
    client_id: str | None,
    client_secret: str | None,
    app_id: str | None,
    authentication_method: AuthenticationMethod | None,
    jwks: Key | KeySet | Mapping[str, Any] | None,
    certificate: bytes | str | None,
    certificate_sha256: str | None,
    management: bool = False,
) -> RegisteredClient:
    """A client for `MosaicEmulator.register_client`, with its arguments checked.

    Without an `authentication_method`, `jwks` means ``private_key_jwt``, a certificate
    ``tls_client_auth``, and neither a client secret.
    """
    if isinstance(resources, str):
        raise ConfigurationError("resources must be a collection of resource URLs, not one string")
    if certificate is not None and certificate_sha256 is not None:
        raise ConfigurationError("give certificate or certificate_sha256, not both")
    if certificate is not None:
        certificate_sha256 = fingerprint_of(certificate)
    authentication_method = _chosen_method(
        authentication_method, jwks=jwks, certificate_sha256=certificate_sha256
    )
    _check_credentials_fit(
        authentication_method,
        client_secret=client_secret,
        jwks=jwks,
        certificate_sha256=certificate_sha256,
    )
    if authentication_method in SECRET_METHODS and client_secret is None:
        client_secret = secrets.token_urlsafe(24)
    client = RegisteredClient(
        client_id=secrets.token_hex(12) if client_id is None else client_id,
        resources=frozenset(resources),
        app_id=secrets.token_hex(8) if app_id is None else app_id,
        authentication_method=authentication_method,
        certificate_sha256=None
        if certificate_sha256 is None
        else normalize_sha256(certificate_sha256),
        management=management,
        _client_secret=client_secret,
        _public_keys=None if jwks is None else _public_key_set(jwks),
    )
    if not client.client_id or client_secret == "":
        raise ConfigurationError("client_id and client_secret must not be empty")
    return client


def _chosen_method(
    authentication_method: AuthenticationMethod | None,
    *,
    jwks: Key | KeySet | Mapping[str, Any] | None,
    certificate_sha256: str | None,
) -> AuthenticationMethod:
    """The method asked for, checked, or else the one the credentials given imply."""
    if authentication_method is None:
        if jwks is not None:
            authentication_method = "private_key_jwt"
        elif certificate_sha256 is not None:
            authentication_method = "tls_client_auth"
        else:
            authentication_method = "client_secret_post"
    if authentication_method not in AUTHENTICATION_METHODS:
        raise ConfigurationError(
            f"authentication_method must be one of {', '.join(AUTHENTICATION_METHODS)}, "
            f"not {authentication_method!r}"
        )
    return authentication_method


def _check_credentials_fit(
    authentication_method: AuthenticationMethod,
    *,
    client_secret: str | None,
    jwks: Key | KeySet | Mapping[str, Any] | None,
    certificate_sha256: str | None,
) -> None:
    """Refuse credentials the method does not use, and the lack of ones it needs."""
    uses_secret = authentication_method in SECRET_METHODS
    uses_keys = authentication_method == "private_key_jwt"
    uses_certificate = authentication_method in CERTIFICATE_METHODS
    for given, needed, what in (
        (client_secret is not None, uses_secret, "client_secret"),
        (jwks is not None, uses_keys, "jwks"),
        (certificate_sha256 is not None, uses_certificate, "certificate or certificate_sha256"),
    ):
        if given and not needed:
            raise ConfigurationError(f"{what} does not go with {authentication_method}")
    if uses_keys and jwks is None:
        raise ConfigurationError("private_key_jwt needs the client's public keys: pass jwks")
    if uses_certificate and certificate_sha256 is None:
        raise ConfigurationError(
            f"{authentication_method} needs the client's certificate: "
            "pass certificate or certificate_sha256"
        )


def _public_key_set(jwks: Key | KeySet | Mapping[str, Any]) -> KeySet:
    """The public parts of `jwks` (a JWK Set, one JWK, or joserfc keys) as a new key set.

    Refuses keys that cannot sign RS256, PS256 or ES256: symmetric keys, other curves, and RSA
    keys under 2048 bits, whose signatures can be forged.
    """
    if isinstance(jwks, KeySet):
        given: list[Any] = list(jwks.keys)
    elif isinstance(jwks, Mapping):
        keys = jwks.get("keys") if "keys" in jwks else [jwks]
        if not isinstance(keys, list) or not keys:
            raise ConfigurationError("jwks must be a JWK Set with at least one key")
        given = keys
    else:
        given = [jwks]
    with no_short_rsa_key_warning():
        return KeySet([_public_key(key) for key in given])


def _public_key(key: Any) -> Key:
    """A copy of the public part of `key` (a JWK or a joserfc key), if it may sign assertions."""
    try:
        imported = key if not isinstance(key, Mapping) else JWKRegistry.import_key(dict(key))
    except (JoseError, ValueError, TypeError, KeyError) as exc:
        raise ConfigurationError(f"jwks holds a key joserfc cannot import: {exc}") from exc
    if not isinstance(imported, (RSAKey, ECKey)) or (
        isinstance(imported, ECKey) and imported.curve_name != "P-256"
    ):
        raise ConfigurationError(
            "jwks must hold RSA or P-256 EC keys: the client signs RS256, PS256 or ES256"
        )
    too_short = short_rsa_key_reason(imported)
    if too_short is not None:
        raise ConfigurationError(f"jwks holds {too_short}")
    # A copy of the public part: a private key given here is never kept, and the caller's
    # key objects are not changed (a key set gives each key a kid).
    return JWKRegistry.import_key(dict(imported.as_dict(private=False)))
