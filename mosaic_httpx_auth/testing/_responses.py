"""The emulator's error answers, in Mosaic's two shapes, and the exception that carries one."""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx

if TYPE_CHECKING:
    from collections.abc import Mapping


class Refused(Exception):
    """Raised inside request handling to answer with `response` instead."""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__(response.status_code)
        self.response = response


def oauth_error(
    status: int, error: str, description: str, headers: Mapping[str, str] | None = None
) -> httpx.Response:
    """An error in the OAuth 2.0 shape (RFC 6749 §5.2)."""
    return httpx.Response(
        status, json={"error": error, "error_description": description}, headers=headers
    )


def invalid_client(description: str, *, basic: bool = False) -> httpx.Response:
    """A 401 ``invalid_client``: the client could not be authenticated."""
    # RFC 6749 §5.2: a client that tried HTTP Basic gets a challenge for it.
    headers = {"WWW-Authenticate": 'Basic realm="mosaic"'} if basic else None
    return oauth_error(401, "invalid_client", description, headers)


def mosaic_error(status: int, message: str) -> httpx.Response:
    """An error in Mosaic's own shape."""
    return httpx.Response(status, json={"message": message, "error_code": status})


def invalid_token(description: str) -> httpx.Response:
    """An API's 401 for a token it will not take, in Mosaic's shape, with the challenge of
    RFC 6750 §3 saying why."""
    challenge = f'Bearer error="invalid_token", error_description="{description}"'
    return httpx.Response(
        401,
        json={"message": "Invalid token", "error_code": 401},
        headers={"WWW-Authenticate": challenge},
    )


def method_not_allowed(allowed: str) -> httpx.Response:
    """A 405 naming the one method the path allows."""
    return httpx.Response(
        405,
        json={"message": "Method Not Allowed", "error_code": 405},
        headers={"Allow": allowed},
    )
