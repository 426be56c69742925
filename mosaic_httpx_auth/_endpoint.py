"""The token endpoint client: one client-credentials request, and what its answer means."""

from __future__ import annotations

import math
import re
import socket
import ssl
import zlib
from contextlib import aclosing
from typing import TYPE_CHECKING, Any, cast

import anyio
import anyio.to_thread
import httpx
from anyio.lowlevel import RunVar

from ._exceptions import TokenRequestError, TokenResponseError
from ._messages import for_resource
from ._retry import Retry, causes, retry_after_seconds
from ._scrubbing import detached, forget_frames, without_secrets
from ._security import is_loopback
from ._token import AccessToken, json_object, unverified_claims

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, Callable
    from types import ModuleType

    from ._client_auth import ClientAuthentication, TokenRequestCredentials

# Error texts come from the server; keep a misbehaving one from flooding logs and messages.
_MAX_ERROR_TEXT = 300
MAX_RESPONSE_BYTES = 256 * 1024
"""A token response is a few KiB; reading more would let a broken endpoint exhaust memory."""
# The content encodings a token response may come in, with the zlib window that inflates each:
# zlib can stop inflating at a given length, so a small bomb cannot fill memory.
_ZLIB_WBITS = {"gzip": zlib.MAX_WBITS | 16, "deflate": zlib.MAX_WBITS}


class TokenEndpoint:
    """Requests client access tokens from Mosaic's ``/oidc/token`` with client credentials.

    One request per call: retries are the token fetcher's to decide. Without an `http_client`
    it opens one of its own per event loop, as a client's connections belong to the loop that
    opened them, so that one `MosaicAuth` serves one ``asyncio.run`` after another; each uses
    `ssl_context`, if given (its trust, and the client certificate it presents), or
    `transport`, one that holds no connection (the emulator's).
    """

    def __init__(
        self,
        *,
        token_url: str,
        client_auth: ClientAuthentication,
        http_client: httpx.AsyncClient | None,
        clock: Callable[[], float],
        retry: Retry | None = None,
        http: ModuleType = httpx,
        ssl_context: ssl.SSLContext | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.token_url = token_url
        self.client_auth = client_auth
        self.client_id = client_auth.client_id
        self.retry = retry or Retry()
        self._http_client = http_client
        self._http = http
        self._ssl_context = ssl_context
        self._transport = transport
        self._own_clients: RunVar[httpx.AsyncClient | None] = RunVar("token client", None)
        self._clock = clock

    def __repr__(self) -> str:
        return f"TokenEndpoint(token_url={self.token_url!r}, client_id={self.client_id!r})"

    async def request_token(
        self, resource: str | None, *, on_sent: Callable[[], object] | None = None
    ) -> AccessToken:
        """Request a new token for `resource` once; raise `TokenRequestError` if that fails.

        `on_sent` is called as the request is handed to the HTTP client: a caller that is
        cancelled before then has sent nothing.

        What fails carries no frame that held the credentials: error trackers collect the
        locals of every frame an error and its causes carry (sentry-sdk does by default), and
        those of the request, httpx's and httpcore's hold the secret, the Basic credential or
        the client assertion. So the error and its causes leave without their frames.
        """
        credentials = self.client_auth.credentials(self.token_url)
        try:
            return await self._exchange(resource, credentials, on_sent)
        except Exception as error:
            # The place of an error no one expected (a bug, an application transport's) is
            # kept as text: someone will need it.
            expected = (TokenRequestError, TimeoutError, self._http.HTTPError)
            failure = detached(
                error, credentials.secrets, with_places=not isinstance(error, expected)
            )
        except BaseException as error:
            # A cancellation, Ctrl+C: it travels as itself, without the frames it came through.
            # (Raised below, not again here: before Python 3.11, a bare raise restores the
            # traceback it caught.)
            forget_frames(error)
            failure = error
        # This frame goes with the error, and none of its locals may hold a credential.
        del credentials
        raise failure

    async def _exchange(
        self,
        resource: str | None,
        credentials: TokenRequestCredentials,
        on_sent: Callable[[], object] | None,
    ) -> AccessToken:
        form = {"grant_type": "client_credentials", **credentials.form}
        if resource is not None:
            form["resource"] = resource
        client = await self._client()
        if on_sent is not None:
            on_sent()
        # `expires_in` counts from when the server answered; counting from before the request
        # was sent errs on the side of refreshing early.
        requested_at = self._clock()
        try:
            response, body = await self._post(client, form, credentials.headers, resource)
        except TokenRequestError:
            raise  # the body was refused: already said
        except (TimeoutError, self._http.TimeoutException) as exc:
            raise TokenRequestError(
                f"the token endpoint {self.token_url} did not answer within "
                f"{self.retry.attempt_timeout:g} s, "
                f"asked for a token {for_resource(resource)}",
                resource=resource,
            ) from exc
        except self._http.HTTPError as exc:
            raise TokenRequestError(
                f"could not reach the token endpoint {self.token_url} to ask for a token "
                # The transport's own words are redacted like the server's: they are not ours.
                f"{for_resource(resource)}: "
                f"{_redacted(_unreachable_because(exc), credentials.secrets)}",
                resource=resource,
            ) from exc
        if not response.is_success:
            raise self._error_answer(response, body, resource, credentials.secrets)
        return parse_token_response(
            body, status_code=response.status_code, resource=resource, requested_at=requested_at
        )

    async def _post(
        self,
        client: httpx.AsyncClient,
        form: dict[str, str],
        headers: dict[str, str],
        resource: str | None,
    ) -> tuple[httpx.Response, bytes]:
        """POST `form` to the token URL: the response, and its body read within bounds."""
        timeout = self.retry.attempt_timeout
        # httpx's own timeouts (5 s by default) bound each phase; ours bounds the whole.
        with anyio.fail_after(timeout):
            # auth=None: when `http_client` is the API client carrying this MosaicAuth, a
            # token request must not wait for the token it is fetching.
            async with client.stream(
                "POST",
                self.token_url,
                data=form,
                headers={
                    "Accept": "application/json",
                    # Not br or zstd, which httpx asks for when it can: those it would
                    # inflate a whole chunk at a time, past any bound.
                    "Accept-Encoding": ", ".join(_ZLIB_WBITS),
                    **headers,
                },
                timeout=timeout,
                auth=None,
                # Never, whatever the client's own setting: a redirect would carry the
                # credentials to wherever it points.
                follow_redirects=False,
            ) as response:
                return response, await _read_bounded(response, resource)

    async def aclose(self) -> None:
        """Close this event loop's own HTTP client; one the caller passed in is the caller's."""
        client = self._own_clients.get()
        if client is not None:
            self._own_clients.set(None)
            await client.aclose()

    async def _client(self) -> httpx.AsyncClient:
        if self._http_client is not None:
            return self._http_client
        client = self._own_clients.get()
        if client is None:
            # A new client loads the CA bundle into an SSL context, tens of milliseconds of
            # work that would stall every request on the event loop: do it on a thread.
            client = await anyio.to_thread.run_sync(
                _own_client, self._http, self.token_url, self._ssl_context, self._transport
            )
            opened_meanwhile = self._own_clients.get()
            if opened_meanwhile is not None:
                await client.aclose()
                return opened_meanwhile
            self._own_clients.set(client)
        return client

    def _error_answer(
        self,
        response: httpx.Response,
        body: bytes,
        resource: str | None,
        secrets: tuple[str, ...],
    ) -> TokenRequestError:
        error, description = (_redacted(text, secrets) for text in _error_fields(body))
        detail = ": ".join(part for part in (error, description) if part)
        message = f"the token endpoint refused a token {for_resource(resource)}: " + (
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


def _unreachable_because(error: httpx.HTTPError) -> str:
    """Why a token request got no answer, in words a person can act on."""
    for cause in causes(error):
        if isinstance(cause, ssl.SSLCertVerificationError):
            return f"its TLS certificate could not be verified ({cause.verify_message})"
        if isinstance(cause, socket.gaierror):
            return f"its host name could not be resolved ({cause.strerror})"
        if isinstance(cause, ConnectionRefusedError):
            return "the connection was refused (is anything listening there?)"
    detail = str(error)[:_MAX_ERROR_TEXT]
    return f"{type(error).__name__}: {detail}" if detail else type(error).__name__


def _own_client(
    http: ModuleType,
    token_url: str,
    ssl_context: ssl.SSLContext | None,
    transport: httpx.AsyncBaseTransport | None,
) -> httpx.AsyncClient:
    """A token client that keeps no idle connection: tokens are fetched about once an hour, and
    a connection left open would belong to an event loop that may be gone by the next fetch.
    Its TLS is `ssl_context`'s, if given: whom it trusts, and which certificate it presents.

    A token endpoint on this machine (a sidecar, the emulator) is reached directly, never
    through a proxy the environment names: over plain HTTP, the secret would cross it in clear.
    """
    if transport is not None:
        # In process (the emulator): no connection to keep, and no proxy may take it elsewhere.
        in_process: httpx.AsyncClient = http.AsyncClient(transport=transport, trust_env=False)
        return in_process
    host = http.URL(token_url).host
    direct = {f"all://{f'[{host}]' if ':' in host else host}": None} if is_loopback(host) else {}
    client: httpx.AsyncClient = http.AsyncClient(
        limits=http.Limits(max_keepalive_connections=0),
        mounts=direct,
        verify=True if ssl_context is None else ssl_context,
    )
    return client


async def _read_bounded(response: httpx.Response, resource: str | None) -> bytes:
    """The response body, inflated, or a `TokenResponseError` once it grows past what a token
    needs, whether as it arrives or as it inflates."""

    def refused(reason: str) -> TokenResponseError:
        return TokenResponseError(
            f"the token endpoint's answer (HTTP {response.status_code}) to a request for a token "
            f"{for_resource(resource)} {reason}: not a token response",
            status_code=response.status_code,
            resource=resource,
        )

    too_large = f"has more than {MAX_RESPONSE_BYTES // 1024} KiB"
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > MAX_RESPONSE_BYTES:
        raise refused(too_large)  # refused unread
    if response.is_stream_consumed:
        # Read whole as it was made, as an httpx.MockTransport handler's answers are: it is in
        # memory already, and inflated by httpx.
        if len(response.content) > MAX_RESPONSE_BYTES:
            raise refused(too_large)
        return response.content
    codings = [
        coding
        for value in response.headers.get_list("Content-Encoding", split_commas=True)
        if (coding := value.strip().lower()) not in ("", "identity")
    ]
    if len(codings) > 1 or (codings and codings[0] not in _ZLIB_WBITS):
        raise refused(f"is encoded as {', '.join(codings)}")
    inflater = _Inflater(codings[0]) if codings else None
    chunks: list[bytes] = []
    received = size = 0
    # Raw, as httpx inflates each chunk whole: 64 KiB of gzip can be 64 MiB.
    # Closed at once, not when collected: trio warns of a generator left half-read.
    parts = cast("AsyncGenerator[bytes, None]", response.aiter_raw())
    async with aclosing(parts) as body:
        async for raw in body:
            received += len(raw)
            chunk = raw
            if inflater is not None:
                # One byte past the bound is enough to refuse: the rest is never needed.
                try:
                    chunk = inflater.inflate(raw, MAX_RESPONSE_BYTES + 1 - size)
                except zlib.error as exc:
                    raise refused(f"is not valid {codings[0]}") from exc
            size += len(chunk)
            if max(received, size) > MAX_RESPONSE_BYTES:
                raise refused(too_large)
            chunks.append(chunk)
    return b"".join(chunks)


class _Inflater:
    """Inflates a body chunk by chunk, each to at most a given size."""

    def __init__(self, coding: str) -> None:
        self._coding = coding
        self._zlib = zlib.decompressobj(_ZLIB_WBITS[coding])
        self._fed = 0

    def inflate(self, raw: bytes, limit: int) -> bytes:
        """`raw` inflated, at most `limit` bytes of it; `zlib.error` if it is not valid."""
        first = self._fed == 0
        self._fed += len(raw)
        try:
            return self._zlib.decompress(raw, limit)
        except zlib.error:
            if self._coding != "deflate" or not first:
                raise
            # Raw deflate, without zlib's wrapping, as some servers send it and httpx
            # accepts it.
            self._zlib = zlib.decompressobj(-zlib.MAX_WBITS)
            return self._zlib.decompress(raw, limit)


# RFC 6750 §2.1 ``b64token``: all that a Bearer header can carry.
_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")


def parse_token_response(
    body: bytes, *, status_code: int, resource: str | None, requested_at: float
) -> AccessToken:
    """Turn a successful token response into an `AccessToken`, or raise `TokenResponseError`.

    The expiry is the earlier of the JWT's ``exp`` claim and ``requested_at + expires_in``;
    the JWT is decoded without verifying its signature, as a client need not verify its own
    tokens.
    """

    def invalid(reason: str) -> TokenResponseError:
        return TokenResponseError(
            f"the token endpoint's answer (HTTP {status_code}) to a request for a token "
            f"{for_resource(resource)} is not a usable token response: {reason}",
            status_code=status_code,
            resource=resource,
        )

    fields = json_object(body)
    if fields is None:
        raise invalid("the body is not a JSON object")
    access_token = fields.get("access_token")
    if not isinstance(access_token, str) or not access_token:
        raise invalid("no access_token")
    if not _B64TOKEN.fullmatch(access_token):
        # Cached, it would fail every API request with an httpx error that quotes it: this won't.
        raise invalid("access_token is not RFC 6750 b64token text a Bearer header can carry")
    token_type = fields.get("token_type", "Bearer")
    if not isinstance(token_type, str) or token_type.lower() != "bearer":
        raise invalid("token_type is not Bearer")

    claims = unverified_claims(access_token)
    expires_at = _expires_at(fields, claims, requested_at, invalid)
    return AccessToken(
        token=access_token,
        expires_at=expires_at,
        resource=resource,
        claims=claims,
        issued_at=requested_at,
    )


def _expires_at(
    fields: dict[str, Any],
    claims: dict[str, Any],
    requested_at: float,
    invalid: Callable[[str], TokenResponseError],
) -> float:
    """When the token expires: the earlier of its ``exp`` claim and ``requested_at +
    expires_in``; `invalid`'s error if neither says, or if that is already past."""
    candidates = []
    exp = _finite_number(claims.get("exp"))
    if exp is not None:
        candidates.append(exp)
    if "expires_in" in fields:
        expires_in = _finite_number(fields["expires_in"])
        if expires_in is None or expires_in <= 0:
            raise invalid("expires_in is not a positive number")
        candidates.append(requested_at + expires_in)
    if not candidates:
        raise invalid("neither a JWT exp claim nor expires_in says when the token expires")
    expires_at = min(candidates)
    if expires_at <= requested_at:
        # Caching it would mean a new request for every API call.
        raise invalid("it expired before it arrived (is this machine's clock right?)")
    return expires_at


def _finite_number(value: object) -> float | None:
    """`value` as a float if it is a finite JSON number (a bool is not one), else None."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except OverflowError:  # an integer of hundreds of digits
        return None
    return number if math.isfinite(number) else None


def _error_fields(body: bytes) -> tuple[str | None, str | None]:
    """The error code and description of an error answer, from either of Mosaic's shapes."""
    fields = json_object(body)
    if fields is None:
        return None, None
    error = fields.get("error")
    description = fields.get("error_description", fields.get("message"))
    return (
        error if isinstance(error, str) else None,
        description if isinstance(description, str) else None,
    )


def _redacted(text: str | None, secrets: tuple[str, ...]) -> str | None:
    """`text` from the server without any of `secrets` it echoed, cut to a sensible length."""
    if text is None:
        return None
    # Cut after redacting, so that a secret cut in half cannot slip through.
    return without_secrets(text, secrets)[:_MAX_ERROR_TEXT]
