"""Serving the emulator on a local port, over HTTP or HTTPS: uvicorn in a background thread.

uvicorn (the ``emulator`` extra) is imported only when a server starts, so that
``mosaic_httpx_auth.testing`` works without it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import socket
import ssl
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._faults import DroppedConnection
from ._tls import write_server_certificate

if TYPE_CHECKING:
    from collections.abc import Iterator

    import uvicorn

    from ._asgi import ASGIApp

_HOST = "127.0.0.1"
_STARTUP_TIMEOUT = 10.0
# How often a stopping server looks for connections to drop (uvicorn itself checks every 0.1 s).
_STOPPING_POLL_INTERVAL = 0.02


class _HideDroppedConnections(logging.Filter):
    """Keeps deliberate connection drops out of uvicorn's "Exception in ASGI application" log."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], DroppedConnection))


@contextlib.contextmanager
def serve_locally(
    app: ASGIApp, *, port: int, shutdown_timeout: float, tls: bool = False
) -> Iterator[str]:
    """Serve `app` on 127.0.0.1:`port` (0: a free port) until the block exits; yield the base URL.

    With `tls`, serve HTTPS with a new certificate from the test CA of `_tls`, asking clients
    for a certificate (optional) and passing it to `app` in the ASGI TLS extension.

    Raises `RuntimeError` if the server does not start, or does not stop within
    `shutdown_timeout` seconds (in-flight requests get that long to finish).
    """
    try:
        import uvicorn
    except ImportError as exc:
        raise ImportError(
            "serving the Mosaic emulator on a port needs uvicorn: "
            "pip install 'mosaic-httpx-auth[emulator]'"
        ) from exc

    # Binding here, before the server starts, gives the port without a race and makes
    # connections queue in the backlog even before uvicorn accepts them.
    # IPPROTO_TCP named outright: asyncio turns Nagle's algorithm off only on sockets whose
    # `proto` says TCP, and with it on, each response's body waits for the client's delayed ACK
    # of its headers: 40 ms more per request.
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    uvicorn_log = logging.getLogger("uvicorn.error")
    hide_drops = _HideDroppedConnections()
    uvicorn_log.addFilter(hide_drops)
    # Holds the server's key and certificate while it runs; uvicorn reads them as it starts.
    certificates = contextlib.ExitStack()
    try:
        listener.bind((_HOST, port))
        listener.listen()
        bound_port = listener.getsockname()[1]
        options = _server_options(
            shutdown_timeout=shutdown_timeout, tls=tls, certificates=certificates
        )
        server = uvicorn.Server(uvicorn.Config(app, **options))
        thread = _start_in_thread(server, listener, bound_port)
        try:
            _wait_until_started(server, thread)
            yield f"{'https' if tls else 'http'}://{_HOST}:{bound_port}"
        finally:
            _stop(server, thread, shutdown_timeout=shutdown_timeout, port=bound_port)
    finally:
        listener.close()
        uvicorn_log.removeFilter(hide_drops)
        certificates.close()


def _server_options(
    *, shutdown_timeout: float, tls: bool, certificates: contextlib.ExitStack
) -> dict[str, Any]:
    """Options for `uvicorn.Config` besides the app; TLS files live as long as `certificates`."""
    protocol_options: dict[str, Any] = {"http": "h11"}
    if tls:
        directory = certificates.enter_context(
            tempfile.TemporaryDirectory(prefix="mosaic-emulator-tls-")
        )
        protocol_options.update(_tls_options(Path(directory)))
    return {
        "loop": "asyncio",
        "ws": "none",
        "lifespan": "on",
        # Leave the process's logging configuration alone and log no access lines.
        "log_config": None,
        "access_log": False,
        "proxy_headers": False,
        "timeout_graceful_shutdown": math.ceil(shutdown_timeout),
        **protocol_options,
    }


def _start_in_thread(
    server: uvicorn.Server, listener: socket.socket, port: int
) -> threading.Thread:
    """Start `server` on `listener` in a background thread of its own, and return the thread."""
    thread = threading.Thread(
        target=_run,
        args=(server, listener),
        name=f"mosaic-emulator-{port}",
        daemon=True,  # a server that would not stop must not keep the process alive
    )
    thread.start()
    return thread


def _stop(
    server: uvicorn.Server, thread: threading.Thread, *, shutdown_timeout: float, port: int
) -> None:
    """Stop `server` gracefully within `shutdown_timeout`, then by force; raise if it lingers."""
    server.should_exit = True
    thread.join(shutdown_timeout + 1.0)
    if thread.is_alive():
        server.force_exit = True
        thread.join(1.0)
    if thread.is_alive():
        raise RuntimeError(f"the Mosaic emulator on port {port} did not stop")


def _run(server: uvicorn.Server, listener: socket.socket) -> None:
    """Run `server` on `listener` until it stops, as `uvicorn.Server.run` does, and keep the
    connections it closes from holding up the stop."""
    asyncio.run(_serve(server, listener))


async def _serve(server: uvicorn.Server, listener: socket.socket) -> None:
    dropping = asyncio.create_task(_drop_closed_connections_while_stopping(server))
    try:
        await server.serve(sockets=[listener])
    finally:
        dropping.cancel()


async def _drop_closed_connections_while_stopping(server: uvicorn.Server) -> None:
    """Once `server` is stopping, drop each connection it has closed with nothing left to send.

    uvicorn closes idle keep-alive connections as it stops, and over TLS a close waits for the
    client's close_notify, which a client idling in its connection pool never sends: stopping
    would take all of `shutdown_timeout`. A connection with a request in flight is closed only
    once its response is sent, so that request still gets up to `shutdown_timeout`.
    """
    while True:
        await asyncio.sleep(_STOPPING_POLL_INTERVAL)
        if not server.should_exit:
            continue
        for connection in list(server.server_state.connections):
            transport = connection.transport
            if transport.is_closing() and transport.get_write_buffer_size() == 0:
                transport.abort()


def _tls_options(directory: Path) -> dict[str, Any]:
    """uvicorn options to serve HTTPS for 127.0.0.1 with files made in `directory`, asking
    for a client certificate and telling the app which one came."""
    from ._tls_protocol import ClientCertificateProtocol

    files = write_server_certificate(directory)
    return {
        # Replaces "h11": the same protocol, which also reads the client's certificate.
        "http": ClientCertificateProtocol,
        "ssl_certfile": files.cert_path,
        "ssl_keyfile": files.key_path,
        # Optional, so that a client without a certificate reaches the emulator and hears
        # why it is refused. A certificate must come from the test CA: `ssl` verifies every
        # certificate it is sent (see `_tls`).
        "ssl_cert_reqs": ssl.CERT_OPTIONAL,
        "ssl_ca_certs": files.client_ca_path,
    }


def _wait_until_started(server: uvicorn.Server, thread: threading.Thread) -> None:
    """Return once uvicorn accepts connections; raise if it stops or takes too long."""
    deadline = time.monotonic() + _STARTUP_TIMEOUT
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("the Mosaic emulator server stopped while starting")
        if time.monotonic() > deadline:
            raise RuntimeError("the Mosaic emulator server did not start in time")
        time.sleep(0.005)
