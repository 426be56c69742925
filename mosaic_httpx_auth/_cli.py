"""The `mosaic-httpx-auth` command: fetch a token, or serve the emulator for local development."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from typing import TYPE_CHECKING

import anyio

from ._auth import MosaicAuth
from ._exceptions import ConfigurationError, MosaicAuthError
from ._keys import SIGNING_ALGORITHMS, generate_signing_key
from ._services import RISK_RESOURCE, VERIFY_RESOURCE

if TYPE_CHECKING:
    from collections.abc import Sequence

# Exit codes: 1 the token endpoint refused or failed, 2 bad usage or configuration.
EXIT_TOKEN_ERROR = 1
EXIT_USAGE = 2


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with `argv` (default: `sys.argv[1:]`); return the exit code."""
    arguments = _parser().parse_args(argv)
    try:
        return int(arguments.run(arguments))
    except ConfigurationError as exc:
        print(f"mosaic-httpx-auth: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except MosaicAuthError as exc:
        print(f"mosaic-httpx-auth: {exc}", file=sys.stderr)
        return EXIT_TOKEN_ERROR


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mosaic-httpx-auth",
        description="Transmit Security Mosaic client access tokens from the command line.",
    )
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    token = commands.add_parser(
        "token",
        help="fetch a client access token and print it",
        description=(
            "Fetch a client access token with the settings in MOSAIC_* environment variables "
            "(MOSAIC_CLIENT_ID, and MOSAIC_CLIENT_SECRET or MOSAIC_PRIVATE_KEY_FILE; also "
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
        help="serve a Mosaic emulator on 127.0.0.1 for local development",
        description=(
            "Serve the Mosaic emulator on 127.0.0.1 with one registered client, allowed the "
            "risk and verify resources, and print the settings to use. Ctrl+C stops it. "
            "Needs the emulator extra: pip install 'mosaic-httpx-auth[emulator]'."
        ),
    )
    emulator.add_argument("--port", type=int, default=8765, help="port (default 8765; 0: any)")
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
    print(f"private key written to {arguments.path} (kid {pair.key_id})", file=sys.stderr)
    return 0


def _emulator(arguments: argparse.Namespace) -> int:
    from .testing import MosaicEmulator

    emulator = MosaicEmulator(token_lifetime=arguments.token_lifetime)
    client = emulator.register_client(
        client_id=arguments.client_id,
        client_secret=arguments.client_secret,
        resources=[RISK_RESOURCE, VERIFY_RESOURCE],
    )
    with emulator.serve(port=arguments.port) as base_url:
        # The emulator's own made-up credentials: printing them is the point.
        print(f"Mosaic emulator serving on {base_url} (Ctrl+C stops it). Use:")
        print(f"  export MOSAIC_CLIENT_ID={client.client_id}")
        print(f"  export MOSAIC_CLIENT_SECRET={client.client_secret}")
        print(f"  export MOSAIC_TOKEN_URL={base_url}/oidc/token")
        print(f"  export MOSAIC_BASE_URL={base_url}")
        print(f"Resources: {RISK_RESOURCE} (/risk/...), {VERIFY_RESOURCE} (/verify/...)")
        sys.stdout.flush()
        _wait_for_stop_signal()
    return 0


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
