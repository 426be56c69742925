"""pytest fixtures for testing code that calls Mosaic against a `MosaicEmulator`.

Installed with mosaic-httpx-auth, pytest loads this plugin in every project: so it imports
nothing but pytest until a test asks for one of its fixtures, and lives outside the
`mosaic_httpx_auth` package, whose import would bring httpx and the rest along. Turn it off
with ``pytest -p no:pytest_mosaic_httpx_auth``; with plugin autoloading off
(``PYTEST_DISABLE_PLUGIN_AUTOLOAD=1``), turn it on with ``-p pytest_mosaic_httpx_auth``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from joserfc.jwk import RSAKey

    from mosaic_httpx_auth.testing import MosaicEmulator, RegisteredClient


@pytest.fixture(scope="session")
def mosaic_signing_key() -> RSAKey:
    """The RSA key that signs the tokens of every `mosaic_emulator` in the session.

    Generated once, as generating one per test would cost tens of milliseconds each.
    """
    from joserfc.jwk import RSAKey

    return RSAKey.generate_key(2048, parameters={"kid": "mosaic-emulator"})


@pytest.fixture
def mosaic_emulator(mosaic_signing_key: RSAKey) -> MosaicEmulator:
    """A fresh `MosaicEmulator` with default settings and no clients, for sync and async tests
    alike: its `transport()` and `auth()` serve `httpx.Client` and `httpx.AsyncClient`.

    It accepts only the tokens it issued, though all share `mosaic_signing_key`.
    """
    from mosaic_httpx_auth.testing import MosaicEmulator

    return MosaicEmulator(signing_key=mosaic_signing_key)


@pytest.fixture
def mosaic_client(mosaic_emulator: MosaicEmulator) -> RegisteredClient:
    """A client registered with `mosaic_emulator`, allowed the risk and verify resources."""
    return mosaic_emulator.register_client(
        resources=["https://risk.identity.security", "https://verify.identity.security"]
    )
