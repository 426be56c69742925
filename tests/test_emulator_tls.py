"""Mutual TLS with the emulator: tls_client_auth over serve(tls=True), and its certificates."""

from __future__ import annotations

import base64
import hashlib
import ssl
import stat
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

import httpx
import pytest

from mosaic_httpx_auth import ConfigurationError
from mosaic_httpx_auth.testing import (
    ClientCertificate,
    MosaicEmulator,
    RegisteredClient,
    client_ssl_context,
    make_client_certificate,
)

from .helpers import RISK
from .test_emulator import HOST, SIGNING_KEY, TOKEN_URL, verified_claims
from .test_emulator_auth_methods import assert_invalid_client

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, MutableMapping
    from pathlib import Path

# One emulator, server and pair of certificates for the module: starting a TLS server and
# making certificates cost more than the requests the tests send.


@pytest.fixture(scope="module")
def certificate_directory(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("certificates")


@pytest.fixture(scope="module")
def certificate(certificate_directory: Path) -> ClientCertificate:
    return make_client_certificate(certificate_directory, name="client")


@pytest.fixture(scope="module")
def stranger_certificate(certificate_directory: Path) -> ClientCertificate:
    """A certificate the TLS handshake accepts but no client is registered with."""
    return make_client_certificate(certificate_directory, name="stranger")


@pytest.fixture(scope="module")
def emulator() -> MosaicEmulator:
    return MosaicEmulator(signing_key=SIGNING_KEY)


@pytest.fixture(scope="module")
def base_url(emulator: MosaicEmulator) -> Iterator[str]:
    with emulator.serve(tls=True) as url:
        yield url


@pytest.fixture
def tls_client(emulator: MosaicEmulator, certificate: ClientCertificate) -> RegisteredClient:
    return emulator.register_client(certificate_sha256=certificate.sha256, resources=[RISK])


def only_client_id(client: RegisteredClient) -> dict[str, str]:
    """A token request form for mutual TLS: the client_id and nothing to prove it."""
    return {"grant_type": "client_credentials", "client_id": client.client_id}


async def request_token_over_tls(
    base_url: str,
    form: dict[str, str],
    *,
    certificate: ClientCertificate | None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """Post `form` to the served token endpoint, presenting `certificate` if there is one."""
    async with httpx.AsyncClient(verify=client_ssl_context(certificate)) as http:
        return await http.post(f"{base_url}/oidc/token", data=form, headers=headers)


# Served over TLS


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("method", "registered_by"),
    [("tls_client_auth", "fingerprint"), ("self_signed_tls_client_auth", "pem")],
)
async def test_client_certificate_over_served_tls_gets_a_working_token(
    emulator: MosaicEmulator,
    base_url: str,
    certificate: ClientCertificate,
    method: Any,
    registered_by: str,
) -> None:
    """A client presenting its registered certificate gets a token with only its client_id,
    and the served API accepts that token."""
    registration = (
        {"certificate_sha256": certificate.sha256}
        if registered_by == "fingerprint"
        else {"certificate": certificate.cert_path.read_bytes()}
    )
    client = emulator.register_client(
        authentication_method=method, resources=[RISK], **registration
    )
    assert base_url.startswith("https://127.0.0.1:")
    async with httpx.AsyncClient(verify=client_ssl_context(certificate)) as http:
        response = await http.post(
            f"{base_url}/oidc/token", data={**only_client_id(client), "resource": RISK}
        )
        assert response.status_code == 200, response.text
        token = response.json()["access_token"]
        api = await http.get(
            f"{base_url}/risk/v1/recommendation", headers={"Authorization": f"Bearer {token}"}
        )
    claims = verified_claims(emulator, token)
    assert claims["sub"] == claims["client_id"] == client.client_id
    assert api.status_code == 200
    assert api.json()["client_id"] == client.client_id


@pytest.mark.anyio
async def test_another_clients_certificate_is_refused(
    base_url: str, tls_client: RegisteredClient, stranger_certificate: ClientCertificate
) -> None:
    """A certificate other than the registered one is refused, though TLS accepted it."""
    response = await request_token_over_tls(
        base_url, only_client_id(tls_client), certificate=stranger_certificate
    )
    assert_invalid_client(response, saying="not the one registered")


@pytest.mark.anyio
async def test_no_certificate_is_refused(base_url: str, tls_client: RegisteredClient) -> None:
    """A TLS client that presents no certificate is refused, and told one is needed."""
    response = await request_token_over_tls(base_url, only_client_id(tls_client), certificate=None)
    assert_invalid_client(response, saying="certificate is needed")


@pytest.mark.anyio
async def test_a_certificate_in_a_request_header_is_ignored(
    base_url: str, tls_client: RegisteredClient, certificate: ClientCertificate
) -> None:
    """The registered certificate sent in headers, as proxies forward one, proves nothing."""
    pem = quote(certificate.cert_path.read_text())
    headers = dict.fromkeys(
        ("X-Client-Cert", "X-SSL-Client-Cert", "SSL-Client-Cert", "X-Forwarded-Client-Cert"), pem
    )
    response = await request_token_over_tls(
        base_url, only_client_id(tls_client), certificate=None, headers=headers
    )
    assert_invalid_client(response, saying="certificate is needed")


# Certificate-bound tokens (RFC 8705 §3)


async def bound_token(
    base_url: str, client: RegisteredClient, certificate: ClientCertificate
) -> str:
    """A token for the risk API, requested over mutual TLS with `certificate`."""
    form = {**only_client_id(client), "resource": RISK}
    response = await request_token_over_tls(base_url, form, certificate=certificate)
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


async def call_risk_api(
    base_url: str, token: str, *, certificate: ClientCertificate | None
) -> httpx.Response:
    """The risk API's answer to `token`, on a connection presenting `certificate`, if any."""
    async with httpx.AsyncClient(verify=client_ssl_context(certificate)) as http:
        return await http.get(
            f"{base_url}/risk/v1/recommendation", headers={"Authorization": f"Bearer {token}"}
        )


@pytest.mark.anyio
async def test_a_token_issued_over_mutual_tls_is_bound_to_the_certificate(
    emulator: MosaicEmulator,
    base_url: str,
    tls_client: RegisteredClient,
    certificate: ClientCertificate,
) -> None:
    """The token's cnf claim holds the x5t#S256 of the certificate it was requested over: the
    base64url SHA-256 of its DER."""
    claims = verified_claims(emulator, await bound_token(base_url, tls_client, certificate))
    der = ssl.PEM_cert_to_DER_cert(certificate.cert_path.read_text())
    thumbprint = base64.urlsafe_b64encode(hashlib.sha256(der).digest()).decode().rstrip("=")
    assert claims["cnf"] == {"x5t#S256": thumbprint}


@pytest.mark.anyio
@pytest.mark.parametrize("presented", ["its own", "none", "another", "no TLS"])
async def test_a_bound_token_is_taken_only_over_a_connection_presenting_its_certificate(
    emulator: MosaicEmulator,
    base_url: str,
    tls_client: RegisteredClient,
    certificate: ClientCertificate,
    stranger_certificate: ClientCertificate,
    presented: str,
) -> None:
    """A bound token is taken on a connection presenting its certificate; on any other (none,
    another certificate, the in-process transport) the API answers 401 in Mosaic's shape, with
    an invalid_token challenge, and counts a rejected call."""
    token = await bound_token(base_url, tls_client, certificate)
    emulator.reset_counters()
    if presented == "no TLS":
        async with httpx.AsyncClient(transport=emulator.transport()) as http:
            response = await http.get(
                f"{HOST}/risk/v1/recommendation",
                headers={"Authorization": f"Bearer {token}"},
            )
    else:
        presenting = {"its own": certificate, "none": None, "another": stranger_certificate}
        response = await call_risk_api(base_url, token, certificate=presenting[presented])
    if presented == "its own":
        assert response.status_code == 200
        assert emulator.rejected_api_calls == {}
        return
    assert response.status_code == 401
    assert response.json() == {"message": "Invalid token", "error_code": 401}
    assert response.headers["WWW-Authenticate"].startswith('Bearer error="invalid_token"')
    assert emulator.rejected_api_calls == {"/risk/v1/recommendation": 1}


@pytest.mark.anyio
async def test_an_unbound_token_is_taken_on_any_connection(
    emulator: MosaicEmulator, base_url: str, stranger_certificate: ClientCertificate
) -> None:
    """A token requested without a certificate (a secret client's) is unbound: taken on a
    connection with or without one, as before."""
    client = emulator.register_client(resources=[RISK])
    form = {
        **only_client_id(client),
        "client_secret": client.client_secret,
        "resource": RISK,
    }
    token = (await request_token_over_tls(base_url, form, certificate=None)).json()["access_token"]
    assert "cnf" not in verified_claims(emulator, token)
    for presenting in (None, stranger_certificate):
        response = await call_risk_api(base_url, token, certificate=presenting)
        assert response.status_code == 200


# Without TLS


@pytest.mark.anyio
async def test_tls_client_auth_is_refused_over_the_in_process_transport(
    emulator: MosaicEmulator, tls_client: RegisteredClient
) -> None:
    """The in-process transport has no TLS, so a tls_client_auth request is refused, pointing
    at serve(tls=True)."""
    async with httpx.AsyncClient(transport=emulator.transport()) as http:
        response = await http.post(TOKEN_URL, data=only_client_id(tls_client))
    assert_invalid_client(response, saying="serve(tls=True)")


@pytest.mark.anyio
async def test_tls_client_cannot_authenticate_with_a_secret(
    emulator: MosaicEmulator, tls_client: RegisteredClient
) -> None:
    """A tls_client_auth client sending a client secret instead is refused."""
    form = {**only_client_id(tls_client), "client_secret": "guess"}
    async with httpx.AsyncClient(transport=emulator.transport()) as http:
        response = await http.post(TOKEN_URL, data=form)
    assert_invalid_client(response, saying="authenticates with tls_client_auth")


@pytest.mark.anyio
@pytest.mark.parametrize("with_extension", [True, False], ids=["tls-extension", "none"])
async def test_asgi_app_reads_the_certificate_from_the_tls_extension(
    emulator: MosaicEmulator,
    tls_client: RegisteredClient,
    certificate: ClientCertificate,
    with_extension: bool,
) -> None:
    """Under any ASGI server, the client certificate comes from the scope's TLS extension."""
    scope: dict[str, Any] = {
        "type": "http",
        "method": "POST",
        "scheme": "https",
        "path": "/oidc/token",
        "query_string": b"",
        "headers": [
            (b"host", b"emulator.test"),
            (b"content-type", b"application/x-www-form-urlencoded"),
        ],
    }
    if with_extension:
        chain = [certificate.cert_path.read_text()]
        scope["extensions"] = {"tls": {"client_cert_chain": chain}}
    body = urlencode(only_client_id(tls_client)).encode()
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> MutableMapping[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    await emulator.app(scope, receive, send)
    assert sent[0]["status"] == (200 if with_extension else 401)


# Certificates


def test_make_client_certificate_writes_a_certificate_and_a_private_key(tmp_path: Path) -> None:
    """The files hold a PEM certificate with the given fingerprint and a key only its owner
    may read; the same name is not written twice."""
    made = make_client_certificate(tmp_path, name="app")
    assert (made.cert_path, made.key_path) == (tmp_path / "app-cert.pem", tmp_path / "app-key.pem")
    der = ssl.PEM_cert_to_DER_cert(made.cert_path.read_text())
    assert made.sha256 == hashlib.sha256(der).hexdigest()
    assert stat.S_IMODE(made.key_path.stat().st_mode) == 0o600
    assert b"PRIVATE KEY" in made.key_path.read_bytes()
    with pytest.raises(ConfigurationError, match="exists already"):
        make_client_certificate(tmp_path, name="app")


@pytest.mark.parametrize(
    "encode",
    [str, str.encode, ssl.PEM_cert_to_DER_cert],
    ids=["pem-text", "pem-bytes", "der"],
)
def test_register_client_fingerprints_a_certificate_in_any_encoding(
    emulator: MosaicEmulator,
    certificate: ClientCertificate,
    encode: Callable[[str], str | bytes],
) -> None:
    """A certificate given as PEM text, PEM bytes or DER is registered by its SHA-256."""
    client = emulator.register_client(certificate=encode(certificate.cert_path.read_text()))
    assert client.authentication_method == "tls_client_auth"
    assert client.certificate_sha256 == certificate.sha256
