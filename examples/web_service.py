"""A web service that asks Mosaic for a risk recommendation on every login it handles.

One `httpx.AsyncClient` with `MosaicAuth` is opened in the app's lifespan and shared by every
request, so the whole service makes one token request per hour, not one per login.

Run it against the emulator (two terminals)::

    mosaic-httpx-auth emulator          # prints the MOSAIC_* settings to export
    uvicorn examples.web_service:app    # with those settings exported
    curl -X POST localhost:8000/logins -d '{"action_token": "..."}'

With real credentials in MOSAIC_CLIENT_ID and MOSAIC_CLIENT_SECRET it calls real Mosaic.
"""

from __future__ import annotations

import contextlib
import os
from typing import TYPE_CHECKING

import httpx
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from mosaic_httpx_auth import RISK_RESOURCE, MosaicAuth, MosaicAuthError

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from starlette.requests import Request


def create_app(
    *, auth: MosaicAuth | None = None, transport: httpx.AsyncBaseTransport | None = None
) -> Starlette:
    """The service; `auth` and `transport` default to Mosaic as configured in the environment."""
    base_url = os.environ.get("MOSAIC_BASE_URL", "https://api.transmitsecurity.io")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        mosaic_auth = auth or MosaicAuth.from_env(resources={f"{base_url}/risk": RISK_RESOURCE})
        async with (
            mosaic_auth,
            httpx.AsyncClient(auth=mosaic_auth, base_url=base_url, transport=transport) as mosaic,
        ):
            app.state.mosaic = mosaic
            yield

    async def login(request: Request) -> JSONResponse:
        body = await request.json()
        mosaic: httpx.AsyncClient = request.app.state.mosaic
        try:
            response = await mosaic.get(
                "/risk/v1/recommendation", params={"action_token": body.get("action_token", "")}
            )
        except MosaicAuthError:
            # No token: Mosaic can't be asked. This service chooses to fail closed.
            return JSONResponse({"decision": "deny", "reason": "risk service unavailable"}, 503)
        if response.status_code != 200:
            return JSONResponse({"decision": "deny", "reason": "risk check failed"}, 502)
        return JSONResponse({"decision": "allow", "recommendation": response.json()})

    return Starlette(routes=[Route("/logins", login, methods=["POST"])], lifespan=lifespan)


app = create_app()
