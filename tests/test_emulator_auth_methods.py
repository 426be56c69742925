"""The emulator's client authentication: private_key_jwt, and which method each client may use.

Requests are built by hand here: client assertions signed with keys made for this module.
Mutual TLS, which needs a served emulator, is tested in ``test_emulator_tls.py``.
"""

from __future__ import annotations

import itertools
import warnings
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from joserfc import jwt
from joserfc.errors import SecurityWarning
from joserfc.jwk import ECKey, KeySet, OctKey, RSAKey

from mosaic_httpx_auth import ConfigurationError
from mosaic_httpx_auth._client_auth import JWT_BEARER
from mosaic_httpx_auth.testing import RegisteredClient
from mosaic_httpx_auth.testing._client_auth import MAX_ASSERTION_LIFETIME, ClientAuthenticator
from mosaic_httpx_auth.testing._responses import Refused

from .helpers import RISK, START, FakeClock
from .test_emulator import (
    HOST,
    SIGNING_KEY,
    TOKEN_URL,
    credentials,
    request_token,
    send,
    verified_claims,
)

if TYPE_CHECKING:
    from collections.abc import Collection

    from mosaic_httpx_auth.testing import MosaicEmulator

ASSERTION_TYPE = JWT_BEARER
# Made once: an RSA key takes tens of milliseconds. SIGNING_KEY plays a stranger's key.
RSA_KID = "client-rsa"
RSA_KEY = RSAKey.generate_key(2048, parameters={"kid": RSA_KID})
EC_KEY = ECKey.generate_key("P-256", parameters={"kid": "client-ec"})
_serial = itertools.count(1)


def _weak_rsa_key() -> RSAKey:
    """An RSA key of 1024 bits: joserfc makes one with a mere warning, an error in these tests."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SecurityWarning)
        return RSAKey.generate_key(1024, parameters={"kid": "client-rsa-1024"})


WEAK_RSA_KEY = _weak_rsa_key()


@pytest.fixture
def jwt_client(emulator: MosaicEmulator) -> RegisteredClient:
    """A private_key_jwt client with an RSA and an EC key."""
    keys = {"keys": [RSA_KEY.as_dict(private=False), EC_KEY.as_dict(private=False)]}
    return emulator.register_client(jwks=keys, resources=[RISK])


def make_assertion(
    client_id: str,
    key: RSAKey | ECKey | OctKey = RSA_KEY,
    *,
    algorithm: str = "RS256",
    kid: str | None = None,
    omit: Collection[str] = (),
    **claims: Any,
) -> str:
    """A client assertion for `client_id` valid for 60 s from START, signed with `key`.

    `claims` override the defaults, and the claims named in `omit` are left out. The header
    names `kid`, or else the key's own kid.
    """
    defaults = {
        "iss": client_id,
        "sub": client_id,
        "aud": TOKEN_URL,
        "iat": int(START),
        "exp": int(START) + 60,
        "jti": f"assertion-{next(_serial)}",
    }
    payload = {name: value for name, value in {**defaults, **claims}.items() if name not in omit}
    header = {"alg": algorithm, "kid": kid or key.kid}
    return jwt.encode(header, payload, key, algorithms=[algorithm])


def assertion_form(assertion: str, **parameters: str) -> dict[str, str]:
    """A client_credentials token request form authenticated by `assertion`."""
    return {
        "grant_type": "client_credentials",
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": assertion,
        **parameters,
    }


def credentials_without_secret(client: RegisteredClient) -> dict[str, str]:
    """A token request form with only the client_id: no secret, no assertion."""
    return {"grant_type": "client_credentials", "client_id": client.client_id}


def assert_invalid_client(response: httpx.Response, *, saying: str) -> None:
    """`response` is 401 invalid_client with a description containing `saying`."""
    assert response.status_code == 401, response.text
    body = response.json()
    assert body["error"] == "invalid_client"
    assert saying in body["error_description"]


# private_key_jwt: accepted


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("key", "algorithm"),
    [(RSA_KEY, "RS256"), (RSA_KEY, "PS256"), (EC_KEY, "ES256")],
    ids=["RS256", "PS256", "ES256"],
)
async def test_private_key_jwt_issues_a_token_for_the_asserting_client(
    emulator: MosaicEmulator, jwt_client: RegisteredClient, key: RSAKey | ECKey, algorithm: str
) -> None:
    """An assertion signed RS256, PS256 or ES256 with a registered key gets the client a token."""
    assertion = make_assertion(jwt_client.client_id, key, algorithm=algorithm)
    response = await request_token(emulator, assertion_form(assertion, resource=RISK))
    assert response.status_code == 200, response.text
    claims = verified_claims(emulator, response.json()["access_token"])
    assert claims["sub"] == claims["client_id"] == jwt_client.client_id
    assert claims["aud"] == RISK


@pytest.mark.anyio
async def test_private_key_jwt_accepts_a_matching_client_id_parameter(
    emulator: MosaicEmulator, jwt_client: RegisteredClient
) -> None:
    """client_id may accompany an assertion when it names the asserting client."""
    form = assertion_form(make_assertion(jwt_client.client_id), client_id=jwt_client.client_id)
    assert (await request_token(emulator, form)).status_code == 200


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("path", "audience"),
    [
        ("/oidc/token", f"{HOST}/cis/oidc/token"),
        ("/cis/oidc/token", f"{HOST}/oidc/token"),
        ("/oidc/token", ["https://elsewhere.example", f"{HOST}/oidc/token"]),
    ],
    ids=["alias-audience", "sent-to-alias", "audience-list"],
)
async def test_private_key_jwt_accepts_either_token_endpoint_url_as_audience(
    emulator: MosaicEmulator, jwt_client: RegisteredClient, path: str, audience: str | list[str]
) -> None:
    """The aud may name the token endpoint by its /cis/ alias too, or list it among others."""
    form = assertion_form(make_assertion(jwt_client.client_id, aud=audience))
    response = await send(emulator, "POST", f"{HOST}{path}", data=form)
    assert response.status_code == 200, response.text


@pytest.mark.anyio
async def test_private_key_jwt_uses_the_only_key_when_the_header_names_none(
    emulator: MosaicEmulator,
) -> None:
    """An assertion without a kid is verified with the client's key when it has just one."""
    client = emulator.register_client(jwks=EC_KEY)
    payload = {
        "iss": client.client_id,
        "sub": client.client_id,
        "aud": TOKEN_URL,
        "iat": int(START),
        "exp": int(START) + 60,
        "jti": "no-kid",
    }
    assertion = jwt.encode({"alg": "ES256"}, payload, EC_KEY, algorithms=["ES256"])
    assert (await request_token(emulator, assertion_form(assertion))).status_code == 200


@pytest.mark.anyio
async def test_private_key_jwt_is_refused_once_the_clock_passes_exp(
    emulator: MosaicEmulator, jwt_client: RegisteredClient, clock: FakeClock
) -> None:
    """An assertion is accepted until just before its exp on the emulator's clock, then refused."""
    clock.advance(59)
    early = await request_token(emulator, assertion_form(make_assertion(jwt_client.client_id)))
    assert early.status_code == 200
    clock.advance(1)
    late = await request_token(emulator, assertion_form(make_assertion(jwt_client.client_id)))
    assert_invalid_client(late, saying="expired")


@pytest.mark.anyio
async def test_private_key_jwt_accepts_an_assertion_valid_for_the_longest_lifetime(
    emulator: MosaicEmulator, jwt_client: RegisteredClient
) -> None:
    """An assertion valid for MAX_ASSERTION_LIFETIME (5 minutes) from its iat is accepted."""
    assert MAX_ASSERTION_LIFETIME == 300
    assertion = make_assertion(jwt_client.client_id, exp=int(START) + MAX_ASSERTION_LIFETIME)
    assert (await request_token(emulator, assertion_form(assertion))).status_code == 200


# private_key_jwt: refused


@pytest.mark.anyio
async def test_private_key_jwt_refuses_a_signature_by_another_key(
    emulator: MosaicEmulator, jwt_client: RegisteredClient
) -> None:
    """An assertion naming a registered kid but signed with another key is refused."""
    assertion = make_assertion(jwt_client.client_id, SIGNING_KEY, kid=RSA_KID)
    response = await request_token(emulator, assertion_form(assertion))
    assert_invalid_client(response, saying="signature")
    assert assertion not in response.text


@pytest.mark.anyio
async def test_private_key_jwt_refuses_a_kid_the_client_does_not_have(
    emulator: MosaicEmulator, jwt_client: RegisteredClient
) -> None:
    """An assertion naming a kid that no key of the client has is refused."""
    assertion = make_assertion(jwt_client.client_id, SIGNING_KEY)
    assert_invalid_client(await request_token(emulator, assertion_form(assertion)), saying="no key")


@pytest.mark.anyio
async def test_private_key_jwt_refuses_a_symmetric_signature(
    emulator: MosaicEmulator, jwt_client: RegisteredClient
) -> None:
    """An HS256 assertion is refused: only RS256, PS256 and ES256 are accepted."""
    secret_key = OctKey.import_key(b"s" * 32, parameters={"kid": RSA_KID})
    assertion = make_assertion(jwt_client.client_id, secret_key, algorithm="HS256")
    assert_invalid_client(
        await request_token(emulator, assertion_form(assertion)), saying="RS256, PS256, ES256"
    )


@pytest.mark.anyio
@pytest.mark.parametrize(
    "audience",
    [
        f"{HOST}/oidc/other",
        "https://api.transmitsecurity.io.attacker.example/oidc/token",
        "http://api.transmitsecurity.io/oidc/token",
        "userid-api",
    ],
    ids=["other-path", "other-host", "other-scheme", "api-audience"],
)
async def test_private_key_jwt_refuses_an_audience_other_than_the_token_endpoint(
    emulator: MosaicEmulator, jwt_client: RegisteredClient, audience: str
) -> None:
    """An assertion whose aud is not one of the emulator's token endpoint URLs is refused."""
    assertion = make_assertion(jwt_client.client_id, aud=audience)
    assert_invalid_client(
        await request_token(emulator, assertion_form(assertion)),
        saying="aud must be the token endpoint URL",
    )


@pytest.mark.anyio
@pytest.mark.parametrize(
    "host", ["https://attacker.example", "http://127.0.0.1:8765", "http://testserver"]
)
async def test_private_key_jwt_refuses_an_audience_naming_the_host_the_request_was_sent_to(
    emulator: MosaicEmulator, jwt_client: RegisteredClient, host: str
) -> None:
    """An assertion made out to whatever host the request names (the sender's to choose) is
    refused: the emulator is not served there, and that host is none of Mosaic's."""
    url = f"{host}/oidc/token"
    form = assertion_form(make_assertion(jwt_client.client_id, aud=url))
    response = await send(emulator, "POST", url, data=form)
    assert_invalid_client(response, saying="aud must be the token endpoint URL")


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("lifetime", "omit", "saying"),
    [
        (365 * 24 * 3600, ["iat"], "lacks claims it needs: iat"),
        (365 * 24 * 3600, [], "valid for 31536000 seconds from iat to exp: at most 300"),
        (MAX_ASSERTION_LIFETIME + 1, [], "valid for 301 seconds from iat to exp: at most 300"),
    ],
    ids=["a-year-without-iat", "a-year", "a-second-too-long"],
)
async def test_private_key_jwt_refuses_an_assertion_valid_for_more_than_five_minutes(
    emulator: MosaicEmulator,
    jwt_client: RegisteredClient,
    lifetime: int,
    omit: list[str],
    saying: str,
) -> None:
    """An assertion must say when it was issued, and expire at most 5 minutes later: one that
    lasts longer is as good as a password to whoever copies it."""
    assertion = make_assertion(jwt_client.client_id, exp=int(START) + lifetime, omit=omit)
    response = await request_token(emulator, assertion_form(assertion))
    assert_invalid_client(response, saying=saying)


@pytest.mark.anyio
async def test_private_key_jwt_refuses_an_assertion_issued_in_the_future(
    emulator: MosaicEmulator, jwt_client: RegisteredClient
) -> None:
    """An iat after the emulator's now is refused: else a short exp - iat could hide a long life."""
    issued = int(START) + 3600
    assertion = make_assertion(jwt_client.client_id, iat=issued, exp=issued + 60)
    response = await request_token(emulator, assertion_form(assertion))
    assert_invalid_client(response, saying="iat is invalid")


def test_private_key_jwt_refuses_an_assertion_signed_by_an_rsa_key_under_2048_bits(
    clock: FakeClock,
) -> None:
    """Should a client's key of 1024 bits get past registration, its assertions are refused
    anyway: a signature by a key that short proves nothing."""
    weak_client = RegisteredClient(
        client_id="weak",
        resources=frozenset(),
        app_id="app",
        authentication_method="private_key_jwt",
        _public_keys=KeySet([WEAK_RSA_KEY]),
    )
    authenticator = ClientAuthenticator(find_client={"weak": weak_client}.get, clock=clock)
    form = assertion_form(make_assertion("weak", WEAK_RSA_KEY))
    with pytest.raises(Refused) as refused:
        authenticator.authenticate(
            form, httpx.Headers(), token_endpoint_urls=[TOKEN_URL], client_certificate=None
        )
    assert_invalid_client(refused.value.response, saying="RSA key of 1024 bits")


@pytest.mark.anyio
@pytest.mark.parametrize("claim", ["jti", "exp", "iat", "aud", "sub"])
async def test_private_key_jwt_refuses_an_assertion_without_a_required_claim(
    emulator: MosaicEmulator, jwt_client: RegisteredClient, claim: str
) -> None:
    """An assertion lacking jti, exp, iat, aud or sub is refused, naming the claim."""
    assertion = make_assertion(jwt_client.client_id, omit=[claim])
    response = await request_token(emulator, assertion_form(assertion))
    assert_invalid_client(response, saying=f"lacks claims it needs: {claim}")


@pytest.mark.anyio
async def test_private_key_jwt_refuses_a_replayed_jti(
    emulator: MosaicEmulator, jwt_client: RegisteredClient
) -> None:
    """An assertion is accepted once: sent again, or re-signed with the same jti, it is refused."""
    assertion = make_assertion(jwt_client.client_id, jti="once")
    assert (await request_token(emulator, assertion_form(assertion))).status_code == 200
    again = await request_token(emulator, assertion_form(assertion))
    assert_invalid_client(again, saying="already used")
    resigned = make_assertion(jwt_client.client_id, EC_KEY, algorithm="ES256", jti="once")
    assert_invalid_client(
        await request_token(emulator, assertion_form(resigned)), saying="already used"
    )


@pytest.mark.anyio
async def test_private_key_jwt_refuses_a_sub_other_than_the_issuer(
    emulator: MosaicEmulator, jwt_client: RegisteredClient
) -> None:
    """An assertion whose sub differs from its iss is refused."""
    other = emulator.register_client(jwks=RSA_KEY)
    assertion = make_assertion(jwt_client.client_id, sub=other.client_id)
    assert_invalid_client(
        await request_token(emulator, assertion_form(assertion)), saying="sub must be"
    )


@pytest.mark.anyio
async def test_private_key_jwt_refuses_an_issuer_that_is_not_the_signer(
    emulator: MosaicEmulator, jwt_client: RegisteredClient
) -> None:
    """An assertion claiming to be another client is refused: that client's key must sign it."""
    other = emulator.register_client(jwks=SIGNING_KEY)
    assertion = make_assertion(other.client_id, RSA_KEY, kid=SIGNING_KEY.kid)
    assert_invalid_client(
        await request_token(emulator, assertion_form(assertion)), saying="signature"
    )


@pytest.mark.anyio
async def test_private_key_jwt_refuses_an_unknown_issuer(emulator: MosaicEmulator) -> None:
    """An assertion from a client_id nobody registered is refused."""
    assertion = make_assertion("nobody")
    assert_invalid_client(await request_token(emulator, assertion_form(assertion)), saying="failed")


@pytest.mark.anyio
async def test_private_key_jwt_refuses_a_client_id_other_than_the_issuer(
    emulator: MosaicEmulator, jwt_client: RegisteredClient
) -> None:
    """A client_id parameter that differs from the assertion's iss is refused."""
    form = assertion_form(make_assertion(jwt_client.client_id), client_id="someone-else")
    assert_invalid_client(await request_token(emulator, form), saying="client_id differs")


@pytest.mark.anyio
@pytest.mark.parametrize(
    "assertion_type",
    ["urn:ietf:params:oauth:client-assertion-type:saml2-bearer", ""],
    ids=["saml", "empty"],
)
async def test_private_key_jwt_refuses_another_assertion_type(
    emulator: MosaicEmulator, jwt_client: RegisteredClient, assertion_type: str
) -> None:
    """A client_assertion_type other than jwt-bearer is refused."""
    form = assertion_form(make_assertion(jwt_client.client_id))
    form["client_assertion_type"] = assertion_type
    assert_invalid_client(await request_token(emulator, form), saying="client_assertion_type")


@pytest.mark.anyio
@pytest.mark.parametrize("assertion", ["", "not-a-jwt", "a.b.c"], ids=["empty", "text", "dots"])
async def test_private_key_jwt_refuses_an_assertion_that_is_no_jwt(
    emulator: MosaicEmulator, assertion: str
) -> None:
    """A missing or unreadable client_assertion is refused as invalid_client."""
    response = await request_token(emulator, assertion_form(assertion))
    assert_invalid_client(response, saying="client_assertion")


@pytest.mark.anyio
async def test_assertion_and_secret_in_one_request_are_invalid_request(
    emulator: MosaicEmulator, jwt_client: RegisteredClient
) -> None:
    """A request carrying a client assertion and a client secret is answered 400."""
    form = assertion_form(make_assertion(jwt_client.client_id), client_secret="x")
    response = await request_token(emulator, form)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


# One method per client


@pytest.mark.anyio
async def test_secret_client_cannot_authenticate_with_an_assertion(
    emulator: MosaicEmulator,
) -> None:
    """A client registered with a secret is refused when it sends a (well-signed) assertion."""
    client = emulator.register_client()
    assertion = make_assertion(client.client_id)
    assert_invalid_client(
        await request_token(emulator, assertion_form(assertion)),
        saying="authenticates with client_secret_post, not private_key_jwt",
    )


@pytest.mark.anyio
@pytest.mark.parametrize("basic", [False, True], ids=["post", "basic"])
async def test_assertion_client_cannot_authenticate_with_a_secret(
    emulator: MosaicEmulator, jwt_client: RegisteredClient, basic: bool
) -> None:
    """A private_key_jwt client is refused when it sends a secret, in the form or with Basic."""
    if basic:
        form = {"grant_type": "client_credentials"}
        response = await request_token(emulator, form, auth=(jwt_client.client_id, "guess"))
    else:
        form = {**credentials_without_secret(jwt_client), "client_secret": "guess"}
        response = await request_token(emulator, form)
    assert_invalid_client(response, saying="authenticates with private_key_jwt")
    with pytest.raises(ConfigurationError, match="no client secret"):
        _ = jwt_client.client_secret


@pytest.mark.anyio
async def test_assertion_client_without_credentials_is_refused(
    emulator: MosaicEmulator, jwt_client: RegisteredClient
) -> None:
    """A private_key_jwt client sending only its client_id is refused."""
    response = await request_token(emulator, credentials_without_secret(jwt_client))
    assert_invalid_client(response, saying="no client authentication")


@pytest.mark.anyio
async def test_secret_client_registered_for_basic_may_still_post_its_secret(
    emulator: MosaicEmulator,
) -> None:
    """A client registered for client_secret_basic may send its secret in the form too."""
    client = emulator.register_client(authentication_method="client_secret_basic")
    assert (await request_token(emulator, credentials(client))).status_code == 200


# Registering clients


def test_register_client_infers_the_method_from_the_credentials(
    emulator: MosaicEmulator,
) -> None:
    """jwks makes a private_key_jwt client, a certificate a tls_client_auth one, else a secret."""
    assert emulator.register_client().authentication_method == "client_secret_post"
    assert emulator.register_client(jwks=RSA_KEY).authentication_method == "private_key_jwt"
    by_certificate = emulator.register_client(certificate_sha256="ab" * 32)
    assert by_certificate.authentication_method == "tls_client_auth"


@pytest.mark.parametrize(
    "jwks",
    [
        RSA_KEY,
        RSA_KEY.as_dict(private=True),
        {"keys": [RSA_KEY.as_dict(private=False)]},
        KeySet([RSA_KEY]),
    ],
    ids=["joserfc-private-key", "private-jwk", "jwk-set", "key-set"],
)
def test_register_client_keeps_only_the_public_keys(emulator: MosaicEmulator, jwks: Any) -> None:
    """Keys given as a joserfc key, a JWK or a JWK Set are kept as a public JWK Set."""
    client = emulator.register_client(jwks=jwks)
    assert client.jwks is not None
    (key,) = client.jwks["keys"]
    assert key["n"] == RSA_KEY.as_dict(private=False)["n"]
    assert key["kid"] == "client-rsa"
    assert "d" not in key


@pytest.mark.parametrize(
    "jwks",
    [
        WEAK_RSA_KEY,
        WEAK_RSA_KEY.as_dict(private=False),
        {"keys": [RSA_KEY.as_dict(private=False), WEAK_RSA_KEY.as_dict(private=False)]},
    ],
    ids=["joserfc-key", "jwk", "one-key-of-a-set"],
)
def test_register_client_refuses_an_rsa_key_under_2048_bits(
    emulator: MosaicEmulator, jwks: Any
) -> None:
    """A client's RSA key of 1024 bits is refused as it is registered, however it is given: a
    key that short can be factored, and its assertions forged (RFC 7518 §3.3)."""
    with pytest.raises(
        ConfigurationError, match="RSA key of 1024 bits: RS256 and PS256 need at least"
    ):
        emulator.register_client(jwks=jwks)


def test_register_client_leaves_the_callers_key_alone(emulator: MosaicEmulator) -> None:
    """A key without a kid is registered under its thumbprint, and the caller's key keeps none."""
    without_kid = {name: value for name, value in EC_KEY.as_dict().items() if name != "kid"}
    key = ECKey.import_key(without_kid)
    assert key.kid is None
    client = emulator.register_client(jwks=key)
    assert client.jwks is not None
    assert client.jwks["keys"][0]["kid"] == key.thumbprint()
    assert key.kid is None


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"jwks": OctKey.import_key(b"k" * 32)}, "RSA or P-256 EC"),
        ({"jwks": ECKey.generate_key("P-384")}, "RSA or P-256 EC"),
        ({"jwks": {"keys": []}}, "at least one key"),
        ({"jwks": {"kty": "RSA"}}, "cannot import"),
        ({"jwks": RSA_KEY, "client_secret": "s"}, "client_secret does not go with"),
        ({"authentication_method": "private_key_jwt"}, "pass jwks"),
        ({"authentication_method": "tls_client_auth"}, "pass certificate"),
        ({"authentication_method": "client_secret_jwt"}, "must be one of"),
        ({"certificate_sha256": "ab" * 32, "certificate": b"x"}, "not both"),
        ({"certificate_sha256": "abc"}, "64 hex digits"),
        ({"certificate": "not a certificate"}, "PEM or DER"),
        ({"jwks": RSA_KEY, "authentication_method": "tls_client_auth"}, "jwks does not go"),
    ],
)
def test_register_client_refuses_credentials_that_do_not_fit(
    emulator: MosaicEmulator, options: dict[str, Any], message: str
) -> None:
    """Missing, unusable or mismatched credentials for a method are refused at registration."""
    with pytest.raises(ConfigurationError, match=message):
        emulator.register_client(**options)


def test_register_client_normalises_a_certificate_fingerprint(
    emulator: MosaicEmulator,
) -> None:
    """A fingerprint in upper case with colons is kept as lowercase hex."""
    client = emulator.register_client(certificate_sha256=":".join(["AB"] * 32))
    assert client.certificate_sha256 == "ab" * 32


@pytest.mark.anyio
async def test_discovery_lists_every_client_authentication_method(
    emulator: MosaicEmulator,
) -> None:
    """The OpenID configuration names all five methods and the assertion algorithms."""
    response = await send(emulator, "GET", f"{HOST}/cis/oidc/.well-known/openid-configuration")
    document = response.json()
    assert set(document["token_endpoint_auth_methods_supported"]) == {
        "client_secret_post",
        "client_secret_basic",
        "private_key_jwt",
        "tls_client_auth",
        "self_signed_tls_client_auth",
    }
    assert document["token_endpoint_auth_signing_alg_values_supported"] == [
        "RS256",
        "PS256",
        "ES256",
    ]
