"""A 401 whose Bearer challenge says ``insufficient_scope`` (the token is fine, the app lacks
a permission) costs no new token and no retry; ``invalid_token`` and a bare 401 do."""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx
import pytest

from mosaic_httpx_auth._unauthorized import bearer_error

from .helpers import RISK, FakeMosaic

if TYPE_CHECKING:
    from mosaic_httpx_auth import AuthEvent

API_URL = "https://api.transmitsecurity.io/risk/v1/x"


@pytest.mark.parametrize(
    ("challenges", "error"),
    [
        (['Bearer error="insufficient_scope"'], "insufficient_scope"),
        (
            ['Bearer realm="risk", error="invalid_token", error_description="expired"'],
            "invalid_token",
        ),
        (["bearer error=insufficient_scope"], "insufficient_scope"),
        (['Basic realm="x", Bearer scope="a b", error="insufficient_scope"'], "insufficient_scope"),
        (['DPoP algs="ES256"', 'Bearer error="insufficient_scope"'], "insufficient_scope"),
        (
            ['Bearer realm="a, error=\\"invalid_token\\"", error="insufficient_scope"'],
            "insufficient_scope",
        ),
        (['Basic error="insufficient_scope"'], None),  # not the Bearer challenge's
        # A scheme's name inside another challenge's quoted string is text, not a challenge.
        (['Basic realm="api, Bearer error=insufficient_scope"'], None),
        (['DPoP error_description="x, bearer error=insufficient_scope"'], None),
        (['Bearer error="insufficient\\_scope"'], "insufficient_scope"),  # a quoted-pair
        (['Bearer abc123==, DPoP error="insufficient_scope"'], None),  # a token68, then DPoP
        (['Negotiate oYG/ab+c=, Bearer error="insufficient_scope"'], "insufficient_scope"),
        (["Bearer @@@, error=insufficient_scope"], "insufficient_scope"),  # past what is not read
        (['Bearer realm="risk"'], None),
        (["Bearer"], None),
        ([], None),
    ],
)
def test_the_bearer_challenges_error_is_read(challenges: list[str], error: str | None) -> None:
    """`bearer_error` reads the ``error`` auth-param of the Bearer challenge only, quoted or
    not, among other challenges and params, in one header or several."""
    headers = [("WWW-Authenticate", challenge) for challenge in challenges]
    assert bearer_error(httpx.Response(401, headers=headers)) == error


def api_answering(
    mosaic: FakeMosaic, challenge: str | None, resends: list[object]
) -> httpx.MockTransport:
    """FakeMosaic's token endpoint, and an API that answers every request 401 with
    `challenge` as its ``WWW-Authenticate``; each request's resend count goes to `resends`."""

    async def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oidc/token":
            return await mosaic.handle(request)
        mosaic.api_requests.append(request)
        resends.append(request.extensions.get("mosaic_resend_count"))
        headers = {} if challenge is None else {"WWW-Authenticate": challenge}
        return httpx.Response(401, headers=headers)

    return httpx.MockTransport(handle)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("challenge", "token_requests", "api_requests"),
    [
        ('Bearer error="insufficient_scope", scope="risk:write"', 1, 1),
        ('Bearer error="invalid_token"', 2, 2),
        (None, 2, 2),
    ],
)
async def test_only_a_token_the_api_finds_invalid_is_replaced(
    mosaic: FakeMosaic, challenge: str | None, token_requests: int, api_requests: int
) -> None:
    """``insufficient_scope``: the 401 is the answer, the token stays, nothing is retried.
    ``invalid_token`` or no challenge: a new token and one retry, as before, the retry marked
    as a resend for an HTTP instrumentation's hook."""
    events: list[AuthEvent] = []
    resends: list[object] = []
    auth = mosaic.auth(resource=RISK, on_event=events.append)
    transport = api_answering(mosaic, challenge, resends)
    async with httpx.AsyncClient(auth=auth, transport=transport) as client:
        response = await client.get(API_URL)
        kept = await auth.get_token()
    assert response.status_code == 401
    assert mosaic.token_requests[RISK] == token_requests
    assert len(mosaic.api_requests) == api_requests
    retries = [event for event in events if event.name == "unauthorized_retry"]
    assert len(retries) == api_requests - 1
    assert resends == [None, 1][:api_requests]
    if token_requests == 1:
        assert response.request.headers["Authorization"] == kept.authorization


@pytest.mark.anyio
async def test_a_request_sent_again_by_its_caller_is_a_first_transmission(
    mosaic: FakeMosaic,
) -> None:
    """The resend mark is on the request only while the flow resends it: the caller sending
    the same request again (an outer retry) sends it unmarked first."""
    resends: list[object] = []
    auth = mosaic.auth(resource=RISK)
    transport = api_answering(mosaic, None, resends)
    async with httpx.AsyncClient(auth=auth, transport=transport) as client:
        request = client.build_request("GET", API_URL)
        await client.send(request)
        await client.send(request)
    # The second send goes out unmarked; its 401 is not retried, as the place has now
    # refused the token fetched for it too (it refuses every token).
    assert resends == [None, 1, None]
    assert "mosaic_resend_count" not in request.extensions
