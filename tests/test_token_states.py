"""The token states on their own: each transition, driven by hand on a fake clock, no I/O."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from mosaic_httpx_auth import AccessToken, TokenRequestError
from mosaic_httpx_auth._retry import RetryPolicy
from mosaic_httpx_auth._token_states import (
    REFUSAL_COOLDOWN,
    RETRY_AFTER_HOLD_LIMIT,
    Flight,
    Phase,
    Refusal,
    TokenStates,
)

from .helpers import RISK, FakeClock

if TYPE_CHECKING:
    from collections.abc import Callable

LOOP = object()


def states(
    clock: FakeClock,
    *,
    refresh_retry_interval: float = 5.0,
    owner_alive: Callable[[object], bool] = lambda owner: True,
) -> TokenStates:
    return TokenStates(
        leeway=60.0,
        refresh_window=300.0,
        retry=RetryPolicy(max_attempts=3),
        clock=clock,
        owner_alive=owner_alive,
        refresh_retry_interval=refresh_retry_interval,
    )


def token(clock: FakeClock, name: str = "t1", lifetime: float = 3600.0) -> AccessToken:
    return AccessToken(name, expires_at=clock() + lifetime, resource=RISK, issued_at=clock())


def refusal(status: int = 503, retry_after: float | None = None) -> TokenRequestError:
    return TokenRequestError("refused", status_code=status, retry_after=retry_after)


def fetch(rules: TokenStates, value: AccessToken) -> None:
    """Take a resource from EMPTY to FRESH with `value`."""
    step = rules.demand(RISK, owner=LOOP)
    assert step.start is not None
    rules.fetched(step.start, value)


def start_refresh(rules: TokenStates, clock: FakeClock) -> Flight:
    """Take a fresh resource past its refresh_at and start the refresh the first demand asks."""
    clock.advance(3300)
    refresh = rules.demand(RISK, owner=LOOP).start
    assert refresh is not None
    return refresh


def test_a_token_goes_from_empty_through_fetching_to_fresh(clock: FakeClock) -> None:
    """The first demand starts a fetch that callers wait on; its token makes the phase fresh."""
    rules = states(clock)
    assert rules.phase(RISK) is Phase.EMPTY
    first = rules.demand(RISK, owner=LOOP)
    assert first.start is not None
    assert first.flight is first.start
    assert first.token is None
    assert rules.phase(RISK) is Phase.FETCHING
    second = rules.demand(RISK, owner=LOOP)
    assert second.flight is first.flight
    assert second.start is None
    issued = token(clock)
    rules.fetched(first.start, issued)
    assert rules.phase(RISK) is Phase.FRESH
    assert rules.fresh_token(RISK) == issued
    assert rules.demand(RISK, owner=LOOP).token == issued


def test_a_stale_token_is_served_while_one_refresh_starts(clock: FakeClock) -> None:
    """Past refresh_at, the first demand serves the token and starts a refresh; others only
    get the token."""
    rules = states(clock)
    fetch(rules, token(clock))
    clock.advance(3600 - 60 - 300)
    assert rules.phase(RISK) is Phase.STALE
    assert rules.fresh_token(RISK) is None
    first = rules.demand(RISK, owner=LOOP)
    assert first.token is not None
    assert first.start is not None
    assert first.start.purpose == "refresh"
    assert rules.phase(RISK) is Phase.REFRESHING
    second = rules.demand(RISK, owner=LOOP)
    assert second.token == first.token
    assert second.start is None


def test_a_refresh_nobody_waits_for_gets_one_attempt(clock: FakeClock) -> None:
    """A refresh gives up after its first failure: the token it replaces is still usable."""
    rules = states(clock)
    fetch(rules, token(clock))
    refresh = start_refresh(rules, clock)
    refresh.attempt = 1
    assert rules.attempt_failed(refresh, refusal()) is None


def test_a_refresh_that_callers_now_need_gets_every_attempt(clock: FakeClock) -> None:
    """When the token is refused during a refresh, the callers waiting on that refresh get the
    full retry policy, not its single attempt."""
    rules = states(clock)
    first = token(clock)
    fetch(rules, first)
    refresh = start_refresh(rules, clock)
    assert rules.refused(RISK, first) is Refusal.DROPPED
    waiting = rules.demand(RISK, owner=LOOP)
    assert waiting.flight is refresh
    refresh.attempt = 1
    assert rules.attempt_failed(refresh, refusal()) is not None
    refresh.attempt = 3
    assert rules.attempt_failed(refresh, refusal()) is None


def test_a_failed_refresh_serves_the_token_and_rests(clock: FakeClock) -> None:
    """Stale-if-error: after a failed refresh the token is still served, and no refresh starts
    until the pause (the longer of the interval and Retry-After) is over."""
    rules = states(clock, refresh_retry_interval=5.0)
    fetch(rules, token(clock))
    refresh = start_refresh(rules, clock)
    assert rules.failed(refresh, refusal(retry_after=20)) == 20.0
    assert rules.phase(RISK) is Phase.BACKING_OFF
    clock.advance(19)
    step = rules.demand(RISK, owner=LOOP)
    assert step.token is not None
    assert step.start is None
    clock.advance(1)
    assert rules.demand(RISK, owner=LOOP).start is not None


def test_a_token_refused_while_its_refresh_rests_is_fetched_at_once(clock: FakeClock) -> None:
    """The pause after a failed refresh (no Retry-After) holds back refreshes only: once its
    token is refused, the next caller fetches instead of failing."""
    rules = states(clock)
    served = token(clock)
    fetch(rules, served)
    refresh = start_refresh(rules, clock)
    assert rules.failed(refresh, refusal()) == rules.refresh_retry_interval
    assert rules.refused(RISK, served) is Refusal.DROPPED
    step = rules.demand(RISK, owner=LOOP)
    assert step.error is None
    assert step.start is not None
    assert step.start.purpose == "fetch"


def test_retry_after_holds_every_token_request_back(clock: FakeClock) -> None:
    """Without a usable token, callers fail at once until Retry-After has passed."""
    rules = states(clock)
    fetch_flight = rules.demand(RISK, owner=LOOP).start
    assert fetch_flight is not None
    error = refusal(status=429, retry_after=120)
    assert rules.failed(fetch_flight, error) is None
    clock.advance(100)
    step = rules.demand(RISK, owner=LOOP)
    assert step.start is None
    assert step.error is error
    assert step.retry_in == pytest.approx(20)
    clock.advance(20)
    assert rules.demand(RISK, owner=LOOP).start is not None


def test_a_failed_fetch_without_retry_after_is_not_remembered(clock: FakeClock) -> None:
    """A fetch that failed with no Retry-After leaves the next caller free to fetch again."""
    rules = states(clock)
    flight = rules.demand(RISK, owner=LOOP).start
    assert flight is not None
    rules.failed(flight, refusal())
    assert rules.phase(RISK) is Phase.EMPTY
    assert rules.demand(RISK, owner=LOOP).start is not None


def test_a_refused_token_is_dropped_and_never_accepted_back(clock: FakeClock) -> None:
    """A 401 drops the token, and a shared cache offering that same token is turned down."""
    rules = states(clock)
    refused = token(clock)
    fetch(rules, refused)
    assert rules.refused(RISK, refused) is Refusal.DROPPED
    assert rules.phase(RISK) is Phase.EMPTY
    flight = rules.demand(RISK, owner=LOOP).start
    assert flight is not None
    assert not rules.accepts(flight, refused)
    assert rules.accepts(flight, token(clock, "t2"))


def test_a_401_for_an_older_token_keeps_the_newer_one(clock: FakeClock) -> None:
    """A refusal of a token already replaced leaves the new one in place, and asks to retry."""
    rules = states(clock)
    old, new = token(clock, "old"), token(clock, "new", lifetime=3700)
    fetch(rules, old)
    refresh = start_refresh(rules, clock)
    rules.fetched(refresh, new)
    assert rules.refused(RISK, old) is Refusal.REPLACED
    assert rules.fresh_token(RISK) == new


def test_a_replacement_refused_after_an_api_accepted_it_is_a_revocation(
    clock: FakeClock,
) -> None:
    """Once an API has accepted the token that answered a 401, a 401 to it drops it at once:
    the cooldown is for tokens no API has ever taken."""
    rules = states(clock)
    first, second = token(clock, "first"), token(clock, "second")
    fetch(rules, first)
    assert rules.refused(RISK, first) is Refusal.DROPPED
    fetch(rules, second)
    assert rules.on_probation == {RISK}
    rules.accepted(RISK, second)
    assert rules.on_probation == set()
    assert rules.refused(RISK, second) is Refusal.DROPPED
    assert rules.phase(RISK) is Phase.EMPTY


def test_a_token_refused_right_after_replacing_a_refused_one_is_kept(clock: FakeClock) -> None:
    """When the token fetched in answer to a 401 is refused too, the API refuses every token:
    it is kept and no retry asked, until the cooldown has passed."""
    rules = states(clock)
    first, second = token(clock, "first"), token(clock, "second")
    fetch(rules, first)
    assert rules.refused(RISK, first) is Refusal.DROPPED
    fetch(rules, second)
    assert rules.refused(RISK, second) is Refusal.KEPT
    assert rules.fresh_token(RISK) == second
    clock.advance(REFUSAL_COOLDOWN)
    assert rules.refused(RISK, second) is Refusal.DROPPED
    assert rules.phase(RISK) is Phase.EMPTY


def test_an_older_token_arriving_late_does_not_replace_a_newer_one(clock: FakeClock) -> None:
    """A flight that ends after a newer token arrived keeps the newer one."""
    rules = states(clock, owner_alive=lambda owner: owner is not LOOP)
    newer = token(clock, "newer", lifetime=4000)
    stale_flight = rules.demand(RISK, owner=LOOP).start
    assert stale_flight is not None
    other_loop = object()
    replacement = rules.demand(RISK, owner=other_loop).start
    assert replacement is not None
    assert replacement is not stale_flight
    rules.fetched(replacement, newer)
    rules.fetched(stale_flight, token(clock, "older"))
    assert rules.fresh_token(RISK) == newer


def test_a_flight_of_an_event_loop_that_ended_is_replaced(clock: FakeClock) -> None:
    """A caller on a new event loop starts its own flight rather than wait on one of a loop
    that has ended, whose attempts then stop."""
    ended = object()
    rules = states(clock, owner_alive=lambda owner: owner is not ended)
    orphan = rules.demand(RISK, owner=ended).start
    assert orphan is not None
    step = rules.demand(RISK, owner=LOOP)
    assert step.start is not None
    assert step.start.owner is LOOP
    orphan.attempt = 1
    assert rules.attempt_failed(orphan, refusal()) is None


def test_a_flight_of_another_live_event_loop_is_joined(clock: FakeClock) -> None:
    """Callers on two live event loops share one flight, which keeps every attempt."""
    rules = states(clock)
    flight = rules.demand(RISK, owner=LOOP).start
    step = rules.demand(RISK, owner=object())
    assert step.start is None
    assert step.flight is flight
    assert flight is not None
    flight.attempt = 1
    assert rules.attempt_failed(flight, refusal()) is not None


def test_an_abandoned_flight_lets_the_next_caller_start_again(clock: FakeClock) -> None:
    """A flight that ended with no outcome leaves the resource empty."""
    rules = states(clock)
    flight = rules.demand(RISK, owner=LOOP).start
    assert flight is not None
    rules.abandoned(flight)
    assert rules.phase(RISK) is Phase.EMPTY


def test_the_warm_path_reads_one_immutable_entry(clock: FakeClock) -> None:
    """`fresh_token` answers from the entry alone: a fresh token, or None once stale."""
    rules = states(clock)
    assert rules.fresh_token(RISK) is None
    issued = token(clock, lifetime=1000)
    fetch(rules, issued)
    assert rules.fresh_token(RISK) == issued
    clock.advance(1000 - 60 - 300)
    assert rules.fresh_token(RISK) is None


def test_a_retry_after_of_a_year_holds_requests_back_for_the_limit_only(clock: FakeClock) -> None:
    """A Retry-After far beyond reason (a wrong date, a broken proxy) holds token requests back
    for RETRY_AFTER_HOLD_LIMIT, after which one request goes out to ask again."""
    rules = states(clock)
    flight = rules.demand(RISK, owner=LOOP).start
    assert flight is not None
    rules.failed(flight, refusal(status=429, retry_after=365 * 86400))
    clock.advance(RETRY_AFTER_HOLD_LIMIT - 1)
    assert rules.demand(RISK, owner=LOOP).error is not None
    clock.advance(1)
    assert rules.demand(RISK, owner=LOOP).start is not None


def test_the_states_repr_shows_no_refused_token(clock: FakeClock) -> None:
    """The record of refused tokens stays out of reprs, which error trackers capture."""
    rules = states(clock)
    refused = token(clock, "eyJ-refused-token-value")
    fetch(rules, refused)
    rules.refused(RISK, refused)
    assert "eyJ-refused-token-value" not in repr(rules._records)
