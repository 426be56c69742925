"""The life of each resource's token: named states, every transition between them, and the
flights that fetch tokens with the callers who wait for them.

These rules do no I/O, never await and hold no lock across a wait, so that every driver
shares them: the async fetcher (whose fleet-wide lease decides who fetches, while `accepts`
decides whether a token from the fleet will do) and the sync callers it serves. A caller asks
what to do (`demand`); a flight's driver asks before each attempt (`attempt_starts`) and
reports back (`attempt_failed`, `fetched`, `failed`, `closed`, `abandoned`); a waiter asks
what its flight means for it (`verdict`) each time the flight changes, and leaves (`leave`).
Each transition is one short method; a `threading.Lock` makes each one atomic, so drivers on
several threads can share the states.

A resource is in one phase at a time, worked out from its record and the clocks::

    EMPTY ─────────── demand ───────────▶ FETCHING ── fetched ──▶ FRESH
      ▲                                    │  ▲                    │ refresh_at
      │ failed, nobody waits               │  │ demand             ▼
      ├────────────────────────────────────┘  │               ── STALE ── demand ──▶ REFRESHING
      │ failed, waiting may help              │              │                        │  │
      ▼                                       │              │ failed: serve the      │  │ fetched
    BACKING_OFF ── demand, or retry_at ───────┘              │ token, try again later │  ▼
      (a caller who can wait that long starts                ▼                        │ FRESH
       a flight that begins at retry_at)               BACKING_OFF ◀──────────────────┘

- FRESH: a usable token before its `refresh_at`: served from memory, nothing else happens.
- STALE: still usable, past `refresh_at`: served, and the first caller starts a refresh.
- REFRESHING: still usable, a refresh under way: served; nobody waits for the refresh.
- FETCHING: no usable token, a flight under way: callers wait for it, each until its own
  deadline. The flight tries again after each transient failure (no answer, a timeout, 5xx,
  429) while a waiter can still use the next attempt: one with a deadline after it, or one
  without a deadline within its `max_attempts`. A failure that waiting cannot heal (other 4xx,
  an unusable answer) ends the flight for every waiter at once.
- BACKING_OFF: the last flight failed and the next token request must wait until `retry_at`:
  the endpoint's Retry-After, or the next step of a backoff that keeps growing across flights,
  so that a long outage costs one token request per step however many callers wait. A usable
  token is served meanwhile; a caller without one who can wait that long starts a flight that
  begins then, and one who cannot fails at once with a copy of the failure. After a failed
  refresh, the token is served until `refresh_after`.
- EMPTY: no usable token and nothing under way: the first caller starts a fetch.

Token expiry is read on the wall clock (`clock`), as a token's ``exp`` is a date; holds,
deadlines and pauses on a monotonic clock (`monotonic`), which a stepped wall clock cannot
stretch or shrink.

A 401 from an API at a place (origin and path: `refused`) has the token it names replaced,
unless a newer one already did, or the API refuses every token: the place refused the token
fetched in answer to its own refusal, or another place refused that token within
`REFUSAL_HOLD` of its arrival. Then the token is kept and the place left alone for
`REFUSAL_HOLD`, or until it accepts the token or a new one arrives: such an API costs a token
request a minute at most, and the APIs that accept the token keep it. Until a replacement
comes, the refused token is still served; only the callers it was refused to wait for another
(`demand`'s `refused`). A 401 while the endpoint holds token requests back changes nothing (no
replacement could come). `aclose()` on one event loop (`closed`) fails that loop's waiters;
those of other loops ask again.
An application that saw a token refused outside httpx says so (`invalidate`): the token, if
still in use, is dropped for every caller at once.
Refused tokens are remembered until they expire, so that no cache can hand one back.
"""

from __future__ import annotations

import copy
import enum
import math
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from ._exceptions import TokenRequestError
from ._loops.completion import Completion
from ._messages import for_resource
from ._retry import MAX_BACKOFF, is_retryable

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._exceptions import MosaicAuthError
    from ._retry import Retry
    from ._token import AccessToken

# The longest a Retry-After holds every token request back: a wrong date or a broken proxy
# must not stop a service for days. Past it, one request goes out and asks again.
RETRY_AFTER_HOLD_LIMIT = 600.0
# Past the attempts a caller without a timeout waits for, each wait is at least this long,
# doubling up to MAX_BACKOFF whatever `backoff` or a ``Retry-After: 0`` say: a long deadline
# must never become a stream of token requests.
EXTENDED_BACKOFF_FIRST = 0.5
# How long an API that refuses every token is left alone: a token fetched in answer to a 401
# and refused again, at the same place or another, within this many seconds of its arrival is
# kept (two refusals in a row are an API refusing tokens, not a revocation), and the place that
# refused it twice drops nothing for this long, or until it accepts the token or a new one
# arrives. Then one more token is tried there: a token request a minute at most.
REFUSAL_HOLD = 60.0


class Phase(enum.Enum):
    """Where a resource's token is in its life; see the module docstring."""

    EMPTY = "empty"
    FETCHING = "fetching"
    FRESH = "fresh"
    STALE = "stale"
    REFRESHING = "refreshing"
    BACKING_OFF = "backing_off"


class Refusal(enum.Enum):
    """What a 401 from an API did to the token it was sent with."""

    DROPPED = "dropped"
    """It was the token in use: a new one is fetched, and the request may be retried with it.
    Until it comes, the other places go on with the old one."""
    REPLACED = "replaced"
    """A newer token had already replaced it: retry with that one."""
    KEPT = "kept"
    """The place refuses every token, or no new one can come now: kept, and no retry."""


Purpose = Literal["fetch", "refresh"]


class Flight:
    """One token request under way for a resource, with its retries, and what its waiters read.

    `TokenStates` alone writes it, under its lock, and wakes the waiters through `changed`
    each time something they read moves: an attempt failed, or the flight ended with a token,
    an error, or nothing (its event loop ended first; its waiters ask again). `owner` is the
    event loop that runs it.
    """

    __slots__ = (
        "_changed",
        "attempts",
        "closed",
        "ended",
        "error",
        "failures",
        "first_attempt_at",
        "last_error",
        "next_attempt_at",
        "owner",
        "purpose",
        "resource",
        "token",
        "waiters",
    )

    def __init__(
        self, resource: str | None, purpose: Purpose, owner: object, *, starts_at: float
    ) -> None:
        self.resource = resource
        self.purpose: Purpose = purpose
        self.owner = owner
        self.attempts = 0
        self.failures = 0
        self.next_attempt_at = starts_at
        """When the next attempt goes out (monotonic): now, after a backoff, or a hold."""
        self.first_attempt_at: float | None = None
        self.last_error: TokenRequestError | None = None
        self.waiters: list[Waiter] = []
        self.token: AccessToken | None = None
        self.error: MosaicAuthError | None = None
        self.ended = False
        self.closed = False
        """Whether its event loop's `aclose()` stopped it."""
        self._changed = Completion()

    def __repr__(self) -> str:
        return (
            f"Flight({self.purpose} {for_resource(self.resource)}, attempts={self.attempts}, "
            f"waiters={len(self.waiters)}, ended={self.ended})"
        )

    @property
    def changed(self) -> Completion:
        """Set when the flight next changes: read it before reading the flight."""
        return self._changed

    def _wake(self) -> None:
        changed, self._changed = self._changed, Completion()
        changed.set()


@dataclass(eq=False, slots=True)
class Waiter:
    """A caller waiting for `flight`, until `deadline` (monotonic) or, without one, for at most
    the retry policy's `max_attempts` of it."""

    flight: Flight
    owner: object
    deadline: float | None
    joined_at: float


@dataclass(frozen=True, slots=True)
class Decision:
    """What `demand` tells a caller to do: serve `token`, or wait as `waiter`, or raise `error`.

    `start` is a flight the caller must start (without waiting for it when it is a refresh).
    """

    token: AccessToken | None = None
    waiter: Waiter | None = None
    start: Flight | None = None
    error: TokenRequestError | None = None
    """A copy of its own for the caller: its ``retry_after`` is how long until a token
    request may go out again."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """What a flight means for one waiter now: its `token`, or its `error`, or wait for the
    flight's next change until `wait_until` (monotonic; None: no limit), or, with none of
    these, ask again (the flight ended without an outcome)."""

    token: AccessToken | None = None
    error: MosaicAuthError | None = None
    wait_until: float | None = None
    waiting: bool = False


_ASK_AGAIN = Verdict()


@dataclass(frozen=True, slots=True)
class _Entry:
    """A token and when it turns stale and stops being usable (wall clock): replaced whole,
    never edited, so that the warm path can read it without a lock."""

    token: AccessToken | None
    refresh_at: float
    usable_until: float


_NO_ENTRY = _Entry(token=None, refresh_at=-math.inf, usable_until=-math.inf)


@dataclass(slots=True)
class _Record:
    """Everything known about one resource's token."""

    entry: _Entry = _NO_ENTRY
    flight: Flight | None = None
    retry_at: float = -math.inf
    """No token request before this (monotonic): Retry-After, or the backoff's next step."""
    error: TokenRequestError | None = None
    """The failure that set `retry_at`."""
    failures: int = 0
    """Token requests that failed in a row: the backoff's step, across flights."""
    refresh_after: float = -math.inf
    """No refresh before this (monotonic): the last one failed, and the token is served."""
    refused_at: str | None = None
    """The place whose 401 refused the token in use, until a new one arrives."""
    answers: str | None = None
    """The place whose 401 the current token answers, until that place accepts it."""
    received_at: float = -math.inf
    """When the current token arrived (monotonic)."""
    refuses_all: dict[str, float] = field(default_factory=dict, repr=False)
    """Places that refused the token fetched for them, until when (monotonic) their 401s
    drop nothing; forgotten when they accept the token or a new one arrives."""
    refused: dict[str, float] = field(default_factory=dict, repr=False)
    """Tokens an API refused, with their expiry: never to be taken back from a cache."""
    invalidated: bool = False
    """Whether the application had the token in use dropped (`invalidate`) since the last
    token arrived."""
    answers_invalidation: bool = False
    """Whether the current token was fetched in answer to an invalidation."""

    def phase(self, now: float, monotonic_now: float) -> Phase:
        usable = now < self.entry.usable_until
        if self.flight is not None:
            return Phase.REFRESHING if usable else Phase.FETCHING
        if monotonic_now < self.retry_at:
            return Phase.BACKING_OFF
        if not usable:
            return Phase.EMPTY
        if now < self.entry.refresh_at:
            return Phase.FRESH
        return Phase.BACKING_OFF if monotonic_now < self.refresh_after else Phase.STALE


class TokenStates:
    """The phase of every resource's token, and the rules that move it from one to the next.

    A token is *usable* until `leeway` seconds before it expires and *fresh* until
    `refresh_window` seconds before that, each capped at half the time left, so that a
    short-lived token is still reused. The refresh is due `refresh_spread` (a fraction, drawn
    by the callable given, again in a forked child) into that window: instances that start
    together, as a deployment's do, each draw their own, so that they do not refresh in step
    every hour. A failed refresh is tried again after
    `refresh_retry_interval` seconds, or as long as the endpoint's ``Retry-After`` asked.
    """

    def __init__(
        self,
        *,
        leeway: float,
        refresh_window: float,
        retry: Retry,
        clock: Callable[[], float],
        monotonic: Callable[[], float],
        owner_alive: Callable[[object], bool] = lambda owner: True,
        refresh_retry_interval: float = 5.0,
        refresh_spread: Callable[[], float] = lambda: 0.0,
    ) -> None:
        self.leeway = leeway
        self.refresh_window = refresh_window
        self._draw_spread = refresh_spread
        self.refresh_spread = refresh_spread()
        self.retry = retry
        self.refresh_retry_interval = refresh_retry_interval
        self.clock = clock
        self.monotonic = monotonic
        self._owner_alive = owner_alive
        self._records: dict[str | None, _Record] = {}
        self._lock = threading.Lock()
        self.on_probation: set[str | None] = set()
        """Resources whose token answers a refusal not yet followed by an acceptance there, or
        has a place marked as refusing every token: the request flow reports acceptances only
        while this is not empty."""

    def fresh_token(self, resource: str | None) -> AccessToken | None:
        """The fresh token for `resource`, or None: the warm path, with no lock."""
        record = self._records.get(resource)
        if record is None:
            return None
        entry = record.entry
        return entry.token if self.clock() < entry.refresh_at else None

    def served_token(self, resource: str | None) -> tuple[AccessToken | None, bool]:
        """The usable token for `resource`, if any, and whether a refresh is due (STALE), with
        no lock: how a sync caller is served a stale token without waiting for anything."""
        record = self._records.get(resource)
        if record is None:
            return None, False
        now, entry = self.clock(), record.entry
        if now >= entry.usable_until:
            return None, False
        return entry.token, record.phase(now, self.monotonic()) is Phase.STALE

    def phase(self, resource: str | None) -> Phase:
        """The phase `resource`'s token is in now."""
        record = self._records.get(resource)
        if record is None:
            return Phase.EMPTY
        return record.phase(self.clock(), self.monotonic())

    def demand(
        self,
        resource: str | None,
        *,
        owner: object,
        deadline: float | None = None,
        refused: AccessToken | None = None,
    ) -> Decision:
        """A caller on `owner` (its event loop) needs a token for `resource`, by `deadline`
        (monotonic) if it has one, and other than `refused`, which an API just refused it."""
        with self._lock:
            record = self._records.setdefault(resource, _Record())
            flight = record.flight
            if flight is not None and flight.owner is not owner and not self._alive(flight):
                self._end(record, flight)  # its event loop is gone: its waiters ask again
            now, monotonic_now = self.clock(), self.monotonic()
            phase = record.phase(now, monotonic_now)
            if refused is not None and record.entry.token == refused:
                # Still served to the other places: this caller waits for its replacement.
                if record.flight is not None:
                    return Decision(
                        waiter=self._join(record.flight, owner, deadline, monotonic_now)
                    )
                phase = Phase.BACKING_OFF if monotonic_now < record.retry_at else Phase.EMPTY
            elif phase is Phase.FRESH or phase is Phase.REFRESHING:
                return Decision(token=record.entry.token)
            if phase is Phase.STALE:
                record.flight = Flight(resource, "refresh", owner, starts_at=monotonic_now)
                return Decision(token=record.entry.token, start=record.flight)
            if phase is Phase.FETCHING and record.flight is not None:
                return Decision(waiter=self._join(record.flight, owner, deadline, monotonic_now))
            starts_at = monotonic_now
            if phase is Phase.BACKING_OFF:
                if now < record.entry.usable_until and record.entry.token != refused:
                    return Decision(token=record.entry.token)
                error = record.error
                if error is not None:
                    retry_in = record.retry_at - monotonic_now
                    # Only a caller without a deadline waits no longer than max_retry_after
                    # for the backoff; a Retry-After longer than that holds every caller back.
                    longest = self.retry.max_retry_after
                    if (deadline is None or error.retry_after) and retry_in > longest:
                        return Decision(error=_held_back(error, retry_in, record.failures, None))
                    if deadline is not None and record.retry_at >= deadline:
                        allowed = deadline - monotonic_now
                        return Decision(error=_held_back(error, retry_in, record.failures, allowed))
                    starts_at = record.retry_at
            flight = record.flight = Flight(resource, "fetch", owner, starts_at=starts_at)
            return Decision(waiter=self._join(flight, owner, deadline, monotonic_now), start=flight)

    def verdict(self, waiter: Waiter) -> tuple[Verdict, Completion]:
        """What `waiter`'s flight means for it now, and the signal of the flight's next change
        (taken with the verdict, so that no change falls between them)."""
        flight = waiter.flight
        with self._lock:
            changed = flight.changed
            if flight.token is not None:
                return Verdict(token=flight.token), changed
            if flight.owner is not waiter.owner and not self._alive(flight):
                self._end(self._records[flight.resource], flight)
            if flight.ended and (
                flight.error is None or (flight.closed and waiter.owner is not flight.owner)
            ):
                return _ASK_AGAIN, changed
            deadline, now = waiter.deadline, self.monotonic()
            if deadline is not None and (now >= deadline or flight.next_attempt_at >= deadline):
                # Whether the flight goes on for others or gave up for want of time.
                return Verdict(error=self._too_late(waiter, now)), changed
            if flight.error is not None:
                return Verdict(error=_copy_of(flight.error)), changed
            if deadline is not None:
                return Verdict(wait_until=deadline, waiting=True), changed
            record = self._records[flight.resource]
            held_for = flight.next_attempt_at - now
            if held_for > self.retry.max_retry_after and record.error is not None:
                # A flight waiting out a hold longer than a caller without a deadline waits.
                held = _held_back(record.error, held_for, record.failures, None)
                return Verdict(error=held), changed
            if flight.failures >= self.retry.max_attempts and flight.last_error is not None:
                # Others with a deadline keep the flight going; this caller's attempts are spent.
                return Verdict(error=_after_attempts(flight, flight.last_error, now)), changed
            return Verdict(waiting=True), changed

    def leave(self, waiter: Waiter) -> None:
        """`waiter` stopped waiting: it got its outcome, gave up, or was cancelled."""
        with self._lock:
            waiters = waiter.flight.waiters
            if waiter in waiters:
                waiters.remove(waiter)

    def attempt_starts(self, flight: Flight) -> bool:
        """Whether `flight` makes its next attempt now: a refresh makes its first whatever
        happens, and every other attempt goes out only while somebody waits for it. A flight
        nobody waits for any more ends there."""
        with self._lock:
            record = self._records[flight.resource]
            if record.flight is not flight or flight.ended:
                return False
            if not flight.waiters and (flight.purpose == "fetch" or flight.attempts > 0):
                self._end(record, flight)
                return False
            if flight.attempts == 0:
                flight.first_attempt_at = self.monotonic()
            flight.attempts += 1
            return True

    def attempt_failed(self, flight: Flight, error: TokenRequestError) -> float | None:
        """Seconds to wait before `flight`'s next attempt, or None to give up with `error`.

        Another attempt is made when waiting may heal the failure and a waiter can still use
        it: one whose deadline comes after it, or one without a deadline within its
        `max_attempts`. A refresh nobody waits for makes one attempt: the token it replaces
        is still usable.
        """
        with self._lock:
            record = self._records[flight.resource]
            if record.flight is not flight:
                return None  # superseded: its callers were served by another flight
            now = self.monotonic()
            flight.last_error, flight.failures = error, flight.failures + 1
            delay = self._backoff(record, error)
            if delay is not None:
                flight.next_attempt_at = now + delay
            flight._wake()
            if delay is None or not self._worth_waiting(flight):
                return None
            return delay

    def fetched(self, flight: Flight, token: AccessToken) -> None:
        """`flight` got `token` (from the endpoint, or a shared cache)."""
        with self._lock:
            record = self._records[flight.resource]
            flight.token, flight.ended = token, True
            flight._wake()
            if record.flight is flight:
                record.flight = None
            current = record.entry.token
            if (
                current is not None
                and current.token not in record.refused
                and token.expires_at < current.expires_at
            ):
                return  # a newer token arrived first: keep it
            record.entry = self._entry_for(token)
            record.answers, record.refused_at = record.refused_at, None
            record.answers_invalidation, record.invalidated = record.invalidated, False
            record.received_at = self.monotonic()
            record.refuses_all.clear()  # they refused another token
            self._update_probation(flight.resource, record)
            record.retry_at, record.error, record.refresh_after = -math.inf, None, -math.inf
            record.failures = 0

    def failed(self, flight: Flight, error: MosaicAuthError) -> float | None:
        """`flight` gave up with `error`. Returns the pause before the next refresh when a
        still-usable token goes on being served (stale-if-error), else None.

        A failure that waiting may heal holds every token request back until the flight's next
        attempt would have gone out (``Retry-After``, capped, or the backoff's next step).
        """
        with self._lock:
            record = self._records[flight.resource]
            if flight.failures > 1:
                error = _after_attempts(flight, error, self.monotonic())
            flight.error, flight.ended = error, True
            flight._wake()
            if record.flight is not flight:
                return None
            record.flight = None
            now, monotonic_now = self.clock(), self.monotonic()
            if isinstance(error, TokenRequestError) and flight.last_error is not None:
                if error.retry_after:
                    hold = min(error.retry_after, RETRY_AFTER_HOLD_LIMIT)
                    record.retry_at, record.error = monotonic_now + hold, error
                elif is_retryable(error) and flight.next_attempt_at > monotonic_now:
                    record.retry_at, record.error = flight.next_attempt_at, error
            served = record.entry.token
            if served is None or now >= record.entry.usable_until or served.token in record.refused:
                return None
            retry_after = error.retry_after if isinstance(error, TokenRequestError) else None
            pause = max(retry_after or 0.0, self.refresh_retry_interval)
            record.refresh_after = monotonic_now + pause
            return pause

    def closed(self, flight: Flight, error: MosaicAuthError) -> None:
        """`flight` was stopped by its own event loop's `aclose()`: its waiters on that loop
        get `error`; those on other loops, which the auth still serves, ask again."""
        with self._lock:
            flight.error, flight.closed = error, True
            self._end(self._records[flight.resource], flight)

    def abandoned(self, flight: Flight) -> None:
        """`flight` ended without an outcome (its event loop closed, or it was cancelled)."""
        with self._lock:
            self._end(self._records[flight.resource], flight)

    def accepted(self, resource: str | None, token: AccessToken, place: str) -> None:
        """An API at `place` answered a request carrying `token` with success: a later 401
        there is a revocation, not a refusal of every token."""
        with self._lock:
            record = self._records.get(resource)
            if record is None or record.entry.token != token:
                return
            if record.answers == place:
                record.answers = None
            record.refuses_all.pop(place, None)
            self._update_probation(resource, record)

    def refused(self, resource: str | None, token: AccessToken, place: str) -> Refusal:
        """An API at `place` answered 401 to a request carrying `token`: what that does."""
        with self._lock:
            record = self._records.setdefault(resource, _Record())
            now, monotonic_now = self.clock(), self.monotonic()
            record.refused = {
                value: until for value, until in record.refused.items() if until > now
            }
            if record.entry.token != token:
                return Refusal.REPLACED
            marked_until = record.refuses_all.get(place)
            if marked_until is not None and monotonic_now < marked_until:
                return Refusal.KEPT  # a place that refuses every token
            if monotonic_now < record.retry_at:
                return Refusal.KEPT  # no replacement can come yet: others go on with it
            if marked_until is not None:
                del record.refuses_all[place]  # its mark lapsed: one more token is tried there
            elif record.answers is not None:
                if record.answers == place:
                    # It refused the token fetched for it, too: it refuses every token.
                    record.refuses_all[place] = monotonic_now + REFUSAL_HOLD
                    self._update_probation(resource, record)
                    return Refusal.KEPT
                if monotonic_now - record.received_at < REFUSAL_HOLD:
                    return Refusal.KEPT  # refused at two places in a row: not a revocation
            if token.token in record.refused:
                return Refusal.REPLACED  # its replacement is under way, or will be
            # Kept for the other places until the replacement comes: the caller waits for a
            # token other than this one (`demand`'s `refused`).
            record.refused[token.token] = token.expires_at
            record.refused_at, record.answers = place, None
            self._update_probation(resource, record)
            return Refusal.DROPPED

    def invalidate(self, token: AccessToken) -> Refusal:
        """The application says `token` was refused: drop it if it is still the token in use
        for its resource, so that the next caller fetches another, and never take it back
        from a cache; a newer one stays (REPLACED).

        As with 401s, whatever refuses every token costs a token request a minute at most:
        the token fetched in answer to an invalidation, invalidated again within
        `REFUSAL_HOLD` of its arrival, is KEPT, since its successor would most likely be
        refused as well."""
        with self._lock:
            record = self._records.get(token.resource)
            if record is None or record.entry.token != token:
                return Refusal.REPLACED
            if record.answers_invalidation and self.monotonic() - record.received_at < REFUSAL_HOLD:
                return Refusal.KEPT
            record.invalidated = True
            record.refused[token.token] = token.expires_at
            record.entry = _NO_ENTRY
            record.refused_at = record.answers = None
            record.refuses_all.clear()
            self._update_probation(token.resource, record)
            return Refusal.DROPPED

    def accepts(self, flight: Flight, token: AccessToken) -> bool:
        """Whether `token`, read from a shared cache, can end `flight` instead of a request.

        It must not be one an API refused, and must be usable (fresh, for a refresh).
        """
        record = self._records[flight.resource]
        if token.token in record.refused:
            return False
        entry = self._entry_for(token)
        limit = entry.refresh_at if flight.purpose == "refresh" else entry.usable_until
        return self.clock() < limit

    def after_fork(self) -> None:
        """In a forked child: forget the flights under way (their event loops and threads
        stayed in the parent), and replace a lock another thread may have held."""
        self._lock = threading.Lock()
        # A child is an instance of its own: it draws its own refresh moment.
        self.refresh_spread = self._draw_spread()
        for record in self._records.values():
            record.flight = None
            if record.entry.token is not None:
                record.entry = self._entry_for(record.entry.token)

    def expires_in(self, resource: str | None) -> float:
        """Seconds until `resource`'s token stops being served (negative once it has)."""
        record = self._records.get(resource)
        return -math.inf if record is None else record.entry.usable_until - self.clock()

    def _alive(self, flight: Flight) -> bool:
        return self._owner_alive(flight.owner)

    def _update_probation(self, resource: str | None, record: _Record) -> None:
        """Have acceptances reported while the token answers a refusal or a place is marked."""
        if record.answers is not None or record.refuses_all:
            self.on_probation.add(resource)
        else:
            self.on_probation.discard(resource)

    def _join(self, flight: Flight, owner: object, deadline: float | None, now: float) -> Waiter:
        waiter = Waiter(flight, owner, deadline, joined_at=now)
        flight.waiters.append(waiter)
        return waiter

    def _end(self, record: _Record, flight: Flight) -> None:
        """End `flight` without an outcome: its waiters ask again."""
        if not flight.ended:
            flight.ended = True
            flight._wake()
        if record.flight is flight:
            record.flight = None

    def _backoff(self, record: _Record, error: TokenRequestError) -> float | None:
        """Seconds before the next token request after `error`, or None when waiting cannot
        help: a failure no retry heals, or a Retry-After longer than the policy honours."""
        record.failures += 1
        if not is_retryable(error):
            return None
        retry_after = error.retry_after or 0.0
        if retry_after > self.retry.max_retry_after:
            return None
        delay = max(retry_after, self.retry.delay(record.failures))
        beyond = record.failures - self.retry.max_attempts
        if beyond >= 0:
            floor = EXTENDED_BACKOFF_FIRST * 2.0 ** min(beyond, 32)
            delay = max(delay, min(MAX_BACKOFF, floor))
        return delay

    def _worth_waiting(self, flight: Flight) -> bool:
        """Whether a waiter of `flight` can use its next attempt."""
        for waiter in flight.waiters:
            if waiter.deadline is None:
                if flight.failures < self.retry.max_attempts:
                    return True
            elif flight.next_attempt_at < waiter.deadline:
                return True
        return False

    def _too_late(self, waiter: Waiter, now: float) -> TokenRequestError:
        """The error of a waiter whose deadline passes before a token can come."""
        flight = waiter.flight
        last = flight.last_error or self._records[flight.resource].error
        allowed = (waiter.deadline or now) - waiter.joined_at
        return _not_in_time(flight.resource, allowed, last, flight.next_attempt_at - now)

    def _entry_for(self, token: AccessToken) -> _Entry:
        """`token` with when it turns stale and when it stops being usable."""
        leeway = self.leeway
        if token.lifetime is not None:
            leeway = min(leeway, token.lifetime / 2)
        usable_until = token.expires_at - leeway
        window = self.refresh_window
        if token.issued_at is not None:
            window = min(window, (usable_until - token.issued_at) / 2)
        refresh_at = usable_until - window * (1.0 - self.refresh_spread)
        return _Entry(token, refresh_at=refresh_at, usable_until=usable_until)


def _held_back(
    error: TokenRequestError, retry_in: float, failures: int, allowed: float | None
) -> TokenRequestError:
    """The error of a caller who cannot wait `retry_in` seconds for the next token request
    after `error` (the last of `failures` in a row): it could wait `allowed` seconds, or,
    without a deadline, as long as the retry policy honours."""
    if allowed is not None:
        return _not_in_time(error.resource, allowed, error, retry_in)
    why = "as it asked" if error.retry_after else f"after {failures} failed in a row"
    return _restated(
        f"not asking the token endpoint for a token {for_resource(error.resource)} for "
        f"{_seconds(retry_in)} s more, {why}: {error}",
        error,
        resource=error.resource,
        retry_after=retry_in,
    )


def _not_in_time(
    resource: str | None, allowed: float, last: TokenRequestError | None, next_in: float
) -> TokenRequestError:
    """The error of a caller that could wait `allowed` seconds, when no token can come by
    then: the next token request goes out in `next_in` seconds, and `last` was the last
    answer (None: the request under way has not been answered yet)."""
    if last is None:
        reason = "the token endpoint has not answered yet"
    elif next_in > 0:
        reason = (
            f"the next token request goes out in {_seconds(next_in)} s; the last answer: {last}"
        )
    else:
        reason = f"the last answer: {last}"
    return _restated(
        f"no token {for_resource(resource)} can come within the {_seconds(allowed)} s the "
        f"request could wait ({reason})",
        last,
        resource=resource,
        retry_after=max(0.0, next_in) if last else None,
    )


def _restated(
    message: str,
    last: TokenRequestError | None,
    *,
    resource: str | None,
    retry_after: float | None,
) -> TokenRequestError:
    """A new error saying `message`, carrying what the endpoint last answered (`last`)."""
    error = TokenRequestError(
        message,
        status_code=last.status_code if last else None,
        error=last.error if last else None,
        error_description=last.error_description if last else None,
        resource=resource,
        retry_after=retry_after,
    )
    if last is not None:
        error.__cause__ = last.__cause__
    return error


def _seconds(value: float) -> str:
    """`value` seconds for a message: to a tenth of a second, without trailing zeros."""
    return f"{round(max(value, 0.0), 1):g}"


def _copy_of(error: MosaicAuthError) -> MosaicAuthError:
    """`error` again, for one more waiter: one exception object raised in many tasks would
    gather all their tracebacks."""
    duplicate = copy.copy(error)
    duplicate.__cause__ = error.__cause__
    duplicate.__suppress_context__ = True
    return duplicate


def _after_attempts(flight: Flight, error: MosaicAuthError, now: float) -> MosaicAuthError:
    """A copy of `error` that says how many attempts it took and over how long: the wait a
    person saw, not one attempt's."""
    duplicate = _copy_of(error)
    started = flight.first_attempt_at if flight.first_attempt_at is not None else now
    duplicate.args = (
        f"{error.args[0]} (the last of {flight.failures} attempts, "
        f"{now - started:.0f} s after the first)",
    )
    return duplicate
