"""The Mosaic emulator through its in-process transport: tokens, errors, API checks, faults."""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import quote_plus

import anyio
import httpx
import pytest
from joserfc import jwt
from joserfc.errors import BadSignatureError
from joserfc.jwk import KeySet, RSAKey

from mosaic_httpx_auth import ConfigurationError
from mosaic_httpx_auth.testing import MosaicEmulator, RegisteredClient

from .helpers import RISK, START, VERIFY, FakeClock

HOST = "https://api.transmitsecurity.io"
TOKEN_URL = f"{HOST}/oidc/token"
REVOKE_URL = f"{HOST}/emulator/revoke"
# Generating an RSA key takes tens of milliseconds: the tests' emulators share this one.
SIGNING_KEY = RSAKey.generate_key(2048, parameters={"kid": "test-key"})


@pytest.fixture
def client(emulator: MosaicEmulator) -> RegisteredClient:
    return emulator.register_client(resources=[RISK, VERIFY])


def credentials(client: RegisteredClient, resource: str | None = None) -> dict[str, str]:
    """A client_secret_post token request form for `client`."""
    form = {
        "grant_type": "client_credentials",
        "client_id": client.client_id,
        "client_secret": client.client_secret,
    }
    if resource is not None:
        form["resource"] = resource
    return form


async def send(emulator: MosaicEmulator, method: str, url: str, **options: Any) -> httpx.Response:
    async with httpx.AsyncClient(transport=emulator.transport()) as http:
        return await http.request(method, url, **options)


async def request_token(
    emulator: MosaicEmulator, form: dict[str, str], **options: Any
) -> httpx.Response:
    return await send(emulator, "POST", TOKEN_URL, data=form, **options)


async def fetch_token(
    emulator: MosaicEmulator, client: RegisteredClient, resource: str | None = None
) -> str:
    response = await request_token(emulator, credentials(client, resource))
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


async def call_api(emulator: MosaicEmulator, path: str, token: str | None) -> httpx.Response:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    return await send(emulator, "GET", f"{HOST}{path}", headers=headers)


def verified_claims(emulator: MosaicEmulator, token: str) -> dict[str, Any]:
    """The token's claims, verified against the emulator's published JWKS."""
    keys = KeySet.import_key_set(emulator.jwks)  # type: ignore[arg-type]
    return jwt.decode(token, keys, algorithms=["RS256"]).claims


# Registering clients


def test_register_client_makes_random_unique_credentials(emulator: MosaicEmulator) -> None:
    """Clients registered without credentials get random, distinct, non-empty ones."""
    first, second = emulator.register_client(), emulator.register_client()
    assert first.client_id
    assert first.client_secret
    assert first.client_id != second.client_id
    assert first.client_secret != second.client_secret
    assert first.app_id != second.app_id


def test_register_client_keeps_given_credentials(emulator: MosaicEmulator) -> None:
    """Given credentials, resources and app_id are registered as given."""
    client = emulator.register_client(
        client_id="my-id", client_secret="my-secret", resources=[RISK], app_id="app-1"
    )
    assert client.client_id == "my-id"
    assert client.client_secret == "my-secret"
    assert client.resources == frozenset({RISK})
    assert client.app_id == "app-1"
    assert client.authentication_method == "client_secret_post"


def test_register_client_refuses_a_registered_client_id(emulator: MosaicEmulator) -> None:
    """A client_id can be registered only once."""
    emulator.register_client(client_id="twice")
    with pytest.raises(ConfigurationError, match="registered already"):
        emulator.register_client(client_id="twice")


def test_register_client_refuses_resources_given_as_one_string(emulator: MosaicEmulator) -> None:
    """A single string for `resources` is refused rather than read as a set of characters."""
    with pytest.raises(ConfigurationError, match="not one string"):
        emulator.register_client(resources=RISK)


def test_registered_client_repr_hides_the_secret(emulator: MosaicEmulator) -> None:
    """A registered client's repr shows its ID but never its secret."""
    client = emulator.register_client(client_secret="hidden-secret")
    assert client.client_id in repr(client)
    assert "hidden-secret" not in repr(client)


@pytest.mark.parametrize("lifetime", [0, -1.0, float("inf"), float("nan")])
def test_emulator_refuses_a_token_lifetime_that_is_not_positive(lifetime: float) -> None:
    """Token lifetimes must be positive, finite numbers of seconds."""
    with pytest.raises(ConfigurationError, match="positive"):
        MosaicEmulator(token_lifetime=lifetime)


# Issuing tokens


@pytest.mark.anyio
async def test_token_response_has_mosaics_shape(
    emulator: MosaicEmulator, client: RegisteredClient
) -> None:
    """A token request with good credentials gets a Bearer token, its lifetime and a scope."""
    response = await request_token(emulator, credentials(client, RISK))
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "scope"}
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert body["scope"] == ""
    assert response.headers["Cache-Control"] == "no-store"


@pytest.mark.anyio
async def test_token_is_an_rs256_jwt_signed_by_the_published_key(
    emulator: MosaicEmulator, client: RegisteredClient
) -> None:
    """The token verifies against the JWKS and carries Mosaic's claims for its client."""
    token = await fetch_token(emulator, client, RISK)
    keys = KeySet.import_key_set(emulator.jwks)  # type: ignore[arg-type]
    decoded = jwt.decode(token, keys, algorithms=["RS256"])
    assert decoded.header["alg"] == "RS256"
    assert decoded.header["kid"] == emulator.jwks["keys"][0]["kid"]
    claims = decoded.claims
    assert claims["sub"] == claims["client_id"] == client.client_id
    assert claims["iss"] == "https://userid.security"
    assert claims["aud"] == RISK
    assert claims["iat"] == int(START)
    assert claims["exp"] == int(START) + 3600
    assert claims["app_id"] == client.app_id
    assert claims["tid"] == emulator.tenant_id
    assert claims["jti"]


@pytest.mark.anyio
async def test_token_from_another_key_does_not_verify(
    emulator: MosaicEmulator, client: RegisteredClient
) -> None:
    """Verifying against the JWKS really checks the signature: another emulator's key fails."""
    token = await fetch_token(emulator, client)
    other_key = RSAKey.import_key(MosaicEmulator().jwks["keys"][0])
    with pytest.raises(BadSignatureError):
        jwt.decode(token, other_key, algorithms=["RS256"])


@pytest.mark.anyio
async def test_token_without_resource_is_for_identity_management(
    emulator: MosaicEmulator, client: RegisteredClient
) -> None:
    """A token requested without a resource has the audience userid-api."""
    token = await fetch_token(emulator, client)
    assert verified_claims(emulator, token)["aud"] == "userid-api"


@pytest.mark.anyio
async def test_every_token_has_its_own_jti(
    emulator: MosaicEmulator, client: RegisteredClient
) -> None:
    """Two tokens for the same client and resource differ in their jti."""
    first = verified_claims(emulator, await fetch_token(emulator, client, RISK))
    second = verified_claims(emulator, await fetch_token(emulator, client, RISK))
    assert first["jti"] != second["jti"]


@pytest.mark.anyio
async def test_cis_alias_of_the_token_endpoint_issues_tokens(
    emulator: MosaicEmulator, client: RegisteredClient
) -> None:
    """``/cis/oidc/token`` answers like ``/oidc/token``."""
    response = await send(emulator, "POST", f"{HOST}/cis/oidc/token", data=credentials(client))
    assert response.status_code == 200
    assert verified_claims(emulator, response.json()["access_token"])["aud"] == "userid-api"


@pytest.mark.anyio
async def test_token_lifetime_is_configurable_per_resource(clock: FakeClock) -> None:
    """A resource with its own lifetime gets it; other resources get the default one."""
    emulator = MosaicEmulator(
        token_lifetime=900,
        resource_token_lifetimes={RISK: 300.5},
        clock=clock,
        signing_key=SIGNING_KEY,
    )
    client = emulator.register_client(resources=[RISK])
    risk = await request_token(emulator, credentials(client, RISK))
    default = await request_token(emulator, credentials(client))
    assert risk.json()["expires_in"] == 300.5
    assert verified_claims(emulator, risk.json()["access_token"])["exp"] == int(START + 300.5)
    assert default.json()["expires_in"] == 900


@pytest.mark.anyio
async def test_client_secret_basic_is_accepted(emulator: MosaicEmulator) -> None:
    """HTTP Basic credentials, form-urlencoded per RFC 6749 §2.3.1, authenticate the client."""
    client = emulator.register_client(client_id="id:with colon", client_secret="s3cret/+: ü")
    userpass = f"{quote_plus(client.client_id)}:{quote_plus(client.client_secret)}"
    basic = base64.b64encode(userpass.encode()).decode()
    response = await request_token(
        emulator,
        {"grant_type": "client_credentials"},
        headers={"Authorization": f"Basic {basic}"},
    )
    assert response.status_code == 200, response.text
    assert verified_claims(emulator, response.json()["access_token"])["sub"] == client.client_id


# Refusing token requests


@pytest.mark.anyio
@pytest.mark.parametrize("which", ["client_id", "client_secret"])
async def test_wrong_credentials_are_invalid_client(
    emulator: MosaicEmulator, client: RegisteredClient, which: str
) -> None:
    """An unknown client_id or a wrong secret is answered 401 invalid_client, no secret echoed."""
    form = {**credentials(client), which: "wrong-value-xyz"}
    response = await request_token(emulator, form)
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert response.json()["error_description"]
    assert "wrong-value-xyz" not in response.text
    assert client.client_secret not in response.text


@pytest.mark.anyio
async def test_missing_secret_is_invalid_client(
    emulator: MosaicEmulator, client: RegisteredClient
) -> None:
    """A request with a client_id but no authentication is answered 401 invalid_client."""
    form = credentials(client)
    del form["client_secret"]
    response = await request_token(emulator, form)
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


@pytest.mark.anyio
async def test_malformed_basic_credentials_are_invalid_client_with_a_challenge(
    emulator: MosaicEmulator,
) -> None:
    """An unreadable Basic header is answered 401 invalid_client with a Basic challenge."""
    response = await request_token(
        emulator, {"grant_type": "client_credentials"}, headers={"Authorization": "Basic !!!"}
    )
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert response.headers["WWW-Authenticate"].startswith("Basic")


@pytest.mark.anyio
async def test_two_authentication_methods_are_invalid_request(
    emulator: MosaicEmulator, client: RegisteredClient
) -> None:
    """A secret in both the Basic header and the form is answered 400 invalid_request."""
    response = await request_token(
        emulator, credentials(client), auth=(client.client_id, client.client_secret)
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


@pytest.mark.anyio
async def test_resource_not_configured_for_the_client_is_refused_in_mosaics_shape(
    emulator: MosaicEmulator,
) -> None:
    """A resource the client may not request is answered 400 with message and error_code."""
    client = emulator.register_client(resources=[VERIFY])
    response = await request_token(emulator, credentials(client, RISK))
    assert response.status_code == 400
    body = response.json()
    assert body["error_code"] == 400
    assert RISK in body["message"]


@pytest.mark.anyio
async def test_other_grant_types_are_unsupported(
    emulator: MosaicEmulator, client: RegisteredClient
) -> None:
    """A grant_type other than client_credentials is answered 400 unsupported_grant_type."""
    form = {**credentials(client), "grant_type": "password"}
    response = await request_token(emulator, form)
    assert response.status_code == 400
    assert response.json()["error"] == "unsupported_grant_type"


@pytest.mark.anyio
@pytest.mark.parametrize("missing", ["grant_type", "client_id"])
async def test_missing_parameters_are_invalid_request(
    emulator: MosaicEmulator, client: RegisteredClient, missing: str
) -> None:
    """A token request without grant_type or client_id is answered 400 invalid_request."""
    form = credentials(client)
    del form[missing]
    response = await request_token(emulator, form)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert client.client_secret not in response.text


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b'{"grant_type": "client_credentials"}', "application/json"),
        (b"grant_type=client_credentials&grant_type=client_credentials", None),
        (b"grant_type", None),
    ],
    ids=["json", "repeated-parameter", "malformed"],
)
async def test_a_body_that_is_not_a_clean_form_is_invalid_request(
    emulator: MosaicEmulator, content: bytes, content_type: str | None
) -> None:
    """A JSON body, a repeated parameter or a malformed form is answered 400 invalid_request."""
    headers = {"Content-Type": content_type or "application/x-www-form-urlencoded"}
    response = await send(emulator, "POST", TOKEN_URL, content=content, headers=headers)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


@pytest.mark.anyio
async def test_token_endpoint_allows_only_post(emulator: MosaicEmulator) -> None:
    """GET on the token endpoint is answered 405, naming POST as allowed."""
    response = await send(emulator, "GET", TOKEN_URL)
    assert response.status_code == 405
    assert response.headers["Allow"] == "POST"


# Keys and discovery


@pytest.mark.anyio
async def test_jwks_endpoint_publishes_only_the_public_key(emulator: MosaicEmulator) -> None:
    """``/cis/oidc/jwks`` serves one RS256 signing key with a kid and no private parts."""
    response = await send(emulator, "GET", f"{HOST}/cis/oidc/jwks")
    assert response.status_code == 200
    assert response.json() == emulator.jwks
    (key,) = response.json()["keys"]
    assert key["kty"] == "RSA"
    assert key["alg"] == "RS256"
    assert key["use"] == "sig"
    assert key["kid"]
    assert not {"d", "p", "q", "dp", "dq", "qi"} & set(key)


@pytest.mark.anyio
async def test_discovery_points_at_the_host_it_was_asked_on(emulator: MosaicEmulator) -> None:
    """The OpenID configuration names the issuer and endpoints on the request's host."""
    eu = "https://api.eu.transmitsecurity.io"
    response = await send(emulator, "GET", f"{eu}/cis/oidc/.well-known/openid-configuration")
    assert response.status_code == 200
    document = response.json()
    assert document["issuer"] == "https://userid.security"
    assert document["token_endpoint"] == f"{eu}/oidc/token"
    assert document["jwks_uri"] == f"{eu}/cis/oidc/jwks"
    assert "client_credentials" in document["grant_types_supported"]


# The guarded APIs


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("path", "resource", "audience"),
    [
        ("/risk/v1/recommendation", RISK, RISK),
        ("/verify/api/v1/sessions", VERIFY, VERIFY),
        ("/cis/v1/users", None, "userid-api"),
    ],
)
async def test_api_accepts_a_token_for_its_audience(
    emulator: MosaicEmulator,
    client: RegisteredClient,
    path: str,
    resource: str | None,
    audience: str,
) -> None:
    """Each API answers 200, echoing the call, to a valid token for its own audience."""
    token = await fetch_token(emulator, client, resource)
    response = await call_api(emulator, path, token)
    assert response.status_code == 200
    assert response.json() == {
        "path": path,
        "method": "GET",
        "client_id": client.client_id,
        "aud": audience,
    }


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("path", "resource"),
    [("/risk/v1/recommendation", VERIFY), ("/verify/v1/x", None), ("/cis/v1/users", RISK)],
)
async def test_api_refuses_a_token_for_another_audience(
    emulator: MosaicEmulator, client: RegisteredClient, path: str, resource: str | None
) -> None:
    """A valid token for another API's audience is answered 401 Invalid token."""
    token = await fetch_token(emulator, client, resource)
    response = await call_api(emulator, path, token)
    assert response.status_code == 401
    assert response.json() == {"message": "Invalid token", "error_code": 401}


@pytest.mark.anyio
async def test_api_refuses_a_token_once_the_clock_passes_its_expiry(
    emulator: MosaicEmulator, client: RegisteredClient, clock: FakeClock
) -> None:
    """A token works until just before its exp and is refused from exp on."""
    token = await fetch_token(emulator, client, RISK)
    clock.advance(3599.9)
    assert (await call_api(emulator, "/risk/v1/x", token)).status_code == 200
    clock.advance(0.1)
    assert (await call_api(emulator, "/risk/v1/x", token)).status_code == 401


@pytest.mark.anyio
async def test_revoked_tokens_are_refused_and_new_ones_accepted(
    emulator: MosaicEmulator, client: RegisteredClient
) -> None:
    """After revoke_tokens, tokens issued before are refused; a token issued after works."""
    old = await fetch_token(emulator, client, RISK)
    assert emulator.revoke_tokens() == 1
    assert (await call_api(emulator, "/risk/v1/x", old)).status_code == 401
    new = await fetch_token(emulator, client, RISK)
    assert (await call_api(emulator, "/risk/v1/x", new)).status_code == 200


@pytest.mark.anyio
async def test_revoke_tokens_can_be_limited_to_a_client_and_an_audience(
    emulator: MosaicEmulator, client: RegisteredClient
) -> None:
    """Revoking by client and audience leaves other clients' and audiences' tokens working."""
    other = emulator.register_client(resources=[RISK])
    risk = await fetch_token(emulator, client, RISK)
    identity = await fetch_token(emulator, client)
    others_risk = await fetch_token(emulator, other, RISK)
    assert emulator.revoke_tokens(client_id=client.client_id, audience=RISK) == 1
    assert (await call_api(emulator, "/risk/v1/x", risk)).status_code == 401
    assert (await call_api(emulator, "/cis/v1/users", identity)).status_code == 200
    assert (await call_api(emulator, "/risk/v1/x", others_risk)).status_code == 200


@pytest.mark.anyio
async def test_the_revocation_endpoint_revokes_as_revoke_tokens_does(
    emulator: MosaicEmulator, client: RegisteredClient
) -> None:
    """``POST /emulator/revoke`` revokes the tokens of the client and audience its form names,
    or with no body every token, and says how many it revoked."""
    other = emulator.register_client(resources=[RISK])
    risk = await fetch_token(emulator, client, RISK)
    identity = await fetch_token(emulator, client)
    others_risk = await fetch_token(emulator, other, RISK)
    form = {"client_id": client.client_id, "audience": RISK}
    narrow = await send(emulator, "POST", REVOKE_URL, data=form)
    assert narrow.json() == {"revoked": 1}
    assert (await call_api(emulator, "/risk/v1/x", risk)).status_code == 401
    assert (await call_api(emulator, "/cis/v1/users", identity)).status_code == 200
    everything = await send(emulator, "POST", REVOKE_URL)
    assert (everything.status_code, everything.json()) == (200, {"revoked": 2})
    assert (await call_api(emulator, "/risk/v1/x", others_risk)).status_code == 401
    assert emulator.api_calls.total() == 3  # the endpoint is no guarded API


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("method", "options", "status"),
    [
        ("GET", {}, 405),
        ("POST", {"data": {"scope": "x"}}, 400),
        ("POST", {"json": {"client_id": "x"}}, 400),
    ],
    ids=["get", "unknown-parameter", "json"],
)
async def test_the_revocation_endpoint_refuses_what_it_cannot_read(
    emulator: MosaicEmulator,
    client: RegisteredClient,
    method: str,
    options: dict[str, Any],
    status: int,
) -> None:
    """Another method, a parameter `revoke_tokens` does not take, or a body that is no form is
    refused, and nothing is revoked."""
    token = await fetch_token(emulator, client, RISK)
    response = await send(emulator, method, REVOKE_URL, **options)
    assert response.status_code == status
    assert response.json()["error_code"] == status
    assert (await call_api(emulator, "/risk/v1/x", token)).status_code == 200


@pytest.mark.anyio
@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer", "Bearer not-a-jwt", "Bearer a.b.c", "Basic dXNlcjpwYXNz"],
    ids=["missing", "empty-bearer", "garbage", "three-garbage-parts", "basic"],
)
async def test_api_refuses_requests_without_a_usable_bearer_token(
    emulator: MosaicEmulator, authorization: str | None
) -> None:
    """A missing, empty, malformed or non-Bearer Authorization header is answered 401."""
    headers = {} if authorization is None else {"Authorization": authorization}
    response = await send(emulator, "GET", f"{HOST}/risk/v1/x", headers=headers)
    assert response.status_code == 401
    assert response.json() == {"message": "Invalid token", "error_code": 401}


@pytest.mark.anyio
@pytest.mark.parametrize("shared_key", [True, False], ids=["same-key", "other-key"])
async def test_api_refuses_a_token_from_another_emulator(
    emulator: MosaicEmulator, shared_key: bool
) -> None:
    """A token for the right audience from another emulator is refused, same key or not."""
    stranger = MosaicEmulator(signing_key=SIGNING_KEY if shared_key else None)
    foreign = stranger.issue_token(stranger.register_client().client_id)
    assert (await call_api(emulator, "/cis/v1/users", foreign)).status_code == 401
    assert (await call_api(stranger, "/cis/v1/users", foreign)).status_code == 200


def test_signing_key_must_be_a_private_rsa_key() -> None:
    """A public key cannot sign, so it is refused as a signing key."""
    public = RSAKey.import_key(SIGNING_KEY.as_dict(private=False))
    with pytest.raises(ConfigurationError, match="private"):
        MosaicEmulator(signing_key=public)


def test_jwks_names_a_shared_key_by_its_kid() -> None:
    """A given signing key appears in the JWKS under its own kid."""
    assert MosaicEmulator(signing_key=SIGNING_KEY).jwks["keys"][0]["kid"] == "test-key"


@pytest.mark.anyio
async def test_other_paths_are_not_found(emulator: MosaicEmulator) -> None:
    """Paths outside the token service and the guarded APIs are answered 404."""
    response = await send(emulator, "GET", f"{HOST}/unknown/v1/x")
    assert response.status_code == 404
    assert response.json()["error_code"] == 404


# Minting tokens directly


@pytest.mark.anyio
async def test_issue_token_mints_a_working_token_without_counting_a_request(
    emulator: MosaicEmulator, client: RegisteredClient
) -> None:
    """issue_token returns a token the API accepts, and no token request is counted."""
    token = emulator.issue_token(client.client_id, RISK)
    assert (await call_api(emulator, "/risk/v1/x", token)).status_code == 200
    assert emulator.token_requests.total() == 0


def test_issue_token_takes_a_lifetime(emulator: MosaicEmulator, client: RegisteredClient) -> None:
    """issue_token's lifetime sets the token's exp."""
    token = emulator.issue_token(client.client_id, lifetime=5)
    assert verified_claims(emulator, token)["exp"] == int(START) + 5


def test_issue_token_refuses_an_unknown_client(emulator: MosaicEmulator) -> None:
    """issue_token needs a registered client."""
    with pytest.raises(ConfigurationError, match="no client"):
        emulator.issue_token("nobody")


# Faults


@pytest.mark.anyio
async def test_status_fault_answers_once_with_its_status_headers_and_default_body(
    emulator: MosaicEmulator, client: RegisteredClient
) -> None:
    """A status fault answers the next token request instead; the one after gets a token."""
    emulator.fail_next_token_requests(status=503, headers={"Retry-After": "2"})
    failed = await request_token(emulator, credentials(client))
    assert failed.status_code == 503
    assert failed.headers["Retry-After"] == "2"
    assert failed.json() == {"message": "Emulated failure (HTTP 503)", "error_code": 503}
    assert (await request_token(emulator, credentials(client))).status_code == 200


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("body", "content", "content_type"),
    [
        ({"error": "x"}, b'{"error": "x"}', "application/json"),
        ("not json", b"not json", "text/plain; charset=utf-8"),
        (b"\x00raw", b"\x00raw", "application/octet-stream"),
    ],
    ids=["json", "text", "bytes"],
)
async def test_status_fault_sends_the_given_body(
    emulator: MosaicEmulator,
    client: RegisteredClient,
    body: Any,
    content: bytes,
    content_type: str,
) -> None:
    """A fault's body is sent as given, with a content type to match."""
    emulator.fail_next_token_requests(status=200, body=body)
    response = await request_token(emulator, credentials(client))
    assert response.status_code == 200
    assert response.content == content
    assert response.headers["Content-Type"] == content_type


@pytest.mark.anyio
async def test_fault_headers_replace_the_default_content_type(
    emulator: MosaicEmulator, client: RegisteredClient
) -> None:
    """A Content-Type given in the fault's headers replaces the default, whatever its case."""
    emulator.fail_next_token_requests(status=500, body="<html>", headers={"content-type": "x/y"})
    response = await request_token(emulator, credentials(client))
    assert response.headers.get_list("Content-Type") == ["x/y"]


@pytest.mark.anyio
async def test_faults_apply_in_the_order_they_were_queued(
    emulator: MosaicEmulator, client: RegisteredClient
) -> None:
    """Queued faults answer the next requests first in, first out, `count` times each."""
    emulator.fail_next_token_requests(status=429, count=2)
    emulator.fail_next_token_requests(status=500)
    statuses = [(await request_token(emulator, credentials(client))).status_code for _ in range(4)]
    assert statuses == [429, 429, 500, 200]


@pytest.mark.anyio
async def test_drop_connection_fault_raises_a_transport_error(
    emulator: MosaicEmulator, client: RegisteredClient
) -> None:
    """A dropped connection reaches the client as httpx.RemoteProtocolError, once."""
    emulator.fail_next_token_requests(drop_connection=True)
    with pytest.raises(httpx.RemoteProtocolError):
        await request_token(emulator, credentials(client))
    assert (await request_token(emulator, credentials(client))).status_code == 200


@pytest.mark.anyio
async def test_delay_fault_holds_the_answer_back(
    emulator: MosaicEmulator, client: RegisteredClient
) -> None:
    """A delayed token request is not answered before its delay, then gets a token as usual."""
    emulator.delay_next_token_requests(60.0)
    emulator.delay_next_token_requests(0.01)
    with anyio.move_on_after(0.05) as scope:
        await request_token(emulator, credentials(client))
    assert scope.cancelled_caught
    with anyio.fail_after(5):
        response = await request_token(emulator, credentials(client))
    assert response.status_code == 200


@pytest.mark.anyio
async def test_delay_applies_before_a_status_fault(
    emulator: MosaicEmulator, client: RegisteredClient
) -> None:
    """A status fault with a delay waits before answering with its status."""
    emulator.fail_next_token_requests(status=503, delay=60.0)
    emulator.fail_next_token_requests(status=502, delay=0.01)
    with anyio.move_on_after(0.05) as scope:
        await request_token(emulator, credentials(client))
    assert scope.cancelled_caught
    with anyio.fail_after(5):
        assert (await request_token(emulator, credentials(client))).status_code == 502


@pytest.mark.parametrize(
    "options",
    [{"count": 0}, {"delay": -1.0}, {"status": 199}, {"status": 600}],
    ids=["count", "delay", "status-low", "status-high"],
)
def test_fail_next_token_requests_refuses_impossible_faults(
    emulator: MosaicEmulator, options: dict[str, Any]
) -> None:
    """A count below 1, a negative delay or a status outside 200-599 is refused."""
    with pytest.raises(ConfigurationError, match="must be"):
        emulator.fail_next_token_requests(**options)


# Counters


@pytest.mark.anyio
async def test_token_requests_count_every_request_by_resource(
    emulator: MosaicEmulator, client: RegisteredClient
) -> None:
    """Successful, refused and faulted token requests are all counted under their resource."""
    await fetch_token(emulator, client, RISK)
    await request_token(emulator, {**credentials(client, RISK), "client_secret": "wrong"})
    emulator.fail_next_token_requests(status=503)
    await request_token(emulator, credentials(client))
    emulator.fail_next_token_requests(drop_connection=True)
    with pytest.raises(httpx.TransportError):
        await request_token(emulator, credentials(client, VERIFY))
    assert emulator.token_requests == {RISK: 2, None: 1, VERIFY: 1}


@pytest.mark.anyio
async def test_api_calls_count_accepted_and_refused_calls_by_path(
    emulator: MosaicEmulator, client: RegisteredClient
) -> None:
    """api_calls counts every guarded call; rejected_api_calls only the refused ones."""
    token = await fetch_token(emulator, client, RISK)
    await call_api(emulator, "/risk/v1/a", token)
    await call_api(emulator, "/risk/v1/a", None)
    await call_api(emulator, "/risk/v1/b", token)
    await call_api(emulator, "/nowhere", token)
    assert emulator.api_calls == {"/risk/v1/a": 2, "/risk/v1/b": 1}
    assert emulator.rejected_api_calls == {"/risk/v1/a": 1}


@pytest.mark.anyio
async def test_reset_counters_zeroes_every_counter_and_counters_are_copies(
    emulator: MosaicEmulator, client: RegisteredClient
) -> None:
    """reset_counters empties all three counters; changing a returned counter changes nothing."""
    await call_api(emulator, "/risk/v1/a", await fetch_token(emulator, client, RISK))
    await call_api(emulator, "/risk/v1/a", None)
    emulator.token_requests[RISK] += 10
    assert emulator.token_requests == {RISK: 1}
    emulator.reset_counters()
    assert emulator.token_requests.total() == 0
    assert emulator.api_calls.total() == 0
    assert emulator.rejected_api_calls.total() == 0


# With MosaicAuth


@pytest.mark.anyio
async def test_mosaic_auth_gets_through_and_recovers_from_revocation(
    emulator: MosaicEmulator, client: RegisteredClient, clock: FakeClock
) -> None:
    """MosaicAuth reaches /risk/ with an emulator token, and after revocation its 401 retry
    fetches a new token that works."""
    auth = emulator.auth(client, resource=RISK, clock=clock)
    async with httpx.AsyncClient(auth=auth, transport=emulator.transport()) as http:
        first = await http.post(f"{HOST}/risk/v1/action/result", json={"a": 1})
        assert first.status_code == 200
        emulator.revoke_tokens()
        second = await http.post(f"{HOST}/risk/v1/action/result", json={"a": 1})
    assert second.status_code == 200
    assert json.loads(second.request.content) == {"a": 1}
    assert emulator.token_requests == {RISK: 2}
    assert emulator.rejected_api_calls == {"/risk/v1/action/result": 1}


@pytest.mark.anyio
async def test_a_management_application_gets_tokens_with_the_admin_role(
    emulator: MosaicEmulator,
) -> None:
    """Tokens of a client registered as a Management Application carry roles ["Admin"];
    others carry no roles."""
    admin = emulator.register_client(management=True)
    app = emulator.register_client()
    admin_token = await emulator.auth(admin).get_token()
    app_token = await emulator.auth(app).get_token()
    assert admin_token.claims["roles"] == ["Admin"]
    assert "roles" not in app_token.claims
