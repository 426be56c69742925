"""Every client authentication method end to end: MosaicAuth against the emulator."""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx
import pytest

from mosaic_httpx_auth import RISK_RESOURCE, TokenRequestError, generate_signing_key
from mosaic_httpx_auth.testing import MosaicEmulator, client_ssl_context, make_client_certificate

if TYPE_CHECKING:
    from pathlib import Path

    from mosaic_httpx_auth import SigningKeyPair

    from .helpers import FakeClock

pytestmark = pytest.mark.anyio

API = "https://api.transmitsecurity.io"
RSA = generate_signing_key("RS256")
PS = generate_signing_key("PS256")
EC = generate_signing_key("ES256")


async def call_risk_api(emulator: MosaicEmulator, auth: httpx.Auth) -> int:
    async with httpx.AsyncClient(auth=auth, transport=emulator.transport()) as http:
        return (await http.post(f"{API}/risk/v1/action/recommendation", json={})).status_code


@pytest.mark.parametrize("method", ["client_secret_post", "client_secret_basic"])
async def test_secret_methods(emulator: MosaicEmulator, clock: FakeClock, method: str) -> None:
    """A secret client gets tokens with its secret in the form or in HTTP Basic."""
    client = emulator.register_client(resources=[RISK_RESOURCE], authentication_method=method)  # type: ignore[arg-type]
    auth = emulator.auth(client, client_auth=method, resource=RISK_RESOURCE, clock=clock)
    assert await call_risk_api(emulator, auth) == 200
    assert emulator.token_requests == {RISK_RESOURCE: 1}


@pytest.mark.parametrize(("key", "algorithm"), [(RSA, "RS256"), (PS, "PS256"), (EC, "ES256")])
async def test_private_key_jwt(
    emulator: MosaicEmulator, clock: FakeClock, key: SigningKeyPair, algorithm: str
) -> None:
    """A client registered with a public JWKS gets tokens with assertions signed by its key."""
    client = emulator.register_client(resources=[RISK_RESOURCE], jwks=key.public_jwks)
    auth = emulator.auth(
        client,
        private_key=key.private_key_pem,
        signing_algorithm=algorithm,
        resource=RISK_RESOURCE,
        clock=clock,
    )
    assert await call_risk_api(emulator, auth) == 200
    # A fresh assertion for each token request: a second fetch is accepted too.
    assert (await auth.get_token(None)).claims["sub"] == client.client_id


@pytest.mark.parametrize("region", ["us", "eu", "sandbox"])
async def test_private_key_jwt_in_each_region(
    emulator: MosaicEmulator, clock: FakeClock, region: str
) -> None:
    """The emulator stands in for every region: an assertion made out to any region's token
    endpoint is its own."""
    client = emulator.register_client(jwks=RSA.public_jwks)
    auth = emulator.auth(client, private_key=RSA.private_key_pem, region=region, clock=clock)
    assert (await auth.get_token()).claims["sub"] == client.client_id


async def test_private_key_jwt_over_a_served_emulator(
    emulator: MosaicEmulator, clock: FakeClock
) -> None:
    """Served, the emulator takes assertions made out to its URL: MosaicAuth's, given only the
    base URL, get tokens over a socket; the URL is no longer its own once serving stops."""
    client = emulator.register_client(resources=[RISK_RESOURCE], jwks=RSA.public_jwks)
    with emulator.serve() as base_url:
        async with httpx.AsyncClient() as token_client:
            auth = emulator.auth(
                client,
                private_key=RSA.private_key_pem,
                base_url=base_url,
                http_client=token_client,
                resource=RISK_RESOURCE,
                clock=clock,
            )
            assert (await auth.get_token()).claims["sub"] == client.client_id
    stale = emulator.auth(
        client, private_key=RSA.private_key_pem, token_url=f"{base_url}/oidc/token", clock=clock
    )
    with pytest.raises(TokenRequestError) as caught:
        await stale.get_token()
    assert "aud must be the token endpoint URL" in (caught.value.error_description or "")


async def test_a_replayed_assertion_is_refused(
    emulator: MosaicEmulator, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An assertion sent twice (same jti) is refused the second time with a clear error."""
    client = emulator.register_client(resources=[RISK_RESOURCE], jwks=RSA.public_jwks)
    auth = emulator.auth(client, private_key=RSA.private_key_pem, clock=clock)
    # The stopped clock and a fixed jti make the library sign the very same assertion twice.
    monkeypatch.setattr(
        "mosaic_httpx_auth._client_auth.secrets.token_urlsafe", lambda size: "same-jti"
    )
    await auth.get_token(None)
    with pytest.raises(TokenRequestError, match="invalid_client") as caught:
        await auth.get_token(RISK_RESOURCE)
    assert caught.value.status_code == 401
    assert "already" in (caught.value.error_description or "")


async def test_an_assertion_signed_by_another_key_is_refused(
    emulator: MosaicEmulator, clock: FakeClock
) -> None:
    """Signing with a key the app did not register fails with a 401 invalid_client."""
    client = emulator.register_client(jwks=RSA.public_jwks)
    other = generate_signing_key("RS256", key_id=RSA.key_id)
    auth = emulator.auth(client, private_key=other.private_key_pem, key_id=RSA.key_id, clock=clock)
    with pytest.raises(TokenRequestError) as caught:
        await auth.get_token()
    assert (caught.value.status_code, caught.value.error) == (401, "invalid_client")
    assert "refused a token" in str(caught.value)


async def test_tls_client_auth_over_mutual_tls(emulator: MosaicEmulator, tmp_path: Path) -> None:
    """A certificate client gets tokens over a real mutual-TLS connection on 127.0.0.1, through
    an http_client of its own, and the API takes them over a connection presenting it too."""
    certificate = make_client_certificate(tmp_path)
    client = emulator.register_client(
        resources=[RISK_RESOURCE], certificate_sha256=certificate.sha256
    )
    with emulator.serve(tls=True) as base_url:
        async with (
            httpx.AsyncClient(verify=client_ssl_context(certificate)) as token_client,
            httpx.AsyncClient(base_url=base_url, verify=client_ssl_context(certificate)) as http,
        ):
            http.auth = emulator.auth(
                client,
                base_url=base_url,
                http_client=token_client,
                resource=RISK_RESOURCE,
            )
            response = await http.get("/risk/v1/recommendation")
    assert response.status_code == 200
    assert response.json()["client_id"] == client.client_id


async def test_tls_client_auth_with_another_certificate_is_refused(
    emulator: MosaicEmulator, tmp_path: Path
) -> None:
    """The emulator refuses a certificate whose fingerprint is not the registered one."""
    registered = make_client_certificate(tmp_path, name="registered")
    other = make_client_certificate(tmp_path, name="other")
    client = emulator.register_client(certificate_sha256=registered.sha256)
    with emulator.serve(tls=True) as base_url:
        async with httpx.AsyncClient(verify=client_ssl_context(other)) as token_client:
            auth = emulator.auth(client, base_url=base_url, http_client=token_client)
            with pytest.raises(TokenRequestError) as caught:
                await auth.get_token()
    assert (caught.value.status_code, caught.value.error) == (401, "invalid_client")
