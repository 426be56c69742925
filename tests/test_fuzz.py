"""Whatever the token endpoint answers, the outcome is a usable token or a MosaicAuthError."""

from __future__ import annotations

import json
import math

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mosaic_httpx_auth import AccessToken, MosaicAuthError

from .helpers import CLIENT_SECRET, START, FakeClock, make_jwt, token_fetcher

pytestmark = pytest.mark.anyio

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=10,
)
# Integers past a float's range too: they must not escape as OverflowError.
numbers = (
    st.integers(-10, 10**10)
    | st.integers(10**308, 10**400)
    | st.floats(allow_nan=True, allow_infinity=True)
)
token_texts = (
    st.text(max_size=40)
    | st.builds(lambda exp: make_jwt(exp=exp), st.one_of(numbers, st.text(max_size=5)))
    | st.builds(
        lambda claims: make_jwt(**claims), st.dictionaries(st.text(max_size=5), json_values)
    )
)
token_bodies = st.fixed_dictionaries(
    {},
    optional={
        "access_token": token_texts | json_values,
        "token_type": st.sampled_from(["Bearer", "bearer", "mac", ""]) | json_values,
        "expires_in": numbers | json_values,
        "error": json_values,
        "error_description": json_values,
        "message": json_values,
    },
)
bodies = (
    st.binary(max_size=60)
    | token_bodies.map(lambda body: json.dumps(body).encode())
    | json_values.map(lambda value: json.dumps(value).encode())
)
statuses = st.sampled_from([200, 200, 200, 201, 204, 400, 401, 404, 429, 500, 503]) | st.integers(
    100, 599
)
header_values = st.text(
    alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=40
) | st.sampled_from(["0", "1", "31", "Wed, 21 Oct 2099 07:28:00 GMT", "-1", "1e3"])


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    answers=st.lists(
        st.tuples(
            statuses,
            bodies,
            st.dictionaries(st.sampled_from(["Retry-After", "Content-Type"]), header_values),
        ),
        min_size=1,
        max_size=3,
    )
)
async def test_any_answer_gives_a_token_or_a_mosaic_auth_error(
    answers: list[tuple[int, bytes, dict[str, str]]],
) -> None:
    """Arbitrary statuses, headers and bodies end in a usable token or a MosaicAuthError."""
    remaining = list(answers)

    def handler(request: httpx.Request) -> httpx.Response:
        status, body, headers = remaining.pop(0) if remaining else answers[-1]
        return httpx.Response(status, content=body, headers=headers)

    async def no_wait(seconds: float) -> None:
        assert 0 <= seconds <= 30

    fetcher = token_fetcher(
        httpx.AsyncClient(transport=httpx.MockTransport(handler)),
        clock=FakeClock(),
        sleep=no_wait,
        max_attempts=3,
    )
    outcome: AccessToken | MosaicAuthError
    try:
        outcome = await fetcher.token(None)
    except MosaicAuthError as error:
        outcome = error
    if isinstance(outcome, MosaicAuthError):
        assert CLIENT_SECRET not in str(outcome)
    else:
        assert isinstance(outcome.token, str)
        assert outcome.token
        assert math.isfinite(outcome.expires_at)
        assert outcome.expires_at > START
