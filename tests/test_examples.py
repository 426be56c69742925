"""Every example runs, against the emulator, as a user would run it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from examples.web_service import create_app
from mosaic_httpx_auth import RISK_RESOURCE, VERIFY_RESOURCE
from mosaic_httpx_auth.testing import MosaicEmulator
from mosaic_httpx_auth.testing._server import serve_locally

EXAMPLES = Path(__file__).parent.parent / "examples"


def run_example(name: str, **settings: str) -> subprocess.CompletedProcess[str]:
    """Run an example as a script with only the Mosaic `settings` given (none: the emulator)."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MOSAIC_")}
    return subprocess.run(  # noqa: S603 - our own example, fixed arguments
        [sys.executable, str(EXAMPLES / name)],
        env={**environment, **settings},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def report_of(name: str, **settings: str) -> str:
    """What an example printed, run against the emulator; it must succeed."""
    finished = run_example(name, **settings)
    assert finished.returncode == 0, finished.stderr
    return finished.stdout


def test_quickstart_reports_each_step() -> None:
    """The demo shows one token request for 100 calls, two resources and a recovered 401."""
    report = report_of("quickstart.py")
    assert "against the embedded Mosaic emulator" in report
    step1, step2, step3 = report.split("\n\n")[1:]
    assert "100 x HTTP 200" in step1
    assert "1 token request ·" in step1
    assert f"aud={RISK_RESOURCE}" in step2
    assert "2 token requests ·" in step2
    assert "HTTP 200 after 1 transparent retry" in step3
    assert "1 token request ·" in step3


def test_quickstart_against_the_served_emulator_recovers_a_revoked_token() -> None:
    """Pointed at a served emulator, as `mosaic-httpx-auth emulator` prints, the demo revokes
    its token through the emulator's endpoint and shows the 401 retry, not a skip."""
    emulator = MosaicEmulator()
    client = emulator.register_client(resources=[RISK_RESOURCE, VERIFY_RESOURCE])
    with emulator.serve() as base_url:
        report = report_of(
            "quickstart.py",
            MOSAIC_CLIENT_ID=client.client_id,
            MOSAIC_CLIENT_SECRET=client.client_secret,
            MOSAIC_TOKEN_URL=f"{base_url}/oidc/token",
            MOSAIC_BASE_URL=base_url,
        )
    step3 = report.split("\n\n")[3]
    assert "HTTP 200 after 1 transparent retry" in step3
    assert "1 token request ·" in step3


def test_multiple_resources_routes_each_api_to_its_resource() -> None:
    """Each of the three APIs is called with its own resource's token and answers 200."""
    lines = report_of("multiple_resources.py").splitlines()
    assert [line.split()[2:4] for line in lines] == [["HTTP", "200"]] * 3
    assert lines[1].endswith(f"resource: {RISK_RESOURCE}")


@pytest.mark.alone
def test_fleet_makes_one_token_request_per_resource_through_redis(redis_url: str) -> None:
    """Four processes, on asyncio and trio, share one token per resource through Redis: on a
    cold start, and again after every token is revoked, with no request failing."""
    lines = report_of("fleet.py", REDIS_URL=redis_url).splitlines()
    assert lines[0].startswith("4 processes (2 on asyncio, 2 on trio)")
    fleet_wide = (
        "4 processes made 400 API requests (0 failed) with 2 token requests: 1 per resource"
    )
    assert lines[1].startswith(f"cold start: {fleet_wide} (")
    assert lines[2].startswith(f"every token revoked: {fleet_wide} (")


def test_web_service_served_by_uvicorn_calls_the_served_emulator(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The web service, configured from the environment, checks logins over real sockets."""
    emulator = MosaicEmulator()
    client = emulator.register_client(resources=[RISK_RESOURCE])
    with emulator.serve() as mosaic_url:
        monkeypatch.setenv("MOSAIC_CLIENT_ID", client.client_id)
        monkeypatch.setenv("MOSAIC_CLIENT_SECRET", client.client_secret)
        monkeypatch.setenv("MOSAIC_TOKEN_URL", f"{mosaic_url}/oidc/token")
        monkeypatch.setenv("MOSAIC_BASE_URL", mosaic_url)
        with serve_locally(create_app(), port=0, shutdown_timeout=5) as service_url:
            decisions = [
                httpx.post(f"{service_url}/logins", json={"action_token": str(n)}).json()
                for n in range(3)
            ]
    assert [decision["decision"] for decision in decisions] == ["allow"] * 3
    assert emulator.token_requests == {RISK_RESOURCE: 1}


def test_the_demo_against_an_endpoint_that_is_down_says_so_in_one_line() -> None:
    """With credentials for a token endpoint where nothing listens, the demo prints one line
    naming the cause, no traceback, and exits 1."""
    with socket.socket() as placeholder:
        placeholder.bind(("127.0.0.1", 0))
        port = placeholder.getsockname()[1]
    finished = run_example(
        "quickstart.py",
        MOSAIC_CLIENT_ID="client",
        MOSAIC_CLIENT_SECRET="secret",
        MOSAIC_TOKEN_URL=f"http://127.0.0.1:{port}/oidc/token",
    )
    assert finished.returncode == 1
    assert finished.stderr.splitlines() == [finished.stderr.strip()]
    assert "the connection was refused" in finished.stderr


def test_the_demo_with_a_wrong_secret_says_so_in_one_line() -> None:
    """With a secret the token endpoint refuses, the demo prints the refusal once and exits 1."""
    emulator = MosaicEmulator()
    client = emulator.register_client()
    with emulator.serve() as base_url:
        finished = run_example(
            "quickstart.py",
            MOSAIC_CLIENT_ID=client.client_id,
            MOSAIC_CLIENT_SECRET="not-the-secret",
            MOSAIC_BASE_URL=base_url,
        )
    assert finished.returncode == 1
    assert finished.stderr.splitlines() == [finished.stderr.strip()]
    assert "invalid_client" in finished.stderr
    assert "not-the-secret" not in finished.stderr
