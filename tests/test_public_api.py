"""The package's public surface."""

from __future__ import annotations

from types import ModuleType

import mosaic_httpx_auth
from mosaic_httpx_auth import (
    ConfigurationError,
    MosaicAuthError,
    TokenRequestError,
    TokenResponseError,
    UnsupportedClientError,
)
from mosaic_httpx_auth.cache import TokenCacheError


def test_all_is_exactly_the_public_surface() -> None:
    """`__all__` lists every public name the package exports, once, and nothing else."""
    public = {
        name
        for name, value in vars(mosaic_httpx_auth).items()
        if not name.startswith("_") and not isinstance(value, ModuleType)
    }
    public -= {"annotations"}  # from __future__
    assert set(mosaic_httpx_auth.__all__) == public
    assert len(mosaic_httpx_auth.__all__) == len(public)


def test_every_error_is_a_mosaic_auth_error() -> None:
    """Catching MosaicAuthError catches every error the package raises."""
    for error in (
        ConfigurationError,
        TokenCacheError,
        TokenRequestError,
        TokenResponseError,
        UnsupportedClientError,
    ):
        assert issubclass(error, MosaicAuthError)
    assert issubclass(TokenResponseError, TokenRequestError)
    assert issubclass(ConfigurationError, ValueError)
