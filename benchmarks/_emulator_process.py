"""The Mosaic emulator served on 127.0.0.1 by a process of its own, driven from the benchmark.

A process of its own so that what it spends signing and checking tokens is not counted in the
event-loop stalls being measured, and so that a fleet of processes can share it. Contenders take
turns on it, each with a client registered for it alone: no token, cache entry or revocation
carries over from one to the next.
"""

from __future__ import annotations

import contextlib
import multiprocessing
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio

from mosaic_httpx_auth import RISK_RESOURCE, VERIFY_RESOURCE
from mosaic_httpx_auth.testing import MosaicEmulator

if TYPE_CHECKING:
    from collections.abc import Callable
    from multiprocessing.connection import Connection
    from types import TracebackType

    import httpx


@dataclass(frozen=True, slots=True)
class Credentials:
    """A client registered with the emulator, allowed the risk and verify resources."""

    client_id: str
    client_secret: str


class ServedEmulator:
    """A `MosaicEmulator` in a child process whose token endpoint takes `token_delay` seconds
    to answer, as a loaded identity provider does."""

    def __init__(self, *, token_lifetime: float, token_delay: float) -> None:
        context = multiprocessing.get_context("spawn")
        self._connection, self._child_connection = context.Pipe()
        self._process = context.Process(
            target=_serve, args=(self._child_connection, token_lifetime, token_delay), daemon=True
        )
        self.base_url = ""

    def __enter__(self) -> ServedEmulator:
        self._process.start()
        # The child's end closed here, a child that dies ends the pipe: a call raises EOFError
        # rather than waiting forever.
        self._child_connection.close()
        self.base_url = self._connection.recv()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        with contextlib.suppress(OSError):  # the child is gone already
            self._connection.send(None)
        self._process.join(timeout=10)
        if self._process.is_alive():
            self._process.kill()
        self._connection.close()

    def _call(self, method: str, *args: Any) -> Any:
        self._connection.send((method, args))
        answer = self._connection.recv()
        if isinstance(answer, BaseException):
            raise answer
        return answer

    def register_client(self) -> Credentials:
        return Credentials(*self._call("register_client"))

    def issue_token(self, client_id: str, resource: str | None) -> str:
        """An hour's token minted directly, not counted as a token request."""
        token: str = self._call("issue_token", client_id, resource)
        return token

    def revoke_tokens(self, client_id: str) -> None:
        self._call("revoke_tokens", client_id)

    def fail_next_token_requests(self, status: int, retry_after: int | None = None) -> None:
        """Answer the next token request with `status` (after the delay) instead of a token."""
        self._call("fail_next_token_requests", status, retry_after)

    def token_requests(self) -> int:
        """Token requests received so far, failed ones included."""
        count: int = self._call("token_requests")
        return count


class _SlowTokenEndpoint(MosaicEmulator):
    def __init__(self, *, token_lifetime: float, token_delay: float) -> None:
        super().__init__(token_lifetime=token_lifetime)
        self._token_delay = token_delay

    async def handle_request(
        self, request: httpx.Request, *, client_certificate: bytes | None = None
    ) -> httpx.Response:
        if request.url.path == "/oidc/token":
            await anyio.sleep(self._token_delay)
        return await super().handle_request(request, client_certificate=client_certificate)


def _serve(connection: Connection, token_lifetime: float, token_delay: float) -> None:
    emulator = _SlowTokenEndpoint(token_lifetime=token_lifetime, token_delay=token_delay)

    def register_client() -> tuple[str, str]:
        client = emulator.register_client(resources=[RISK_RESOURCE, VERIFY_RESOURCE])
        return client.client_id, client.client_secret

    def fail(status: int, retry_after: int | None) -> None:
        headers = {} if retry_after is None else {"Retry-After": str(retry_after)}
        emulator.fail_next_token_requests(status, headers=headers)

    commands: dict[str, Callable[..., object]] = {
        "register_client": register_client,
        "issue_token": lambda client_id, resource: emulator.issue_token(
            client_id, resource, lifetime=3600
        ),
        "revoke_tokens": lambda client_id: emulator.revoke_tokens(client_id=client_id),
        "fail_next_token_requests": fail,
        "token_requests": lambda: emulator.token_requests.total(),
    }
    with emulator.serve() as base_url:
        connection.send(base_url)
        while (command := connection.recv()) is not None:
            method, args = command
            try:
                connection.send(commands[method](*args))
            except Exception as exc:
                connection.send(exc)
