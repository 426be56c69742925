"""The emulator in process: an httpx transport for clients that never open a socket, and the
`MosaicAuth` whose own token clients use it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx

from .._auth import MosaicAuth

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._asgi import RequestHandler


class EmulatorTransport(httpx.BaseTransport, httpx.AsyncBaseTransport):
    """Hands every request to the emulator, whatever its host, for `httpx.Client` and
    `httpx.AsyncClient` alike.

    It holds no connection, so that any thread and any event loop may share it, and closing
    it closes nothing.
    """

    def __init__(
        self,
        handle_request: RequestHandler,
        handle_request_sync: Callable[[httpx.Request], httpx.Response],
    ) -> None:
        self._handle_request = handle_request
        self._handle_request_sync = handle_request_sync

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.read()
        return self._handle_request_sync(request)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await request.aread()
        return await self._handle_request(request)


class EmulatedMosaicAuth(MosaicAuth):
    """A `MosaicAuth` whose own token clients reach the emulator through `token_transport`.

    An `http_client` would belong to one event loop; the clients `MosaicAuth` opens itself,
    one per event loop and one on its thread for `httpx.Client`, serve every caller.
    """

    def __init__(
        self, client_id: str, *, token_transport: EmulatorTransport, **options: Any
    ) -> None:
        self._token_transport = token_transport
        super().__init__(client_id, **options)
