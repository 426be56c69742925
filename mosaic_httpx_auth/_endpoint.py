"""The token endpoint client: one client-credentials request, and what its answer means."""

from __future__ import annotations

import json
import logging
import math
from typing import TYPE_CHECKING, Any, TypeGuard

import anyio
import httpx
from joserfc import jws
from joserfc.errors import JoseError

from ._exceptions import TokenRequestError, TokenResponseError
from ._retry import RetryPolicy, is_retryable, retry_after_seconds
from ._telemetry import AuthEvent, Telemetry
from ._token import AccessToken

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from ._client_auth import ClientAuthentication

# Error texts come from the server; keep a misbehaving one from flooding logs and messages.
_MAX_ERROR_TEXT = 300


class TokenEndpoint:
    """Requests client access tokens from Mosaic's ``/oidc/token`` with client credentials."""

    def __init__(
        self,
        *,
        token_url: str,
        client_auth: ClientAuthentication,
        http_client: httpx.AsyncClient | None,
        clock: Callable[[], float],
        retry: RetryPolicy | None = None,
        telemetry: Telemetry | None = None,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    ) -> None:
        self.token_url = token_url
        self.client_auth = client_auth
        self.client_id = client_auth.client_id
        self._http_client = http_client
        self._owns_http_client = http_client is None
        self._clock = clock
        self.retry = retry or RetryPolicy()
        self._telemetry = telemetry or Telemetry()
        self._sleep = sleep

    def __repr__(self) -> str:
        return f"TokenEndpoint(token_url={self.token_url!r}, client_id={self.client_id!r})"

    async def request_token(
        self, resource: str | None, *, max_attempts: int | None = None
    ) -> AccessToken:
        """Request a new token for `resource`, retrying what may pass; raise `TokenRequestError`.

        Connection failures, timeouts, 5xx and 429 are retried up to `max_attempts` (by
        default the policy's), after a ``Retry-After`` wait or else a jittered backoff. A
        ``Retry-After`` longer than `max_retry_after` fails the fetch at once.
        """
        if max_attempts is None:
            max_attempts = self.retry.max_attempts
        telemetry = self._telemetry
        started = self._clock()
        attempt = 1
        while True:
            telemetry.token_requests += 1
            try:
                token = await self._attempt(resource)
            except TokenRequestError as error:
                telemetry.token_errors += 1
                retry_in = self._retry_in(error, attempt, max_attempts)
                telemetry.emit(
                    AuthEvent(
                        "token_request_failed",
                        resource,
                        attempt=attempt,
                        status_code=error.status_code,
                        error=type(error).__name__,
                        retry_in=retry_in,
                    ),
                    logging.WARNING if retry_in is None else logging.INFO,
                    "token request %d for resource %r failed (%s)%s",
                    attempt,
                    resource,
                    error,
                    "" if retry_in is None else f"; retrying in {retry_in:.2f} s",
                )
                if retry_in is None:
                    raise
                await self._sleep(retry_in)
                attempt += 1
                continue
            duration = self._clock() - started
            telemetry.emit(
                AuthEvent("token_fetched", resource, attempt=attempt, duration=duration),
                logging.INFO,
                "fetched a token for resource %r in %.3f s (%d attempt%s), expiring in %.0f s",
                resource,
                duration,
                attempt,
                "" if attempt == 1 else "s",
                token.expires_at - self._clock(),
            )
            return token

    def _retry_in(self, error: TokenRequestError, attempt: int, max_attempts: int) -> float | None:
        """Seconds to wait before the next attempt, or None to give up with `error`."""
        if attempt >= max_attempts or not is_retryable(error):
            return None
        if error.retry_after is None:
            return self.retry.delay(attempt)
        # The server said how long; waiting longer than we allow is failing now.
        return error.retry_after if error.retry_after <= self.retry.max_retry_after else None

    async def _attempt(self, resource: str | None) -> AccessToken:
        """One token request, bounded by the policy's timeout."""
        credentials = self.client_auth.credentials(self.token_url)
        form = {"grant_type": "client_credentials", **credentials.form}
        if resource is not None:
            form["resource"] = resource
        # `expires_in` counts from when the server answered; counting from before the request
        # was sent errs on the side of refreshing early.
        requested_at = self._clock()
        timeout = self.retry.timeout
        try:
            # httpx's own timeouts (5 s by default) bound each phase; ours bounds the whole.
            with anyio.fail_after(timeout):
                response = await self._client().post(
                    self.token_url,
                    data=form,
                    headers={"Accept": "application/json", **credentials.headers},
                    timeout=timeout,
                )
        except (TimeoutError, httpx.TimeoutException) as exc:
            raise TokenRequestError(
                f"the token endpoint {self.token_url} did not answer within {timeout:g} s "
                f"for resource {resource!r}",
                resource=resource,
            ) from exc
        except httpx.HTTPError as exc:
            raise TokenRequestError(
                f"could not reach the token endpoint {self.token_url} for resource "
                f"{resource!r}: {type(exc).__name__}",
                resource=resource,
            ) from exc
        if not response.is_success:
            raise self._refusal(response, resource, credentials.secrets)
        return parse_token_response(response, resource=resource, requested_at=requested_at)

    async def aclose(self) -> None:
        """Close the HTTP client, unless the caller passed one in and so owns it."""
        if self._owns_http_client and self._http_client is not None:
            await self._http_client.aclose()
            self._http_client = None

    def _client(self) -> httpx.AsyncClient:
        if self._http_client is None:
            self._http_client = httpx.AsyncClient()
        return self._http_client

    def _refusal(
        self, response: httpx.Response, resource: str | None, secrets: tuple[str, ...]
    ) -> TokenRequestError:
        error, description = (_redacted(text, secrets) for text in _error_fields(response))
        detail = ": ".join(part for part in (error, description) if part)
        message = f"the token endpoint refused a token for resource {resource!r}: " + (
            f"HTTP {response.status_code}" + (f" {detail}" if detail else "")
        )
        retry_after = retry_after_seconds(response.headers.get("Retry-After"), now=self._clock())
        if retry_after is not None and retry_after > self.retry.max_retry_after:
            message += (
                f"; it asked to retry after {retry_after:g} s, longer than "
                f"max_retry_after ({self.retry.max_retry_after:g} s)"
            )
        return TokenRequestError(
            message,
            status_code=response.status_code,
            error=error,
            error_description=description,
            resource=resource,
            retry_after=retry_after,
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
    expires_at = min(candidates)
    if expires_at <= requested_at:
        # Caching it would mean a new request for every API call.
        raise invalid("it expired before it arrived (is this machine's clock right?)")
    return AccessToken(
        token=access_token,
        expires_at=expires_at,
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
        error if isinstance(error, str) else None,
        description if isinstance(description, str) else None,
    )


def _redacted(text: str | None, secrets: tuple[str, ...]) -> str | None:
    """`text` from the server without any of `secrets` it echoed, cut to a sensible length."""
    if text is None:
        return None
    for secret in secrets:
        text = text.replace(secret, "[secret]")
    # Cut after redacting, so that a secret cut in half cannot slip through.
    return text[:_MAX_ERROR_TEXT]
