"""The `mosaic-httpx-auth` command line: `token` and `emulator`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest
from joserfc import jws

from mosaic_httpx_auth import RISK_RESOURCE
from mosaic_httpx_auth._cli import main
from mosaic_httpx_auth.testing import MosaicEmulator

if TYPE_CHECKING:
    from collections.abc import Iterator

    from mosaic_httpx_auth.testing import RegisteredClient


@pytest.fixture
def emulator() -> MosaicEmulator:
    return MosaicEmulator()


@pytest.fixture
def registered(emulator: MosaicEmulator) -> RegisteredClient:
    return emulator.register_client(resources=[RISK_RESOURCE])


@pytest.fixture
def served(
    emulator: MosaicEmulator, registered: RegisteredClient, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """The emulator on a loopback port, with MOSAIC_* variables pointing at it."""
    with emulator.serve() as base_url:
        monkeypatch.setenv("MOSAIC_CLIENT_ID", registered.client_id)
        monkeypatch.setenv("MOSAIC_CLIENT_SECRET", registered.client_secret)
        monkeypatch.setenv("MOSAIC_TOKEN_URL", f"{base_url}/oidc/token")
        monkeypatch.delenv("MOSAIC_RESOURCE", raising=False)
        yield base_url


def test_token_prints_a_token(served: str, capsys: pytest.CaptureFixture[str]) -> None:
    """`token` prints the access token alone on stdout, ready for a curl header."""
    assert main(["token", "--resource", RISK_RESOURCE]) == 0
    printed = capsys.readouterr().out.strip()
    claims = json.loads(jws.extract_compact(printed.encode()).payload)
    assert claims["aud"] == RISK_RESOURCE


def test_token_claims_prints_decoded_claims(
    served: str, registered: RegisteredClient, capsys: pytest.CaptureFixture[str]
) -> None:
    """`token --claims` prints the token's claims as JSON instead of the token."""
    assert main(["token", "--claims"]) == 0
    claims = json.loads(capsys.readouterr().out)
    assert (claims["aud"], claims["sub"]) == ("userid-api", registered.client_id)


def test_token_without_credentials_exits_2_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Missing credentials exit with 2 and a message naming the variable to set."""
    monkeypatch.delenv("MOSAIC_CLIENT_ID", raising=False)
    monkeypatch.setenv("MOSAIC_CLIENT_SECRET", "a-secret-value")
    assert main(["token"]) == 2
    error = capsys.readouterr().err
    assert "MOSAIC_CLIENT_ID" in error
    assert "a-secret-value" not in error


def test_a_refused_token_request_exits_1_without_the_secret(
    served: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A refused token request exits with 1, says why, and never prints the secret."""
    monkeypatch.setenv("MOSAIC_CLIENT_SECRET", "wrong-secret-value")
    assert main(["token"]) == 1
    captured = capsys.readouterr()
    assert "invalid_client" in captured.err
    assert "wrong-secret-value" not in captured.err + captured.out


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM])
def test_emulator_command_serves_until_interrupted(stop_signal: signal.Signals) -> None:
    """`emulator` serves on loopback, prints working settings, and stops cleanly on Ctrl+C or
    SIGTERM, even when started with SIGINT ignored (as background jobs are)."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MOSAIC_")}
    with subprocess.Popen(
        [sys.executable, "-m", "mosaic_httpx_auth", "emulator", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
        env=environment,
        # As a background job of a non-interactive shell would be started.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    ) as server:
        try:
            assert server.stdout is not None
            banner = [server.stdout.readline() for _ in range(6)]
            assert banner[0].startswith("Mosaic emulator serving on http://127.0.0.1:")
            settings = dict(
                line.strip().removeprefix("export ").split("=", 1) for line in banner[1:5]
            )
            token = subprocess.run(
                [sys.executable, "-m", "mosaic_httpx_auth", "token", "--claims"],
                env={**environment, **settings},
                capture_output=True,
                text=True,
                check=True,
                timeout=30,
            )
            assert json.loads(token.stdout)["sub"] == settings["MOSAIC_CLIENT_ID"]
        finally:
            server.send_signal(stop_signal)
            try:
                assert server.wait(timeout=15) == 0
            finally:
                server.kill()  # a no-op once it has exited; never leaves the run hanging
