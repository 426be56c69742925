"""The `mosaic-httpx-auth` command line: `token` and `emulator`."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
from joserfc import jws

from mosaic_httpx_auth import RISK_RESOURCE, __version__
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


def test_a_refused_token_request_is_reported_once_in_words(
    served: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A refused token request is one line on stderr, the command's own, which says "without
    a resource" rather than "None"."""
    monkeypatch.setenv("MOSAIC_CLIENT_SECRET", "wrong-secret-value")
    # A process of its own: in pytest's, its logging would catch the library's warning.
    result = subprocess.run(
        [sys.executable, "-m", "mosaic_httpx_auth", "token"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    (line,) = result.stderr.splitlines()
    assert line.startswith("mosaic-httpx-auth: the token endpoint refused a token without a ")
    assert "None" not in line


@pytest.mark.parametrize("argv", [["-v", "token"], ["token", "--verbose"]], ids=["before", "after"])
def test_verbose_prints_the_library_log_lines_too(
    served: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
) -> None:
    """`-v`, before or after the command, prints the library's log lines to stderr as well."""
    monkeypatch.setenv("MOSAIC_CLIENT_SECRET", "wrong-secret-value")
    assert main(argv) == 1
    sent_line, log_line, command_line = capsys.readouterr().err.splitlines()
    assert sent_line.startswith("DEBUG mosaic_httpx_auth: token request 1 ")
    assert log_line.startswith("WARNING mosaic_httpx_auth: token request 1 ")
    assert command_line.startswith("mosaic-httpx-auth: the token endpoint refused")


def test_version_prints_the_program_and_its_version(capsys: pytest.CaptureFixture[str]) -> None:
    """`--version` prints the program's name and the package's version, and exits with 0."""
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    printed = capsys.readouterr().out
    assert printed == f"mosaic-httpx-auth {__version__}\n"
    assert re.fullmatch(r"mosaic-httpx-auth \d+\.\d+\.\d+\S*\n", printed)


# The emulator command


@contextlib.contextmanager
def emulator_command(
    *options: str, stop_signal: signal.Signals = signal.SIGINT, errors: list[str] | None = None
) -> Iterator[list[str]]:
    """Run `emulator --port 0` with `options` as a background job would be (SIGINT ignored),
    yield the lines it prints up to the resources line, then stop it with `stop_signal` and
    check that it exits with 0; what it wrote to stderr goes to `errors`."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MOSAIC_")}
    with subprocess.Popen(  # noqa: S603 - our own interpreter, our own arguments
        [sys.executable, "-m", "mosaic_httpx_auth", "emulator", "--port", "0", *options],
        stdout=subprocess.PIPE,
        stderr=None if errors is None else subprocess.PIPE,
        text=True,
        env=environment,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    ) as server:
        try:
            assert server.stdout is not None
            banner = [server.stdout.readline()]
            while not banner[-1].startswith("Resources:"):
                assert banner[-1], "the emulator command stopped before printing its settings"
                banner.append(server.stdout.readline())
            yield banner
        finally:
            server.send_signal(stop_signal)
            try:
                assert server.wait(timeout=15) == 0
                if errors is not None and server.stderr is not None:
                    errors.extend(server.stderr.read().splitlines())
            finally:
                server.kill()  # a no-op once it has exited; never leaves the run hanging


def exported(banner: list[str]) -> dict[str, str]:
    """The variables that the emulator command's `export` lines set."""
    exports = [line.strip().removeprefix("export ") for line in banner if "export " in line]
    return dict(export.split("=", 1) for export in exports)


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM])
def test_emulator_command_serves_until_interrupted(stop_signal: signal.Signals) -> None:
    """`emulator` serves on loopback, prints working settings, and stops cleanly on Ctrl+C or
    SIGTERM, even when started with SIGINT ignored (as background jobs are)."""
    with emulator_command(stop_signal=stop_signal) as banner:
        assert banner[0].startswith("Mosaic emulator serving on http://127.0.0.1:")
        settings = exported(banner)
        environment = {k: v for k, v in os.environ.items() if not k.startswith("MOSAIC_")}
        token = subprocess.run(
            [sys.executable, "-m", "mosaic_httpx_auth", "token", "--claims"],
            env={**environment, **settings},
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        )
        assert json.loads(token.stdout)["sub"] == settings["MOSAIC_CLIENT_ID"]


def test_emulator_command_says_how_to_revoke_its_tokens() -> None:
    """`emulator` prints a command that revokes every token it issued: the API then refuses
    them."""
    with emulator_command() as banner:
        settings = exported(banner)
        (revoke,) = [line for line in banner if line.startswith("Revoke every token")]
        revoke_url = revoke.split("curl -X POST ", 1)[1].strip()
        form = {
            "grant_type": "client_credentials",
            "client_id": settings["MOSAIC_CLIENT_ID"],
            "client_secret": settings["MOSAIC_CLIENT_SECRET"],
            "resource": RISK_RESOURCE,
        }
        token = httpx.post(settings["MOSAIC_TOKEN_URL"], data=form).json()["access_token"]
        api = f"{settings['MOSAIC_BASE_URL']}/risk/v1/action/recommendation"
        headers = {"Authorization": f"Bearer {token}"}
        before = httpx.post(api, headers=headers)
        revoked = httpx.post(revoke_url)
        after = httpx.post(api, headers=headers)
    assert revoke_url == f"{settings['MOSAIC_BASE_URL']}/emulator/revoke"
    assert revoked.json() == {"revoked": 1}
    assert (before.status_code, after.status_code) == (200, 401)


def test_emulator_command_with_tls_serves_https_and_prints_the_ca_to_trust() -> None:
    """`emulator --tls` serves HTTPS and prints, as SSL_CERT_FILE, the CA file that makes a
    client trust it; the file is gone once the emulator stops, which it says."""
    errors: list[str] = []
    with emulator_command("--tls", errors=errors) as banner:
        assert banner[0].startswith("Mosaic emulator serving on https://127.0.0.1:")
        settings = exported(banner)
        form = {
            "grant_type": "client_credentials",
            "client_id": settings["MOSAIC_CLIENT_ID"],
            "client_secret": settings["MOSAIC_CLIENT_SECRET"],
            "resource": RISK_RESOURCE,
        }
        trusting_the_ca = ssl.create_default_context(cafile=settings["SSL_CERT_FILE"])
        response = httpx.post(settings["MOSAIC_TOKEN_URL"], data=form, verify=trusting_the_ca)
    assert response.status_code == 200, response.text
    claims = json.loads(jws.extract_compact(response.json()["access_token"].encode()).payload)
    assert claims["aud"] == RISK_RESOURCE
    assert not Path(settings["SSL_CERT_FILE"]).exists()
    assert any("unset SSL_CERT_FILE" in line for line in errors)


def test_emulator_without_uvicorn_says_which_extra_to_install(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without uvicorn, `emulator` exits with 2 and one line naming the extra to install."""
    monkeypatch.setitem(sys.modules, "uvicorn", None)  # makes `import uvicorn` fail
    assert main(["emulator", "--port", "0"]) == 2
    assert capsys.readouterr().err == (
        "mosaic-httpx-auth: the emulator command needs uvicorn: "
        "pip install 'mosaic-httpx-auth[emulator]'\n"
    )


def test_emulator_on_a_port_in_use_says_to_pick_another(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """On a port in use, `emulator` exits with 2 and one line saying to pick another."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["emulator", "--port", str(port)]) == 2
    assert capsys.readouterr().err == (
        f"mosaic-httpx-auth: port {port} is in use: pick another with --port\n"
    )


@pytest.mark.parametrize("port", ["65536", "-1"])
def test_emulator_port_must_be_a_port_number(port: str, capsys: pytest.CaptureFixture[str]) -> None:
    """A --port out of range is a usage error (exit 2), not a traceback."""
    with pytest.raises(SystemExit) as exit_info:
        main(["emulator", "--port", port])
    assert exit_info.value.code == 2
    assert "not a port number" in capsys.readouterr().err


def test_a_reader_that_hangs_up_early_gets_no_traceback(served: str) -> None:
    """`mosaic-httpx-auth token --claims | head -1`: when the reader has gone, the command
    ends quietly instead of printing a BrokenPipeError traceback."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before anything is written
    finished = subprocess.run(
        [sys.executable, "-m", "mosaic_httpx_auth", "token", "--claims"],
        stdout=write_end,
        stderr=subprocess.PIPE,
        text=True,
        timeout=60,
        check=False,
    )
    os.close(write_end)
    assert "Traceback" not in finished.stderr
    assert "BrokenPipeError" not in finished.stderr


def test_ctrl_c_ends_the_command_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Ctrl+C while the command waits says so in one line and exits 130, as shells expect."""

    def interrupted(resource: str | None = None) -> None:
        raise KeyboardInterrupt

    monkeypatch.setenv("MOSAIC_CLIENT_ID", "client")
    monkeypatch.setenv("MOSAIC_CLIENT_SECRET", "secret")
    monkeypatch.setattr("mosaic_httpx_auth._cli.anyio.run", lambda *args, **kwargs: interrupted())
    assert main(["token"]) == 130
    assert capsys.readouterr().err == "mosaic-httpx-auth: interrupted\n"
