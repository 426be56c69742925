"""uvicorn's HTTP/1.1 protocol, telling the application which certificate a TLS client presented.

uvicorn does not fill in the ASGI TLS extension, and only the connection's transport knows the
peer certificate. This protocol reads it once the TLS handshake is over (asyncio calls
``connection_made`` after it) and adds it to the scope of every request on the connection,
where no request header can put it. Imported only to serve over TLS, as it imports uvicorn.
"""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING

from uvicorn.protocols.http.h11_impl import H11Protocol

if TYPE_CHECKING:
    import asyncio

    from uvicorn._types import ASGI3Application, ASGIReceiveCallable, ASGISendCallable, Scope


class ClientCertificateProtocol(H11Protocol):
    """uvicorn's h11 protocol that fills in ``scope["extensions"]["tls"]`` on TLS connections.

    ``client_cert_chain`` holds the client's certificate (PEM), or nothing if it sent none.
    """

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        ssl_object: ssl.SSLObject | None = transport.get_extra_info("ssl_object")
        if ssl_object is None:
            return
        certificate = ssl_object.getpeercert(binary_form=True)
        chain = [] if certificate is None else [ssl.DER_cert_to_PEM_cert(certificate)]
        # The keys of the ASGI TLS extension; what uvicorn cannot tell is None.
        tls: dict[object, object] = {
            "server_cert": None,
            "client_cert_chain": chain,
            "client_cert_name": None,
            "client_cert_error": None,
            "tls_version": None,
            "cipher_suite": None,
        }
        self.app = _with_tls_extension(self.app, tls)


def _with_tls_extension(app: ASGI3Application, tls: dict[object, object]) -> ASGI3Application:
    """`app`, given `tls` as the TLS extension of every HTTP and WebSocket scope."""

    async def app_with_tls(
        scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        if scope["type"] != "lifespan":
            scope.setdefault("extensions", {})["tls"] = dict(tls)
        await app(scope, receive, send)

    return app_with_tls
