"""The emulator as an httpx transport, for clients that never open a socket."""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx

if TYPE_CHECKING:
    from ._asgi import RequestHandler


class EmulatorTransport(httpx.AsyncBaseTransport):
    """Hands every request to the emulator, whatever its host: an async-only transport."""

    def __init__(self, handle_request: RequestHandler) -> None:
        self._handle_request = handle_request

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await request.aread()
        return await self._handle_request(request)
