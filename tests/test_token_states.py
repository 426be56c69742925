"""The token states on their own: each transition, driven by hand on fake clocks, no I/O."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from mosaic_httpx_auth import AccessToken, TokenRequestError
from mosaic_httpx_auth._retry import Retry
from mosaic_httpx_auth._token_states import (
    REFUSAL_HOLD,
    RETRY_AFTER_HOLD_LIMIT,
    Flight,
    Phase,
    Refusal,
    TokenStates,
    Waiter,
)

from .helpers import RISK, FakeClock

if TYPE_CHECKING:
    from collections.abc import Callable

LOOP = object()
HERE = "https://api.transmitsecurity.io/risk/v1/a"
THERE = "https://api.transmitsecurity.io/risk/v1/b"


def states(
    clock: FakeClock,
    *,
    refresh_retry_interval: float = 5.0,
    owner_alive: Callable[[object], bool] = lambda owner: True,
    monotonic: FakeClock | None = None,
    **policy: float,
) -> TokenStates:
    return TokenStates(
        leeway=60.0,
        refresh_window=300.0,
        retry=Retry(**{"max_attempts": 3, "backoff": 0.0, **policy}),  # type: ignore[arg-type]
        clock=clock,
        monotonic=monotonic or clock,
        owner_alive=owner_alive,
        refresh_retry_interval=refresh_retry_interval,
    )


def token(clock: FakeClock, name: str = "t1", lifetime: float = 3600.0) -> AccessToken:
    return AccessToken(name, expires_at=clock() + lifetime, resource=RISK, issued_at=clock())


def refusal(status: int = 503, retry_after: float | None = None) -> TokenRequestError:
    return TokenRequestError("refused", status_code=status, retry_after=retry_after)


def waiter(
    rules: TokenStates,
    deadline: float | None = None,
    owner: object = LOOP,
    refused: AccessToken | None = None,
) -> Waiter:
    """Demand a token (other than `refused`) that must be waited for, and return the waiter."""
    step = rules.demand(RISK, owner=owner, deadline=deadline, refused=refused)
    assert step.waiter is not None
    return step.waiter


def fail_attempt(rules: TokenStates, flight: Flight, error: TokenRequestError) -> float | None:
    """Make `flight`'s next attempt and fail it with `error`: the wait before the next one."""
    assert rules.attempt_starts(flight)
    return rules.attempt_failed(flight, error)


def fetch(rules: TokenStates, value: AccessToken, refused: AccessToken | None = None) -> None:
    """Take a resource to FRESH with `value`, fetched for a caller `refused` was refused to."""
    step = rules.demand(RISK, owner=LOOP, refused=refused)
    assert step.start is not None
    rules.fetched(step.start, value)


def replacement_of_a_refused_token(rules: TokenStates, clock: FakeClock) -> AccessToken:
    """The token now in use, fetched in place of a first one refused at HERE."""
    first, second = token(clock, "first"), token(clock, "second")
    fetch(rules, first)
    assert rules.refused(RISK, first, HERE) is Refusal.DROPPED
    fetch(rules, second, refused=first)
    return second


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
    assert first.waiter is not None
    assert first.waiter.flight is first.start
    assert first.token is None
    assert rules.phase(RISK) is Phase.FETCHING
    second = rules.demand(RISK, owner=LOOP)
    assert second.waiter is not None
    assert second.waiter.flight is first.start
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
    assert fail_attempt(rules, refresh, refusal()) is None


def test_a_refresh_that_callers_now_need_gets_every_attempt(clock: FakeClock) -> None:
    """When the token is refused during a refresh, the callers waiting on that refresh get the
    full retry policy, not its single attempt."""
    rules = states(clock)
    first = token(clock)
    fetch(rules, first)
    refresh = start_refresh(rules, clock)
    assert rules.refused(RISK, first, HERE) is Refusal.DROPPED
    assert waiter(rules, refused=first).flight is refresh
    assert fail_attempt(rules, refresh, refusal()) is not None
    assert fail_attempt(rules, refresh, refusal()) is not None
    assert fail_attempt(rules, refresh, refusal()) is None


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
    assert rules.refused(RISK, served, HERE) is Refusal.DROPPED
    step = rules.demand(RISK, owner=LOOP, refused=served)
    assert step.error is None
    assert step.start is not None
    assert step.start.purpose == "fetch"


def test_retry_after_holds_back_every_caller_who_cannot_wait_that_long(clock: FakeClock) -> None:
    """Without a usable token, a caller whose deadline comes before the Retry-After ends fails
    at once; one who can wait starts a flight that begins when it ends."""
    rules = states(clock, max_retry_after=30, max_attempts=1)
    flight = waiter(rules).flight
    error = refusal(status=429, retry_after=25)
    assert fail_attempt(rules, flight, error) is None
    rules.failed(flight, error)
    clock.advance(5)
    hurried = rules.demand(RISK, owner=LOOP, deadline=clock() + 19)
    assert hurried.start is None
    assert hurried.error is not None
    assert hurried.error.retry_after == pytest.approx(20)
    patient = rules.demand(RISK, owner=LOOP, deadline=clock() + 21)
    assert patient.start is not None
    assert patient.start.next_attempt_at == pytest.approx(clock() + 20)


def test_a_retry_after_beyond_max_retry_after_fails_every_caller_at_once(clock: FakeClock) -> None:
    """A Retry-After longer than max_retry_after ends the fetch, and every caller fails at once
    until it has passed, whatever its timeout: waiting longer is failing now."""
    rules = states(clock, max_retry_after=30)
    flight = waiter(rules).flight
    error = refusal(status=429, retry_after=120)
    assert fail_attempt(rules, flight, error) is None
    rules.failed(flight, error)
    clock.advance(80)
    step = rules.demand(RISK, owner=LOOP)
    assert step.error is not None
    assert "as it asked" in str(step.error)
    assert step.error.retry_after == pytest.approx(40)
    assert rules.demand(RISK, owner=LOOP, deadline=clock() + 100).error is not None
    clock.advance(40)
    assert rules.demand(RISK, owner=LOOP).start is not None


def test_a_failure_waiting_cannot_heal_is_not_remembered(clock: FakeClock) -> None:
    """A fetch refused with a 4xx leaves the next caller free to fetch again at once."""
    rules = states(clock)
    flight = waiter(rules).flight
    error = refusal(status=400)
    assert fail_attempt(rules, flight, error) is None
    rules.failed(flight, error)
    assert rules.phase(RISK) is Phase.EMPTY
    assert rules.demand(RISK, owner=LOOP).start is not None


def test_a_transient_failure_holds_the_next_request_until_the_backoff_step(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a flight gives up on 503s, the next flight begins only at the backoff's next
    step, and the steps keep growing across flights: one token request per step."""
    monkeypatch.setattr(Retry, "delay", lambda self, attempt: float(attempt))
    rules = states(clock, max_attempts=1)
    flight = waiter(rules).flight
    error = refusal(status=503)
    assert fail_attempt(rules, flight, error) is None
    rules.failed(flight, error)
    assert rules.phase(RISK) is Phase.BACKING_OFF
    second = rules.demand(RISK, owner=LOOP).start
    assert second is not None
    assert second.next_attempt_at == clock() + 1
    clock.advance(1)
    assert fail_attempt(rules, second, error) is None
    rules.failed(second, error)
    third = rules.demand(RISK, owner=LOOP).start
    assert third is not None
    assert third.next_attempt_at == clock() + 2


def test_a_refused_token_is_replaced_and_never_accepted_back(clock: FakeClock) -> None:
    """A 401 has the token replaced: the caller it was refused to starts a fetch, the other
    places go on with it until the new one comes, and a shared cache offering that same token
    is turned down."""
    rules = states(clock)
    refused = token(clock)
    fetch(rules, refused)
    assert rules.refused(RISK, refused, HERE) is Refusal.DROPPED
    flight = rules.demand(RISK, owner=LOOP, refused=refused).start
    assert flight is not None
    assert rules.phase(RISK) is Phase.REFRESHING
    assert rules.demand(RISK, owner=LOOP).token == refused
    assert not rules.accepts(flight, refused)
    assert rules.accepts(flight, token(clock, "t2"))


def test_a_401_for_an_older_token_keeps_the_newer_one(clock: FakeClock) -> None:
    """A refusal of a token already replaced leaves the new one in place, and asks to retry."""
    rules = states(clock)
    old, new = token(clock, "old"), token(clock, "new", lifetime=3700)
    fetch(rules, old)
    refresh = start_refresh(rules, clock)
    rules.fetched(refresh, new)
    assert rules.refused(RISK, old, HERE) is Refusal.REPLACED
    assert rules.fresh_token(RISK) == new


def test_a_replacement_refused_after_an_api_accepted_it_is_a_revocation(
    clock: FakeClock,
) -> None:
    """Once the place that refused a token has accepted its replacement, a 401 to that
    replacement is a revocation and drops it; a success elsewhere proves nothing there."""
    rules = states(clock)
    second = replacement_of_a_refused_token(rules, clock)
    assert rules.on_probation == {RISK}
    rules.accepted(RISK, second, THERE)
    assert rules.on_probation == {RISK}
    rules.accepted(RISK, second, HERE)
    assert rules.on_probation == set()
    assert rules.refused(RISK, second, HERE) is Refusal.DROPPED
    assert rules.demand(RISK, owner=LOOP, refused=second).start is not None


def test_a_place_that_refuses_the_token_fetched_for_it_refuses_every_token(
    clock: FakeClock,
) -> None:
    """When the token fetched in answer to a place's 401 is refused there too, that place
    refuses every token: its 401s keep the token for a while, even once another place took
    it, while a 401 elsewhere, once that while is over, has it replaced."""
    rules = states(clock)
    second = replacement_of_a_refused_token(rules, clock)
    rules.accepted(RISK, second, THERE)
    assert rules.refused(RISK, second, HERE) is Refusal.KEPT
    clock.advance(REFUSAL_HOLD - 1)
    assert rules.refused(RISK, second, HERE) is Refusal.KEPT
    assert rules.refused(RISK, second, THERE) is Refusal.KEPT
    assert rules.fresh_token(RISK) == second
    clock.advance(1)
    assert rules.refused(RISK, second, THERE) is Refusal.DROPPED


def test_a_401_while_requests_are_held_back_keeps_the_token(clock: FakeClock) -> None:
    """While a Retry-After holds token requests back, a 401 drops nothing: no replacement
    could come, and the APIs that accept the token go on with it."""
    rules = states(clock)
    served = token(clock)
    fetch(rules, served)
    refresh = start_refresh(rules, clock)
    error = refusal(status=429, retry_after=60)
    assert fail_attempt(rules, refresh, error) is None
    rules.failed(refresh, error)
    assert rules.refused(RISK, served, HERE) is Refusal.KEPT
    assert rules.demand(RISK, owner=LOOP).token == served


def test_a_refused_token_whose_replacement_failed_is_still_served(clock: FakeClock) -> None:
    """When one place's 401 had a token replaced and its replacement cannot be had, the token
    is still served to the places that accept it, and that place's next 401 drops nothing."""
    rules = states(clock)
    served = token(clock)
    fetch(rules, served)
    assert rules.refused(RISK, served, HERE) is Refusal.DROPPED
    replacement = waiter(rules, refused=served).flight
    error = refusal(status=429, retry_after=60)
    assert fail_attempt(rules, replacement, error) is None
    rules.failed(replacement, error)
    assert rules.demand(RISK, owner=LOOP).token == served
    assert rules.refused(RISK, served, HERE) is Refusal.KEPT


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
    assert stale_flight.ended
    rules.fetched(replacement, newer)
    rules.fetched(stale_flight, token(clock, "older"))
    assert rules.fresh_token(RISK) == newer


def test_a_flight_of_an_event_loop_that_ended_is_replaced(clock: FakeClock) -> None:
    """A caller on a new event loop starts its own flight rather than wait on one of a loop
    that has ended, whose attempts then stop; the orphan's waiters are told to ask again."""
    ended = object()
    rules = states(clock, owner_alive=lambda owner: owner is not ended)
    orphan = rules.demand(RISK, owner=ended).start
    assert orphan is not None
    joined = waiter(rules, owner=ended)
    assert joined.flight is orphan
    step = rules.demand(RISK, owner=LOOP)
    assert step.start is not None
    assert step.start.owner is LOOP
    verdict, _ = rules.verdict(joined)
    assert (verdict.token, verdict.error, verdict.waiting) == (None, None, False)
    assert not rules.attempt_starts(orphan)


def test_a_waiter_finds_out_on_its_own_that_the_flights_event_loop_ended(
    clock: FakeClock,
) -> None:
    """A caller on another loop, waiting for a flight whose loop stops running, is told to
    ask again without anyone else arriving."""
    alive = {"owner": True}
    owner = object()
    rules = states(clock, owner_alive=lambda loop: loop is not owner or alive["owner"])
    flight = waiter(rules, owner=owner).flight
    joined = waiter(rules, owner=LOOP)
    assert rules.verdict(joined)[0].waiting
    alive["owner"] = False
    verdict, _ = rules.verdict(joined)
    assert not verdict.waiting
    assert flight.ended


def test_a_flight_of_another_live_event_loop_is_joined(clock: FakeClock) -> None:
    """Callers on two live event loops share one flight, which keeps every attempt."""
    rules = states(clock)
    flight = rules.demand(RISK, owner=LOOP).start
    step = rules.demand(RISK, owner=object())
    assert step.start is None
    assert step.waiter is not None
    assert step.waiter.flight is flight
    assert flight is not None
    assert fail_attempt(rules, flight, refusal()) is not None


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
    flight = waiter(rules).flight
    error = refusal(status=429, retry_after=365 * 86400)
    assert fail_attempt(rules, flight, error) is None
    rules.failed(flight, error)
    clock.advance(RETRY_AFTER_HOLD_LIMIT - 40)
    assert rules.demand(RISK, owner=LOOP).error is not None
    clock.advance(40)
    assert rules.demand(RISK, owner=LOOP).start is not None


def test_the_states_repr_shows_no_refused_token(clock: FakeClock) -> None:
    """The record of refused tokens stays out of reprs, which error trackers capture."""
    rules = states(clock)
    refused = token(clock, "eyJ-refused-token-value")
    fetch(rules, refused)
    rules.refused(RISK, refused, HERE)
    assert "eyJ-refused-token-value" not in repr(rules._records)


# The waiting rule


def test_a_waiter_with_a_deadline_keeps_the_flight_trying_past_max_attempts(
    clock: FakeClock,
) -> None:
    """While a caller's deadline lies beyond the next attempt, the flight keeps trying 503s;
    a caller without a deadline leaves after max_attempts with the last answer."""
    rules = states(clock, max_attempts=2)
    patient = waiter(rules, deadline=clock() + 10)
    flight = patient.flight
    bounded = waiter(rules)
    assert fail_attempt(rules, flight, refusal()) is not None
    assert rules.verdict(bounded)[0].waiting
    assert fail_attempt(rules, flight, refusal()) is not None
    verdict, _ = rules.verdict(bounded)
    assert verdict.error is not None
    assert "the last of 2 attempts" in str(verdict.error)
    rules.leave(bounded)
    assert fail_attempt(rules, flight, refusal()) is not None
    assert rules.verdict(patient)[0].wait_until == clock() + 10


def test_a_waiter_leaves_when_the_next_attempt_comes_after_its_deadline(
    clock: FakeClock,
) -> None:
    """A Retry-After longer than a caller can wait sends it away at once with the endpoint's
    last answer, while a caller with more time keeps waiting."""
    rules = states(clock)
    short = waiter(rules, deadline=clock() + 2)
    long = waiter(rules, deadline=clock() + 10)
    assert fail_attempt(rules, short.flight, refusal(status=429, retry_after=5)) == 5
    verdict, _ = rules.verdict(short)
    assert isinstance(verdict.error, TokenRequestError)
    assert str(verdict.error).endswith(
        "within the 2 s the request could wait (the next token request goes out in 5 s; "
        "the last answer: refused)"
    )
    assert verdict.error.status_code == 429
    assert rules.verdict(long)[0].waiting
    clock.advance(10)
    verdict, _ = rules.verdict(long)
    assert verdict.error is not None


def test_a_flight_nobody_waits_for_stops_before_its_next_attempt(clock: FakeClock) -> None:
    """When every waiter has left, the flight makes no more attempts, and ends."""
    rules = states(clock)
    joined = waiter(rules, deadline=clock() + 10)
    flight = joined.flight
    assert fail_attempt(rules, flight, refusal()) is not None
    rules.leave(joined)
    assert not rules.attempt_starts(flight)
    assert flight.ended
    assert rules.phase(RISK) is Phase.EMPTY


def test_every_waiter_learns_a_flights_outcome_whoever_ends_it(clock: FakeClock) -> None:
    """The signal a waiter holds is set when the flight ends, and the verdict then carries the
    token to every waiter."""
    rules = states(clock)
    first, second = waiter(rules), waiter(rules, deadline=clock() + 5)
    _, signal = rules.verdict(first)
    issued = token(clock)
    rules.fetched(first.flight, issued)
    assert signal._done
    assert rules.verdict(first)[0].token == issued
    assert rules.verdict(second)[0].token == issued


def test_holds_are_measured_on_the_monotonic_clock(clock: FakeClock) -> None:
    """A wall clock stepped back an hour after a 429 with Retry-After 5 leaves the hold at 5 s,
    not 3605."""
    monotonic = FakeClock(0.0)
    rules = states(clock, monotonic=monotonic, max_attempts=1)
    flight = waiter(rules).flight
    error = refusal(status=429, retry_after=5)
    assert fail_attempt(rules, flight, error) is None
    rules.failed(flight, error)
    clock.advance(-3600)
    step = rules.demand(RISK, owner=LOOP, deadline=monotonic() + 1)
    assert step.error is not None
    assert step.error.retry_after == pytest.approx(5)
    monotonic.advance(5)
    assert rules.demand(RISK, owner=LOOP).start is not None


def test_a_place_marked_as_refusing_every_token_is_forgotten_once_it_accepts_it(
    clock: FakeClock,
) -> None:
    """A place that refused two tokens in a row and then accepts the second (its API was
    mended) is no longer taken to refuse every token: a later 401 there is a revocation."""
    rules = states(clock)
    second = replacement_of_a_refused_token(rules, clock)
    assert rules.refused(RISK, second, HERE) is Refusal.KEPT
    assert rules.on_probation == {RISK}
    rules.accepted(RISK, second, HERE)
    assert rules.on_probation == set()
    clock.advance(REFUSAL_HOLD)
    assert rules.refused(RISK, second, HERE) is Refusal.DROPPED


def test_a_place_refusing_every_token_is_tried_again_after_a_while(clock: FakeClock) -> None:
    """The mark on a place that refuses every token lapses: one more token is tried there, so
    that a revocation seen only there is not ignored for the token's whole life."""
    rules = states(clock)
    second = replacement_of_a_refused_token(rules, clock)
    assert rules.refused(RISK, second, HERE) is Refusal.KEPT
    clock.advance(REFUSAL_HOLD - 1)
    assert rules.refused(RISK, second, HERE) is Refusal.KEPT
    clock.advance(1)
    assert rules.refused(RISK, second, HERE) is Refusal.DROPPED


def test_two_places_refusing_in_a_row_are_not_a_revocation(clock: FakeClock) -> None:
    """The token fetched in answer to one place's 401, refused at once by another place (an
    API with a path per id), is kept: two refusals in a row are an API refusing tokens."""
    rules = states(clock)
    second = replacement_of_a_refused_token(rules, clock)
    assert rules.refused(RISK, second, THERE) is Refusal.KEPT
    clock.advance(REFUSAL_HOLD)
    assert rules.refused(RISK, second, THERE) is Refusal.DROPPED


def test_a_refused_token_is_served_elsewhere_while_its_replacement_is_awaited(
    clock: FakeClock,
) -> None:
    """While the replacement of a token one place refused is slow or failing, the other places
    are served it, and the caller it was refused to waits for the replacement."""
    rules = states(clock)
    served = token(clock)
    fetch(rules, served)
    assert rules.refused(RISK, served, HERE) is Refusal.DROPPED
    step = rules.demand(RISK, owner=LOOP, deadline=clock() + 30, refused=served)
    assert step.waiter is not None
    assert step.start is not None
    assert rules.demand(RISK, owner=LOOP).token == served  # before any answer
    assert fail_attempt(rules, step.start, refusal(status=429, retry_after=10)) == 10
    assert rules.demand(RISK, owner=LOOP).token == served
    again = rules.demand(RISK, owner=LOOP, deadline=clock() + 30, refused=served)
    assert again.waiter is not None
    assert again.waiter.flight is step.start
    assert rules.refused(RISK, served, HERE) is Refusal.REPLACED


@pytest.mark.parametrize("retry_after", [0.0, None])
def test_waits_past_max_attempts_keep_growing_whatever_the_settings(
    clock: FakeClock, retry_after: float | None
) -> None:
    """With backoff 0, or a Retry-After of 0, a caller with a long deadline keeps the fetch
    going, but past max_attempts each wait is at least 0.5 s, doubling to 8 s: a minute of
    waiting costs a dozen token requests, not thousands."""
    rules = states(clock, max_attempts=3)
    flight = waiter(rules, deadline=clock() + 60).flight
    error = refusal(status=429, retry_after=retry_after)
    delays = [fail_attempt(rules, flight, error) for _ in range(8)]
    assert delays == [0.0, 0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 8.0]


def test_the_backoff_never_overflows(clock: FakeClock) -> None:
    """After thousands of failures in a row, the wait is still the longest backoff."""
    rules = states(clock, backoff=0.5)
    flight = waiter(rules, deadline=clock() + 10**9).flight
    for _ in range(2000):
        delay = fail_attempt(rules, flight, refusal())
        assert delay is not None
        assert 0.0 <= delay <= 8.0
        clock.advance(delay)
    assert Retry().delay(10_000) <= 8.0


def test_a_flight_closed_by_its_event_loop_sends_other_loops_waiters_to_ask_again(
    clock: FakeClock,
) -> None:
    """`aclose()` on the loop that runs a flight fails that loop's waiters only: a waiter on
    another loop, which the auth still serves, asks again, and no hold is set."""
    rules = states(clock)
    own = waiter(rules, owner=LOOP)
    other = waiter(rules, owner=object(), deadline=clock() + 5)
    assert fail_attempt(rules, own.flight, refusal()) is not None
    rules.closed(own.flight, TokenRequestError("closed"))
    assert str(rules.verdict(own)[0].error) == "closed"
    verdict, _ = rules.verdict(other)
    assert (verdict.token, verdict.error, verdict.waiting) == (None, None, False)
    assert rules.demand(RISK, owner=object()).start is not None


def test_max_retry_after_bounds_a_backoff_hold_only_for_callers_without_a_timeout(
    clock: FakeClock,
) -> None:
    """A backoff hold longer than max_retry_after (past max_attempts it grows to 8 s) is waited
    out by a caller whose timeout reaches past it; a caller without one fails at once, told
    how many requests failed."""
    rules = states(clock, max_retry_after=2, max_attempts=1)
    for _ in range(4):
        flight = waiter(rules).flight
        clock.advance(flight.next_attempt_at - clock())
        assert fail_attempt(rules, flight, refusal()) is None
        rules.failed(flight, refusal())
    patient = rules.demand(RISK, owner=LOOP, deadline=clock() + 30)
    assert patient.start is not None
    assert patient.start.next_attempt_at - clock() == pytest.approx(4.0)
    hurried = rules.demand(RISK, owner=LOOP)
    assert hurried.waiter is not None
    verdict, _ = rules.verdict(hurried.waiter)
    assert "after 4 failed in a row" in str(verdict.error)
    rules.leave(hurried.waiter)
    assert rules.verdict(patient.waiter)[0].waiting  # type: ignore[arg-type]
