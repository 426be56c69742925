"""Client authentication at the token endpoint: which registered client sent a token request.

Mosaic's methods differ in what the request carries:

- a client secret in the form (``client_secret_post``) or in HTTP Basic
  (``client_secret_basic``), RFC 6749 §2.3;
- a JWT signed with the client's private key in ``client_assertion`` (``private_key_jwt``),
  RFC 7523;
- only ``client_id``, the TLS client certificate being the proof (``tls_client_auth``,
  ``self_signed_tls_client_auth``), RFC 8705.

A client must use the method it is registered with (a secret client may send its secret
either way); anything else is refused with 401 ``invalid_client``.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import threading
from typing import TYPE_CHECKING, Any, NoReturn
from urllib.parse import unquote_plus

from joserfc import jws, jwt
from joserfc.errors import (
    BadSignatureError,
    ExpiredTokenError,
    InvalidClaimError,
    JoseError,
    MissingClaimError,
    UnsupportedAlgorithmError,
)

from .._client_auth import JWT_BEARER as ASSERTION_TYPE
from .._client_auth import short_rsa_key_reason
from ._clients import CERTIFICATE_METHODS, SECRET_METHODS, public_keys_of
from ._responses import Refused, invalid_client, oauth_error
from ._tls import certificate_sha256

if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Mapping

    import httpx
    from joserfc.jwk import Key, KeySet

    from ._clients import RegisteredClient

ASSERTION_ALGORITHMS = ("RS256", "PS256", "ES256")
"""What a client assertion may be signed with: Mosaic documents RS256."""
MAX_ASSERTION_LIFETIME = 300
"""The most seconds from a client assertion's iat to its exp: a few minutes, as careful servers
allow, so that an assertion copied on its way is soon worthless."""


class ClientAuthenticator:
    """Finds the registered client a token request authenticates as, or refuses the request.

    Remembers every client assertion it accepted, so that none is accepted twice. Safe to use
    from several threads.

    Args:
        find_client: The registered client with a client ID, or None.
        clock: The current time in seconds since the epoch, for the expiry of assertions.
    """

    def __init__(
        self,
        *,
        find_client: Callable[[str], RegisteredClient | None],
        clock: Callable[[], float],
    ) -> None:
        self._find_client = find_client
        self._clock = clock
        self._lock = threading.Lock()
        # Kept for the emulator's lifetime, not just until each assertion expires (all that
        # RFC 7523 §3 asks): a replay is refused however late it comes.
        self._used_assertions: set[tuple[str, str]] = set()

    def authenticate(
        self,
        form: Mapping[str, str],
        headers: httpx.Headers,
        *,
        token_endpoint_urls: Collection[str],
        client_certificate: bytes | None,
    ) -> RegisteredClient:
        """The client that `form` and `headers` authenticate; raises `Refused` otherwise.

        Args:
            form: The token request's form parameters.
            headers: Its headers, for HTTP Basic credentials.
            token_endpoint_urls: The URLs a client assertion may name as its audience.
            client_certificate: The certificate (DER) the client presented over TLS, if any.
        """
        basic = _basic_credentials(headers.get("authorization"))
        _check_one_method(form, basic=basic is not None)
        if "client_assertion" in form or "client_assertion_type" in form:
            return self._by_assertion(form, token_endpoint_urls)
        client_id, secret = _claimed_credentials(form, basic)
        client = self._find_client(client_id)
        if secret is not None:
            return _by_secret(client, secret, basic=basic is not None)
        if client is not None and client.authentication_method in CERTIFICATE_METHODS:
            return _by_certificate(client, client_certificate)
        raise Refused(invalid_client("no client authentication was provided"))

    def _by_assertion(
        self, form: Mapping[str, str], token_endpoint_urls: Collection[str]
    ) -> RegisteredClient:
        """The client whose private key signed the request's client assertion (RFC 7523 §3)."""
        if form.get("client_assertion_type") != ASSERTION_TYPE:
            _refuse(f"client_assertion_type must be {ASSERTION_TYPE}")
        assertion = form.get("client_assertion")
        if not assertion:
            _refuse("client_assertion is missing")
        header, unverified_claims = _read_unverified(assertion)
        issuer = unverified_claims.get("iss")
        if not isinstance(issuer, str) or not issuer:
            _refuse("the client assertion's iss claim must be the client_id")
        if form.get("client_id", issuer) != issuer:
            _refuse("client_id differs from the client assertion's iss")
        client = self._find_client(issuer)
        if client is None:
            _refuse("client authentication failed")
        _check_method(client, "private_key_jwt")
        key = _key_named(public_keys_of(client), header.get("kid"))
        # Registration refuses such a key; should one get this far, its signature proves nothing.
        too_short = short_rsa_key_reason(key)
        if too_short is not None:
            _refuse(f"the client's key is {too_short}")
        try:
            claims = jwt.decode(assertion, key, algorithms=ASSERTION_ALGORITHMS).claims
        except UnsupportedAlgorithmError:
            _refuse(f"the client assertion must be signed {', '.join(ASSERTION_ALGORITHMS)}")
        except BadSignatureError:
            _refuse("the client assertion's signature does not verify with the client's key")
        except (JoseError, ValueError):
            _refuse("the client assertion cannot be verified with the client's key")
        _check_claims(claims, client.client_id, token_endpoint_urls, now=self._clock())
        with self._lock:
            used = (client.client_id, claims["jti"])
            if used in self._used_assertions:
                _refuse("the client assertion was already used: each needs a new jti")
            self._used_assertions.add(used)
        return client


def _check_one_method(form: Mapping[str, str], *, basic: bool) -> None:
    """Refuse a request that authenticates more than one way, as RFC 6749 §2.3 asks."""
    presented = [
        name
        for name, present in (
            ("an Authorization header", basic),
            ("a client_secret", "client_secret" in form),
            ("a client assertion", "client_assertion" in form),
        )
        if present
    ]
    if len(presented) > 1:
        raise Refused(
            oauth_error(
                400,
                "invalid_request",
                "authenticate the client one way per request, not with " + " and ".join(presented),
            )
        )


def _claimed_credentials(
    form: Mapping[str, str], basic: tuple[str, str] | None
) -> tuple[str, str | None]:
    """The client ID a request claims and its secret, if any, from HTTP Basic or the form."""
    if basic is not None:
        client_id, secret = basic
        if form.get("client_id", client_id) != client_id:
            raise Refused(
                oauth_error(
                    400,
                    "invalid_request",
                    "client_id differs from the one in the Authorization header",
                )
            )
        return client_id, secret
    maybe_client_id = form.get("client_id")
    if maybe_client_id is None:
        raise Refused(oauth_error(400, "invalid_request", "client_id is missing"))
    return maybe_client_id, form.get("client_secret")


def _by_secret(client: RegisteredClient | None, secret: str, *, basic: bool) -> RegisteredClient:
    """`client` if `secret` is its client secret; raises `Refused` otherwise."""
    if client is not None:
        _check_method(client, "client_secret_basic" if basic else "client_secret_post", basic=basic)
    # Constant time, as a real server must compare; and what was sent is never echoed.
    if client is None or not hmac.compare_digest(secret.encode(), client.client_secret.encode()):
        raise Refused(invalid_client("client authentication failed", basic=basic))
    return client


def _by_certificate(client: RegisteredClient, certificate: bytes | None) -> RegisteredClient:
    """`client` if `certificate` is the one registered for it (RFC 8705 §2)."""
    if certificate is None:
        _refuse(
            f"the client authenticates with {client.authentication_method}: a TLS client "
            "certificate is needed, which only an emulator served with serve(tls=True) sees"
        )
    if not hmac.compare_digest(certificate_sha256(certificate), client.certificate_sha256 or ""):
        _refuse("the TLS client certificate is not the one registered for the client")
    return client


def _check_method(client: RegisteredClient, attempted: str, *, basic: bool = False) -> None:
    """Refuse a client that tries a method other than the one it is registered with."""
    allowed = (
        SECRET_METHODS
        if client.authentication_method in SECRET_METHODS
        else {client.authentication_method}
    )
    if attempted not in allowed:
        raise Refused(
            invalid_client(
                f"client authentication failed: the client authenticates with "
                f"{client.authentication_method}, not {attempted}",
                basic=basic,
            )
        )


def _read_unverified(assertion: str) -> tuple[Mapping[str, Any], Mapping[str, Any]]:
    """The header and claims of a compact JWS, before its signature is checked."""
    try:
        signature = jws.extract_compact(assertion.encode("ascii"))
        claims = json.loads(signature.payload)
    except (JoseError, ValueError):  # UnicodeError and JSONDecodeError included
        _refuse("client_assertion is not a JWT in compact serialization")
    if not isinstance(claims, dict):
        _refuse("the client assertion's payload is not a JSON object")
    return signature.headers(), claims


def _key_named(keys: KeySet, kid: object) -> Key:
    """The client's key that the assertion's ``kid`` names, or its only key if it names none."""
    if kid is None:
        if len(keys.keys) == 1:
            return keys.keys[0]
        _refuse("the client assertion's header needs a kid: the client has several keys")
    for key in keys:
        if key.kid == kid:
            return key
    _refuse("no key registered for the client has the kid in the client assertion's header")


def _check_claims(
    claims: Mapping[str, Any], client_id: str, audiences: Collection[str], *, now: float
) -> None:
    """Check the claims RFC 7523 §3 requires (iss and sub, aud, exp, jti), and iat, which must
    be at most `MAX_ASSERTION_LIFETIME` before exp."""
    registry = jwt.JWTClaimsRegistry(
        # joserfc counts whole seconds; floored as for the tokens the emulator checks.
        now=int(now),
        iss={"essential": True, "value": client_id},
        sub={"essential": True, "value": client_id},
        aud={"essential": True, "values": sorted(audiences)},
        exp={"essential": True},
        # RFC 7523 §3 leaves iat optional, but Mosaic lists it among an assertion's claims: a
        # client without it fails here, not against Mosaic. With iat (which joserfc refuses
        # after now), exp - iat bounds an assertion's life; Keycloak, lacking it, bounds
        # exp - now instead.
        iat={"essential": True},
        jti={"essential": True},
    )
    try:
        registry.validate(dict(claims))
    except ExpiredTokenError:
        _refuse("the client assertion has expired")
    except MissingClaimError as exc:
        _refuse(f"the client assertion lacks claims it needs: {exc.claim.replace(',', ', ')}")
    except InvalidClaimError as exc:
        expected = {
            "iss": "the client_id",
            "sub": "the client_id",
            "aud": f"the token endpoint URL, one of: {', '.join(sorted(audiences))}",
        }.get(exc.claim)
        _refuse(
            f"the client assertion's {exc.claim} must be {expected}"
            if expected
            else f"the client assertion's {exc.claim} is invalid: {exc.description}"
        )
    # RFC 7519 §4.1.4: refused *on or after* exp; joserfc before 1.8 accepts it at exp.
    if claims["exp"] <= int(now):
        _refuse("the client assertion has expired")
    lifetime = claims["exp"] - claims["iat"]
    if lifetime > MAX_ASSERTION_LIFETIME:
        _refuse(
            f"the client assertion is valid for {lifetime} seconds from iat to exp: at most "
            f"{MAX_ASSERTION_LIFETIME} are accepted"
        )


def _basic_credentials(authorization: str | None) -> tuple[str, str] | None:
    """The client ID and secret of an HTTP Basic header; None for no header or another scheme.

    RFC 6749 §2.3.1: both are form-urlencoded before being joined with a colon.
    """
    scheme, _, encoded = (authorization or "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        raise Refused(invalid_client("malformed Basic credentials", basic=True)) from None
    client_id, colon, secret = decoded.partition(":")
    if not colon:
        raise Refused(invalid_client("malformed Basic credentials", basic=True))
    return unquote_plus(client_id), unquote_plus(secret)


def _refuse(description: str) -> NoReturn:
    """Refuse the request with 401 invalid_client, saying why (never echoing credentials)."""
    raise Refused(invalid_client(description))
