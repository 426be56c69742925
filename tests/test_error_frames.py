"""No secret is reachable from a token request's failure, frames and causes included.

An error tracker (sentry-sdk with its default settings, rich's ``show_locals``,
``traceback.TracebackException(capture_locals=True)``) shows the local variables of every
frame an exception carries, and of its causes'. Each failure mode the token endpoint can have
is tried, over real sockets on loopback, for each way the client authenticates, and every
value reachable from the error the caller gets is searched for the secret in all its forms
(for a client certificate whose key file `from_env` read, for the key and its digest).
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import hashlib
import socket
import ssl
import sys
import threading
import time
import traceback
from typing import TYPE_CHECKING, Any, cast

import anyio
import anyio.to_thread
import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from joserfc.jwk import RSAKey

from mosaic_httpx_auth import MosaicAuth, Retry, TokenRequestError, generate_signing_key
from mosaic_httpx_auth._client_auth import ClientSecretPost, PrivateKeyJWT, secret_forms
from mosaic_httpx_auth._endpoint import TokenEndpoint
from mosaic_httpx_auth._environment import CLIENT_CERTIFICATE_FILE, CLIENT_KEY_FILE
from mosaic_httpx_auth._retry import causes
from mosaic_httpx_auth.testing import ClientCertificate, make_client_certificate
from mosaic_httpx_auth.testing._tls import write_server_certificate

from .helpers import CLIENT_ID, CLIENT_SECRET, make_jwt

if sys.version_info < (3, 11):
    from exceptiongroup import BaseExceptionGroup

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

pytestmark = pytest.mark.anyio

MOSAIC_HOST = "api.transmitsecurity.io"
PRIVATE_KEY = generate_signing_key("RS256").private_key_pem
# The status of the failures that answer, with a body that quotes the whole request back.
# How far into containers the search looks, from the error: further than a crash reporter does.
MAX_DEPTH = 8
# A request with no pool timeout has no deadline: one attempt (max_attempts=1), then its error.
NO_POOL_DEADLINE = httpx.Timeout(5.0, pool=None)
ECHOING = {"refusal": b"401", "garbage": b"200"}


class Endpoint:
    """A token endpoint on a loopback socket that fails in one way, on a thread of its own."""

    def __init__(self, failure: str, tls: ssl.SSLContext | None) -> None:
        self.failure = failure
        self._tls = tls
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._held: list[socket.socket] = []
        if failure == "refused":
            self._listener.close()  # nothing listens on the port any more
            return
        threading.Thread(target=self._serve, daemon=True).start()

    def close(self) -> None:
        for connection in [*self._held, self._listener]:
            connection.close()

    def _serve(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                connection, _ = self._listener.accept()
                self._held.append(connection)
                if self._tls is not None:
                    with contextlib.suppress(OSError):
                        self._tls.wrap_socket(connection, server_side=True)
                    continue  # the client gave up on the handshake
                request = _read_request(connection)
                if self.failure == "dropped":
                    connection.close()
                elif self.failure in ECHOING:
                    body = b"echo: " + request
                    connection.sendall(
                        b"HTTP/1.1 " + ECHOING[self.failure] + b" x\r\n"
                        b"Content-Type: application/json\r\nConnection: close\r\n"
                        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
                    )
                # "timeout": read, and never answer


def _read_request(connection: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        data += connection.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        (
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if b"content-length" in line.lower()
        ),
        0,
    )
    while len(body) < length:
        body += connection.recv(65536)
    return head + b"\r\n\r\n" + body


@pytest.fixture
def assertions(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every client assertion signed during the test: each is a credential for its minute."""
    signed: list[str] = []
    sign = PrivateKeyJWT.assertion

    def recorded(self: PrivateKeyJWT, audience: str) -> str:
        signed.append(sign(self, audience))
        return signed[-1]

    monkeypatch.setattr(PrivateKeyJWT, "assertion", recorded)
    return signed


@pytest.fixture
def unresolvable_mosaic(monkeypatch: pytest.MonkeyPatch) -> None:
    """Mosaic's host name does not resolve: no lookup leaves this machine."""
    lookup = socket.getaddrinfo

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host in (MOSAIC_HOST, MOSAIC_HOST.encode()):
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return lookup(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@pytest.fixture(scope="module")
def client_certificate(tmp_path_factory: pytest.TempPathFactory) -> ClientCertificate:
    return make_client_certificate(tmp_path_factory.mktemp("client-certificate"))


def _auth(method: str, token_url: str, base_url: str, certificate: ClientCertificate) -> MosaicAuth:
    settings: dict[str, Any] = {
        "token_url": token_url,
        "base_url": base_url,
        "retry": Retry(max_attempts=1, attempt_timeout=0.25),
    }
    if method == "private_key_jwt":
        return MosaicAuth(CLIENT_ID, private_key=PRIVATE_KEY, **settings)
    if method == "tls_client_auth":
        # From the files, so that the key passes through the process (for a shared cache).
        with pytest.MonkeyPatch.context() as environment:
            environment.setenv(CLIENT_CERTIFICATE_FILE, str(certificate.cert_path))
            environment.setenv(CLIENT_KEY_FILE, str(certificate.key_path))
            return MosaicAuth.from_env(client_id=CLIENT_ID, **settings)
    return MosaicAuth(CLIENT_ID, CLIENT_SECRET, client_auth=cast("Any", method), **settings)


def key_forms(key_path: Path) -> set[str]:
    """A client certificate's private key as its file holds it (each line of the PEM), its
    private number (unless the file is encrypted), and the digest a shared cache derives its
    secret from."""
    pem = key_path.read_bytes()
    digest = hashlib.sha256(pem).digest()
    forms = {line for line in pem.decode().splitlines() if "PRIVATE KEY" not in line}
    forms |= {digest.hex(), digest.decode("latin-1")}
    with contextlib.suppress(TypeError):  # encrypted: its lines and digest are what it holds
        key = serialization.load_pem_private_key(pem, None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        forms.add(str(key.private_numbers().private_value))
    return forms


def _secrets(assertions: list[str]) -> set[str]:
    """The secret, the Basic credential, the private key and the assertions, in every form a
    server or a library may write them in."""
    basic = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
    private = RSAKey.import_key(PRIVATE_KEY).as_dict(private=True)
    forms = {
        *secret_forms(CLIENT_SECRET),
        *secret_forms(basic),
        str(private["d"]),
        str(private["p"]),
    }
    forms.add(PRIVATE_KEY.decode().splitlines()[1])  # a line of the PEM
    for assertion in assertions:
        forms.update(secret_forms(assertion))
        forms.add(assertion.rsplit(".", 1)[1])  # its signature alone
    return forms


def reachable_text(error: BaseException) -> Iterator[str]:
    """What a crash reporter may show of `error`: the repr of each value reachable from it,
    its causes and contexts, their attributes and the locals of every frame they carry,
    through containers (a few levels deep, as reporters go), requests and responses; and the
    traceback printed with locals."""
    yield "".join(traceback.TracebackException.from_exception(error, capture_locals=True).format())
    pending: list[tuple[object, int]] = [(error, 0)]
    seen: set[int] = set()
    while pending:
        value, depth = pending.pop()
        if id(value) in seen or depth > MAX_DEPTH:
            continue
        seen.add(id(value))
        try:
            yield repr(value)
        except Exception:  # noqa: S112 - a repr that fails shows nothing
            continue
        inside: list[object] = []
        if isinstance(value, BaseException):
            inside += [value.__cause__, value.__context__, *value.args, *vars(value).values()]
            inside += list(getattr(value, "exceptions", ()))
            frames = value.__traceback__
            while frames is not None:
                inside += list(frames.tb_frame.f_locals.values())
                frames = frames.tb_next
        elif isinstance(value, dict):
            inside += [*value.keys(), *value.values()]
        elif isinstance(value, (list, tuple, set, frozenset)):
            inside += list(value)
        elif isinstance(value, (bytes, bytearray)):
            yield value.decode("latin-1")
        elif isinstance(value, httpx.Request):
            inside += [value.headers.raw, getattr(value, "_content", b"")]
        elif isinstance(value, httpx.Response):
            inside += [value.headers.raw, getattr(value, "_content", b""), value._request]
        pending += [(item, depth + 1) for item in inside]


def leaks(error: BaseException, secrets: set[str]) -> set[str]:
    """Which of `secrets` can be reached from `error`. (Called before an ``assert``: pytest's
    rewritten asserts keep their operands in the test's frame, which the error carries.)"""
    return {secret for text in reachable_text(error) for secret in secrets if secret in text}


async def _caller_error(api: str, auth: MosaicAuth, base_url: str) -> TokenRequestError:
    """The error the caller gets, asking for a token as `api` says."""

    async def ask() -> None:
        if api == "get_token":
            await auth.get_token()
        elif api == "async request":
            async with httpx.AsyncClient(auth=auth, timeout=NO_POOL_DEADLINE) as client:
                await client.get(f"{base_url}/risk/v1/recommendation")
        else:

            def sync_request() -> None:
                with httpx.Client(auth=auth, timeout=NO_POOL_DEADLINE) as client:
                    client.get(f"{base_url}/risk/v1/recommendation")

            await anyio.to_thread.run_sync(sync_request)

    with pytest.raises(TokenRequestError) as caught:
        await ask()
    await auth.aclose()
    return caught.value


@pytest.mark.parametrize("api", ["get_token", "async request", "sync request"])
@pytest.mark.parametrize(
    "method", ["client_secret_post", "client_secret_basic", "private_key_jwt", "tls_client_auth"]
)
@pytest.mark.parametrize(
    "failure",
    ["refused", "unresolvable", "untrusted TLS", "timeout", "dropped", "refusal", "garbage"],
)
async def test_no_secret_is_reachable_from_a_token_request_failure(
    failure: str,
    method: str,
    api: str,
    assertions: list[str],
    unresolvable_mosaic: None,
    client_certificate: ClientCertificate,
    tmp_path: Path,
) -> None:
    """Whatever way the token request fails, neither the error nor its causes, their
    attributes or the locals of their frames hold the secret, the Basic credential, the
    private key, the client assertion or the client certificate's key."""
    tls = None
    if failure == "untrusted TLS":
        files = write_server_certificate(tmp_path)
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(files.cert_path, files.key_path)
    endpoint = Endpoint(failure, tls)
    try:
        scheme = "https" if tls else "http"
        host = MOSAIC_HOST if failure == "unresolvable" else f"127.0.0.1:{endpoint.port}"
        base_url = f"https://{host}" if failure == "unresolvable" else f"{scheme}://{host}"
        auth = _auth(method, f"{base_url}/oidc/token", base_url, client_certificate)
        error = await _caller_error(api, auth, base_url)
    finally:
        endpoint.close()

    if method == "private_key_jwt" and failure not in ("refused", "unresolvable"):
        assert assertions  # the request was signed: its assertion is searched for too
    if method == "tls_client_auth":
        assert auth._endpoint.client_auth.credential_in_process  # the key passed through
    leaked = leaks(error, _secrets(assertions) | key_forms(client_certificate.key_path))
    assert not leaked, f"{failure} / {method} / {api}: the error reaches {sorted(leaked)}"


def test_the_search_finds_a_secret_in_a_frame_of_a_cause() -> None:
    """The search above sees a frame's locals in a cause: it would catch the leak it looks for."""

    def request_token() -> None:
        form = {"client_secret": CLIENT_SECRET}
        raise httpx.ConnectError(f"refused ({len(form)} fields)")

    def fetch() -> TokenRequestError:
        try:
            request_token()
        except httpx.ConnectError as cause:
            error = TokenRequestError("could not reach the token endpoint")
            error.__cause__ = cause
            return error
        raise AssertionError  # pragma: no cover

    assert any(CLIENT_SECRET in text for text in reachable_text(fetch()))


def _app_client(transport: httpx.AsyncBaseTransport) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=transport, timeout=NO_POOL_DEADLINE)


class FailingTransport(httpx.AsyncBaseTransport):
    """An application's transport that fails every request with what `fail` raises."""

    def __init__(self, fail: Callable[[httpx.Request], BaseException]) -> None:
        self.fail = fail

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        raise self.fail(request)


@dataclasses.dataclass(frozen=True)
class CircuitOpen(Exception):
    """A frozen exception, as attrs or dataclasses make them: it takes no new attribute."""

    service: str


class UpstreamError(Exception):
    """An exception carrying the request's parts as arguments, as some wrappers do."""


@pytest.mark.parametrize(
    "fail",
    [
        pytest.param(lambda request: CircuitOpen("mosaic"), id="frozen"),
        pytest.param(lambda request: UpstreamError("failed", request), id="request-as-argument"),
        pytest.param(
            lambda request: UpstreamError("failed", dict(request.headers)), id="headers-as-argument"
        ),
        pytest.param(
            lambda request: UpstreamError("failed", request.content), id="body-as-argument"
        ),
        pytest.param(
            lambda request: BaseExceptionGroup("failed", [httpx.ConnectError("down")]),
            id="group",
        ),
    ],
)
@pytest.mark.parametrize("method", ["client_secret_post", "client_secret_basic"])
async def test_no_secret_is_reachable_from_an_application_transports_failure(
    fail: Callable[[httpx.Request], BaseException], method: str
) -> None:
    """Whatever an application's transport raises, however it holds the request (frozen, as
    arguments, in a group), the caller's error reaches no secret and names what failed."""
    async with _app_client(FailingTransport(fail)) as client:
        auth = MosaicAuth(
            CLIENT_ID,
            CLIENT_SECRET,
            client_auth=cast("Any", method),
            http_client=client,
            retry=Retry(max_attempts=1),
        )
        with pytest.raises(TokenRequestError) as caught:
            await auth.get_token()
    leaked = leaks(caught.value, _secrets([]))
    assert not leaked
    named = type(fail(httpx.Request("GET", "https://x"))).__name__
    assert any(named in repr(error) for error in causes(caught.value))


async def test_an_unexpected_failure_keeps_where_it_happened() -> None:
    """A failure no one expected (a bug in a transport) reaches the caller without the frames
    it came through, but says in a note which function raised it, and on which line."""

    def a_helper_with_a_bug(request: httpx.Request) -> BaseException:
        return KeyError("missing key")

    async with _app_client(FailingTransport(a_helper_with_a_bug)) as client:
        auth = MosaicAuth(CLIENT_ID, CLIENT_SECRET, http_client=client, retry=Retry(max_attempts=1))
        with pytest.raises(TokenRequestError) as caught:
            await auth.get_token()
    cause = next(error for error in causes(caught.value) if isinstance(error, KeyError))
    carried = [frame.f_code.co_name for frame, _ in traceback.walk_tb(cause.__traceback__)]
    assert "handle_async_request" not in carried
    assert "request_token" in carried  # raised again from there, with no credential left
    assert "in handle_async_request" in "".join(getattr(cause, "__notes__", []))


async def test_an_error_the_application_shares_is_left_as_it_was() -> None:
    """An exception object the application's transport raises to every request (as an HTTP/2
    connection does once it died) keeps its request and its traceback for the application."""
    shared = httpx.ReadError("connection lost")
    async with _app_client(FailingTransport(lambda request: shared)) as client:
        with pytest.raises(httpx.ReadError):
            await client.get("https://api.transmitsecurity.io/risk/v1/recommendation")
        frames_before = shared.__traceback__
        auth = MosaicAuth(CLIENT_ID, CLIENT_SECRET, http_client=client, retry=Retry(max_attempts=1))
        with pytest.raises(TokenRequestError):
            await auth.get_token()
    assert shared.args == ("connection lost",)
    assert shared.__traceback__ is not None
    assert frames_before is not None
    assert any(frame.f_locals for frame, _ in traceback.walk_tb(shared.__traceback__))


class Interrupted(BaseException):
    """Stands for Ctrl+C or a hook's SystemExit, which the test runner would act on."""


async def test_an_interruption_during_a_token_request_carries_none_of_its_frames() -> None:
    """An interruption during a token request (Ctrl+C, a hook's SystemExit, a cancellation)
    travels as itself, without the frames that held the form."""

    def interrupt() -> None:
        raise Interrupted

    endpoint = TokenEndpoint(
        token_url="https://api.transmitsecurity.io/oidc/token",
        client_auth=ClientSecretPost(CLIENT_ID, CLIENT_SECRET),
        http_client=_app_client(FailingTransport(lambda request: httpx.ConnectError("x"))),
        clock=time.time,
    )
    with pytest.raises(Interrupted) as caught:
        await endpoint.request_token(None, on_sent=interrupt)
    leaked = leaks(caught.value, _secrets([]))
    assert not leaked


async def test_a_refused_token_is_not_on_the_request_a_failed_retry_names() -> None:
    """After a 401, when no new token comes, the error names the request without the refused
    token on it: that token may still serve other APIs."""
    token_answers = [httpx.Response(200, json={"access_token": make_jwt(exp=time.time() + 3600)})]

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oidc/token":
            if token_answers:
                return token_answers.pop()
            raise httpx.ConnectError("down", request=request)
        return httpx.Response(401)

    transport = httpx.MockTransport(handler)
    async with _app_client(transport) as tokens:
        auth = MosaicAuth(CLIENT_ID, CLIENT_SECRET, http_client=tokens, retry=Retry(max_attempts=1))
        refused = await auth.get_token()
        async with _app_client(transport) as api:
            with pytest.raises(TokenRequestError) as caught:
                await api.get("https://api.transmitsecurity.io/risk/v1/x", auth=auth)
    assert "Authorization" not in caught.value.request.headers
    assert not any(refused.token in text for text in reachable_text(caught.value))
