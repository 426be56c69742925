"""Serving the emulator on a local port: uvicorn in a background thread.

uvicorn (the ``emulator`` extra) is imported only when a server starts, so that
``mosaic_httpx_auth.testing`` works without it.
"""

from __future__ import annotations

import contextlib
import logging
import math
import socket
import threading
import time
from typing import TYPE_CHECKING

from ._faults import DroppedConnection

if TYPE_CHECKING:
    from collections.abc import Iterator

    import uvicorn

    from ._asgi import ASGIApp

_HOST = "127.0.0.1"
_STARTUP_TIMEOUT = 10.0


class _HideDroppedConnections(logging.Filter):
    """Keeps deliberate connection drops out of uvicorn's "Exception in ASGI application" log."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], DroppedConnection))


@contextlib.contextmanager
def serve_locally(app: ASGIApp, *, port: int, shutdown_timeout: float) -> Iterator[str]:
    """Serve `app` on 127.0.0.1:`port` (0: a free port) until the block exits; yield the base URL.

    Raises `RuntimeError` if the server does not start, or does not stop within
    `shutdown_timeout` seconds (in-flight requests get that long to finish).
    """
    try:
        import uvicorn
    except ImportError as exc:
        raise ImportError(
            "serving the Mosaic emulator on a port needs uvicorn: "
            "install mosaic-httpx-auth[emulator]"
        ) from exc

    # Binding here, before the server starts, gives the port without a race and makes
    # connections queue in the backlog even before uvicorn accepts them.
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    uvicorn_log = logging.getLogger("uvicorn.error")
    hide_drops = _HideDroppedConnections()
    uvicorn_log.addFilter(hide_drops)
    try:
        listener.bind((_HOST, port))
        listener.listen()
        bound_port = listener.getsockname()[1]
        config = uvicorn.Config(
            app,
            http="h11",
            loop="asyncio",
            ws="none",
            lifespan="on",
            # Leave the process's logging configuration alone and log no access lines.
            log_config=None,
            access_log=False,
            proxy_headers=False,
            timeout_graceful_shutdown=math.ceil(shutdown_timeout),
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(
            target=server.run,
            kwargs={"sockets": [listener]},
            name=f"mosaic-emulator-{bound_port}",
            daemon=True,  # a server that would not stop must not keep the process alive
        )
        thread.start()
        try:
            _wait_until_started(server, thread)
            yield f"http://{_HOST}:{bound_port}"
        finally:
            server.should_exit = True
            thread.join(shutdown_timeout + 1.0)
            if thread.is_alive():
                server.force_exit = True
                thread.join(1.0)
            if thread.is_alive():
                raise RuntimeError(f"the Mosaic emulator on port {bound_port} did not stop")
    finally:
        listener.close()
        uvicorn_log.removeFilter(hide_drops)


def _wait_until_started(server: uvicorn.Server, thread: threading.Thread) -> None:
    """Return once uvicorn accepts connections; raise if it stops or takes too long."""
    deadline = time.monotonic() + _STARTUP_TIMEOUT
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("the Mosaic emulator server stopped while starting")
        if time.monotonic() > deadline:
            raise RuntimeError("the Mosaic emulator server did not start in time")
        time.sleep(0.005)
