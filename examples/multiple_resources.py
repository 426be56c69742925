"""One client for three Mosaic APIs, each request carrying its own API's token.

Identity Management (`/cis/...`) takes a token requested without a resource, Detection and
Response (`/risk/...`) and Identity Verification (`/verify/...`) each take one for their
resource. `resources` routes each request to the right token by URL prefix.

Run `python examples/multiple_resources.py`: against real Mosaic with MOSAIC_CLIENT_ID and
MOSAIC_CLIENT_SECRET set, else against the emulator.
"""

from __future__ import annotations

import os

import anyio
import httpx

from mosaic_httpx_auth import RISK_RESOURCE, VERIFY_RESOURCE, MosaicAuth
from mosaic_httpx_auth.testing import MosaicEmulator

API = os.environ.get("MOSAIC_BASE_URL", "https://api.transmitsecurity.io")
ROUTES = {f"{API}/risk": RISK_RESOURCE, f"{API}/verify": VERIFY_RESOURCE}


async def main() -> None:
    if os.environ.get("MOSAIC_CLIENT_ID"):
        auth, transport = MosaicAuth.from_env(resources=ROUTES), None
    else:
        emulator = MosaicEmulator()
        app = emulator.register_client(resources=[RISK_RESOURCE, VERIFY_RESOURCE])
        auth, transport = emulator.auth(app, resources=ROUTES), emulator.transport()

    async with auth, httpx.AsyncClient(auth=auth, base_url=API, transport=transport) as client:
        for method, path in [
            ("GET", "/cis/v1/users"),
            ("POST", "/risk/v1/action/recommendation"),
            ("GET", "/verify/api/v1/sessions"),
        ]:
            response = await client.request(method, path)
            resource = auth.resource_for(response.request.url) or "none (Identity Management)"
            print(f"{method:4} {path:32} HTTP {response.status_code}  resource: {resource}")


if __name__ == "__main__":
    anyio.run(main)
