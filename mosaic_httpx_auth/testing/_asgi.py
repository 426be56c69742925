"""The emulator as an ASGI 3 application: a thin adapter from ASGI to one request handler."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import quote

import httpx

from ._faults import DroppedConnection

# The types httpx.ASGITransport and the ASGI spec use.
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
RequestHandler = Callable[[httpx.Request], Awaitable[httpx.Response]]


class EmulatorApp:
    """An ASGI 3 application that turns each HTTP request into an `httpx.Request` for a handler.

    Answers the lifespan protocol, so any ASGI server can run it.
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
            response = await self._handle_request(request)
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
