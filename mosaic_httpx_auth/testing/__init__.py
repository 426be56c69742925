"""An in-process emulation of Mosaic's token service, for testing code that calls Mosaic.

`MosaicEmulator` issues real RS256 tokens to the clients registered with it, checks them on
``/risk/``, ``/verify/`` and ``/cis/`` API paths, and can be told to fail, delay or drop token
requests::

    emulator = MosaicEmulator()
    client = emulator.register_client(resources=["https://risk.identity.security"])
    auth = emulator.auth(client, resource="https://risk.identity.security")
    async with httpx.AsyncClient(auth=auth, transport=emulator.transport()) as http:
        await http.post("https://api.transmitsecurity.io/risk/v1/action/result")

The transport and the auth serve `httpx.Client` too: ``with httpx.Client(auth=auth,
transport=emulator.transport()) as http:``.

Clients authenticate with any of Mosaic's methods: a client secret (the default),
``private_key_jwt`` (``register_client(jwks=public_keys)``), or mutual TLS
(``register_client(certificate_sha256=...)``), which needs the emulator served over TLS; its
tokens are bound to the certificate, which the API client presents too::

    certificate = make_client_certificate(tmp_path)
    client = emulator.register_client(certificate_sha256=certificate.sha256)
    context = client_ssl_context(certificate)
    with emulator.serve(tls=True) as base_url:
        auth = emulator.auth(client, ssl_context=context, base_url=base_url)
        async with httpx.AsyncClient(auth=auth, verify=context) as http:
            await http.get(f"{base_url}/risk/v1/...")

Serving it on a port (`MosaicEmulator.serve`) needs the ``emulator`` extra (uvicorn).
"""

from __future__ import annotations

from ._clients import RegisteredClient
from ._emulator import MosaicEmulator
from ._tls import ClientCertificate, client_ssl_context, make_client_certificate

__all__ = [
    "ClientCertificate",
    "MosaicEmulator",
    "RegisteredClient",
    "client_ssl_context",
    "make_client_certificate",
]
