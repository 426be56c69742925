"""The `mosaic-httpx-auth` command: fetch a token, or serve the emulator for local development."""

from __future__ import annotations

import argparse
import contextlib
import errno
import importlib
import json
import logging
import os
import shlex
import signal
import ssl
import sys
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import anyio

from . import __version__
from ._auth import MosaicAuth
from ._exceptions import ConfigurationError, MosaicAuthError
from ._keys import SIGNING_ALGORITHMS, generate_signing_key
from ._mosaic import RISK_RESOURCE, VERIFY_RESOURCE

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from .testing import RegisteredClient

# Exit codes: 1 the token endpoint refused or failed, 2 bad usage or configuration (a missing
# extra and a port in use included).
EXIT_TOKEN_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report a command stopped by Ctrl+C

_PROGRAM = "mosaic-httpx-auth"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with `argv` (default: `sys.argv[1:]`); return the exit code."""
    arguments = _parser().parse_args(argv)
    with _library_logging(verbose=arguments.verbose):
        try:
            code = int(arguments.run(arguments))
            sys.stdout.flush()  # here, where a reader that hung up can be handled
            return code
        except KeyboardInterrupt:
            print(f"{_PROGRAM}: interrupted", file=sys.stderr)
            return EXIT_INTERRUPTED
        except BrokenPipeError:
            # The reader went away (`... | head -1`): end quietly, as the Python docs advise,
            # pointing stdout at devnull so that the flush at exit cannot fail again.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return EXIT_TOKEN_ERROR
        except ConfigurationError as exc:
            print(_error_line(exc), file=sys.stderr)
            return EXIT_USAGE
        except MosaicAuthError as exc:
            print(_error_line(exc), file=sys.stderr)
            return EXIT_TOKEN_ERROR


def _error_line(error: MosaicAuthError) -> str:
    return f"{_PROGRAM}: {error}"


@contextlib.contextmanager
def _library_logging(*, verbose: bool) -> Iterator[None]:
    """With --verbose, print the library's log lines to stderr while the command runs.

    Without, they go nowhere (the library logs to a NullHandler unless told otherwise), and a
    failure is reported once, by the command.
    """
    if not verbose:
        yield
        return
    library_logger = logging.getLogger("mosaic_httpx_auth")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    level = library_logger.level
    library_logger.addHandler(handler)
    library_logger.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        # `main` may run inside a process whose logging it must leave as it found it.
        library_logger.removeHandler(handler)
        library_logger.setLevel(level)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=_PROGRAM,
        description="Transmit Security Mosaic client access tokens from the command line.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    verbose_help = "also print the library's log lines (token requests, retries) to stderr"
    parser.add_argument("-v", "--verbose", action="store_true", help=verbose_help)
    # Accepted after the command too; SUPPRESS keeps a command from resetting it when absent.
    after_the_command = argparse.ArgumentParser(add_help=False)
    after_the_command.add_argument(
        "-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help=verbose_help
    )
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    token = commands.add_parser(
        "token",
        parents=[after_the_command],
        help="fetch a client access token and print it",
        description=(
            "Fetch a client access token with the settings in MOSAIC_* environment variables "
            "(MOSAIC_CLIENT_ID, and MOSAIC_CLIENT_SECRET, MOSAIC_PRIVATE_KEY_FILE, or "
            "MOSAIC_CLIENT_CERTIFICATE_FILE and MOSAIC_CLIENT_KEY_FILE; also "
            "MOSAIC_CLIENT_AUTH, MOSAIC_REGION, MOSAIC_TOKEN_URL, MOSAIC_RESOURCE...) and print "
            'it, e.g. for curl -H "Authorization: Bearer $(mosaic-httpx-auth token)".'
        ),
    )
    token.add_argument("--resource", help="the resource (audience) to ask for")
    token.add_argument(
        "--claims", action="store_true", help="print the token's decoded claims as JSON instead"
    )
    token.set_defaults(run=_token)

    keygen = commands.add_parser(
        "keygen",
        parents=[after_the_command],
        help="generate a key pair for private_key_jwt",
        description=(
            "Write a new private key (PEM, readable by you only) to PATH and print the public "
            "JWKS to register with the app in Mosaic's Admin Portal. Then set "
            "MOSAIC_PRIVATE_KEY_FILE=PATH and MOSAIC_CLIENT_AUTH=private_key_jwt."
        ),
    )
    keygen.add_argument("path", help="where to write the private key; must not exist")
    keygen.add_argument("--algorithm", choices=SIGNING_ALGORITHMS, default="RS256")
    keygen.add_argument("--key-id", help="the key's kid (default: its thumbprint)")
    keygen.set_defaults(run=_keygen)

    emulator = commands.add_parser(
        "emulator",
        parents=[after_the_command],
        help="serve a Mosaic emulator on 127.0.0.1 for local development",
        description=(
            "Serve the Mosaic emulator on 127.0.0.1 with one registered client, allowed the "
            "risk and verify resources, and print the settings to use. POST /emulator/revoke "
            "revokes every token it issued. Ctrl+C stops it. "
            "Needs the emulator extra: pip install 'mosaic-httpx-auth[emulator]'."
        ),
    )
    emulator.add_argument("--port", type=_port, default=8765, help="port (default 8765; 0: any)")
    emulator.add_argument(
        "--tls",
        action="store_true",
        help="serve HTTPS, with a certificate from a throwaway test CA whose file it prints",
    )
    emulator.add_argument("--client-id", help="the client ID to register (default: random)")
    emulator.add_argument("--client-secret", help="its secret (default: random)")
    emulator.add_argument(
        "--token-lifetime", type=float, default=3600.0, help="seconds a token lasts (3600)"
    )
    emulator.set_defaults(run=_emulator)
    return parser


def _token(arguments: argparse.Namespace) -> int:
    overrides = {} if arguments.resource is None else {"resource": arguments.resource}
    auth = MosaicAuth.from_env(**overrides)

    async def fetch() -> None:
        async with auth:
            token = await auth.get_token()
        if arguments.claims:
            print(json.dumps(dict(token.claims), indent=2, sort_keys=True))
        else:
            print(token.token)

    anyio.run(fetch)
    return 0


def _keygen(arguments: argparse.Namespace) -> int:
    pair = generate_signing_key(arguments.algorithm, key_id=arguments.key_id)
    try:
        # Created with owner-only permissions, and never over an existing key.
        descriptor = os.open(arguments.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        raise ConfigurationError(f"cannot create {arguments.path}: {exc.strerror}") from None
    with os.fdopen(descriptor, "wb") as file:
        file.write(pair.private_key_pem)
    print(json.dumps(pair.public_jwks, indent=2))
    # Every setting the key needs, so that nothing (the algorithm above all) is left to guess.
    settings = {
        "MOSAIC_CLIENT_AUTH": "private_key_jwt",
        "MOSAIC_PRIVATE_KEY_FILE": os.path.abspath(arguments.path),
        "MOSAIC_KEY_ID": pair.key_id,
        "MOSAIC_SIGNING_ALGORITHM": arguments.algorithm,
    }
    print(
        f"private key written to {arguments.path}. Register the JWKS above with the app in "
        "Mosaic's Admin Portal, then set:",
        file=sys.stderr,
    )
    for variable, value in settings.items():
        print(f"  export {variable}={shlex.quote(value)}", file=sys.stderr)
    return 0


def _port(text: str) -> int:
    """The value of --port: a TCP port number, 0 to 65535."""
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (0 to 65535)")
    return port


def _emulator(arguments: argparse.Namespace) -> int:
    try:
        importlib.import_module("uvicorn")
    except ImportError:
        raise ConfigurationError(
            "the emulator command needs uvicorn: pip install 'mosaic-httpx-auth[emulator]'"
        ) from None
    from .testing import MosaicEmulator

    emulator = MosaicEmulator(token_lifetime=arguments.token_lifetime)
    client = emulator.register_client(
        client_id=arguments.client_id,
        client_secret=arguments.client_secret,
        resources=[RISK_RESOURCE, VERIFY_RESOURCE],
    )
    with contextlib.ExitStack() as running:
        try:
            base_url = running.enter_context(emulator.serve(port=arguments.port, tls=arguments.tls))
        except OSError as exc:
            raise ConfigurationError(_cannot_serve(arguments.port, exc)) from None
        ca_file = running.enter_context(_test_ca_file()) if arguments.tls else None
        _print_settings(base_url, client, ca_file)
        sys.stdout.flush()
        _wait_for_stop_signal()
    if arguments.tls:
        # The CA file is gone with the emulator: a shell still pointing at it would fail every
        # HTTPS request with a bare FileNotFoundError.
        print("Emulator stopped; its test CA is deleted: unset SSL_CERT_FILE", file=sys.stderr)
    return 0


def _print_settings(base_url: str, client: RegisteredClient, ca_file: Path | None) -> None:
    """The lines that point a shell at the served emulator, and what else it offers."""
    from .testing._emulator import REVOCATION_PATH

    # The emulator's own made-up credentials: printing them is the point.
    print(f"Mosaic emulator serving on {base_url} (Ctrl+C stops it). Use:")
    print(f"  export MOSAIC_CLIENT_ID={client.client_id}")
    print(f"  export MOSAIC_CLIENT_SECRET={client.client_secret}")
    print(f"  export MOSAIC_TOKEN_URL={base_url}/oidc/token")
    print(f"  export MOSAIC_BASE_URL={base_url}")
    if ca_file is not None:
        print(f"  export SSL_CERT_FILE={ca_file}")
    curl = "curl" if ca_file is None else 'curl --cacert "$SSL_CERT_FILE"'
    print(
        "Revoke every token issued so far (the APIs then answer 401): "
        f"{curl} -X POST {base_url}{REVOCATION_PATH}"
    )
    print(f"Resources: {RISK_RESOURCE} (/risk/...), {VERIFY_RESOURCE} (/verify/...)")
    if ca_file is not None:
        print(
            "SSL_CERT_FILE makes httpx trust the emulator's test CA, and no other, in this "
            'shell; curl needs --cacert "$SSL_CERT_FILE".'
        )


def _cannot_serve(port: int, error: OSError) -> str:
    """Why the emulator could not listen on `port`, and what to do about it."""
    if error.errno == errno.EADDRINUSE:
        return f"port {port} is in use: pick another with --port"
    return f"cannot serve on 127.0.0.1:{port}: {error.strerror or error}"


@contextlib.contextmanager
def _test_ca_file() -> Iterator[Path]:
    """A file with the certificate (PEM) of the CA that issues the emulator's HTTPS
    certificates, for clients to trust; removed on exit."""
    from .testing import client_ssl_context

    # The context for the emulator's clients trusts that CA alone.
    (certificate,) = client_ssl_context().get_ca_certs(binary_form=True)
    with tempfile.TemporaryDirectory(prefix="mosaic-emulator-ca-") as directory:
        path = Path(directory) / "ca-cert.pem"
        path.write_text(ssl.DER_cert_to_PEM_cert(certificate), encoding="ascii")
        yield path


def _wait_for_stop_signal() -> None:
    """Block until SIGINT (Ctrl+C) or SIGTERM.

    Handlers are installed explicitly: a process started in the background inherits SIGINT
    ignored, and would otherwise never stop on it.
    """
    stop = threading.Event()
    for signal_number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signal_number, lambda number, frame: stop.set())
    while not stop.wait(0.2):
        pass
