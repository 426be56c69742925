"""What a 401 sets in motion: the steps `MosaicAuth._answered` yields for its driver to take,
and what it reads off a request and its answer (which token it carried, where it went,
whether its body can be sent again, whether the token was bound to a certificate)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, NamedTuple

import httpx

from ._messages import for_resource
from ._routing import checked_resource

if TYPE_CHECKING:
    from collections.abc import Callable, Generator

    from ._token import AccessToken


class TokenNeeded(NamedTuple):
    """The flow needs a usable token for `resource` other than `refused`, for `request`, by
    `deadline`: the arguments of `MosaicAuth._token_for_request`."""

    resource: str | None
    request: httpx.Request
    deadline: float | None
    refused: AccessToken


class Refused(NamedTuple):
    """An API at `place` answered 401 to `token`: the flow asks whether to retry with a new
    one. The arguments of `TokenFetcher.refused`."""

    resource: str | None
    token: AccessToken
    place: str


# What the flow yields: something for its driver to wait for, or a request to send.
Need = TokenNeeded | Refused
Step = Need | httpx.Request


def next_step(flow: Generator[Step, Any, None], answer: Any) -> Step | None:
    """`flow`'s next step, sent the answer to its last one; None once it is done."""
    try:
        return flow.send(answer)
    except StopIteration:
        return None


def taken_steps(
    flow: Generator[Step, Any, None], fulfil: Callable[[Need], Any]
) -> Generator[httpx.Request, httpx.Response, None]:
    """Take `flow`'s steps for a sync driver: `fulfil` each need, and yield each request to
    be sent; the answers go back to `flow`."""
    answer: Any = None
    while (step := next_step(flow, answer)) is not None:
        answer = fulfil(step) if isinstance(step, Need) else (yield step)


def carried(response: httpx.Response, token: AccessToken) -> bool:
    """Whether `response` answers a request that carried `token`: one from a host a redirect
    led to, which got no token, says nothing about it."""
    return bool(response.request.headers.get("Authorization") == token.authorization)


# A request's own resource, overriding its URL's route: ``extensions={"mosaic_resource": r}``.
RESOURCE_EXTENSION = "mosaic_resource"
# Set on a request the flow sends again after a 401: how many times it was resent.
RESEND_EXTENSION = "mosaic_resend_count"


def requested_resource(value: object) -> str | None:
    """The resource a request's extension names: a non-empty string, or None for no
    resource. The application chooses it: a value taken from what a request carries would
    make a token request, and a cached token, per value."""
    return checked_resource(value, RESOURCE_EXTENSION)


# A ``WWW-Authenticate`` value, item by item (RFC 7235 §4.1): an auth-param ``name=value``
# (the value a token or a quoted string, whose commas and escapes are its own), a bare word (a
# challenge's scheme, a token; or a token68, which may also hold "/"), or a comma.
_TOKEN = r"[\w!#$%&'*+.^`|~-]+"
_CHALLENGE_ITEM = re.compile(
    rf'\s*(?:({_TOKEN})\s*=\s*({_TOKEN}|"(?:[^"\\]|\\.)*")|([\w!#$%&\'*+./^`|~-]+=*)|,)'
)


def bearer_error(response: httpx.Response) -> str | None:
    """The ``error`` of `response`'s Bearer challenge (``WWW-Authenticate``), if it has one:
    read item by item, so that nothing inside a quoted string, or another scheme's
    challenge, is taken for it."""
    for header in response.headers.get_list("WWW-Authenticate"):
        scheme, position = None, 0
        while position < len(header):
            item = _CHALLENGE_ITEM.match(header, position)
            if item is None or item.end() == position:
                # Unreadable here: go on from the next comma, as a lenient reader would.
                comma = header.find(",", position + 1)
                position = len(header) if comma < 0 else comma
                continue
            position = item.end()
            name, value, bare = item.group(1, 2, 3)
            if bare is not None:
                scheme = bare.lower()
            elif scheme == "bearer" and name is not None and name.lower() == "error":
                return _unquoted(value)
    return None


def _unquoted(value: str) -> str:
    """An auth-param's value: a quoted string without its quotes and escapes."""
    if not value.startswith('"'):
        return value
    return re.sub(r"\\(.)", r"\1", value[1:-1])


def place(request: httpx.Request) -> str:
    """Where `request` went, for telling the APIs that refuse a token apart: its origin and
    path, without the query (which may hold anything)."""
    url = request.url
    return f"{url.scheme}://{url.netloc.decode('ascii')}{url.path}"


def replayable_upload(stream: object) -> bool:
    """Whether `stream` is a multipart upload that can be sent again: every file in it is
    bytes, text, or a file it can seek back to the start of (which httpx does at each send)."""
    fields = getattr(stream, "fields", None)
    if type(stream).__name__ != "MultipartStream" or not isinstance(fields, list):
        return False
    for field in fields:
        upload = getattr(field, "file", None)
        if upload is None or isinstance(upload, (bytes, str)):
            continue  # a plain form field, or content in memory
        seekable = getattr(upload, "seekable", None)
        if not callable(seekable) or not seekable():
            return False
    return True


def certificate_bound(token: AccessToken) -> bool:
    """Whether `token` is bound to a client certificate (RFC 8705 §3: a ``cnf`` claim with an
    ``x5t#S256``): an API takes it only on a connection that presents that certificate."""
    confirmation = token.claims.get("cnf")
    return isinstance(confirmation, dict) and "x5t#S256" in confirmation


def bound_token_refused(resource: str | None, place: str) -> str:
    """Why an API at `place` keeps refusing `resource`'s certificate-bound tokens, and what
    to do: the likeliest cause is an API client that presents no certificate."""
    return (
        f"the API at {place} keeps refusing the token {for_resource(resource)}, which is bound "
        "to the client certificate of the token requests (its cnf claim, RFC 8705): an API "
        "takes such a token only on a connection that presents that certificate, and every "
        "new token is bound the same way. If the API client presents no certificate, that is "
        "why: give it the certificate too, e.g. httpx.AsyncClient(auth=auth, "
        "verify=ssl_context). If it does, the API refuses these tokens for another reason (a "
        "resource or permission the app lacks)"
    )
