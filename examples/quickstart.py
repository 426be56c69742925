"""The mosaic-httpx-auth quickstart: what the library does, in a short timed report.

Run `make demo`, or `python examples/quickstart.py`. With MOSAIC_CLIENT_ID and
MOSAIC_CLIENT_SECRET set (MOSAIC_TOKEN_URL and MOSAIC_BASE_URL for another region) it calls
real Mosaic; without them it runs against the emulator that ships with the library.
"""

from __future__ import annotations

import os
import sys
import time
from collections import Counter

import anyio
import httpx

from mosaic_httpx_auth import RISK_RESOURCE, VERIFY_RESOURCE, MosaicAuth, MosaicAuthError
from mosaic_httpx_auth.testing import MosaicEmulator

CONCURRENT_CALLS = 100


class Demo:
    """One MosaicAuth and one API client, against real Mosaic or the emulator."""

    def __init__(self) -> None:
        self.emulator: MosaicEmulator | None = None
        self.token_requests = 0
        transport: httpx.AsyncBaseTransport | None = None
        settings: dict[str, str] = {}
        if not (os.environ.get("MOSAIC_CLIENT_ID") and os.environ.get("MOSAIC_CLIENT_SECRET")):
            self.emulator = MosaicEmulator()
            client = self.emulator.register_client(resources=[RISK_RESOURCE, VERIFY_RESOURCE])
            settings = {"client_id": client.client_id, "client_secret": client.client_secret}
            transport = self.emulator.transport()
        # Counting what goes to the token endpoint shows single flight at work.
        token_client = httpx.AsyncClient(
            transport=transport, event_hooks={"request": [self._count_token_request]}
        )
        self.auth = MosaicAuth.from_env(
            **settings,
            http_client=token_client,
            resources={"/risk": RISK_RESOURCE, "/verify": VERIFY_RESOURCE},
        )
        self.base_url = self.auth.base_url
        self.token_client = token_client
        self.api = httpx.AsyncClient(auth=self.auth, base_url=self.base_url, transport=transport)

    async def _count_token_request(self, request: httpx.Request) -> None:
        self.token_requests += 1

    async def revoke_tokens(self) -> bool:
        """Revoke every token, if an emulator serves the demo: in this process, or on this
        machine (`mosaic-httpx-auth emulator`), at its own endpoint. Real Mosaic cannot."""
        if self.emulator is not None:
            self.emulator.revoke_tokens()
            return True
        if httpx.URL(self.base_url).host not in ("127.0.0.1", "localhost", "::1"):
            return False
        try:
            async with httpx.AsyncClient() as http:
                response = await http.post(f"{self.base_url}/emulator/revoke")
        except httpx.HTTPError:
            return False
        return response.status_code == 200  # another local server answers 404

    async def aclose(self) -> None:
        await self.api.aclose()
        await self.token_client.aclose()


async def concurrent_calls(demo: Demo) -> str:
    statuses: Counter[int] = Counter()
    failures: list[MosaicAuthError] = []

    async def call() -> None:
        try:
            response = await demo.api.get("/cis/v1/users", params={"page_limit": 1})
        except MosaicAuthError as exc:
            failures.append(exc)  # the same cause for every call: reported once, below
        else:
            statuses[response.status_code] += 1

    async with anyio.create_task_group() as tasks:
        for _ in range(CONCURRENT_CALLS):
            tasks.start_soon(call)
    if failures:
        raise failures[0]
    return " · ".join(f"{count} x HTTP {status}" for status, count in sorted(statuses.items()))


async def two_resources(demo: Demo) -> str:
    lines = []
    for resource in (RISK_RESOURCE, VERIFY_RESOURCE):
        try:
            token = await demo.auth.get_token(resource)
        except MosaicAuthError as exc:
            lines.append(f"{resource}: no token ({exc})")
        else:
            lines.append(f"token for {resource}: aud={token.claims.get('aud')}")
    if demo.emulator is not None:
        risk = await demo.api.post("/risk/v1/action/recommendation", json={})
        verify = await demo.api.get("/verify/api/v1/sessions")
        lines.append(
            f"POST /risk/... -> HTTP {risk.status_code}, "
            f"GET /verify/... -> HTTP {verify.status_code}"
        )
    return "\n   ".join(lines)


async def revoked_token(demo: Demo) -> str:
    if not await demo.revoke_tokens():
        return "skipped: only the Mosaic emulator can revoke tokens on demand"
    response = await demo.api.post("/risk/v1/action/recommendation", json={})
    retries = len(response.history)
    return f"HTTP {response.status_code} after {retries} transparent retry (the caller saw no 401)"


async def main() -> int:
    try:
        demo = Demo()
    except MosaicAuthError as exc:
        print(f"The demo cannot start: {exc}", file=sys.stderr)
        return 2
    where = "the embedded Mosaic emulator" if demo.emulator else demo.base_url
    print(f"mosaic-httpx-auth demo against {where}")
    if demo.emulator:
        print("(set MOSAIC_CLIENT_ID and MOSAIC_CLIENT_SECRET to run it against real Mosaic)")
    steps = [
        (f"{CONCURRENT_CALLS} concurrent API calls on a cold token cache", concurrent_calls),
        ("Two resources, each with its own token", two_resources),
        ("A revoked token, recovered by the 401 retry", revoked_token),
    ]
    try:
        for number, (title, step) in enumerate(steps, start=1):
            before = demo.token_requests
            started = time.perf_counter()
            try:
                outcome = await step(demo)
            except MosaicAuthError as exc:
                print(f"{number}. {title}: failed: {exc}", file=sys.stderr)
                return 1
            elapsed = (time.perf_counter() - started) * 1000
            requests = demo.token_requests - before
            print(f"\n{number}. {title}")
            print(f"   {outcome}")
            print(f"   {requests} token request{'s' * (requests != 1)} · {elapsed:.1f} ms")
    finally:
        await demo.aclose()
    return 0


if __name__ == "__main__":
    sys.exit(anyio.run(main))
