"""`MosaicEmulator`: an in-process stand-in for Mosaic's token service and the APIs it guards."""

from __future__ import annotations

import collections
import contextlib
import math
import secrets
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

import anyio
import httpx

from .._auth import MosaicAuth
from .._exceptions import ConfigurationError
from .._mosaic import (
    IDENTITY_MANAGEMENT_AUDIENCE,
    REGION_HOSTS,
    RISK_RESOURCE,
    TOKEN_PATH,
    VERIFY_RESOURCE,
)
from ._asgi import EmulatorApp
from ._binding import binding_holds, confirmation
from ._client_auth import ASSERTION_ALGORITHMS, ClientAuthenticator
from ._clients import (
    AUTHENTICATION_METHODS,
    CERTIFICATE_METHODS,
    SECRET_METHODS,
    RegisteredClient,
    new_client,
)
from ._faults import TokenRequestFault
from ._responses import Refused, invalid_token, method_not_allowed, mosaic_error, oauth_error
from ._server import serve_locally
from ._signing import TokenSigner
from ._transport import EmulatedMosaicAuth, EmulatorTransport

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Mapping

    from joserfc.jwk import Key, KeySet, RSAKey

    from ._clients import AuthenticationMethod
    from ._faults import FaultBody


_TOKEN_PATHS = frozenset({TOKEN_PATH, f"/cis{TOKEN_PATH}"})
_JWKS_PATH = "/cis/oidc/jwks"
_DISCOVERY_PATH = "/cis/oidc/.well-known/openid-configuration"
REVOCATION_PATH = "/emulator/revoke"
"""The emulator's own endpoint, no Mosaic API's: `revoke_tokens` over HTTP, for a served
emulator that a test or a shell can reach only by its URL."""
# The audience a token needs for each API, by path prefix.
_API_AUDIENCES = (
    ("/risk/", RISK_RESOURCE),
    ("/verify/", VERIFY_RESOURCE),
    ("/cis/", IDENTITY_MANAGEMENT_AUDIENCE),
)


def _token_endpoint_urls(base_url: str) -> frozenset[str]:
    """The URLs of the token endpoint, by either path, at `base_url`."""
    return frozenset(f"{base_url}{path}" for path in _TOKEN_PATHS)


# The emulator stands in for Mosaic in every region, as `transport()` takes any host.
_MOSAIC_TOKEN_ENDPOINT_URLS = frozenset(
    url for host in REGION_HOSTS.values() for url in _token_endpoint_urls(host)
)


@dataclass(frozen=True, slots=True)
class _IssuedToken:
    client_id: str
    audience: str


class MosaicEmulator:
    """An in-process emulation of Mosaic's token service and of the APIs that check its tokens.

    It issues RS256-signed client access tokens at ``POST /oidc/token`` (and ``/cis/oidc/token``)
    to clients registered with `register_client`, which authenticate with any of Mosaic's
    methods (a client secret, ``private_key_jwt``, or mutual TLS when served with
    ``serve(tls=True)``), publishes its key at ``/cis/oidc/jwks`` and
    discovery at ``/cis/oidc/.well-known/openid-configuration``, and guards every path under
    ``/risk/``, ``/verify/`` and ``/cis/``: a request there needs an unexpired, unrevoked token
    that the emulator issued for that API's audience. A token issued to a request that
    presented a TLS client certificate is bound to it (RFC 8705 §3: its ``cnf`` claim), and
    the APIs take it only on a connection that presents the same certificate, answering 401
    ``invalid_token`` on any other. Reach it through `transport()` (for `httpx.Client` and
    `httpx.AsyncClient`), `app` (ASGI) or `serve()` (a local port); all three share one state,
    and answer ``POST /emulator/revoke``, the emulator's own endpoint: `revoke_tokens` over
    HTTP. Safe to use from the thread that `serve()` starts and the caller's at once.

    Args:
        token_lifetime: Seconds a token is valid for.
        resource_token_lifetimes: Lifetimes for particular resources (None: no resource),
            overriding `token_lifetime`.
        issuer: The ``iss`` claim of the tokens.
        clock: Returns the current time in seconds since the epoch; both issuing and checking
            tokens read it, so a test can expire tokens by moving it.
        signing_key: The private RSA key that signs tokens (its ``kid``, or else its
            thumbprint, names it in the JWKS). By default each emulator generates its own,
            which takes tens of milliseconds; emulators may share one to save that time and
            still accept only the tokens they issued.
    """

    def __init__(
        self,
        *,
        token_lifetime: float = 3600.0,
        resource_token_lifetimes: Mapping[str | None, float] | None = None,
        issuer: str = "https://userid.security",
        clock: Callable[[], float] = time.time,
        signing_key: RSAKey | None = None,
    ) -> None:
        lifetimes = dict(resource_token_lifetimes or {})
        for lifetime in (token_lifetime, *lifetimes.values()):
            _check_lifetime(lifetime)
        self.issuer = issuer
        self.tenant_id = secrets.token_hex(8)
        """The ``tid`` claim of the tokens."""
        self._token_lifetime = float(token_lifetime)
        self._resource_token_lifetimes = lifetimes
        self._clock = clock
        self._signer = TokenSigner(issuer=issuer, key=signing_key)
        # Short critical sections only, never across an await: cheap enough for an event loop,
        # and needed because `serve()` handles requests on another thread.
        self._lock = threading.Lock()
        self._clients: dict[str, RegisteredClient] = {}
        # The token endpoint's URLs where `serve()` serves the emulator, while it does.
        self._served_token_endpoint_urls: set[str] = set()
        self._authenticator = ClientAuthenticator(find_client=self._find_client, clock=clock)
        self._issued: dict[str, _IssuedToken] = {}
        self._revoked: set[str] = set()
        self._faults: collections.deque[TokenRequestFault] = collections.deque()
        self._token_requests: collections.Counter[str | None] = collections.Counter()
        self._api_calls: collections.Counter[str] = collections.Counter()
        self._rejected_api_calls: collections.Counter[str] = collections.Counter()
        self.app = EmulatorApp(self.handle_request)
        """The emulator as an ASGI 3 application."""

    def __repr__(self) -> str:
        return f"MosaicEmulator(issuer={self.issuer!r})"

    # Setup

    def register_client(
        self,
        *,
        resources: Iterable[str] = (),
        client_id: str | None = None,
        client_secret: str | None = None,
        app_id: str | None = None,
        authentication_method: AuthenticationMethod | None = None,
        jwks: Key | KeySet | Mapping[str, Any] | None = None,
        certificate: bytes | str | None = None,
        certificate_sha256: str | None = None,
        management: bool = False,
    ) -> RegisteredClient:
        """Register an application that may request tokens, with random credentials by default.

        A client uses one authentication method, which its token requests must use (a secret
        client may send its secret in the form or with HTTP Basic). Give `jwks` for
        ``private_key_jwt``, a `certificate` or `certificate_sha256` for ``tls_client_auth``,
        or neither for a client secret; `authentication_method` names the method outright.

        Args:
            resources: The resources it may request tokens for, besides none.
            client_id: Its client ID; must not be registered already.
            client_secret: Its client secret, for ``client_secret_post`` and
                ``client_secret_basic`` (random by default).
            app_id: The ``app_id`` claim of its tokens.
            authentication_method: How it authenticates. ``tls_client_auth`` and
                ``self_signed_tls_client_auth`` are checked alike: by the fingerprint of the
                certificate.
            jwks: For ``private_key_jwt``: the public keys that verify its client assertions,
                as a JWK Set (``{"keys": [...]}``), one JWK, or a joserfc key or key set (only
                public parts are kept). RSA keys of 2048 bits or more (RS256, PS256) or P-256
                EC keys (ES256).
            certificate: For the TLS methods: its client certificate, PEM or DER.
            certificate_sha256: For the TLS methods, instead of `certificate`: its SHA-256
                fingerprint in hex, as `ClientCertificate.sha256` gives it.
            management: A Management Application: its tokens carry ``roles: ["Admin"]``.
        """
        client = new_client(
            resources=resources,
            client_id=client_id,
            client_secret=client_secret,
            app_id=app_id,
            authentication_method=authentication_method,
            jwks=jwks,
            certificate=certificate,
            certificate_sha256=certificate_sha256,
            management=management,
        )
        return self._add_client(client)

    def _add_client(self, client: RegisteredClient) -> RegisteredClient:
        """Keep `client` and return it, refusing a client ID that is registered already."""
        with self._lock:
            if client.client_id in self._clients:
                raise ConfigurationError(f"client {client.client_id!r} is registered already")
            self._clients[client.client_id] = client
        return client

    def issue_token(
        self, client_id: str, resource: str | None = None, *, lifetime: float | None = None
    ) -> str:
        """Mint a token for a registered client directly, as the token endpoint would.

        The resource need not be one the client may request, so that tests can make tokens an
        API refuses. The token is not counted as a token request.
        """
        client = self._find_client(client_id)
        if client is None:
            raise ConfigurationError(f"no client {client_id!r} is registered")
        if lifetime is None:
            lifetime = self._lifetime_for(resource)
        _check_lifetime(lifetime)
        return self._mint(client, resource, lifetime)

    def revoke_tokens(self, *, client_id: str | None = None, audience: str | None = None) -> int:
        """Make the APIs refuse every token issued so far; return how many were newly revoked.

        Over HTTP, ``POST /emulator/revoke`` does the same, its arguments in an optional form
        (``client_id=...&audience=...``), and answers ``{"revoked": <count>}``.

        Args:
            client_id: Revoke only this client's tokens.
            audience: Revoke only tokens for this audience: a resource, or ``"userid-api"``
                for tokens requested without one.
        """
        with self._lock:
            matching = {
                jti
                for jti, issued in self._issued.items()
                if client_id in (None, issued.client_id) and audience in (None, issued.audience)
            }
            newly_revoked = matching - self._revoked
            self._revoked |= newly_revoked
        return len(newly_revoked)

    def fail_next_token_requests(
        self,
        status: int = 503,
        *,
        body: FaultBody = None,
        headers: Mapping[str, str] | None = None,
        delay: float = 0.0,
        drop_connection: bool = False,
        count: int = 1,
    ) -> None:
        """Make the next `count` token requests fail, after any faults queued before.

        Each waits `delay` seconds, then is answered with `status`, `body` and `headers`
        instead of a token, or, with `drop_connection`, gets no response at all: the client
        sees a transport error. A failed request is still counted in `token_requests`.

        Args:
            status: The HTTP status of the answer (200 to 599: a 200 with a `body` that is no
                token response tests a client's parsing).
            body: The answer's body: bytes, text, a JSON object, or None for Mosaic's error
                shape ``{"message": ..., "error_code": status}``.
            headers: Headers of the answer, e.g. ``{"Retry-After": "2"}``.
            delay: Seconds to wait before answering or dropping the connection.
            drop_connection: Answer nothing; `status`, `body` and `headers` are ignored.
            count: How many token requests fail this way.
        """
        fault = TokenRequestFault(
            status=status,
            body=body,
            headers=dict(headers or {}),
            delay=delay,
            drop_connection=drop_connection,
        )
        self._queue_fault(fault, count)

    def delay_next_token_requests(self, seconds: float, *, count: int = 1) -> None:
        """Make the next `count` token requests wait `seconds` before they are answered as usual.

        Queued after, and in turn with, the faults of `fail_next_token_requests`.
        """
        self._queue_fault(TokenRequestFault(delay=seconds), count)

    def _queue_fault(self, fault: TokenRequestFault, count: int) -> None:
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ConfigurationError(f"count must be a positive integer, not {count!r}")
        with self._lock:
            self._faults.extend([fault] * count)

    # Observation

    @property
    def token_requests(self) -> collections.Counter[str | None]:
        """Token requests received, by the resource they named (None: none or unreadable).

        A copy. Every request to the token endpoint counts, refused and faulted ones included.
        """
        with self._lock:
            return collections.Counter(self._token_requests)

    @property
    def api_calls(self) -> collections.Counter[str]:
        """Requests to the guarded APIs, by path, accepted or refused. A copy."""
        with self._lock:
            return collections.Counter(self._api_calls)

    @property
    def rejected_api_calls(self) -> collections.Counter[str]:
        """Requests to the guarded APIs refused for want of a valid token, by path. A copy."""
        with self._lock:
            return collections.Counter(self._rejected_api_calls)

    def reset_counters(self) -> None:
        """Set `token_requests`, `api_calls` and `rejected_api_calls` back to zero."""
        with self._lock:
            self._token_requests.clear()
            self._api_calls.clear()
            self._rejected_api_calls.clear()

    @property
    def jwks(self) -> dict[str, Any]:
        """The public JWK Set that verifies the emulator's tokens."""
        return self._signer.jwks

    # Ways in

    def transport(self) -> EmulatorTransport:
        """An httpx transport that sends every request, whatever its host, to the emulator.

        For `httpx.Client` and `httpx.AsyncClient` alike, so that code calling
        ``https://api.transmitsecurity.io`` works unchanged. A sync client waits out a
        fault's delay on its own thread, as it would wait for a slow server.
        """
        return EmulatorTransport(self.handle_request, self._handle_request_sync)

    def auth(self, client: RegisteredClient, **options: Any) -> MosaicAuth:
        """A `MosaicAuth` for `client` whose token requests go to this emulator, for
        `httpx.Client` and `httpx.AsyncClient` alike.

        Its token requests reach the emulator in process, whatever their URL (`base_url`
        included), from any event loop and from the auth's own thread for sync clients. Given
        an `http_client`, or an `ssl_context` (mutual TLS needs a real connection: with
        ``base_url`` on `serve(tls=True)`), they go where `base_url` says, over a socket.
        `options` are passed on to `MosaicAuth`: a `private_key_jwt` client needs its
        `private_key`, a TLS client ``ssl_context=client_ssl_context(certificate)``. Send the
        API requests through `transport()` too, or to `serve()`'s URL.
        """
        if client.authentication_method in SECRET_METHODS:
            options.setdefault("client_secret", client.client_secret)
            options.setdefault("client_auth", client.authentication_method)
        elif client.authentication_method in CERTIFICATE_METHODS:
            options.setdefault("client_auth", "tls_client_auth")
        if options.get("http_client") is not None or options.get("ssl_context") is not None:
            return MosaicAuth(client.client_id, **options)
        return EmulatedMosaicAuth(client.client_id, token_transport=self.transport(), **options)

    @contextlib.contextmanager
    def serve(
        self, *, port: int = 0, shutdown_timeout: float = 5.0, tls: bool = False
    ) -> Iterator[str]:
        """Serve the emulator over HTTP, or HTTPS, on 127.0.0.1 while the ``with`` block runs.

        Yields the base URL, e.g. ``"http://127.0.0.1:54321"``. uvicorn runs in a background
        thread on `port` (0: a free one) and is stopped on exit, waiting at most
        `shutdown_timeout` seconds for requests in flight. Needs the ``emulator`` extra.

        With `tls`, it serves HTTPS (``"https://127.0.0.1:54321"``) with a throwaway
        certificate for 127.0.0.1 and asks clients for a certificate, which the
        ``tls_client_auth`` methods need: the only way to use them. Clients trust the server
        through `client_ssl_context`, and present a certificate of `make_client_certificate`.
        Tokens issued to a client that presented one are bound to it: the APIs take them only
        on connections that present it too.

        While it is served, a client assertion may name its token endpoint at the base URL as
        its ``aud``, as well as Mosaic's.
        """
        with serve_locally(
            self.app, port=port, shutdown_timeout=shutdown_timeout, tls=tls
        ) as base_url:
            served = _token_endpoint_urls(base_url)
            with self._lock:
                self._served_token_endpoint_urls |= served
            try:
                yield base_url
            finally:
                with self._lock:
                    self._served_token_endpoint_urls -= served

    async def handle_request(
        self, request: httpx.Request, *, client_certificate: bytes | None = None
    ) -> httpx.Response:
        """Answer one request as Mosaic would: the core behind `transport`, `app` and `serve`.

        The request's body must have been read. `client_certificate` is the certificate (DER)
        the client presented on the TLS connection, if any: only the server knows it, never a
        request header. Raises `httpx.RemoteProtocolError` when a fault drops the connection.
        """
        fault = self._arriving(request)
        if fault is not None and fault.delay:
            await anyio.sleep(fault.delay)
        return self._answer(request, client_certificate, fault)

    def _handle_request_sync(self, request: httpx.Request) -> httpx.Response:
        """`handle_request` for `httpx.Client`, needing no event loop: a fault's delay blocks
        the caller's thread, as a slow server would."""
        fault = self._arriving(request)
        if fault is not None:
            time.sleep(fault.delay)
        return self._answer(request, None, fault)

    def _arriving(self, request: httpx.Request) -> TokenRequestFault | None:
        """Count `request` if it is a token request, and take the fault queued for it, if any."""
        if request.url.path not in _TOKEN_PATHS or request.method != "POST":
            return None
        form = _read_form(request)
        with self._lock:
            self._token_requests[None if form is None else form.get("resource")] += 1
            return self._faults.popleft() if self._faults else None

    def _answer(
        self,
        request: httpx.Request,
        client_certificate: bytes | None,
        fault: TokenRequestFault | None,
    ) -> httpx.Response:
        """The answer to `request` once `fault`'s delay, if any, has passed."""
        path = request.url.path
        if path in _TOKEN_PATHS:
            if request.method != "POST":
                return method_not_allowed("POST")
            return self._token_endpoint(request, client_certificate, fault)
        if path in (_JWKS_PATH, _DISCOVERY_PATH):
            if request.method != "GET":
                return method_not_allowed("GET")
            if path == _JWKS_PATH:
                return httpx.Response(200, json=self.jwks)
            return httpx.Response(200, json=self._discovery(request.url))
        if path == REVOCATION_PATH:
            return self._revocation_endpoint(request)
        audience = next((aud for prefix, aud in _API_AUDIENCES if path.startswith(prefix)), None)
        if audience is None:
            return mosaic_error(404, "Not Found")
        return self._api_call(request, audience, client_certificate)

    # The token endpoint

    def _token_endpoint(
        self,
        request: httpx.Request,
        client_certificate: bytes | None,
        fault: TokenRequestFault | None,
    ) -> httpx.Response:
        if fault is not None:
            response = fault.answer(request)
            if response is not None:
                return response
        form = _read_form(request)
        if form is None:
            return oauth_error(
                400,
                "invalid_request",
                "the body must be an application/x-www-form-urlencoded form "
                "giving each parameter once",
            )
        try:
            return self._grant(form, request, client_certificate)
        except Refused as refusal:
            return refusal.response

    def _grant(
        self, form: dict[str, str], request: httpx.Request, client_certificate: bytes | None
    ) -> httpx.Response:
        """Answer a well-formed token request with a token, or refuse it."""
        grant_type = form.get("grant_type")
        if grant_type is None:
            raise Refused(oauth_error(400, "invalid_request", "grant_type is missing"))
        with self._lock:
            own_urls = _MOSAIC_TOKEN_ENDPOINT_URLS | self._served_token_endpoint_urls
        client = self._authenticator.authenticate(
            form,
            request.headers,
            # RFC 7523 §3: the assertion's audience is this server's token endpoint, by either
            # path. Never a URL the request names: its Host header is the sender's to choose,
            # so an assertion made out to any server would pass.
            token_endpoint_urls=own_urls,
            client_certificate=client_certificate,
        )
        if grant_type != "client_credentials":
            raise Refused(
                oauth_error(
                    400,
                    "unsupported_grant_type",
                    f"grant_type {grant_type!r} is not supported; use client_credentials",
                )
            )
        resource = form.get("resource")
        if resource is not None and resource not in client.resources:
            raise Refused(
                mosaic_error(400, f"resource {resource!r} is not configured for this client")
            )
        lifetime = self._lifetime_for(resource)
        token = self._mint(client, resource, lifetime, certificate=client_certificate)
        return httpx.Response(
            200,
            json={
                "access_token": token,
                "token_type": "Bearer",
                "expires_in": int(lifetime) if lifetime.is_integer() else lifetime,
                "scope": "",
            },
            headers={"Cache-Control": "no-store", "Pragma": "no-cache"},
        )

    def _find_client(self, client_id: str) -> RegisteredClient | None:
        with self._lock:
            return self._clients.get(client_id)

    def _lifetime_for(self, resource: str | None) -> float:
        return self._resource_token_lifetimes.get(resource, self._token_lifetime)

    def _mint(
        self,
        client: RegisteredClient,
        resource: str | None,
        lifetime: float,
        *,
        certificate: bytes | None = None,
    ) -> str:
        """A token for `client`, bound to `certificate` (DER) if one was presented."""
        now = self._clock()
        audience = IDENTITY_MANAGEMENT_AUDIENCE if resource is None else resource
        jti = secrets.token_urlsafe(16)
        token = self._signer.sign(
            {
                "iss": self.issuer,
                "sub": client.client_id,
                "aud": audience,
                "iat": int(now),
                "exp": int(now + lifetime),
                "jti": jti,
                "client_id": client.client_id,
                "app_id": client.app_id,
                "tid": self.tenant_id,
                "scope": "",
                **({"roles": ["Admin"]} if client.management else {}),
                **confirmation(certificate),
            }
        )
        with self._lock:
            self._issued[jti] = _IssuedToken(client_id=client.client_id, audience=audience)
        return token

    def _discovery(self, url: httpx.URL) -> dict[str, Any]:
        """The OpenID configuration, with URLs on the host the request was sent to."""
        base = _base_url(url)
        return {
            "issuer": self.issuer,
            "token_endpoint": f"{base}/oidc/token",
            "jwks_uri": f"{base}{_JWKS_PATH}",
            "grant_types_supported": ["client_credentials"],
            "token_endpoint_auth_methods_supported": list(AUTHENTICATION_METHODS),
            "token_endpoint_auth_signing_alg_values_supported": list(ASSERTION_ALGORITHMS),
            "id_token_signing_alg_values_supported": ["RS256"],
        }

    # The emulator's own endpoint

    def _revocation_endpoint(self, request: httpx.Request) -> httpx.Response:
        """``POST /emulator/revoke``: `revoke_tokens`, its arguments in an optional form."""
        if request.method != "POST":
            return method_not_allowed("POST")
        form = _read_form(request) if request.content else {}
        if form is None or not form.keys() <= {"client_id", "audience"}:
            return mosaic_error(
                400,
                "the body must be empty, or an application/x-www-form-urlencoded form "
                "with client_id, audience or both",
            )
        return httpx.Response(200, json={"revoked": self.revoke_tokens(**form)})

    # The guarded APIs

    def _api_call(
        self, request: httpx.Request, audience: str, client_certificate: bytes | None
    ) -> httpx.Response:
        claims = self._accepted_claims(request.headers.get("authorization"), audience)
        bound_elsewhere = claims is not None and not binding_holds(claims, client_certificate)
        path = request.url.path
        with self._lock:
            self._api_calls[path] += 1
            if claims is None or bound_elsewhere:
                self._rejected_api_calls[path] += 1
        if claims is None:
            return mosaic_error(401, "Invalid token")
        if bound_elsewhere:
            return invalid_token(
                "the token is bound to a client certificate (RFC 8705) that this connection "
                "did not present"
            )
        return httpx.Response(
            200,
            json={
                "path": path,
                "method": request.method,
                "client_id": claims["client_id"],
                "aud": claims["aud"],
            },
        )

    def _accepted_claims(self, authorization: str | None, audience: str) -> dict[str, Any] | None:
        """The claims of the bearer token if it is valid for `audience` now; else None."""
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        claims = self._signer.verify(token.strip(), audience=audience, now=self._clock())
        if claims is None:
            return None
        jti = claims["jti"]
        with self._lock:
            # Its own tokens only: emulators sharing a signing key stay apart.
            accepted = jti in self._issued and jti not in self._revoked
        return claims if accepted else None


def _check_lifetime(lifetime: float) -> None:
    if isinstance(lifetime, bool) or not isinstance(lifetime, (int, float)):
        raise ConfigurationError(f"a token lifetime must be a number of seconds, not {lifetime!r}")
    if not math.isfinite(lifetime) or lifetime <= 0:
        raise ConfigurationError(
            f"a token lifetime must be a positive number of seconds, not {lifetime!r}"
        )


def _read_form(request: httpx.Request) -> dict[str, str] | None:
    """The form parameters; None unless the body is a form giving each parameter once."""
    content_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        return None
    try:
        pairs = parse_qsl(
            request.content.decode("ascii"), keep_blank_values=True, strict_parsing=True
        )
    except ValueError:  # UnicodeDecodeError included
        return None
    form = dict(pairs)
    # RFC 6749 §3.2: parameters must not be repeated.
    return form if len(form) == len(pairs) else None


def _base_url(url: httpx.URL) -> str:
    """The scheme and host (with any port) that `url` was sent to."""
    return f"{url.scheme}://{url.netloc.decode('ascii')}"
