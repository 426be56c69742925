"""The token endpoint client: the request it sends and how it reads every kind of answer."""

from __future__ import annotations

import base64
import functools
import html
import json
import socket
import tracemalloc
import zlib
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, quote_plus

import httpx
import pytest

from mosaic_httpx_auth import AccessToken, TokenRequestError, TokenResponseError
from mosaic_httpx_auth._client_auth import ClientSecretBasic, ClientSecretPost
from mosaic_httpx_auth._endpoint import MAX_RESPONSE_BYTES, TokenEndpoint, parse_token_response
from mosaic_httpx_auth._retry import Retry

from .helpers import CLIENT_ID, CLIENT_SECRET, RISK, START, TOKEN_URL, FakeClock, make_jwt

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    from mosaic_httpx_auth._client_auth import ClientAuthentication

pytestmark = pytest.mark.anyio


def endpoint_answering(
    handler: Callable[[httpx.Request], httpx.Response],
    client_auth: ClientAuthentication | None = None,
) -> TokenEndpoint:
    """An endpoint client whose requests `handler` answers, by default with the secret posted."""
    return TokenEndpoint(
        token_url=TOKEN_URL,
        client_auth=client_auth or ClientSecretPost(CLIENT_ID, CLIENT_SECRET),
        http_client=httpx.AsyncClient(transport=httpx.MockTransport(handler)),
        clock=FakeClock(),
    )


def parse(body: Any, *, status: int = 200) -> AccessToken:
    return parse_bytes(json.dumps(body).encode(), status=status)


def parse_bytes(body: bytes, *, status: int = 200) -> AccessToken:
    return parse_token_response(body, status_code=status, resource=RISK, requested_at=START)


async def test_the_request_is_a_form_post_of_client_credentials() -> None:
    """The token request posts grant_type, client_id, client_secret and resource as a form."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"access_token": make_jwt(exp=START + 60)})

    token = await endpoint_answering(handler).request_token(RISK)
    (request,) = seen
    assert (request.method, str(request.url)) == ("POST", TOKEN_URL)
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert dict(parse_qsl(request.content.decode())) == {
        "grant_type": "client_credentials",
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "resource": RISK,
    }
    assert (token.resource, token.expires_at, token.issued_at) == (RISK, START + 60, START)


async def test_no_resource_means_no_resource_parameter() -> None:
    """A token for no resource (Identity Management) is requested without `resource`."""
    forms: list[dict[str, str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        forms.append(dict(parse_qsl(request.content.decode())))
        return httpx.Response(200, json={"access_token": "opaque", "expires_in": 60})

    await endpoint_answering(handler).request_token(None)
    assert "resource" not in forms[0]


def test_expiry_comes_from_the_jwt_exp_claim() -> None:
    """Without expires_in, the JWT's exp claim says when the token expires."""
    token = parse({"access_token": make_jwt(exp=START + 1234, aud=RISK), "token_type": "Bearer"})
    assert token.expires_at == START + 1234
    assert token.claims["aud"] == RISK


def test_expiry_falls_back_to_expires_in() -> None:
    """An opaque token expires `expires_in` seconds after it was requested."""
    token = parse({"access_token": "opaque-token", "expires_in": 900})
    assert token.expires_at == START + 900
    assert dict(token.claims) == {}


@pytest.mark.parametrize(("exp", "expires_in", "expected"), [(100, 200, 100), (300, 200, 200)])
def test_the_earlier_of_exp_and_expires_in_wins(exp: int, expires_in: int, expected: int) -> None:
    """When both the JWT and the response say when, the earlier time is used."""
    token = parse({"access_token": make_jwt(exp=START + exp), "expires_in": expires_in})
    assert token.expires_at == START + expected


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"access_token": make_jwt(aud=RISK)}, "neither a JWT exp claim nor expires_in"),
        ({"access_token": "opaque"}, "neither a JWT exp claim nor expires_in"),
        ({"access_token": make_jwt(exp="soon")}, "neither a JWT exp claim nor expires_in"),
        ({"access_token": make_jwt(exp=True)}, "neither a JWT exp claim nor expires_in"),
        ({"access_token": make_jwt(exp=START - 1)}, "expired before it arrived"),
        ({"access_token": make_jwt(exp=START)}, "expired before it arrived"),
        ({"access_token": "t", "expires_in": 0}, "expires_in is not a positive number"),
        ({"access_token": "t", "expires_in": "3600"}, "expires_in is not a positive number"),
        ({"access_token": "t", "expires_in": None}, "expires_in is not a positive number"),
        ({"expires_in": 60}, "no access_token"),
        ({"access_token": "", "expires_in": 60}, "no access_token"),
        ({"access_token": 7, "expires_in": 60}, "no access_token"),
        ({"access_token": "t", "expires_in": 60, "token_type": "mac"}, "not Bearer"),
        (["access_token"], "not a JSON object"),
    ],
)
def test_an_unusable_token_response_is_a_token_response_error(body: Any, reason: str) -> None:
    """A success answer without a usable token raises TokenResponseError saying why."""
    with pytest.raises(TokenResponseError, match=reason) as caught:
        parse(body)
    assert caught.value.status_code == 200
    assert caught.value.resource == RISK


def test_a_body_that_is_not_json_is_a_token_response_error() -> None:
    """A success answer whose body is not JSON raises TokenResponseError."""
    with pytest.raises(TokenResponseError, match="not a JSON object"):
        parse_bytes(b"<html>maintenance</html>")


def test_token_type_is_case_insensitive() -> None:
    """`token_type: bearer` in lower case is accepted, as RFC 6749 says it is."""
    assert parse({"access_token": "t", "expires_in": 5, "token_type": "bearer"}).token == "t"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"access_token": "t", "expires_in": 10**400}, "expires_in is not a positive number"),
        ({"access_token": "t", "expires_in": -(10**400)}, "expires_in is not a positive number"),
        ({"access_token": make_jwt(exp=10**400)}, "neither a JWT exp claim nor expires_in"),
    ],
)
def test_an_integer_too_large_for_a_float_is_not_an_expiry(body: Any, reason: str) -> None:
    """An expires_in or exp with hundreds of digits is a TokenResponseError, not OverflowError."""
    with pytest.raises(TokenResponseError, match=reason):
        parse(body)


def test_an_exp_too_large_for_a_float_counts_as_missing() -> None:
    """An exp claim with hundreds of digits leaves expires_in to say when the token expires."""
    token = parse({"access_token": make_jwt(exp=10**400), "expires_in": 60})
    assert token.expires_at == START + 60


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000,
        b'{"access_token": "t", "expires_in": ' + b"[" * 100_000,
        b'{"access_token": "t", "expires_in": 60, "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    ],
)
def test_deeply_nested_json_is_a_token_response_error(body: bytes) -> None:
    """A body nested deeper than the parser recurses is a TokenResponseError, not RecursionError."""
    with pytest.raises(TokenResponseError, match="not a JSON object"):
        parse_bytes(body)


def compact_jws(header: bytes, payload: bytes) -> str:
    """A compact JWS of `header` and `payload` as given, with a made-up signature."""
    segments = (header, payload, b"signature")
    return ".".join(base64.urlsafe_b64encode(part).rstrip(b"=").decode() for part in segments)


@pytest.mark.parametrize(
    "access_token",
    [
        compact_jws(
            b'{"alg": "HS256"}', b'{"exp": 1, "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
        ),
        compact_jws(b'{"alg": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", b'{"exp": 1}'),
    ],
)
def test_a_jwt_nested_too_deep_to_read_is_an_opaque_token(access_token: str) -> None:
    """A JWT whose header or claims nest too deep is used as an opaque token, not RecursionError."""
    token = parse({"access_token": access_token, "expires_in": 60})
    assert (token.expires_at, dict(token.claims)) == (START + 60, {})


@pytest.mark.parametrize(
    "access_token",
    [
        "leaked-token-value\n",
        "leaked token value",
        "leaked-token-value\r\nX-Injected: 1",
        "leaked-token-\x00value",
        "leaked-tökén-value",
        "leaked=token-value",
        "Bearer leaked-token-value",
    ],
)
def test_an_access_token_a_header_cannot_carry_is_refused_unechoed(access_token: str) -> None:
    """An access_token outside RFC 6750's b64token syntax is a TokenResponseError that does not
    repeat it, rather than a cached token that breaks every API request."""
    with pytest.raises(TokenResponseError, match="b64token") as caught:
        parse({"access_token": access_token, "expires_in": 60})
    assert "leaked" not in str(caught.value)


@pytest.mark.parametrize(
    ("status", "body", "error", "description"),
    [
        (
            401,
            {"error": "invalid_client", "error_description": "bad creds"},
            "invalid_client",
            "bad creds",
        ),
        (400, {"message": "resource not allowed", "error_code": 400}, None, "resource not allowed"),
        (500, {"message": "boom", "error_code": 500}, None, "boom"),
        (502, "<html>bad gateway</html>", None, None),
        (429, {"error": 429, "message": ["odd"]}, None, None),
    ],
)
async def test_refusals_are_parsed_from_both_error_shapes(
    status: int, body: Any, error: str | None, description: str | None
) -> None:
    """A refusal becomes a TokenRequestError with the status, error and description it carried."""

    def handler(request: httpx.Request) -> httpx.Response:
        if isinstance(body, str):
            return httpx.Response(status, text=body)
        return httpx.Response(status, json=body)

    with pytest.raises(TokenRequestError) as caught:
        await endpoint_answering(handler).request_token(RISK)
    refusal = caught.value
    assert type(refusal) is TokenRequestError
    assert (refusal.status_code, refusal.error, refusal.error_description) == (
        status,
        error,
        description,
    )
    assert f"HTTP {status}" in str(refusal)
    assert RISK in str(refusal)


async def test_an_unreachable_endpoint_is_a_token_request_error_without_status() -> None:
    """A connection failure raises TokenRequestError with no status code, chained to its cause."""

    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with pytest.raises(TokenRequestError, match="could not reach") as caught:
        await endpoint_answering(handler).request_token(None)
    assert caught.value.status_code is None
    assert isinstance(caught.value.__cause__, httpx.ConnectError)


async def test_a_secret_echoed_by_the_server_is_redacted() -> None:
    """An error description that repeats the client secret does not carry it into the error."""

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            401,
            json={"error": "invalid_client", "error_description": f"bad secret {CLIENT_SECRET}"},
        )

    with pytest.raises(TokenRequestError) as caught:
        await endpoint_answering(handler).request_token(None)
    assert caught.value.error_description == "bad secret [secret]"
    assert CLIENT_SECRET not in str(caught.value)


# Characters that form-urlencoding, percent-encoding and JSON each write differently.
ODD_SECRET = 'a+b&c/d=e f"g'


@pytest.mark.parametrize(
    ("client_auth", "echo"),
    [
        pytest.param(ClientSecretPost, lambda request: ODD_SECRET, id="post-raw"),
        pytest.param(ClientSecretPost, lambda request: quote_plus(ODD_SECRET), id="post-form"),
        pytest.param(ClientSecretPost, lambda request: request.content.decode(), id="post-body"),
        pytest.param(ClientSecretPost, lambda request: quote(ODD_SECRET), id="post-percent"),
        pytest.param(
            ClientSecretPost, lambda request: quote(ODD_SECRET, safe=""), id="post-percent-all"
        ),
        pytest.param(
            ClientSecretPost, lambda request: quote_plus(ODD_SECRET).lower(), id="post-lowercase"
        ),
        pytest.param(ClientSecretPost, lambda request: json.dumps(ODD_SECRET), id="post-json"),
        pytest.param(ClientSecretPost, lambda request: html.escape(ODD_SECRET), id="post-html"),
        pytest.param(
            ClientSecretPost,
            lambda request: base64.b64encode(ODD_SECRET.encode()).decode(),
            id="post-base64",
        ),
        pytest.param(
            ClientSecretPost,
            lambda request: base64.urlsafe_b64encode(ODD_SECRET.encode()).decode().rstrip("="),
            id="post-base64url",
        ),
        pytest.param(
            ClientSecretPost,
            lambda request: quote(quote(ODD_SECRET, safe=""), safe=""),
            id="post-percent-twice",
        ),
        pytest.param(
            ClientSecretPost,
            lambda request: "".join(c if c.isalnum() else f"&#x{ord(c):X};" for c in ODD_SECRET),
            id="post-html-numeric",
        ),
        pytest.param(
            ClientSecretPost,
            lambda request: base64.b64encode(b"=" + quote_plus(ODD_SECRET).encode()).decode(),
            id="post-form-base64-shifted",
        ),
        pytest.param(
            ClientSecretPost,
            lambda request: base64.urlsafe_b64encode(b"x=" + ODD_SECRET.encode()).decode(),
            id="post-base64url-shifted",
        ),
        pytest.param(ClientSecretBasic, lambda request: ODD_SECRET, id="basic-raw"),
        pytest.param(ClientSecretBasic, lambda request: quote_plus(ODD_SECRET), id="basic-form"),
        pytest.param(
            ClientSecretBasic,
            lambda request: request.headers["Authorization"].removeprefix("Basic "),
            id="basic-credential",
        ),
        pytest.param(
            ClientSecretBasic,
            lambda request: base64.b64decode(
                request.headers["Authorization"].removeprefix("Basic ")
            ).decode(),
            id="basic-decoded",
        ),
    ],
)
async def test_a_secret_echoed_in_any_encoding_is_redacted(
    client_auth: Callable[[str, str], ClientAuthentication],
    echo: Callable[[httpx.Request], str],
) -> None:
    """An error text that repeats the secret urlencoded, JSON-escaped, HTML-escaped, base64'd
    or as the Basic credential carries none of those forms into the error."""
    echoed: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        echoed.append(echo(request))
        description = f"bad client credentials {echoed[-1]} !"
        return httpx.Response(
            401, json={"error": "invalid_client", "error_description": description}
        )

    endpoint = endpoint_answering(handler, client_auth(CLIENT_ID, ODD_SECRET))
    with pytest.raises(TokenRequestError) as caught:
        await endpoint.request_token(None)
    (form,) = echoed
    for text in (str(caught.value), caught.value.error_description or ""):
        assert ODD_SECRET not in text
        assert form not in text
        assert quote_plus(ODD_SECRET) not in text
    assert "[secret]" in str(caught.value)


def test_endpoint_repr_hides_the_secret() -> None:
    """The endpoint's repr names the URL and client id, not the secret."""
    text = repr(endpoint_answering(lambda request: httpx.Response(500)))
    assert CLIENT_ID in text
    assert CLIENT_SECRET not in text


async def test_each_attempt_gets_the_configured_timeout_not_httpx_default() -> None:
    """The token request carries `timeout` as its httpx timeout, so httpx's 5 s default
    neither cuts a longer one short nor outlives a shorter one."""
    seen: list[dict[str, float]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.extensions["timeout"])
        return httpx.Response(200, json={"access_token": "t", "expires_in": 60})

    endpoint = endpoint_answering(handler)
    endpoint.retry = Retry(attempt_timeout=30.0)
    await endpoint.request_token(None)
    assert seen == [{"connect": 30.0, "read": 30.0, "write": 30.0, "pool": 30.0}]


async def test_an_httpx_timeout_is_reported_as_one() -> None:
    """A read timeout raised by httpx says the endpoint did not answer in time."""

    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    with pytest.raises(TokenRequestError, match="did not answer within 10 s"):
        await endpoint_answering(handler).request_token(None)


# Cut off mid-stream, httpx's own nested generators are left for the collector, which trio
# reports; what this test pins is how much was read.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
async def test_an_endless_token_response_is_read_only_so_far() -> None:
    """A streamed answer with no length is cut off once past the bound, not read to its end."""
    pulled: list[int] = []

    class Endless(httpx.AsyncByteStream):
        async def __aiter__(self) -> AsyncIterator[bytes]:
            while True:
                pulled.append(1)
                yield b" " * 65536

    endpoint = endpoint_answering(lambda request: httpx.Response(200, stream=Endless()))
    with pytest.raises(TokenResponseError, match="more than 256 KiB"):
        await endpoint.request_token(RISK)
    assert len(pulled) <= MAX_RESPONSE_BYTES // 65536 + 1


class Arriving(httpx.AsyncByteStream):
    """`body` arriving in 64 KiB chunks, as from a socket, rather than read in advance."""

    def __init__(self, body: bytes) -> None:
        self.body = body

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for start in range(0, len(self.body), 65536):
            yield self.body[start : start + 65536]


_WBITS = {"gzip": zlib.MAX_WBITS | 16, "deflate": zlib.MAX_WBITS, "raw deflate": -zlib.MAX_WBITS}


def compressed(body: bytes, coding: str) -> bytes:
    """`body` encoded as `coding` says: gzip, deflate (zlib-wrapped, as the RFC says) or raw
    deflate (as some servers send deflate)."""
    compressor = zlib.compressobj(wbits=_WBITS[coding])
    return compressor.compress(body) + compressor.flush()


@functools.cache
def gzip_bomb() -> bytes:
    """About 200 KiB of gzip that inflates to 200 MiB of zeros, built a MiB at a time."""
    compressor = zlib.compressobj(wbits=zlib.MAX_WBITS | 16)
    zeros = bytes(1 << 20)
    return b"".join([*(compressor.compress(zeros) for _ in range(200)), compressor.flush()])


@pytest.mark.parametrize("coding", ["gzip", "deflate", "raw deflate"])
async def test_a_compressed_token_response_is_inflated(coding: str) -> None:
    """A token answer in gzip or deflate, the encodings the request asks for, is read; deflate
    without zlib's wrapping too, as httpx reads it."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        body = compressed(json.dumps({"access_token": "t", "expires_in": 60}).encode(), coding)
        headers = {"Content-Encoding": coding.removeprefix("raw ")}
        return httpx.Response(200, headers=headers, stream=Arriving(body))

    token = await endpoint_answering(handler).request_token(RISK)
    assert token.token == "t"
    assert seen[0].headers["Accept-Encoding"] == "gzip, deflate"


# Cut off mid-stream, as the endless answer above is.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
async def test_a_gzip_bomb_is_refused_having_inflated_little_more_than_the_bound() -> None:
    """A 200 KiB gzip answer that inflates to 200 MiB is refused without memory growing by
    more than a few MiB, not after inflating a whole chunk as it arrived."""
    bomb = gzip_bomb()
    headers = {"Content-Encoding": "gzip", "Content-Length": str(len(bomb))}
    assert len(bomb) < MAX_RESPONSE_BYTES  # so the Content-Length check lets it through
    endpoint = endpoint_answering(
        lambda request: httpx.Response(200, headers=headers, stream=Arriving(bomb))
    )
    tracemalloc.start()
    try:
        with pytest.raises(TokenResponseError, match="more than 256 KiB"):
            await endpoint.request_token(RISK)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * 1024 * 1024


async def test_an_answer_read_as_it_was_made_is_bounded_too() -> None:
    """A handler's answer that httpx read whole when it was made (gzip, so its Content-Length
    is small) is refused once inflated past the bound, as a streamed one is."""
    body = compressed(bytes(MAX_RESPONSE_BYTES + 1), "gzip")
    endpoint = endpoint_answering(
        lambda request: httpx.Response(200, headers={"Content-Encoding": "gzip"}, content=body)
    )
    with pytest.raises(TokenResponseError, match="more than 256 KiB"):
        await endpoint.request_token(RISK)


@pytest.mark.parametrize("coding", ["br", "zstd", "compress", "gzip, gzip"])
async def test_an_encoding_that_cannot_be_inflated_in_bounds_is_refused(coding: str) -> None:
    """A token answer in an encoding other than gzip or deflate, or in two at once, is a
    TokenResponseError naming it."""
    headers = {"Content-Encoding": coding}
    endpoint = endpoint_answering(
        lambda request: httpx.Response(200, headers=headers, stream=Arriving(b"{}"))
    )
    with pytest.raises(TokenResponseError, match=f"is encoded as {coding}: not a token response"):
        await endpoint.request_token(RISK)


# Cut off mid-stream, as the endless answer above is.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
async def test_a_corrupt_compressed_answer_is_a_token_response_error() -> None:
    """A token answer that says gzip but does not inflate is a TokenResponseError saying so."""
    headers = {"Content-Encoding": "gzip"}
    endpoint = endpoint_answering(
        lambda request: httpx.Response(200, headers=headers, stream=Arriving(b"not gzip"))
    )
    with pytest.raises(TokenResponseError, match="is not valid gzip: not a token response"):
        await endpoint.request_token(RISK)


async def test_a_name_that_does_not_resolve_is_named_as_such() -> None:
    """A token request whose host does not resolve says so, not just `ConnectError`."""

    def handler(request: httpx.Request) -> httpx.Response:
        try:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        except socket.gaierror as exc:
            raise httpx.ConnectError("[Errno -2] Name or service not known") from exc

    with pytest.raises(TokenRequestError, match="host name could not be resolved"):
        await endpoint_answering(handler).request_token(RISK)


async def test_a_transport_error_quoting_the_secret_is_redacted() -> None:
    """A connection error whose text happens to quote the secret does not carry it on."""

    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(f"cannot send client_secret={CLIENT_SECRET}")

    with pytest.raises(TokenRequestError, match="could not reach") as caught:
        await endpoint_answering(handler).request_token(RISK)
    assert CLIENT_SECRET not in str(caught.value)
    assert "[secret]" in str(caught.value)
