"""Client authentication methods, key handling, regions, as MosaicAuth builds requests."""

from __future__ import annotations

import base64
import hmac
import json
import os
import ssl
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, JWKRegistry, RSAKey

from mosaic_httpx_auth import (
    ConfigurationError,
    MosaicAuth,
    TokenRequestError,
    generate_signing_key,
)
from mosaic_httpx_auth._cli import main
from mosaic_httpx_auth._client_auth import (
    cache_secret_salt,
    client_authentication,
    derive_cache_secret,
    load_private_key,
)
from mosaic_httpx_auth._mosaic import REGION_HOSTS

from .helpers import (
    CLIENT_ID,
    CLIENT_SECRET,
    RISK,
    START,
    TOKEN_URL,
    FakeClock,
    make_jwt,
    scrypt_of,
)

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.anyio

RSA = generate_signing_key("RS256")
EC = generate_signing_key("ES256")


def _weak_rsa_pem() -> bytes:
    """A private RSA key of 1024 bits, which joserfc would take with a mere warning."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 - on purpose
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


class Recorder:
    """A token endpoint that records each request and answers with a token."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(200, json={"access_token": make_jwt(exp=START + 3600)})

    def form(self, index: int = -1) -> dict[str, str]:
        return dict(parse_qsl(self.requests[index].content.decode()))


async def fetch_with(recorder: Recorder, client_id: str = CLIENT_ID, **options: Any) -> None:
    """Make `MosaicAuth` with `options` fetch one token from `recorder`."""
    http_client = httpx.AsyncClient(transport=httpx.MockTransport(recorder))
    auth = MosaicAuth(client_id, http_client=http_client, clock=FakeClock(), **options)
    await auth.get_token(RISK)


def decode_assertion(assertion: str, public_jwks: dict[str, Any]) -> jwt.Token:
    """The assertion's header and claims, after checking its signature with the public key."""
    # Without "alg", so that one RSA key checks RS256 and PS256 alike.
    public = {name: value for name, value in public_jwks["keys"][0].items() if name != "alg"}
    key = JWKRegistry.import_key(public)
    return jwt.decode(assertion, key, algorithms=["RS256", "PS256", "ES256"])


async def test_client_secret_basic_sends_urlencoded_credentials_in_a_header() -> None:
    """client_secret_basic puts form-urlencoded id and secret in Basic auth, not in the form."""
    recorder = Recorder()
    await fetch_with(
        recorder, "id:with/odd+chars", client_secret="p@ss word+", client_auth="client_secret_basic"
    )
    scheme, _, encoded = recorder.requests[0].headers["Authorization"].partition(" ")
    assert scheme == "Basic"
    assert base64.b64decode(encoded).decode() == "id%3Awith%2Fodd%2Bchars:p%40ss+word%2B"
    assert recorder.form() == {"grant_type": "client_credentials", "resource": RISK}


@pytest.mark.parametrize(
    ("key", "options", "algorithm", "kid"),
    [
        (RSA.private_key_pem, {}, "RS256", RSA.key_id),
        (RSA.private_key_pem.decode(), {"signing_algorithm": "PS256"}, "PS256", RSA.key_id),
        (EC.private_key_pem, {"key_id": "chosen"}, "ES256", "chosen"),
    ],
    ids=["RS256", "PS256", "ES256"],  # stable: the keys are made per run
)
async def test_private_key_jwt_sends_a_fresh_signed_assertion(
    key: bytes | str, options: dict[str, Any], algorithm: str, kid: str
) -> None:
    """Each request carries a new assertion: signed with the key's algorithm and kid, iss and
    sub the client id, aud the token URL, a 60 s lifetime and a unique jti."""
    recorder = Recorder()
    pair = EC if algorithm == "ES256" else RSA
    http_client = httpx.AsyncClient(transport=httpx.MockTransport(recorder))
    auth = MosaicAuth(
        CLIENT_ID, private_key=key, http_client=http_client, clock=FakeClock(), **options
    )
    await auth.get_token(RISK)
    await auth.get_token(None)
    assertions = []
    for index in (0, 1):
        form = recorder.form(index)
        assert form["client_id"] == CLIENT_ID
        assert form["client_assertion_type"] == (
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
        )
        assert "client_secret" not in form
        assertions.append(decode_assertion(form["client_assertion"], pair.public_jwks))
    first, second = assertions
    assert (first.header["alg"], first.header["kid"]) == (algorithm, kid)
    claims = first.claims
    assert (claims["iss"], claims["sub"], claims["aud"]) == (CLIENT_ID, CLIENT_ID, auth.token_url)
    assert claims["exp"] - claims["iat"] == 60
    assert claims["iat"] == int(START)
    assert first.claims["jti"] != second.claims["jti"]


@pytest.mark.parametrize(
    "key",
    [
        RSAKey.import_key(RSA.private_key_pem),
        RSAKey.import_key(RSA.private_key_pem).as_dict(private=True),
        json.dumps(RSAKey.import_key(RSA.private_key_pem).as_dict(private=True)),
    ],
    ids=["joserfc-key", "jwk-dict", "jwk-json"],
)
async def test_private_key_forms_are_all_accepted(key: Any) -> None:
    """A joserfc key, a JWK dict and JWK JSON text all sign assertions."""
    recorder = Recorder()
    await fetch_with(recorder, private_key=key)
    assertion = recorder.form()["client_assertion"]
    assert decode_assertion(assertion, RSA.public_jwks).claims["sub"] == CLIENT_ID


async def test_a_jwk_kid_is_the_default_key_id() -> None:
    """Without key_id, the kid inside a JWK names the key in the assertion header."""
    recorder = Recorder()
    jwk = {**RSAKey.import_key(RSA.private_key_pem).as_dict(private=True), "kid": "from-jwk"}
    await fetch_with(recorder, private_key=jwk)
    assert decode_assertion(recorder.form()["client_assertion"], RSA.public_jwks).header == {
        "alg": "RS256",
        "kid": "from-jwk",
        "typ": "JWT",
    }


async def test_tls_client_auth_sends_only_the_client_id() -> None:
    """tls_client_auth leaves authentication to the TLS certificate: only client_id is sent."""
    recorder = Recorder()
    await fetch_with(recorder, client_auth="tls_client_auth")
    assert recorder.form() == {
        "grant_type": "client_credentials",
        "client_id": CLIENT_ID,
        "resource": RISK,
    }
    assert "Authorization" not in recorder.requests[0].headers


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, "needs client_secret"),
        ({"client_auth": "client_secret_basic"}, "needs client_secret"),
        ({"client_secret": ""}, "needs client_secret"),
        ({"client_auth": "private_key_jwt"}, "needs private_key"),
        ({"client_auth": "magic", "client_secret": "x"}, "'magic' is not one of"),
        ({"client_secret": "x", "private_key": RSA.private_key_pem}, "not both"),
        (
            {"client_auth": "client_secret_post", "private_key": RSA.private_key_pem},
            "uses client_secret, not private_key",
        ),
        ({"client_auth": "tls_client_auth", "client_secret": "x"}, "does not use client_secret"),
        ({"client_auth": "tls_client_auth"}, "needs ssl_context=.* or an http_client"),
        ({"client_secret": "x", "ssl_context": "not a context"}, "an ssl.SSLContext"),
        (
            {
                "client_auth": "tls_client_auth",
                "ssl_context": ssl.create_default_context(),
                "http_client": httpx.AsyncClient(),
            },
            "ssl_context or http_client, not both",
        ),
        (
            {"client_auth": "tls_client_auth", "private_key": RSA.private_key_pem},
            "does not use private_key",
        ),
        ({"private_key": RSAKey.import_key(RSA.private_key_pem).as_pem(private=False)}, "public"),
        ({"private_key": ECKey.generate_key("P-384")}, "P-256"),
        ({"private_key": _weak_rsa_pem()}, "RSA key of 1024 bits"),
        ({"private_key": "-----BEGIN PRIVATE KEY-----\ngarbage"}, "not a PEM"),
        ({"private_key": "{not json"}, "not valid JWK JSON"),
        (
            {"private_key": {"kty": "oct", "k": "c2VjcmV0LWtleS1vZi0zMi1ieXRlcy1sb25nISEh"}},
            "RSA or EC",
        ),
        ({"private_key": EC.private_key_pem, "signing_algorithm": "RS256"}, "does not suit"),
        ({"private_key": RSA.private_key_pem, "signing_algorithm": "HS256"}, "does not suit"),
        ({"client_secret": "x", "region": "mars"}, "region 'mars'"),
        ({"client_secret": "x", "base_url": "api.transmitsecurity.io"}, "base_url"),
    ],
)
def test_settings_that_do_not_fit_are_refused(options: dict[str, Any], message: str) -> None:
    """Each impossible combination raises a ConfigurationError saying what is wrong, and no
    secret."""
    with pytest.raises(ConfigurationError, match=message) as caught:
        MosaicAuth(CLIENT_ID, **options)
    assert "PRIVATE KEY" not in str(caught.value)


@pytest.mark.parametrize("region", sorted(REGION_HOSTS))
def test_each_region_selects_its_host(region: str) -> None:
    """region= picks the documented host for the token endpoint and the API base URL."""
    auth = MosaicAuth(CLIENT_ID, CLIENT_SECRET, region=region)
    assert auth.base_url == REGION_HOSTS[region]
    assert auth.token_url == f"{REGION_HOSTS[region]}/oidc/token"


@pytest.mark.parametrize(
    ("urls", "setting"),
    [
        ({"base_url": "https://api.transmitsecurity.io"}, "base_url"),
        ({"base_url": "https://mosaic.test/"}, "base_url"),
        ({"token_url": "https://api.transmitsecurity.io/oidc/token"}, "token_url"),
        ({"base_url": REGION_HOSTS["eu"], "token_url": "https://id.test/oidc/token"}, "token_url"),
    ],
)
def test_a_region_and_a_url_on_another_host_are_refused(urls: dict[str, str], setting: str) -> None:
    """region="eu" with a URL on another host is a contradiction, not an override: a
    ConfigurationError naming both settings and both hosts."""
    with pytest.raises(ConfigurationError, match=rf"region 'eu' and {setting} name two hosts"):
        MosaicAuth(CLIENT_ID, CLIENT_SECRET, region="eu", **urls)  # type: ignore[arg-type]


def test_a_region_agrees_with_urls_on_its_own_host() -> None:
    """A base URL or token URL on the region's host, with or without a path or trailing
    slash, is no contradiction; without a region, base_url and token_url go anywhere."""
    auth = MosaicAuth(
        CLIENT_ID,
        CLIENT_SECRET,
        region="eu",
        base_url=REGION_HOSTS["eu"] + "/",
        token_url=REGION_HOSTS["eu"] + "/cis/oidc/token",
    )
    assert (auth.base_url, auth.token_url) == (
        REGION_HOSTS["eu"],
        REGION_HOSTS["eu"] + "/cis/oidc/token",
    )
    auth = MosaicAuth(CLIENT_ID, CLIENT_SECRET, base_url="https://mosaic.test/")
    assert auth.token_url == "https://mosaic.test/oidc/token"


def test_resource_paths_are_relative_to_the_base_url() -> None:
    """A `resources` path like "/risk" is routed on the region's host."""
    auth = MosaicAuth(CLIENT_ID, CLIENT_SECRET, region="ca", resources={"/risk": RISK})
    assert auth.resource_for("https://api.ca.transmitsecurity.io/risk/v1/x") == RISK
    assert auth.resource_for("https://api.transmitsecurity.io/risk/v1/x") is None


@pytest.mark.parametrize("algorithm", ["RS256", "PS256", "ES256"])
def test_generated_key_pairs_sign_and_publish_only_the_public_key(algorithm: str) -> None:
    """generate_signing_key gives a usable private PEM and a public-only JWKS with kid and alg."""
    pair = generate_signing_key(algorithm)
    (public,) = pair.public_jwks["keys"]
    assert (public["kid"], public["alg"], public["use"]) == (pair.key_id, algorithm, "sig")
    assert "d" not in public
    assert "PRIVATE" not in repr(pair)
    auth = MosaicAuth(CLIENT_ID, private_key=pair.private_key_pem, signing_algorithm=algorithm)
    assertion = auth._endpoint.client_auth.credentials(auth.token_url).form
    assert (
        decode_assertion(assertion["client_assertion"], pair.public_jwks).header["kid"]
        == pair.key_id
    )


def test_keygen_writes_a_private_key_only_its_owner_reads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`keygen PATH` writes the private key with mode 0600 and prints the public JWKS."""
    path = tmp_path / "mosaic.pem"
    assert main(["keygen", str(path), "--algorithm", "ES256", "--key-id", "k1"]) == 0
    assert os.stat(path).st_mode & 0o777 == 0o600
    jwks = json.loads(capsys.readouterr().out)
    assert jwks["keys"][0]["kid"] == "k1"
    assert "d" not in jwks["keys"][0]
    assert "client_auth='private_key_jwt'" in repr(
        MosaicAuth(CLIENT_ID, private_key=path.read_bytes())
    )


def test_keygen_never_overwrites_a_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`keygen` refuses a path that exists, leaving the old key as it was."""
    path = tmp_path / "mosaic.pem"
    path.write_bytes(b"old key")
    assert main(["keygen", str(path)]) == 2
    assert path.read_bytes() == b"old key"
    assert "File exists" in capsys.readouterr().err


async def test_an_echoed_assertion_is_redacted_from_errors() -> None:
    """A refusal that repeats the client assertion does not carry it into the error."""
    assertions: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        assertion = dict(parse_qsl(request.content.decode()))["client_assertion"]
        assertions.append(assertion)
        body = {"error": "invalid_client", "error_description": f"bad assertion {assertion}"}
        return httpx.Response(401, json=body)

    http_client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    auth = MosaicAuth(CLIENT_ID, private_key=RSA.private_key_pem, http_client=http_client)
    with pytest.raises(TokenRequestError) as caught:
        await auth.get_token()
    assert caught.value.error_description == "bad assertion [secret]"
    assert assertions[0] not in str(caught.value)


def test_token_request_credentials_hide_secrets_in_their_repr() -> None:
    """The credentials a method adds to a request never show in a repr (e.g. in tracebacks)."""
    auth = MosaicAuth(CLIENT_ID, CLIENT_SECRET, client_auth="client_secret_basic")
    credentials = auth._endpoint.client_auth.credentials(auth.token_url)
    assert CLIENT_SECRET not in repr(credentials)
    assert credentials.headers["Authorization"] not in repr(credentials)


def test_a_signing_algorithm_contradicting_the_jwks_alg_names_both() -> None:
    """A JWK declaring PS256 with signing_algorithm RS256 is refused, naming the conflict,
    not blamed on the key."""
    pair = generate_signing_key("PS256")
    jwk = {**load_private_key(pair.private_key_pem).as_dict(private=True), "alg": "PS256"}
    with pytest.raises(ConfigurationError, match="contradicts the key's own alg 'PS256'") as caught:
        client_authentication(
            "client",
            method="private_key_jwt",
            client_secret=None,
            private_key=jwk,
            key_id=None,
            signing_algorithm="RS256",
            has_http_client=False,
            clock=time.time,
        )
    assert caught.value.setting == "signing_algorithm"


def test_the_cache_secret_is_scrypt_salted_with_the_token_url_and_client_id() -> None:
    """A shared cache's key material is scrypt of the credential at the named cost, salted
    with the token URL and client id: the same from the same inputs, another under another
    client or token URL, and not what the former fast, unsalted HMAC gave."""
    secret = b"abcd"
    derived = derive_cache_secret(secret, cache_secret_salt(TOKEN_URL, CLIENT_ID))
    assert derived == scrypt_of(secret)
    assert derive_cache_secret(secret, cache_secret_salt(TOKEN_URL, CLIENT_ID)) == derived
    others = {
        derive_cache_secret(secret, cache_secret_salt(TOKEN_URL, "client-id-2")),
        derive_cache_secret(secret, cache_secret_salt("https://other.example/token", CLIENT_ID)),
        hmac.digest(b"mosaic-httpx-auth shared token cache", secret, "sha256"),
    }
    assert len(others) == 3
    assert derived not in others


@pytest.mark.parametrize(
    ("options", "credential"),
    [
        ({"client_secret": CLIENT_SECRET}, CLIENT_SECRET.encode()),
        (
            {"client_secret": CLIENT_SECRET, "client_auth": "client_secret_basic"},
            CLIENT_SECRET.encode(),
        ),
        (
            {"private_key": RSA.private_key_pem},
            load_private_key(RSA.private_key_pem).as_bytes(private=True),
        ),
        ({"client_auth": "tls_client_auth", "http_client": httpx.AsyncClient()}, None),
        ({"client_auth": "tls_client_auth", "ssl_context": ssl.create_default_context()}, None),
    ],
)
async def test_each_method_derives_the_cache_secret_from_its_credential(
    options: dict[str, Any], credential: bytes | None
) -> None:
    """A client secret, or a private key's bytes, is what the cache secret comes from; a TLS
    client certificate leaves none in the process."""
    auth = MosaicAuth(CLIENT_ID, **options)
    authentication = auth._endpoint.client_auth
    assert authentication.credential_in_process is (credential is not None)
    expected = None if credential is None else scrypt_of(credential, token_url=auth.token_url)
    assert await authentication.cache_secret(auth.token_url) == expected


def test_a_forked_child_derives_though_its_parent_was_deriving() -> None:
    """A process forked while another of its threads derived a cache secret (holding the
    lock that makes concurrent first uses wait) derives its own, rather than wait forever."""
    script = """
import os, signal
from mosaic_httpx_auth import _client_auth
_client_auth._DERIVING.acquire()  # as a derivation on another thread holds it
if os.fork() == 0:
    signal.alarm(20)  # a child that waits forever ends all the same, and fails
    _client_auth.derive_cache_secret(b"secret", b"salt")
    os._exit(0)
_, status = os.wait()
raise SystemExit(os.waitstatus_to_exitcode(status))
"""
    subprocess.run([sys.executable, "-c", script], timeout=30, check=True)  # noqa: S603
