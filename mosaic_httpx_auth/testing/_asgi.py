"""The emulator as an ASGI 3 application: a thin adapter from ASGI to one request handler."""

from __future__ import annotations

import ssl
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Protocol
from urllib.parse import quote

import httpx

from ._faults import DroppedConnection

# The types httpx.ASGITransport and the ASGI spec use.
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class RequestHandler(Protocol):
    """What answers the emulator's requests: `MosaicEmulator.handle_request`."""

    def __call__(
        self, request: httpx.Request, *, client_certificate: bytes | None = None
    ) -> Awaitable[httpx.Response]: ...


class EmulatorApp:
    """An ASGI 3 application that turns each HTTP request into an `httpx.Request` for a handler.

    Answers the lifespan protocol, so any ASGI server can run it. The certificate a TLS client
    presented reaches the handler from the ASGI TLS extension
    (``scope["extensions"]["tls"]["client_cert_chain"]``), which a server fills in and a
    client cannot: `serve(tls=True)` runs uvicorn with a protocol that does.
    """

    def __init__(self, handle_request: RequestHandler) -> None:
        self._handle_request = handle_request

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _run_lifespan(receive, send)
            return
        if scope["type"] != "http":
            raise ValueError(f"the Mosaic emulator serves HTTP only, not {scope['type']!r}")
        request = await _read_request(scope, receive)
        if request is None:
            return
        try:
            response = await self._handle_request(
                request, client_certificate=_client_certificate(scope)
            )
        except DroppedConnection:
            # ASGI cannot close a connection without answering: announce a body and fail before
            # sending it. The server then closes the connection mid-response (a transport error
            # for the client), and `httpx.ASGITransport` raises this exception to its caller.
            await send(
                {
                    "type": "http.response.start",
                    "status": 502,
                    "headers": [(b"content-length", b"1")],
                }
            )
            raise
        await send(
            {
                "type": "http.response.start",
                "status": response.status_code,
                "headers": [(name.lower(), value) for name, value in response.headers.raw],
            }
        )
        await send({"type": "http.response.body", "body": response.content})


async def _run_lifespan(receive: Receive, send: Send) -> None:
    """Acknowledge startup and shutdown: the emulator has nothing to set up or tear down."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def _client_certificate(scope: Scope) -> bytes | None:
    """The certificate (DER) the client presented over TLS, if the server says there was one."""
    tls = (scope.get("extensions") or {}).get("tls") or {}
    # The ASGI TLS extension lists PEM certificates, the client's own first.
    chain = list(tls.get("client_cert_chain") or ())
    return ssl.PEM_cert_to_DER_cert(chain[0]) if chain else None


async def _read_request(scope: Scope, receive: Receive) -> httpx.Request | None:
    """The request with its whole body; None if the client disconnected before sending it."""
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        body += message.get("body", b"")
        if not message.get("more_body", False):
            break
    headers: list[tuple[bytes, bytes]] = list(scope["headers"])
    host = next((value for name, value in headers if name.lower() == b"host"), None)
    if host is None:
        server_host, server_port = scope.get("server") or ("localhost", None)
        host = (server_host if server_port is None else f"{server_host}:{server_port}").encode()
    target = scope.get("raw_path") or quote(scope["path"]).encode()
    if scope.get("query_string"):
        target += b"?" + scope["query_string"]
    url = httpx.URL(scheme=scope.get("scheme", "http"), netloc=host, raw_path=target)
    return httpx.Request(scope["method"], url, headers=headers, content=bytes(body))
