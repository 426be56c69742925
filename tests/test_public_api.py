"""The package's public surface."""

from __future__ import annotations

import pickle
import pydoc
import traceback
import typing
from types import ModuleType

import mosaic_httpx_auth
from mosaic_httpx_auth import (
    AccessToken,
    ConfigurationError,
    MosaicAuth,
    MosaicAuthError,
    TokenRequestError,
    TokenResponseError,
    UnsupportedClientError,
    cache,
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


def test_public_classes_are_named_where_users_import_them() -> None:
    """Tracebacks say `mosaic_httpx_auth.ConfigurationError`, not the private module an error
    is written in; the cache's error is named for the cache module. Dataclasses keep their
    modules, where `typing.get_type_hints` resolves their annotations."""
    for name in mosaic_httpx_auth.__all__:
        value = getattr(mosaic_httpx_auth, name)
        if isinstance(value, type) and issubclass(value, BaseException):
            assert value.__module__ == "mosaic_httpx_auth", name
    assert cache.TokenCacheError.__module__ == "mosaic_httpx_auth.cache"
    for annotated in (AccessToken, mosaic_httpx_auth.AuthEvent, mosaic_httpx_auth.Retry):
        assert typing.get_type_hints(annotated)
    shown = traceback.format_exception_only(ConfigurationError("bad", setting="x"))
    assert shown == ["mosaic_httpx_auth.ConfigurationError: bad\n"]
    error = pickle.loads(pickle.dumps(TokenRequestError("down", status_code=503)))  # noqa: S301
    assert (type(error), error.status_code) == (TokenRequestError, 503)


def test_help_names_every_field_of_an_access_token() -> None:
    """`help(AccessToken)` names what a token holds: the README's `.token`, not a guess."""
    shown = pydoc.render_doc(AccessToken, renderer=pydoc.plaintext)  # type: ignore[attr-defined]
    for field in ("token", "expires_at", "resource", "claims", "issued_at", "authorization"):
        assert f"{field}:" in shown, field


def test_an_auth_whose_constructor_failed_still_has_a_repr() -> None:
    """Error trackers and pytest print the locals of a failing frame: an auth refused while
    being built shows as such, not as an AttributeError."""
    unbuilt = MosaicAuth.__new__(MosaicAuth)
    assert repr(unbuilt) == "MosaicAuth(<not configured>)"
