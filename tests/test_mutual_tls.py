"""Mutual TLS end to end, over the emulator served with TLS on 127.0.0.1: ``tls_client_auth``
with `ssl_context=` or from the environment's certificate files, for `httpx.AsyncClient` and
`httpx.Client`, and certificate-bound tokens (RFC 8705) refused to an API client that
presents no certificate."""

from __future__ import annotations

import base64
import hashlib
import logging
import ssl
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio.to_thread
import httpx
import pytest
from cryptography.hazmat.primitives import serialization

from mosaic_httpx_auth import ConfigurationError, MosaicAuth, TokenRequestError
from mosaic_httpx_auth._environment import (
    CLIENT_CERTIFICATE_FILE,
    CLIENT_KEY_FILE,
    ENVIRONMENT_VARIABLES,
    PRIVATE_KEY_FILE,
)
from mosaic_httpx_auth.redis import RedisTokenCache
from mosaic_httpx_auth.testing import (
    ClientCertificate,
    MosaicEmulator,
    RegisteredClient,
    client_ssl_context,
    make_client_certificate,
)
from mosaic_httpx_auth.testing._tls import write_server_certificate

from .helpers import RISK, TOKEN_URL, FakeClock, scrypt_of
from .test_error_frames import key_forms, leaks

if TYPE_CHECKING:
    from collections.abc import Iterator

    from joserfc.jwk import RSAKey

RECOMMENDATION = "/risk/v1/action/recommendation"
KINDS = ["async", "sync"]
# The names of the files the environment gives, made once for the module.
CERTIFICATE_FILES = (CLIENT_CERTIFICATE_FILE, CLIENT_KEY_FILE)
BOUND_WARNING = "bound to the client certificate"

# One emulator, TLS server and certificate for the module: starting a TLS server and making
# certificates cost more than the requests a test sends.


@pytest.fixture(scope="module")
def clock() -> FakeClock:
    """The module's clock, shared by the emulator and every MosaicAuth: only ever moved on."""
    return FakeClock()


@pytest.fixture(scope="module")
def emulator(clock: FakeClock, mosaic_signing_key: RSAKey) -> MosaicEmulator:
    return MosaicEmulator(clock=clock, signing_key=mosaic_signing_key)


@pytest.fixture(scope="module")
def base_url(emulator: MosaicEmulator) -> Iterator[str]:
    with emulator.serve(tls=True) as url:
        yield url


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> ClientCertificate:
    return make_client_certificate(tmp_path_factory.mktemp("certificates"))


@pytest.fixture(autouse=True)
def no_token_requests_yet(emulator: MosaicEmulator) -> None:
    emulator.reset_counters()


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in (*ENVIRONMENT_VARIABLES, PRIVATE_KEY_FILE, *CERTIFICATE_FILES):
        monkeypatch.delenv(variable, raising=False)


@pytest.fixture
def tls_client(emulator: MosaicEmulator, certificate: ClientCertificate) -> RegisteredClient:
    return emulator.register_client(certificate_sha256=certificate.sha256, resources=[RISK])


def thumbprint(certificate: ClientCertificate) -> str:
    """RFC 8705 §3.1's x5t#S256 of `certificate`, worked out here from its PEM file."""
    der = ssl.PEM_cert_to_DER_cert(certificate.cert_path.read_text())
    return base64.urlsafe_b64encode(hashlib.sha256(der).digest()).decode().rstrip("=")


def certificate_environment(
    monkeypatch: pytest.MonkeyPatch, certificate: ClientCertificate, **variables: str
) -> None:
    """Name `certificate`'s files, and `variables` (``MOSAIC_`` left out), in the environment."""
    monkeypatch.setenv(CLIENT_CERTIFICATE_FILE, str(certificate.cert_path))
    monkeypatch.setenv(CLIENT_KEY_FILE, str(certificate.key_path))
    for name, value in variables.items():
        monkeypatch.setenv(f"MOSAIC_{name}", value)


def certificate_auth(
    client: RegisteredClient, certificate: ClientCertificate, base_url: str, clock: FakeClock
) -> MosaicAuth:
    """A MosaicAuth for `client` whose token clients present `certificate`."""
    return MosaicAuth(
        client.client_id,
        client_auth="tls_client_auth",
        ssl_context=client_ssl_context(certificate),
        base_url=base_url,
        resource=RISK,
        clock=clock,
    )


async def call_api(
    auth: MosaicAuth, base_url: str, kind: str, verify: ssl.SSLContext, count: int = 1
) -> list[int]:
    """The statuses of `count` requests, one after another, through a `kind` client carrying
    `auth` and `verify`; a sync client runs on a worker thread, as sync code would."""
    url = f"{base_url}{RECOMMENDATION}"
    if kind == "async":
        async with httpx.AsyncClient(auth=auth, verify=verify) as http:
            return [(await http.post(url)).status_code for _ in range(count)]

    def calls() -> list[int]:
        with httpx.Client(auth=auth, verify=verify) as http:
            return [http.post(url).status_code for _ in range(count)]

    return await anyio.to_thread.run_sync(calls)


async def closed(auth: MosaicAuth) -> None:
    """Close `auth`'s token clients: this event loop's, and its own loop thread's."""
    await auth.aclose()
    await anyio.to_thread.run_sync(auth.close)


# Row 1: the library's own token clients present the certificate.


@pytest.mark.anyio
@pytest.mark.parametrize("kind", KINDS)
async def test_ssl_context_presents_the_certificate_for_both_client_kinds(
    base_url: str,
    emulator: MosaicEmulator,
    tls_client: RegisteredClient,
    certificate: ClientCertificate,
    clock: FakeClock,
    kind: str,
) -> None:
    """With ssl_context=, the token clients MosaicAuth opens (per event loop, and on its own
    loop thread for httpx.Client) present the certificate: one token request, bound to it,
    which the API takes from a client presenting it too."""
    auth = certificate_auth(tls_client, certificate, base_url, clock)
    try:
        context = client_ssl_context(certificate)
        assert await call_api(auth, base_url, kind, context, count=2) == [200, 200]
        token = await auth.get_token()
    finally:
        await closed(auth)
    assert emulator.token_requests == {RISK: 1}
    assert token.claims["cnf"] == {"x5t#S256": thumbprint(certificate)}


@pytest.mark.anyio
@pytest.mark.parametrize("kind", KINDS)
async def test_a_secret_client_may_give_ssl_context_to_trust_its_token_endpoint(
    base_url: str, emulator: MosaicEmulator, clock: FakeClock, kind: str
) -> None:
    """ssl_context= is only TLS settings: a secret client gives one to trust a token endpoint
    that the system does not (a sync client could not, with http_client=); its tokens are
    unbound, and taken on a connection without a certificate."""
    client = emulator.register_client(resources=[RISK])
    auth = MosaicAuth(
        client.client_id,
        client.client_secret,
        ssl_context=client_ssl_context(),
        base_url=base_url,
        resource=RISK,
        clock=clock,
    )
    try:
        assert await call_api(auth, base_url, kind, client_ssl_context()) == [200]
        assert "cnf" not in (await auth.get_token()).claims
    finally:
        await closed(auth)


# Row 1: from the environment.


@pytest.mark.anyio
@pytest.mark.parametrize("kind", KINDS)
async def test_from_env_presents_the_certificate_files_and_trusts_ssl_cert_file(
    base_url: str,
    emulator: MosaicEmulator,
    tls_client: RegisteredClient,
    certificate: ClientCertificate,
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    kind: str,
) -> None:
    """MOSAIC_CLIENT_CERTIFICATE_FILE and MOSAIC_CLIENT_KEY_FILE, with no secret, mean
    tls_client_auth; the token clients present that certificate and trust SSL_CERT_FILE's CA,
    as httpx does, for both client kinds. Nothing shows the key."""
    monkeypatch.setenv("SSL_CERT_FILE", str(write_server_certificate(tmp_path).client_ca_path))
    certificate_environment(
        monkeypatch, certificate, CLIENT_ID=tls_client.client_id, BASE_URL=base_url, RESOURCE=RISK
    )
    auth = MosaicAuth.from_env(clock=clock)
    try:
        assert "client_auth='tls_client_auth'" in repr(auth)
        assert await call_api(auth, base_url, kind, client_ssl_context(certificate)) == [200]
    finally:
        await closed(auth)
    assert emulator.token_requests == {RISK: 1}
    key = certificate.key_path.read_text()
    for shown in (repr(auth), repr(auth._endpoint), repr(auth._endpoint.client_auth)):
        assert "PRIVATE KEY" not in shown
        assert key.splitlines()[1] not in shown


@pytest.mark.anyio
async def test_from_env_trusts_no_more_than_httpx_does(
    base_url: str,
    tls_client: RegisteredClient,
    certificate: ClientCertificate,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without SSL_CERT_FILE, the context from the certificate files trusts what httpx trusts
    by default (certifi's bundle): not the emulator's test CA."""
    for variable in ("SSL_CERT_FILE", "SSL_CERT_DIR"):
        monkeypatch.delenv(variable, raising=False)
    certificate_environment(
        monkeypatch, certificate, CLIENT_ID=tls_client.client_id, BASE_URL=base_url
    )
    auth = MosaicAuth.from_env()
    with pytest.raises(TokenRequestError, match="TLS certificate could not be verified"):
        await auth.get_token()
    await auth.aclose()


@pytest.mark.parametrize(
    ("variables", "method"),
    [
        ({}, "tls_client_auth"),
        ({"CLIENT_SECRET": "a-secret"}, "client_secret_post"),
        (
            {"CLIENT_SECRET": "a-secret", "CLIENT_AUTH": "client_secret_basic"},
            "client_secret_basic",
        ),
    ],
)
def test_a_certificate_alone_means_tls_client_auth(
    certificate: ClientCertificate,
    monkeypatch: pytest.MonkeyPatch,
    variables: dict[str, str],
    method: str,
) -> None:
    """Without MOSAIC_CLIENT_AUTH, the certificate files mean tls_client_auth when there is no
    secret; with one, the secret authenticates, and the token requests still present the
    certificate (which a gateway may ask for)."""
    certificate_environment(monkeypatch, certificate, CLIENT_ID="client", **variables)
    auth = MosaicAuth.from_env()
    assert f"client_auth={method!r}" in repr(auth)
    assert isinstance(auth._endpoint._ssl_context, ssl.SSLContext)


def encrypted_copy(certificate: ClientCertificate, directory: Path) -> Path:
    """`certificate`'s key, encrypted with a password, in a file of its own."""
    key = serialization.load_pem_private_key(certificate.key_path.read_bytes(), None)
    path = directory / "encrypted-key.pem"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"password"),
        )
    )
    return path


@pytest.mark.parametrize(
    ("setting", "named"),
    [
        ("certificate only", f"set {CLIENT_KEY_FILE} too"),
        ("key only", f"set {CLIENT_CERTIFICATE_FILE} too"),
        ("missing certificate", f"check {CLIENT_CERTIFICATE_FILE}: cannot read it"),
        ("missing key", f"check {CLIENT_KEY_FILE}: cannot read it"),
        (
            "another certificate's key",
            f"check {CLIENT_CERTIFICATE_FILE} and {CLIENT_KEY_FILE}: they are not a PEM "
            "certificate and its private key",
        ),
        ("encrypted key", f"check {CLIENT_KEY_FILE}: the private key is encrypted"),
        ("and http_client", f"and {CLIENT_KEY_FILE}: give ssl_context or http_client, not both"),
        ("neither", f"set {CLIENT_CERTIFICATE_FILE} and {CLIENT_KEY_FILE}: client_auth"),
    ],
)
def test_a_client_certificate_at_fault_names_its_variable(
    certificate: ClientCertificate,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    setting: str,
    named: str,
) -> None:
    """Each way the certificate settings can be wrong is a ConfigurationError naming the
    variable to set or check, never a path; neither it nor its frames hold the key."""
    monkeypatch.setenv("MOSAIC_CLIENT_ID", "client")
    files = {CLIENT_CERTIFICATE_FILE: certificate.cert_path, CLIENT_KEY_FILE: certificate.key_path}
    overrides: dict[str, Any] = {}
    if setting == "certificate only":
        del files[CLIENT_KEY_FILE]
    elif setting == "key only":
        del files[CLIENT_CERTIFICATE_FILE]
    elif setting.startswith("missing"):
        files[CLIENT_KEY_FILE if setting.endswith("key") else CLIENT_CERTIFICATE_FILE] = (
            tmp_path / "missing.pem"
        )
    elif setting == "another certificate's key":
        files[CLIENT_KEY_FILE] = make_client_certificate(tmp_path).key_path
    elif setting == "encrypted key":
        files[CLIENT_KEY_FILE] = encrypted_copy(certificate, tmp_path)
    elif setting == "and http_client":
        overrides["http_client"] = httpx.AsyncClient()
    else:
        files.clear()
        monkeypatch.setenv("MOSAIC_CLIENT_AUTH", "tls_client_auth")
    for variable, path in files.items():
        monkeypatch.setenv(variable, str(path))
    with pytest.raises(ConfigurationError, match=named) as caught:
        MosaicAuth.from_env(**overrides)
    message = str(caught.value)
    assert str(tmp_path) not in message
    assert str(certificate.key_path.parent) not in message
    assert "PRIVATE KEY" not in message
    # The forms searched for are made inside the call: in a local, this frame (which the
    # error carries) would hold them.
    key_files = [certificate.key_path, files.get(CLIENT_KEY_FILE, certificate.key_path)]
    leaked = leaks(caught.value, set().union(*map(key_forms, filter(Path.exists, key_files))))
    assert not leaked


# Row 1: the key in the process, for a shared cache.


def test_from_env_derives_the_cache_secret_from_the_key_file(
    certificate: ClientCertificate, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the key file read, a RedisTokenCache needs no encryption_key: the cache secret is
    scrypt of the SHA-256 of the key's PKCS#8 DER, the same for the key alone, in a file
    beside its certificate, with other line endings, or in PKCS#1; with a bare ssl_context
    (the key inside OpenSSL) it still needs one."""
    from cryptography.hazmat.primitives import serialization

    certificate_environment(monkeypatch, certificate, CLIENT_ID="client")
    cache = RedisTokenCache.from_url("redis://127.0.0.1/0")
    pem = certificate.key_path.read_bytes()
    key = serialization.load_pem_private_key(pem, None)
    der = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    expected = scrypt_of(hashlib.sha256(der).digest(), token_url=TOKEN_URL, client_id="client")
    bundle = certificate.key_path.with_name("bundle.pem")
    bundle.write_bytes(certificate.cert_path.read_bytes() + pem.replace(b"\n", b"\r\n"))
    traditional = certificate.key_path.with_name("traditional.pem")
    traditional.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    for key_file in (certificate.key_path, bundle, traditional):
        monkeypatch.setenv(CLIENT_KEY_FILE, str(key_file))
        auth = MosaicAuth.from_env(cache=cache, token_url=TOKEN_URL)
        authentication = auth._endpoint.client_auth
        assert authentication.credential_in_process
        assert anyio.run(authentication.cache_secret, TOKEN_URL) == expected
    with pytest.raises(ConfigurationError, match="needs encryption_key= with tls_client_auth"):
        MosaicAuth(
            "client",
            client_auth="tls_client_auth",
            ssl_context=client_ssl_context(certificate),
            cache=cache,
        )


@pytest.mark.anyio
async def test_processes_with_the_key_file_share_tokens_through_redis(
    base_url: str,
    emulator: MosaicEmulator,
    tls_client: RegisteredClient,
    certificate: ClientCertificate,
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
    redis_url: str,
    tmp_path: Path,
) -> None:
    """Two MosaicAuth made from the same certificate files, as two processes would be, share
    one token through Redis, sealed with the key derived from the key file."""
    monkeypatch.setenv("SSL_CERT_FILE", str(write_server_certificate(tmp_path).client_ca_path))
    certificate_environment(
        monkeypatch, certificate, CLIENT_ID=tls_client.client_id, BASE_URL=base_url, RESOURCE=RISK
    )
    tokens = []
    for _ in range(2):
        cache = RedisTokenCache.from_url(redis_url, timeout=5.0)
        auth = MosaicAuth.from_env(cache=cache, clock=clock)
        tokens.append(await auth.get_token())
        await auth.aclose()
    assert tokens[0] == tokens[1]
    assert emulator.token_requests == {RISK: 1}


# Row 2: certificate-bound tokens and an API client without the certificate.


@pytest.mark.anyio
@pytest.mark.parametrize("kind", KINDS)
async def test_a_bound_token_refused_for_want_of_a_certificate_is_explained_once(
    base_url: str,
    emulator: MosaicEmulator,
    tls_client: RegisteredClient,
    certificate: ClientCertificate,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
    kind: str,
) -> None:
    """An API client that presents no certificate is refused every bound token: one warning
    says why and what to do, and however many requests it makes, the token endpoint is asked
    at most twice in the first minute and once in each minute after (the 401 rules' bound)."""
    caplog.set_level(logging.WARNING, logger="mosaic_httpx_auth")
    auth = certificate_auth(tls_client, certificate, base_url, clock)
    bare = client_ssl_context()
    try:
        assert await call_api(auth, base_url, kind, bare, count=10) == [401] * 10
        assert emulator.token_requests[RISK] <= 2
        for minute in range(1, 3):
            clock.advance(61)
            assert await call_api(auth, base_url, kind, bare, count=10) == [401] * 10
            assert emulator.token_requests[RISK] <= 2 + minute
    finally:
        await closed(auth)
    told = [record for record in caplog.records if BOUND_WARNING in record.getMessage()]
    assert len(told) == 1
    assert told[0].levelno == logging.WARNING
    assert "verify=ssl_context" in told[0].getMessage()
    assert RECOMMENDATION in told[0].getMessage()


@pytest.mark.anyio
async def test_an_unbound_token_refused_again_is_not_said_to_be_bound(
    emulator: MosaicEmulator, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """An API that refuses every unbound token (here: one for another audience) is kept at the
    same bound, and nothing blames a certificate."""
    caplog.set_level(logging.WARNING, logger="mosaic_httpx_auth")
    client = emulator.register_client()
    auth = emulator.auth(client, clock=clock)  # tokens without a resource: /risk refuses them
    async with httpx.AsyncClient(auth=auth, transport=emulator.transport()) as http:
        for _ in range(5):
            response = await http.post(f"https://api.transmitsecurity.io{RECOMMENDATION}")
            assert response.status_code == 401
    await auth.aclose()
    assert emulator.token_requests == {None: 2}
    assert not [record for record in caplog.records if BOUND_WARNING in record.getMessage()]
