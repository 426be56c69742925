"""AccessToken: an immutable value whose repr never shows the token."""

from __future__ import annotations

import dataclasses

import pytest

from mosaic_httpx_auth import AccessToken

from .helpers import RISK, START


def test_repr_shows_resource_and_expiry_but_not_the_token() -> None:
    """repr(AccessToken) names the resource and expiry and hides the JWT and its claims."""
    token = AccessToken("header.payload.signature", START, RISK, {"jti": "unique-id"})
    text = repr(token)
    assert RISK in text
    assert str(START) in text
    assert "payload" not in text
    assert "unique-id" not in text


def test_tokens_are_immutable() -> None:
    """Neither an AccessToken's fields nor its claims can be changed."""
    claims = {"aud": RISK}
    token = AccessToken("t", START, RISK, claims)
    with pytest.raises(dataclasses.FrozenInstanceError):
        token.token = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        token.claims["aud"] = "other"  # type: ignore[index]
    claims["aud"] = "changed"
    assert token.claims["aud"] == RISK


def test_authorization_header_value_and_lifetime() -> None:
    """`authorization` is the Bearer header value; `lifetime` runs from issue to expiry."""
    token = AccessToken("abc", START + 3600, None, issued_at=START)
    assert token.authorization == "Bearer abc"
    assert token.lifetime == 3600
    assert AccessToken("abc", START).lifetime is None
