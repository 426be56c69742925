"""The token endpoint client: one client-credentials request, and what its answer means."""

from __future__ import annotations

import json
import logging
import math
from typing import TYPE_CHECKING, Any, TypeGuard

import httpx
from joserfc import jws
from joserfc.errors import JoseError

from ._exceptions import TokenRequestError, TokenResponseError
from ._token import AccessToken

if TYPE_CHECKING:
    from collections.abc import Callable

logger = logging.getLogger("mosaic_httpx_auth")

# Error texts come from the server; keep a misbehaving one from flooding logs and messages.
_MAX_ERROR_TEXT = 300


class TokenEndpoint:
    """Requests client access tokens from Mosaic's ``/oidc/token`` with client credentials."""

    def __init__(
        self,
        *,
        token_url: str,
        client_id: str,
        client_secret: str,
        http_client: httpx.AsyncClient | None,
        clock: Callable[[], float],
    ) -> None:
        self.token_url = token_url
        self.client_id = client_id
        self._client_secret = client_secret
        self._http_client = http_client
        self._owns_http_client = http_client is None
        self._clock = clock

    def __repr__(self) -> str:
        return f"TokenEndpoint(token_url={self.token_url!r}, client_id={self.client_id!r})"

    async def request_token(self, resource: str | None) -> AccessToken:
        """Request a new token for `resource`; raise `TokenRequestError` if none can be had."""
        form = {
            "grant_type": "client_credentials",
            "client_id": self.client_id,
            "client_secret": self._client_secret,
        }
        if resource is not None:
            form["resource"] = resource
        # `expires_in` counts from when the server answered; counting from before the request
        # was sent errs on the side of refreshing early.
        requested_at = self._clock()
        try:
            response = await self._client().post(
                self.token_url, data=form, headers={"Accept": "application/json"}
            )
        except httpx.HTTPError as exc:
            raise TokenRequestError(
                f"could not reach the token endpoint {self.token_url} for resource "
                f"{resource!r}: {type(exc).__name__}",
                resource=resource,
            ) from exc
        if not response.is_success:
            raise self._refusal(response, resource)
        token = parse_token_response(response, resource=resource, requested_at=requested_at)
        logger.debug(
            "fetched a token for resource %r, expiring in %.0f s",
            resource,
            token.expires_at - requested_at,
        )
        return token

    async def aclose(self) -> None:
        """Close the HTTP client, unless the caller passed one in and so owns it."""
        if self._owns_http_client and self._http_client is not None:
            await self._http_client.aclose()
            self._http_client = None

    def _client(self) -> httpx.AsyncClient:
        if self._http_client is None:
            self._http_client = httpx.AsyncClient()
        return self._http_client

    def _refusal(self, response: httpx.Response, resource: str | None) -> TokenRequestError:
        error, description = _error_fields(response)
        # A server that echoes what it was sent must not carry the secret into our messages.
        if description is not None:
            description = description.replace(self._client_secret, "[secret]")
        detail = ": ".join(part for part in (error, description) if part)
        return TokenRequestError(
            f"the token endpoint refused a token for resource {resource!r}: "
            f"HTTP {response.status_code}" + (f" {detail}" if detail else ""),
            status_code=response.status_code,
            error=error,
            error_description=description,
            resource=resource,
        )


def parse_token_response(
    response: httpx.Response, *, resource: str | None, requested_at: float
) -> AccessToken:
    """Turn a successful token response into an `AccessToken`, or raise `TokenResponseError`.

    The expiry is the earlier of the JWT's ``exp`` claim and ``requested_at + expires_in``;
    the JWT is decoded without verifying its signature, as a client need not verify its own
    tokens.
    """

    def invalid(reason: str) -> TokenResponseError:
        return TokenResponseError(
            f"the token endpoint answered HTTP {response.status_code} for resource {resource!r} "
            f"with an unusable token response: {reason}",
            status_code=response.status_code,
            resource=resource,
        )

    try:
        body = response.json()
    except ValueError:
        raise invalid("the body is not JSON") from None
    if not isinstance(body, dict):
        raise invalid("the body is not a JSON object")
    access_token = body.get("access_token")
    if not isinstance(access_token, str) or not access_token:
        raise invalid("no access_token")
    token_type = body.get("token_type", "Bearer")
    if not isinstance(token_type, str) or token_type.lower() != "bearer":
        raise invalid("token_type is not Bearer")

    claims = _unverified_claims(access_token)
    candidates = []
    exp = claims.get("exp")
    if _is_number(exp):
        candidates.append(float(exp))
    if "expires_in" in body:
        expires_in = body["expires_in"]
        if not _is_number(expires_in) or expires_in <= 0:
            raise invalid("expires_in is not a positive number")
        candidates.append(requested_at + float(expires_in))
    if not candidates:
        raise invalid("neither a JWT exp claim nor expires_in says when the token expires")
    return AccessToken(
        token=access_token,
        expires_at=min(candidates),
        resource=resource,
        claims=claims,
        issued_at=requested_at,
    )


def _unverified_claims(token: str) -> dict[str, Any]:
    """The JWT's claims, or an empty dict when the token is not a JWT with a JSON payload."""
    try:
        payload = jws.extract_compact(token.encode("ascii")).payload
        claims = json.loads(payload)
    except (JoseError, ValueError, UnicodeError):
        return {}
    return claims if isinstance(claims, dict) else {}


def _is_number(value: object) -> TypeGuard[float]:
    """Whether `value` is a finite JSON number (a bool is not one)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _error_fields(response: httpx.Response) -> tuple[str | None, str | None]:
    """The error code and description of a refusal, from either of Mosaic's error shapes."""
    try:
        body = response.json()
    except ValueError:
        return None, None
    if not isinstance(body, dict):
        return None, None
    error = body.get("error")
    description = body.get("error_description", body.get("message"))
    return (
        error[:_MAX_ERROR_TEXT] if isinstance(error, str) else None,
        description[:_MAX_ERROR_TEXT] if isinstance(description, str) else None,
    )
